package connections

import (
	"crypto/rand"
	"encoding/base64"
	mrand "math/rand/v2"
)

// IDLen is the length of an id (NewID, AppendEventID).
const IDLen = 16

// NewID returns a new identifier in Amazon API Gateway's form: 16
// characters, the URL-safe base64 of 11 bytes, so always ending in '='.
// The bytes come from crypto/rand, so ids cannot be guessed. The same form
// is used for connection, request and message ids.
func NewID() string {
	var b [11]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never returns an error (Go 1.24+)
	return base64.URLEncoding.EncodeToString(b[:])
}

// idAlphabet is the URL-safe base64 alphabet.
const idAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// AppendEventID appends a new request or message id to b, in NewID's form
// (what base64 makes of 11 random bytes: the 15th character carries 4
// bits). Its bits come from math/rand/v2 (the runtime's ChaCha8, per
// thread, seeded by the OS): as unique as NewID's, without a system call
// or an allocation, for the ids each message of an access-logged stage
// needs; they name a request in a log line, they grant nothing. Connection
// ids, which address a connection, come from NewID.
func AppendEventID(b []byte) []byte {
	x, y := mrand.Uint64(), mrand.Uint64()
	const a = idAlphabet
	id := [IDLen]byte{ // unrolled: a loop costs twice as much
		a[x&63], a[x>>6&63], a[x>>12&63], a[x>>18&63], a[x>>24&63],
		a[x>>30&63], a[x>>36&63], a[x>>42&63], a[x>>48&63], a[x>>54&63],
		a[y&63], a[y>>6&63], a[y>>12&63], a[y>>18&63], a[(y>>24&15)<<2], '=',
	}
	return append(b, id[:]...)
}
