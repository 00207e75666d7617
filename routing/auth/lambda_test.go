package auth

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"sync/atomic"
	"testing"
	"time"
)

// lambdaServer answers every event with body and counts the calls.
func lambdaServer(t testing.TB, status int, body string, events chan<- map[string]any) (*httptest.Server, *atomic.Int64) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if events != nil {
			var ev map[string]any
			b, _ := io.ReadAll(r.Body)
			_ = json.Unmarshal(b, &ev)
			events <- ev
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

const allowAll = `{"principalId":"p","policyDocument":{"Version":"2012-10-17","Statement":[{"Action":"execute-api:Invoke","Effect":"Allow","Resource":"*"}]}}`

func TestTokenAuthorizer(t *testing.T) {
	events := make(chan map[string]any, 10)
	srv, calls := lambdaServer(t, 200, allowAll, events)
	src, _ := ParseSource("method.request.header.Authorization")
	l, err := NewLambda(LambdaOptions{Name: "bearer", Type: TypeToken, URI: srv.URL, Sources: []Source{src},
		ValidationExpression: regexp.MustCompile(`^(?:Bearer [-0-9a-zA-Z._]+)$`), Client: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	r := &Request{Header: http.Header{"Authorization": {"Bearer abc.def"}}, APIID: "abc123", Stage: "prod", RouteKey: "$connect"}
	if id, err := l.Authorize(context.Background(), r); err != nil || id.PrincipalID != "p" || id.Type != TypeToken {
		t.Fatalf("%+v %v", id, err)
	}
	ev := <-events
	if ev["type"] != "TOKEN" || ev["authorizationToken"] != "Bearer abc.def" || ev["methodArn"] != "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/$connect" || len(ev) != 3 {
		t.Errorf("TOKEN event %v", ev)
	}
	r.Header.Set("Authorization", "Basic xyz")
	if _, err := l.Authorize(context.Background(), r); !errors.Is(err, ErrUnauthorized) || calls.Load() != 1 {
		t.Errorf("a token failing the expression: %v, %d calls (want 401, no call)", err, calls.Load())
	}
}

func TestLambdaFailures(t *testing.T) {
	src, _ := ParseSource("route.request.querystring.t")
	r := &Request{Query: url.Values{"t": {"x"}}, Header: http.Header{}}
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   error
	}{
		{"401", 401, ``, ErrUnauthorized},
		{"Unauthorized body", 200, `{"message":"Unauthorized"}`, ErrUnauthorized},
		{"Unauthorized body with 500", 500, `{"message":"Unauthorized"}`, ErrUnauthorized},
		{"500", 500, `{"message":"boom"}`, ErrAuthorizerFailure},
		{"403 status", 403, allowAll, ErrAuthorizerFailure},
		{"garbage", 200, `<html>`, ErrAuthorizerFailure},
		{"deny", 200, `{"principalId":"p","policyDocument":{"Statement":[{"Action":"*","Effect":"Deny","Resource":"*"}]}}`, ErrForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := lambdaServer(t, tc.status, tc.body, nil)
			l, err := NewLambda(LambdaOptions{Name: "a", Type: TypeRequest, URI: srv.URL, Sources: []Source{src}, Client: srv.Client()})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := l.Authorize(context.Background(), r); !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("timeout", func(t *testing.T) {
		block := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
		defer srv.Close()
		defer close(block)
		l, _ := NewLambda(LambdaOptions{Name: "a", Type: TypeRequest, URI: srv.URL, Sources: []Source{src}, Timeout: 50 * time.Millisecond, Client: srv.Client()})
		if _, err := l.Authorize(context.Background(), r); !errors.Is(err, ErrAuthorizerFailure) {
			t.Errorf("got %v", err)
		}
	})
}

func TestResultCacheBound(t *testing.T) {
	now := testNow
	c := newResultCache(2, time.Minute, func() time.Time { return now })
	c.put("a", &cachedAnswer{Answer: &Answer{}})
	c.put("b", &cachedAnswer{Answer: &Answer{}})
	c.get("a") // a is now the most recently used
	c.put("c", &cachedAnswer{Answer: &Answer{}})
	if _, ok := c.get("b"); ok || c.len() != 2 {
		t.Errorf("the least recently used entry stayed (len %d)", c.len())
	}
	if _, ok := c.get("a"); !ok {
		t.Error("a was evicted")
	}
	now = now.Add(time.Minute)
	if _, ok := c.get("a"); ok {
		t.Error("an expired entry was served")
	}
}

func BenchmarkRequestAuthorizerCached(b *testing.B) {
	srv, _ := lambdaServer(b, 200, allowAll, nil)
	src, _ := ParseSource("route.request.header.Authorization")
	l, err := NewLambda(LambdaOptions{Name: "a", Type: TypeRequest, URI: srv.URL, Sources: []Source{src}, ResultTTL: time.Hour, Client: srv.Client()})
	if err != nil {
		b.Fatal(err)
	}
	r := &Request{Header: http.Header{"Authorization": {"token-1"}}, APIID: "abc123", Stage: "prod", RouteKey: "$connect"}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.Authorize(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
}
