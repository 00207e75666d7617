package management

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
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
