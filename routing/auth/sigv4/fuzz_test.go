package sigv4

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/portico-gateway/portico/routing/auth"
)

// FuzzSigV4Header feeds arbitrary Authorization headers, dates, paths and
// query strings to the verifier. Whatever the input, it must not panic,
// must refuse with an *auth.Error of kind ErrForbidden that has an error
// type and a message free of control characters, and a header it parses
// must keep the fields it was given. The seed corpus is in
// testdata/fuzz/FuzzSigV4Header.
func FuzzSigV4Header(f *testing.F) {
	f.Add("AWS4-HMAC-SHA256 Credential=AKIDPORTICO/20250303/us-east-1/execute-api/aws4_request, SignedHeaders=host;x-amz-date, Signature="+strings.Repeat("a", 64),
		"20250303T100000Z", "/prod/%40connections/abc%3D", "")
	f.Add("", "", "/prod", "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDPORTICO%2F20250303%2Fus-east-1%2Fexecute-api%2Faws4_request&X-Amz-Date=20250303T100000Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature="+strings.Repeat("0", 64))
	f.Add("AWS4-HMAC-SHA256 Credential=/, SignedHeaders=;;, Signature=\x00", "2025", "/", "a=%zz")
	v := newVerifier(f)
	f.Fuzz(func(t *testing.T, authz, date, rawPath, rawQuery string) {
		h := http.Header{}
		if authz != "" {
			h.Set("Authorization", authz)
		}
		if date != "" {
			h.Set("X-Amz-Date", date)
		}
		path, err := url.PathUnescape(rawPath)
		if err != nil {
			path = rawPath
		}
		q, _ := url.ParseQuery(rawQuery)
		r := &auth.Request{Method: "POST", Path: path, RawPath: rawPath, Host: "127.0.0.1:9090", Header: h, Query: q, RawQuery: rawQuery}
		_, err = v.Verify(context.Background(), r)
		if err == nil {
			t.Fatalf("accepted a request no key signed: %q %q %q %q", authz, date, rawPath, rawQuery)
		}
		var ae *auth.Error
		if !errors.As(err, &ae) || !errors.Is(err, auth.ErrForbidden) {
			t.Fatalf("err %v (%T), want an *auth.Error of kind ErrForbidden", err, err)
		}
		if ae.Type == "" || ae.Message == "" {
			t.Fatalf("refusal without type or message: %+v", ae)
		}
		if strings.ContainsFunc(ae.Message, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Fatalf("message holds control characters: %q", ae.Message)
		}
		if s, err := parseAuthorization(authz); err == nil {
			if !strings.Contains(authz, s.accessKeyID) || !strings.Contains(authz, s.value) || !strings.Contains(authz, s.signedHeadersRaw) {
				t.Fatalf("parsed fields not from the header: %+v", s)
			}
			if len(s.value) != 64 || len(s.signedHeaders) == 0 {
				t.Fatalf("accepted a malformed header: %+v", s)
			}
		}
	})
}
