package loadtest

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strings"
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

// dayKey is a signing key and its day (YYYYMMDD).
type dayKey struct {
	day string
	key []byte
}

func newPostSigner(accessKey, secretKey, region string) *postSigner {
	return &postSigner{
		creds:  aws.Credentials{AccessKeyID: accessKey, SecretAccessKey: secretKey, Source: "portico-load"},
		region: region,
		signer: v4.NewSigner(),
	}
}

// sign returns the header lines ("Name: value\r\n"...) that sign a POST
// of body to host and the path base + connectionID, where base is the
// stage's @connections path ("/dev/@connections/") and rawBase its
// escaped form.
func (s *postSigner) sign(ctx context.Context, host, base, rawBase, connectionID string, body []byte, now time.Time) ([]byte, error) {
	if s.creds.SessionToken == "" {
		return s.signFast(host, rawBase+client.EscapeConnectionID(connectionID), body, now), nil
	}
	return s.signSDK(ctx, host, base, rawBase, connectionID, body, now)
}

// signFast is sign for credentials without a session token: the
// canonical request of a POST whose signed headers are host and
// X-Amz-Date, written directly. wirePath is the path as sent.
func (s *postSigner) signFast(host, wirePath string, body []byte, now time.Time) []byte {
	now = now.UTC()
	amzDate := now.Format("20060102T150405Z")
	day := amzDate[:8]
	dk := s.key.Load()
	if dk == nil || dk.day != day {
		k := []byte("AWS4" + s.creds.SecretAccessKey)
		for _, part := range []string{day, s.region, client.SigningName, "aws4_request"} {
			k = hmacSHA256(k, part)
		}
		dk = &dayKey{day: day, key: k}
		s.key.Store(dk) // signers racing at midnight store equal keys
	}
	// The canonical URI escapes the wire path once more, segment by
	// segment, as the SDK does for execute-api.
	var canon strings.Builder
	canon.Grow(160 + 2*len(wirePath))
	canon.WriteString("POST\n")
	for i, seg := range strings.Split(wirePath, "/") {
		if i > 0 {
			canon.WriteByte('/')
		}
		canon.WriteString(client.EscapeConnectionID(seg))
	}
	sum := sha256.Sum256(body)
	canon.WriteString("\n\nhost:" + host + "\nx-amz-date:" + amzDate + "\n\nhost;x-amz-date\n" + hex.EncodeToString(sum[:]))
	scope := day + "/" + s.region + "/" + client.SigningName + "/aws4_request"
	ch := sha256.Sum256([]byte(canon.String()))
	sig := hex.EncodeToString(hmacSHA256(dk.key, "AWS4-HMAC-SHA256\n"+amzDate+"\n"+scope+"\n"+hex.EncodeToString(ch[:])))
	return []byte("Authorization: AWS4-HMAC-SHA256 Credential=" + s.creds.AccessKeyID + "/" + scope +
		", SignedHeaders=host;x-amz-date, Signature=" + sig + "\r\nX-Amz-Date: " + amzDate + "\r\n")
}

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
