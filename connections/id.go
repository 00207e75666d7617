package connections

import (
	"crypto/rand"
	"encoding/base64"
)

// NewID returns a new identifier in Amazon API Gateway's form: 16
// characters, the URL-safe base64 of 11 bytes, so always ending in '='.
// The bytes come from crypto/rand, so ids cannot be guessed. The same form
// is used for connection, request and message ids.
func NewID() string {
	var b [11]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never returns an error (Go 1.24+)
	return base64.URLEncoding.EncodeToString(b[:])
}
