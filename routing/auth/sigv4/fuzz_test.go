package sigv4

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

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
		if s := (&signature{}); parseAuthorization(s, authz) == nil {
			if !strings.Contains(authz, s.accessKeyID) || !strings.Contains(authz, s.value) || !strings.Contains(authz, s.signedHeadersRaw) {
				t.Fatalf("parsed fields not from the header: %+v", s)
			}
			if len(s.value) != 64 || len(s.signedHeaders) == 0 {
				t.Fatalf("accepted a malformed header: %+v", s)
			}
		}
	})
}

// FuzzAmzDate: parseAmzDate accepts what time.Parse accepts with
// X-Amz-Date's layout and formats back to the same text, and reads the
// same time. time.Parse alone is looser: it takes a fractional second
// after the seconds field ("…T000000,0Z") that the layout does not name,
// which X-Amz-Date never carries.
func FuzzAmzDate(f *testing.F) {
	for _, s := range []string{"20240101T000000Z", "20240229T235959Z", "20230229T000000Z", "20241301T000000Z",
		"20240100T000000Z", "20240101T240000Z", "20240101T006000Z", "20240101T000060Z", "00000101T000000Z",
		"2024011T000000Z", "20240101t000000Z", "2024-101T000000Z", "20240101T000000", "+2024101T000000Z",
		"00000101T000000,0Z", "20240101T000000.5Z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := time.Parse(amzDateFormat, s)
		if err == nil && want.Format(amzDateFormat) != s {
			err = errors.New("not in the layout's own form")
		}
		got, ok := parseAmzDate(s)
		if ok != (err == nil) {
			t.Fatalf("%q: parseAmzDate ok %v, time.Parse error %v", s, ok, err)
		}
		if ok && !got.Equal(want) {
			t.Fatalf("%q: parseAmzDate %v, time.Parse %v", s, got, want)
		}
		if ok && appendAmzDateString(got) != s {
			t.Fatalf("%q: formats back as %q", s, appendAmzDateString(got))
		}
	})
}

func appendAmzDateString(t time.Time) string { return string(appendAmzDate(nil, t)) }
