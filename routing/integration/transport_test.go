package integration

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// countingServer is an httptest server that counts the connections
// opened to it and signals each one's close.
func countingServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int32, chan struct{}) {
	t.Helper()
	var opened atomic.Int32
	closed := make(chan struct{}, 64)
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			opened.Add(1)
		case http.StateClosed:
			closed <- struct{}{}
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &opened, closed
}

func directFor(t *testing.T) *directTransport {
	t.Helper()
	tr, ok := NewHTTPClientFor(8).Transport.(*directTransport)
	if !ok {
		t.Fatal("NewHTTPClientFor does not use the direct transport")
	}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// post makes one call through rt and reads the whole answer.
func post(t *testing.T, rt http.RoundTripper, ctx context.Context, u, body string) (*http.Response, string, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return nil, "", err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b), err
}

// Calls one after another reuse one connection whether the answer has a
// length or comes chunked (with an informational answer before it); an
// answer with "Connection: close" is read and its connection not reused.
func TestDirectTransportKeepAlive(t *testing.T) {
	srv, opened, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/chunked":
			w.WriteHeader(http.StatusEarlyHints)
			_, _ = w.Write([]byte("part1-"))
			w.(http.Flusher).Flush()
			_, _ = w.Write(b)
		case "/close":
			w.Header().Set("Connection", "close")
			_, _ = w.Write(b)
		default:
			w.Header().Set("X-Got", r.Header.Get("Content-Type"))
			_, _ = w.Write(b)
		}
	})
	tr := directFor(t)
	for i := range 10 {
		resp, body, err := post(t, tr, context.Background(), srv.URL+"/", "hello")
		if err != nil || body != "hello" || resp.StatusCode != 200 || resp.Header.Get("X-Got") != "application/json" {
			t.Fatalf("call %d: %v %q %+v", i, err, body, resp)
		}
		resp, body, err = post(t, tr, context.Background(), srv.URL+"/chunked", "x")
		if err != nil || body != "part1-x" || resp.StatusCode != 200 {
			t.Fatalf("chunked call %d: %v %q", i, err, body)
		}
	}
	if n := opened.Load(); n != 1 {
		t.Errorf("20 calls one after another opened %d connections, want 1", n)
	}
	for range 2 {
		if _, body, err := post(t, tr, context.Background(), srv.URL+"/close", "bye"); err != nil || body != "bye" {
			t.Fatalf("close call: %v %q", err, body)
		}
	}
	if n := opened.Load(); n != 2 { // the first one closed after the first /close, a new one for the second
		t.Errorf("after two Connection: close answers %d connections opened, want 2", n)
	}
}

// A connection the backend closed while it sat idle is not reused: the
// next call dials a new one and succeeds.
func TestDirectTransportBackendClosedIdle(t *testing.T) {
	srv, opened, closed := countingServer(t, func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) })
	tr := directFor(t)
	tr.checkAfter = 0 // check every idle connection before reuse
	if _, body, err := post(t, tr, context.Background(), srv.URL, "a"); err != nil || body != "ok" {
		t.Fatal(err, body)
	}
	srv.CloseClientConnections()
	<-closed
	if _, body, err := post(t, tr, context.Background(), srv.URL, "b"); err != nil || body != "ok" {
		t.Fatalf("after the backend closed the idle connection: %v %q", err, body)
	}
	if n := opened.Load(); n != 2 {
		t.Errorf("%d connections opened, want 2", n)
	}
}

// A call past its context's deadline fails as a deadline, promptly; a
// cancelled one as cancelled; an answer closed before its end does not
// leave its connection in the pool.
func TestDirectTransportDeadlines(t *testing.T) {
	release := make(chan struct{})
	srv, opened, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		if r.URL.Path == "/big" {
			_, _ = w.Write([]byte(strings.Repeat("x", 1<<20)))
			return
		}
		_, _ = w.Write([]byte("ok"))
	})
	defer close(release)
	tr := directFor(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err := post(t, tr, ctx, srv.URL+"/slow", "")
	if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("past the deadline: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the deadline took %v to end the call", d)
	}
	ctx, cancel = context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	if _, _, err := post(t, tr, ctx, srv.URL+"/slow", ""); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	n := opened.Load()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/big", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = resp.Body.Read(make([]byte, 10))
	resp.Body.Close()
	if _, body, err := post(t, tr, context.Background(), srv.URL, ""); err != nil || body != "ok" {
		t.Fatal(err, body)
	}
	if got := opened.Load(); got != n+2 {
		t.Errorf("a half-read answer's connection was reused (%d opened after it, want 2)", got-n)
	}
}

// What the direct transport takes and what it leaves to net/http.
func TestDirectTransportTakes(t *testing.T) {
	tr := directFor(t)
	proxied := directFor(t)
	proxied.fallback.Proxy = func(*http.Request) (*url.URL, error) { return url.Parse("http://proxy.example:3128") }
	for _, tc := range []struct {
		name   string
		tr     *directTransport
		method string
		url    string
		body   io.Reader
		header string
		want   bool
	}{
		{"plain POST", tr, "POST", "http://127.0.0.1:1/x", strings.NewReader("a"), "", true},
		{"GET", tr, "GET", "http://127.0.0.1:1/x", nil, "", true},
		{"https", tr, "POST", "https://127.0.0.1:1/x", strings.NewReader("a"), "", false},
		{"a proxy for the URL", proxied, "POST", "http://127.0.0.1:1/x", strings.NewReader("a"), "", false},
		{"unknown length", tr, "POST", "http://127.0.0.1:1/x", io.MultiReader(strings.NewReader("a")), "", false},
		{"Expect: 100-continue", tr, "POST", "http://127.0.0.1:1/x", strings.NewReader("a"), "Expect", false},
	} {
		req, err := http.NewRequest(tc.method, tc.url, tc.body)
		if err != nil {
			t.Fatal(err)
		}
		if tc.header != "" {
			req.Header.Set(tc.header, "100-continue")
		}
		if got := tc.tr.direct(req); got != tc.want {
			t.Errorf("%s: direct %v, want %v", tc.name, got, tc.want)
		}
	}
}

// The request on the wire is net/http's, byte for byte, but for the
// Accept-Encoding net/http's transport adds to ask for gzip it then
// undoes.
func TestDirectTransportWireRequest(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	heads := make(chan string, 2)
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			br := bufio.NewReader(nc)
			var head strings.Builder
			for {
				line, err := br.ReadString('\n')
				head.WriteString(line)
				if err != nil || line == "\r\n" {
					break
				}
			}
			body := make([]byte, 5)
			_, _ = io.ReadFull(br, body)
			heads <- head.String() + string(body)
			_, _ = nc.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
			nc.Close()
		}
	}()
	var got [2]string
	for i, rt := range []http.RoundTripper{directFor(t), &http.Transport{}} {
		req, _ := http.NewRequest(http.MethodPost, "http://"+ln.Addr().String()+"/path?q=1", strings.NewReader("hello"))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Custom", "v")
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		got[i] = strings.Replace(<-heads, "Accept-Encoding: gzip\r\n", "", 1)
	}
	if got[0] != got[1] {
		t.Errorf("direct:\n%q\nnet/http:\n%q", got[0], got[1])
	}
}

// Behind httputil.ReverseProxy (the http_proxy integration), the direct
// transport passes an informational answer on to the client before the
// final one, streams the body and keeps its trailers.
func TestDirectTransportBehindReverseProxy(t *testing.T) {
	backend, opened, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Set("Trailer", "X-Sum")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("a"))
		w.(http.Flusher).Flush()
		_, _ = w.Write([]byte("b"))
		w.Header().Set("X-Sum", "2")
	})
	u, _ := url.Parse(backend.URL)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = NewDirectProxyTransport()
	front := httptest.NewServer(rp)
	defer front.Close()
	var early []int
	for range 3 {
		early = early[:0]
		req, _ := http.NewRequest(http.MethodGet, front.URL+"/x", nil)
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			Got1xxResponse: func(code int, h textproto.MIMEHeader) error { early = append(early, code); return nil },
		}))
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "ab" || resp.StatusCode != 200 || resp.Trailer.Get("X-Sum") != "2" {
			t.Fatalf("through the proxy: %d %q trailer %v", resp.StatusCode, body, resp.Trailer)
		}
		if len(early) != 1 || early[0] != http.StatusEarlyHints {
			t.Errorf("informational answers seen by the client: %v, want [103]", early)
		}
	}
	if n := opened.Load(); n != 1 {
		t.Errorf("three proxied requests opened %d backend connections, want 1", n)
	}
	rp.Transport.(*directTransport).CloseIdleConnections()
}
