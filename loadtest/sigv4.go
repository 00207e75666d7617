package loadtest

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/portico-gateway/portico/management/client"
)

// postSigner signs @connections POSTs with AWS Signature Version 4 as
// management/client (and the AWS SDKs) do: service execute-api, the
// connection id escaped as one path segment with every byte outside
// A-Z a-z 0-9 - _ . ~ as %XX, the path escaped once more for the
// canonical request, and host and X-Amz-Date signed. Its output is the
// header lines to add to the request the keep-alive client writes.
//
// It signs by hand, for this one request shape (the generator shares the
// gateway's cores, and the SDK signer costs it ~20 µs a post), with the
// signing key derived once per day; TestPostSignerMatchesSDK checks that
// the header lines equal the SDK signer's. With a session token it uses
// the SDK signer.
type postSigner struct {
	creds  aws.Credentials
	region string
	signer *v4.Signer

	key atomic.Pointer[dayKey] // the signing key of the last day signed for
}

// dayKey is a signing key and its day (YYYYMMDD), with HMACs keyed with
// it, reset and reused.
type dayKey struct {
	day  string
	key  []byte
	macs sync.Pool // of *dayMAC
}

// dayMAC is a pooled HMAC, room for its sum, and the buffer the
// canonical request is written into (what an HMAC's Write is given
// escapes, so it is kept here rather than on the stack).
type dayMAC struct {
	h   hash.Hash
	sum [sha256.Size]byte
	buf []byte
}

func newPostSigner(accessKey, secretKey, region string) *postSigner {
	return &postSigner{
		creds:  aws.Credentials{AccessKeyID: accessKey, SecretAccessKey: secretKey, Source: "portico-load"},
		region: region,
		signer: v4.NewSigner(),
	}
}

// sign appends to dst the header lines ("Name: value\r\n"...) that sign
// a POST of body to host and the path base + connectionID, where base is
// the stage's @connections path ("/dev/@connections/"), rawBase its
// escaped form and target the path as sent (rawBase and the escaped id).
func (s *postSigner) sign(ctx context.Context, dst []byte, host, base, rawBase, connectionID, target string, body []byte, now time.Time) ([]byte, error) {
	if s.creds.SessionToken == "" {
		return s.signFast(dst, host, target, body, now), nil
	}
	out, err := s.signSDK(ctx, host, base, rawBase, connectionID, body, now)
	return append(dst, out...), err
}

// signFast is sign for credentials without a session token: the
// canonical request of a POST whose signed headers are host and
// X-Amz-Date, written directly into a pooled buffer. wirePath is
// the path as sent.
func (s *postSigner) signFast(dst []byte, host, wirePath string, body []byte, now time.Time) []byte {
	var dateBuf [16]byte
	amzDate := now.UTC().AppendFormat(dateBuf[:0], "20060102T150405Z")
	day := amzDate[:8]
	dk := s.key.Load()
	if dk == nil || dk.day != string(day) {
		k := []byte("AWS4" + s.creds.SecretAccessKey)
		for _, part := range []string{string(day), s.region, client.SigningName, "aws4_request"} {
			k = hmacSHA256(k, part)
		}
		dk = &dayKey{day: string(day), key: k}
		dk.macs.New = func() any { return &dayMAC{h: hmac.New(sha256.New, k), buf: make([]byte, 0, 512)} }
		s.key.Store(dk) // signers racing at midnight store equal keys
	}
	// The canonical URI escapes the wire path once more, segment by
	// segment, as the SDK does for execute-api: every byte but the
	// unreserved ones and the '/' between segments.
	m := dk.macs.Get().(*dayMAC)
	canon := append(m.buf[:0], "POST\n"...)
	for i := 0; i < len(wirePath); i++ {
		c := wirePath[i]
		if c == '/' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			canon = append(canon, c)
		} else {
			canon = append(canon, '%', upperHexDigits[c>>4], upperHexDigits[c&0x0f])
		}
	}
	sum := sha256.Sum256(body)
	canon = append(canon, "\n\nhost:"...)
	canon = append(canon, host...)
	canon = append(canon, "\nx-amz-date:"...)
	canon = append(canon, amzDate...)
	canon = append(canon, "\n\nhost;x-amz-date\n"...)
	canon = hex.AppendEncode(canon, sum[:])
	ch := sha256.Sum256(canon)
	// The scope, then the string to sign, in the same buffer.
	sts := append(canon[:0], day...)
	sts = append(sts, '/')
	sts = append(sts, s.region...)
	sts = append(sts, "/"+client.SigningName+"/aws4_request"...)
	scopeLen := len(sts)
	sts = append(sts, "AWS4-HMAC-SHA256\n"...)
	sts = append(sts, amzDate...)
	sts = append(sts, '\n')
	sts = append(sts, sts[:scopeLen]...)
	sts = append(sts, '\n')
	sts = hex.AppendEncode(sts, ch[:])
	m.buf = sts
	m.h.Reset()
	m.h.Write(sts[scopeLen:])
	sig := m.h.Sum(m.sum[:0])
	dst = append(dst, "Authorization: AWS4-HMAC-SHA256 Credential="...)
	dst = append(dst, s.creds.AccessKeyID...)
	dst = append(dst, '/')
	dst = append(dst, sts[:scopeLen]...)
	dst = append(dst, ", SignedHeaders=host;x-amz-date, Signature="...)
	dst = hex.AppendEncode(dst, sig)
	dk.macs.Put(m)
	dst = append(dst, "\r\nX-Amz-Date: "...)
	dst = append(dst, amzDate...)
	return append(dst, "\r\n"...)
}

const upperHexDigits = "0123456789ABCDEF"

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

// signSDK is sign with the SDK signer.
func (s *postSigner) signSDK(ctx context.Context, host, base, rawBase, connectionID string, body []byte, now time.Time) ([]byte, error) {
	req := &http.Request{
		Method: http.MethodPost,
		URL: &url.URL{Scheme: "http", Host: host, Path: base + connectionID,
			RawPath: rawBase + client.EscapeConnectionID(connectionID)},
		Host:   host,
		Header: http.Header{},
	}
	sum := sha256.Sum256(body)
	if err := s.signer.SignHTTP(ctx, s.creds, req, hex.EncodeToString(sum[:]), client.SigningName, s.region, now); err != nil {
		return nil, fmt.Errorf("signing a POST: %w", err)
	}
	var out []byte
	for _, name := range []string{"Authorization", "X-Amz-Date", "X-Amz-Security-Token"} {
		if v := req.Header.Get(name); v != "" {
			out = append(out, name+": "+v+"\r\n"...)
		}
	}
	return out, nil
}
