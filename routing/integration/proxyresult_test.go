package integration

import (
	"bytes"
	"fmt"
	"net/http"
	"reflect"
	"testing"

	"github.com/tidwall/gjson"
)

// parseProxyResultByPaths is parseProxyResult as it was written first,
// a gjson.GetBytes per field: FuzzParseProxyResult holds the one-pass
// reader to its answers.
func parseProxyResultByPaths(resp *http.Response, body []byte) (*Response, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && trimmed[0] == '{' && gjson.ValidBytes(trimmed) {
		sc := gjson.GetBytes(trimmed, "statusCode")
		if sc.Exists() {
			code, ok := statusCode(sc)
			if !ok {
				return nil, fmt.Errorf("%w: statusCode %s is not an HTTP status", ErrIntegration, sc.Raw)
			}
			r := &Response{StatusCode: code, Headers: http.Header{}}
			if b := gjson.GetBytes(trimmed, "body"); b.Exists() {
				if b.Type == gjson.String {
					r.Body = b.Str
				} else if b.Type != gjson.Null {
					r.Body = b.Raw
				}
			}
			r.IsBase64Encoded = gjson.GetBytes(trimmed, "isBase64Encoded").Bool()
			headers := gjson.GetBytes(trimmed, "headers")
			multi := gjson.GetBytes(trimmed, "multiValueHeaders")
			// ForEach on null, a string or an array would yield headers
			// named "" or "0", which end up in a 101 response as a
			// malformed line: null is no headers, the others malformed.
			for name, h := range map[string]gjson.Result{"headers": headers, "multiValueHeaders": multi} {
				if h.Exists() && h.Type != gjson.Null && !h.IsObject() {
					return nil, fmt.Errorf("%w: %s %s is not an object", ErrIntegration, name, h.Raw)
				}
			}
			if !headers.IsObject() {
				headers = gjson.Result{}
			}
			if !multi.IsObject() {
				multi = gjson.Result{}
			}
			// A header without a name cannot be written: it is left out.
			headers.ForEach(func(k, v gjson.Result) bool {
				if k.String() != "" {
					r.Headers.Add(k.String(), v.String())
				}
				return true
			})
			multi.ForEach(func(k, v gjson.Result) bool {
				for _, item := range v.Array() {
					if k.String() != "" {
						r.Headers.Add(k.String(), item.String())
					}
				}
				return true
			})
			return r, nil
		}
	}
	if resp == nil {
		return nil, fmt.Errorf("%w: the answer is not a Lambda-proxy result", ErrIntegration)
	}
	return &Response{StatusCode: resp.StatusCode, Body: string(body), Headers: http.Header{}}, nil
}

// FuzzParseProxyResult: the one-pass reader of Lambda-proxy results
// answers what the reader by paths answers.
func FuzzParseProxyResult(f *testing.F) {
	for _, s := range []string{
		`{"statusCode":201,"body":"hello"}`, `{"statusCode":"404","body":"nope"}`, `{"statusCode":200,"body":{"a":[1, 2]}}`,
		`{"statusCode":200,"body":null}`, `{"statusCode":204}`, `{"statusCode":2.01e2}`, `{"statusCode":200.5}`,
		`{"statusCode":200,"headers":{"Sec-WebSocket-Protocol":"chat.v1","X-One":"1"},"multiValueHeaders":{"Set-Cookie":["a=1","b=2"],"X-One":["2"]}}`,
		`{"statusCode":200,"headers":null,"multiValueHeaders":null}`, `{"statusCode":200,"headers":{"X-N":1,"X-B":true},"multiValueHeaders":{"X-S":"one","X-N":null}}`,
		`{"statusCode":200,"body":"AAEC","isBase64Encoded":true}`, `{"statusCode":200,"headers":"x"}`, `{"statusCode":200,"multiValueHeaders":[1]}`,
		`{"statusCode":200,"statusCode":500,"body":"a","body":"b"}`, `{"ok":true}`, `[{"statusCode":500}]`, `{"statusCode":200,`,
		`{"status\u0043ode":201}`, `{"statusCode":200,"headers":{"":"x"},"multiValueHeaders":{"":["y"]}}`,
	} {
		f.Add(s)
	}
	plain := &http.Response{StatusCode: 202}
	f.Fuzz(func(t *testing.T, body string) {
		got, gerr := parseProxyResult(plain, []byte(body))
		want, werr := parseProxyResultByPaths(plain, []byte(body))
		if (gerr == nil) != (werr == nil) || !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: one pass %+v, %v; by paths %+v, %v", body, got, gerr, want, werr)
		}
	})
}
