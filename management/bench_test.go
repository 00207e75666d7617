package management

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/portico-gateway/portico/routing/auth/sigv4"
)

// nopWriter is a ResponseWriter that keeps nothing, reused across calls.
type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header       { return w.h }
func (*nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (*nopWriter) WriteHeader(int)             {}

// BenchmarkPostToConnection is one @connections POST through the
// handler, without the HTTP server around it: what the handler itself
// allocates per post.
func BenchmarkPostToConnection(b *testing.B) {
	h, _ := newTestHandler(fakeConns{connID: newConn()}, nil)
	body := []byte("0123456789-1733100000000000000")
	rd := bytes.NewReader(body)
	req := httptest.NewRequest("POST", "/prod/@connections/"+connID, nil)
	req.Body = io.NopCloser(rd)
	req.ContentLength = int64(len(body))
	w := &nopWriter{h: http.Header{}}
	c := h.opts.Conns.(fakeConns)[connID]
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(body)
		clear(w.h)
		h.ServeHTTP(w, req)
		c.sent = c.sent[:0]
	}
}

// A post allocates the call's state, its operation and the body's bytes
// (and the test connection its copy): nothing per header or label.
func TestPostToConnectionAllocs(t *testing.T) {
	h, _ := newTestHandler(fakeConns{connID: newConn()}, nil)
	body := []byte("0123456789-1733100000000000000")
	rd := bytes.NewReader(body)
	req := httptest.NewRequest("POST", "/prod/@connections/"+connID, nil)
	req.Body = io.NopCloser(rd)
	req.ContentLength = int64(len(body))
	w := &nopWriter{h: http.Header{}}
	c := h.opts.Conns.(fakeConns)[connID]
	allocs := testing.AllocsPerRun(1000, func() {
		rd.Reset(body)
		clear(w.h)
		h.ServeHTTP(w, req)
		c.sent = c.sent[:0]
	})
	if len(w.h.Get("x-amzn-RequestId")) != 36 {
		t.Errorf("x-amzn-RequestId %q", w.h.Get("x-amzn-RequestId"))
	}
	limit := 5.0
	if raceEnabled {
		limit = 6 // the race detector's instrumentation moves one to the heap
	}
	if allocs > limit {
		t.Errorf("%v allocations per post, want at most %v", allocs, limit)
	}
}

// iamBenchHandler is a handler whose @connections calls need a SigV4
// signature, and a POST signed as an AWS SDK signs it (the verifier's
// clock is the signing time).
func iamBenchHandler(tb testing.TB, body []byte) (*Handler, *http.Request) {
	tb.Helper()
	t0 := time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC)
	v, err := sigv4.New(sigv4.Options{Region: "us-east-1", Now: func() time.Time { return t0 },
		Keys: []sigv4.Key{{AccessKeyID: "AKIDPORTICO", SecretAccessKey: "secret"}}})
	if err != nil {
		tb.Fatal(err)
	}
	h, _ := newTestHandler(fakeConns{connID: newConn()}, func(o *Options) { o.Authorizer = sigv4.NewAuthorizer(v) })
	req := httptest.NewRequest("POST", "http://mgmt.example/prod/@connections/"+url.PathEscape(connID), nil)
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: "AKIDPORTICO", SecretAccessKey: "secret"}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), sigv4.Service, "us-east-1", t0); err != nil {
		tb.Fatal(err)
	}
	return h, req
}

// BenchmarkPostToConnectionIAM is BenchmarkPostToConnection with the
// signature checked: what verifying a post adds.
func BenchmarkPostToConnectionIAM(b *testing.B) {
	body := []byte("0123456789-1733100000000000000")
	h, req := iamBenchHandler(b, body)
	rd := bytes.NewReader(body)
	req.Body = io.NopCloser(rd)
	req.ContentLength = int64(len(body))
	w := &nopWriter{h: http.Header{}}
	c := h.opts.Conns.(fakeConns)[connID]
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(body)
		clear(w.h)
		h.ServeHTTP(w, req)
		c.sent = c.sent[:0]
	}
	if len(w.h["X-Amzn-Errortype"]) > 0 {
		b.Fatalf("refused: %v", w.h)
	}
}
