package sigv4

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/portico-gateway/portico/routing/auth"
)

// sdkHeaderSignature is the reference: the request rebuilt as it was
// signed (signable), signed by aws-sdk-go-v2's signer as Verify did
// before headerSignature, with the signature and signed headers read
// back from the Authorization header it writes.
func sdkHeaderSignature(t testing.TB, v *Verifier, r *auth.Request, s *signature, key *Key) (sig, signed string, err error) {
	t.Helper()
	req, err := signable(r, s)
	if err != nil {
		return "", "", err
	}
	sum := sha256.Sum256(r.Body)
	tokenSigned := false
	for _, h := range s.signedHeaders {
		tokenSigned = tokenSigned || h == "x-amz-security-token"
	}
	creds := aws.Credentials{AccessKeyID: key.AccessKeyID, SecretAccessKey: key.SecretAccessKey, SessionToken: s.token}
	if err := v.signer.SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), v.service, v.region, s.date,
		func(o *v4.SignerOptions) { o.DisableSessionToken = !tokenSigned }); err != nil {
		t.Fatal(err)
	}
	sig, signed = fromAuthorization(req.Header.Get("Authorization"))
	return sig, signed, nil
}

// checkAgainstSDK signs r both ways and wants the same signature and
// signed-header list, or both refusing with the same sentinel.
func checkAgainstSDK(t *testing.T, v *Verifier, r *auth.Request, s *signature) {
	t.Helper()
	ks := v.keys[testKey]
	want, wantSigned, wantErr := sdkHeaderSignature(t, v, r, s, ks.key)
	got, gotSigned, gotErr := v.headerSignature(r, s, ks)
	if (wantErr == nil) != (gotErr == nil) ||
		errors.Is(wantErr, ErrIncompleteSignature) != errors.Is(gotErr, ErrIncompleteSignature) ||
		errors.Is(wantErr, ErrSignatureMismatch) != errors.Is(gotErr, ErrSignatureMismatch) {
		t.Fatalf("errors differ: SDK %v, ours %v", wantErr, gotErr)
	}
	if wantErr != nil {
		return
	}
	if string(got) != want || gotSigned != wantSigned {
		t.Fatalf("signatures differ for %+v / %+v:\nSDK  %s %s\nours %s %s", r, s, want, wantSigned, got, gotSigned)
	}
}

func TestSignatureMatchesSDK(t *testing.T) {
	v := newVerifier(t)
	d := t0.Add(-time.Minute)
	for _, tc := range []struct {
		name  string
		r     auth.Request
		heads []string
		token string
	}{
		{"post", auth.Request{Method: "POST", Path: "/prod/@connections/abc=", RawPath: "/prod/%40connections/abc%3D", Host: "127.0.0.1:9090",
			Header: http.Header{"Content-Type": {"application/json"}, "Content-Length": {"5"}}, Body: []byte("hello")},
			[]string{"content-length", "content-type", "host", "x-amz-date"}, ""},
		{"unsorted, twice, token, spaces", auth.Request{Method: "GET", Path: "/a b", Host: "gw.example.com:443",
			Header: http.Header{"X-A": {"  a   b  ", "\tc\t"}, "X-Amz-Security-Token": {"tok"}}, RawQuery: "b=2&a=1&a=0&c=%20+x&bad;=1&z"},
			[]string{"x-amz-date", "x-a", "host", "x-a", "x-amz-security-token", "x-missing"}, "tok"},
		{"no date", auth.Request{Method: "DELETE", Path: "/", Host: "[::1]"}, []string{"host"}, ""},
		{"ipv6 host", auth.Request{Method: "DELETE", Path: "/", Host: "[::1]"}, []string{"host", "x-amz-date"}, ""},
		{"default port", auth.Request{Method: "DELETE", Path: "/", Host: "h:443"}, []string{"host", "x-amz-date"}, ""},
		{"host with a path", auth.Request{Method: "GET", Path: "/p", Host: "h/x?y"}, []string{"host", "x-amz-date"}, ""},
		{"zero length", auth.Request{Method: "POST", Path: "/", Host: "h:", Header: http.Header{"Content-Length": {"0"}}},
			[]string{"content-length", "host", "x-amz-date"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &signature{signedHeaders: tc.heads, signedHeadersRaw: strings.Join(tc.heads, ";"), date: d, token: tc.token}
			checkAgainstSDK(t, v, &tc.r, s)
		})
	}
}

// FuzzSignatureMatchesSDK: for random requests (method, path as sent,
// host, query, two headers with their values, the signed-header list, a
// session token, a body, a time), headerSignature and the SDK's signer
// make the same signature over the same signed headers.
func FuzzSignatureMatchesSDK(f *testing.F) {
	f.Add("POST", "/prod/%40connections/abc%3D", "127.0.0.1:9090", "", "content-type", "application/json", "x-b", " a  b ",
		"content-type;host;x-amz-date", "", []byte("hello"), int64(0))
	f.Add("GET", "/a%2Fb/ c", "[::1]:443", "x=1&x=0&y=%zz&a+b=c", "x-a", "\t1  2\t", "x-amz-security-token", "t",
		"x-a;x-amz-security-token;x-amz-date;x-a;x-nope", "t", []byte{}, int64(86399))
	v := newVerifier(f)
	f.Fuzz(func(t *testing.T, method, rawPath, host, rawQuery, h1, v1, h2, v2, signed, token string, body []byte, offset int64) {
		path, err := url.PathUnescape(rawPath)
		if err != nil {
			path = rawPath
		}
		hdr := http.Header{}
		for _, kv := range [][2]string{{h1, v1}, {h2, v2}} {
			if kv[0] != "" {
				hdr.Add(kv[0], kv[1])
			}
		}
		var names []string
		for n := range strings.SplitSeq(signed, ";") {
			// parse admits only lowercase header names.
			if n != "" && validHeaderName(n) && strings.ToLower(n) == n {
				names = append(names, n)
			}
		}
		if len(names) == 0 {
			return
		}
		r := &auth.Request{Method: method, Path: path, RawPath: rawPath, Host: host, Header: hdr, RawQuery: rawQuery, Body: body}
		s := &signature{signedHeaders: names, signedHeadersRaw: strings.Join(names, ";"),
			date: t0.Add(time.Duration(offset%(10*86400)) * time.Second), token: token}
		checkAgainstSDK(t, v, r, s)
	})
}

// TestVerifyAgreesWithSDKSigner: requests the SDK signs (with a session
// token, a query, repeated headers) verify; the same with one byte of
// the body changed do not.
func TestVerifyAgreesWithSDKSigner(t *testing.T) {
	v := newVerifier(t, Key{AccessKeyID: testKey, SecretAccessKey: testSecret, SessionToken: "sess"})
	for _, body := range []string{"", "hello", strings.Repeat("x", 5000)} {
		req, _ := http.NewRequest(http.MethodPost, "http://gw.example.com:8443/prod/@connections/a%3D?b=2&a=1", bytes.NewReader([]byte(body)))
		req.Header.Add("X-Multi", "  one  two ")
		req.Header.Add("X-Multi", "three")
		sum := sha256.Sum256([]byte(body))
		req.ContentLength = int64(len(body))
		creds := aws.Credentials{AccessKeyID: testKey, SecretAccessKey: testSecret, SessionToken: "sess"}
		if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), Service, testRegion, t0); err != nil {
			t.Fatal(err)
		}
		ar := toAuth(t, req, body)
		if _, err := v.Verify(context.Background(), ar); err != nil {
			t.Fatalf("body %d bytes: %v", len(body), err)
		}
		ar.Body = append([]byte(body), 'x')
		if _, err := v.Verify(context.Background(), ar); !errors.Is(err, ErrSignatureMismatch) {
			t.Fatalf("tampered body %d bytes: %v, want a mismatch", len(body), err)
		}
	}
}

// TestSigningKeyPerDay: the signing key is derived per day; a request
// of the next day (and one of the day before, after it) still verifies,
// and a wrong secret is refused on each.
func TestSigningKeyPerDay(t *testing.T) {
	now := t0
	v, err := New(Options{Region: testRegion, Keys: []Key{{AccessKeyID: testKey, SecretAccessKey: testSecret}}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	for _, at := range []time.Time{t0, t0.Add(24 * time.Hour), t0, t0.Add(48 * time.Hour)} {
		now = at
		for _, secret := range []string{testSecret, "wrong"} {
			req := post("hi")
			sign(t, req, "hi", testKey, secret, testRegion, Service, at)
			_, err := v.Verify(context.Background(), toAuth(t, req, "hi"))
			if secret == testSecret && err != nil {
				t.Fatalf("%v: %v", at, err)
			}
			if secret != testSecret && !errors.Is(err, ErrSignatureMismatch) {
				t.Fatalf("%v, wrong secret: %v", at, err)
			}
		}
	}
}
