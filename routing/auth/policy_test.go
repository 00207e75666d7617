package auth

import (
	"errors"
	"net/http"
	"net/url"
	"testing"
)

const arn = "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/$connect"

func policy(statements string) []byte {
	return []byte(`{"principalId":"u","policyDocument":{"Version":"2012-10-17","Statement":` + statements + `},"context":{"n":3,"b":false,"s":"x"}}`)
}

func TestPolicy(t *testing.T) {
	for _, tc := range []struct {
		name, statements string
		allow            bool
	}{
		{"exact allow", `[{"Action":"execute-api:Invoke","Effect":"Allow","Resource":"` + arn + `"}]`, true},
		{"single statement object", `{"Action":"execute-api:Invoke","Effect":"Allow","Resource":"` + arn + `"}`, true},
		{"star resource", `[{"Action":"execute-api:Invoke","Effect":"Allow","Resource":"*"}]`, true},
		{"wildcards in the ARN", `[{"Action":"execute-api:*","Effect":"Allow","Resource":"arn:aws:execute-api:*:*:abc123/*/$connect"}]`, true},
		{"question marks", `[{"Action":"execute-api:Invoke","Effect":"Allow","Resource":"arn:aws:execute-api:us-east-1:123456789012:abc12?/pro?/$connect"}]`, true},
		{"arrays", `[{"Action":["s3:GetObject","execute-api:Invoke"],"Effect":"Allow","Resource":["arn:aws:execute-api:*:*:other/*","` + arn + `"]}]`, true},
		{"action case-insensitive", `[{"Action":"Execute-API:invoke","Effect":"Allow","Resource":"` + arn + `"}]`, true},
		{"effect case-insensitive", `[{"Action":"execute-api:Invoke","Effect":"allow","Resource":"` + arn + `"}]`, true},
		{"explicit deny wins", `[{"Action":"execute-api:Invoke","Effect":"Allow","Resource":"*"},{"Action":"*","Effect":"Deny","Resource":"` + arn + `"}]`, false},
		{"deny before allow still wins", `[{"Action":"execute-api:Invoke","Effect":"Deny","Resource":"*/prod/*"},{"Action":"execute-api:Invoke","Effect":"Allow","Resource":"*"}]`, false},
		{"no matching allow", `[{"Action":"execute-api:Invoke","Effect":"Allow","Resource":"arn:aws:execute-api:us-east-1:123456789012:abc123/dev/$connect"}]`, false},
		{"other action", `[{"Action":"execute-api:ManageConnections","Effect":"Allow","Resource":"*"}]`, false},
		{"resource case-sensitive", `[{"Action":"execute-api:Invoke","Effect":"Allow","Resource":"arn:aws:execute-api:us-east-1:123456789012:ABC123/prod/$connect"}]`, false},
		{"question mark is one character", `[{"Action":"execute-api:Invoke","Effect":"Allow","Resource":"arn:aws:execute-api:us-east-1:123456789012:abc123/prod?/$connect"}]`, false},
		{"empty statement list", `[]`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := ParseAnswer(policy(tc.statements))
			if err != nil {
				t.Fatal(err)
			}
			err = a.Allows(arn)
			if tc.allow && err != nil {
				t.Errorf("denied: %v", err)
			}
			if !tc.allow && !errors.Is(err, ErrForbidden) {
				t.Errorf("got %v, want ErrForbidden", err)
			}
		})
	}
}

func TestParseAnswer(t *testing.T) {
	a, err := ParseAnswer(policy(`[]`))
	if err != nil || a.PrincipalID != "u" || Stringify(a.Context["n"]) != "3" || Stringify(a.Context["b"]) != "false" {
		t.Errorf("policy answer: %+v, %v", a, err)
	}
	if a, err := ParseAnswer([]byte(`{"isAuthorized":true,"context":{"k":[1,2]}}`)); err != nil || a.Allows(arn) != nil {
		t.Errorf("simple allow: %v %v", a, err)
	}
	if a, err := ParseAnswer([]byte(`{"isAuthorized":false}`)); err != nil || !errors.Is(a.Allows(arn), ErrForbidden) {
		t.Errorf("simple deny: %v", err)
	}
	if _, err := ParseAnswer([]byte(`{"message":"Unauthorized"}`)); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("Unauthorized body: %v", err)
	}
	for _, garbage := range []string{``, `not json`, `{}`, `[]`, `{"message":"Internal error"}`,
		`{"principalId":"u","policyDocument":{"Statement":[{"Effect":"Maybe","Action":"*","Resource":"*"}]}}`,
		`{"principalId":"u","policyDocument":{"Statement":[]},"context":{"o":{"a":1}}}`,
		`{"isAuthorized":"yes"}`, `{"isAuthorized":true} {}`} {
		if _, err := ParseAnswer([]byte(garbage)); !errors.Is(err, ErrAuthorizerFailure) {
			t.Errorf("%q: got %v, want ErrAuthorizerFailure", garbage, err)
		}
	}
}

func TestWildcard(t *testing.T) {
	for _, tc := range []struct {
		p, s string
		want bool
	}{
		{"", "", true}, {"*", "", true}, {"*", "abc", true}, {"a*c", "abbbc", true}, {"a*c", "ab", false},
		{"?", "", false}, {"?", "a", true}, {"a?c", "abc", true}, {"**a", "a", true}, {"*a*b", "xaxb", true},
		{"*a*b", "xaxbx", false}, {"a*", "a", true}, {"abc", "abd", false}, {"*/$connect", "x/y/$connect", true},
	} {
		if got := Wildcard(tc.p, tc.s); got != tc.want {
			t.Errorf("Wildcard(%q, %q) = %v", tc.p, tc.s, got)
		}
	}
}

func TestStringify(t *testing.T) {
	for v, want := range map[any]string{"x": "x", true: "true", false: "false", 3.5: "3.5", float64(1740999600): "1740999600", nil: ""} {
		if got := Stringify(v); got != want {
			t.Errorf("Stringify(%v) = %q, want %q", v, got, want)
		}
	}
	if got := Stringify([]any{"admin", "users"}); got != "[admin users]" {
		t.Errorf("list: %q", got)
	}
}

func TestParseSource(t *testing.T) {
	r := &Request{
		Header:         http.Header{"Authorization": {"Bearer abc"}, "Sec-Websocket-Protocol": {"chat, tok.en"}, "Empty": {"  "}},
		Query:          url.Values{"token": {"first", "last"}, "Token": {"other"}},
		StageVariables: map[string]string{"key": "sv"},
		Context:        func(n string) (string, bool) { return map[string]string{"requestId": "r1"}[n], n == "requestId" },
	}
	for expr, want := range map[string]string{
		"route.request.header.Authorization":          "Bearer abc",
		"route.request.header.authorization":          "Bearer abc", // headers are case-insensitive
		"method.request.header.Authorization":         "Bearer abc",
		"$request.header.Authorization":               "Bearer abc",
		"route.request.querystring.token":             "last", // the last value, as queryStringParameters
		"route.request.querystring.Token":             "other",
		"stageVariables.key":                          "sv",
		"context.requestId":                           "r1",
		"route.request.header.Sec-WebSocket-Protocol": "tok.en",
	} {
		s, err := ParseSource(expr)
		if err != nil {
			t.Errorf("%s: %v", expr, err)
			continue
		}
		if v, ok := s.Value(r); !ok || v != want {
			t.Errorf("%s = %q %v, want %q", expr, v, ok, want)
		}
	}
	for _, expr := range []string{"route.request.header.Missing", "route.request.header.Empty", "route.request.querystring.none", "context.other", "stageVariables.none"} {
		s, err := ParseSource(expr)
		if err != nil {
			t.Fatal(err)
		}
		if v, ok := s.Value(r); ok {
			t.Errorf("%s = %q, want missing", expr, v)
		}
	}
	for _, bad := range []string{"", "header.Authorization", "route.request.header.", "route.request.header.Bad Name", "route.request.body.x",
		"route.request.querystring.a&b", "request.header.X"} {
		if _, err := ParseSource(bad); !errors.Is(err, ErrBadSource) {
			t.Errorf("%q: got %v, want ErrBadSource", bad, err)
		}
	}
	src, _ := ParseSource("route.request.header.Sec-WebSocket-Protocol")
	if got := selectedSubprotocol([]Source{src}, r); got != "chat" {
		t.Errorf("selected subprotocol %q, want chat", got)
	}
}

// FuzzAnswer: no answer makes ParseAnswer panic, and every answer it
// accepts either allows or denies with ErrForbidden.
func FuzzAnswer(f *testing.F) {
	f.Add(policy(`[{"Action":"execute-api:Invoke","Effect":"Allow","Resource":"*"}]`), arn)
	f.Add([]byte(`{"isAuthorized":true,"context":{"a":1}}`), "x")
	f.Add([]byte(`{"message":"Unauthorized"}`), "")
	f.Add(policy(`{"Action":["*"],"Effect":"Deny","Resource":["a*?b"]}`), "aXb")
	f.Fuzz(func(t *testing.T, body []byte, methodArn string) {
		a, err := ParseAnswer(body)
		if err != nil {
			if !errors.Is(err, ErrAuthorizerFailure) && !errors.Is(err, ErrUnauthorized) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			return
		}
		if err := a.Allows(methodArn); err != nil && !errors.Is(err, ErrForbidden) {
			t.Fatalf("Allows: %v", err)
		}
	})
}

// FuzzSource: ParseSource never panics, and what it accepts reads a
// value without panicking.
func FuzzSource(f *testing.F) {
	for _, s := range []string{"route.request.header.Authorization", "route.request.querystring.t", "stageVariables.x", "context.requestId", "$request.header.A", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		s, err := ParseSource(expr)
		if err != nil {
			if !errors.Is(err, ErrBadSource) {
				t.Fatalf("error %v is not ErrBadSource", err)
			}
			return
		}
		if s.Name == "" || s.Expr != expr {
			t.Fatalf("parsed %q as %+v", expr, s)
		}
		s.Value(&Request{Header: http.Header{}, Query: url.Values{}})
	})
}
