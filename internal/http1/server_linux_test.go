//go:build linux

package http1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echoFast serves POST /fast/...: 200 with the body and X-Path; panics
// on /fast/panic; leaves everything else to the fallback.
type echoFast struct{ served atomic.Int64 }

func (e *echoFast) ServeFast(r *Request, w *Response) bool {
	if string(r.Method) != http.MethodPost || !bytes.HasPrefix(r.Path, []byte("/fast/")) {
		return false
	}
	if string(r.Path) == "/fast/panic" {
		panic("test panic")
	}
	if string(r.Path) == "/fast/big" {
		w.Body(bytes.Repeat([]byte("x"), 8<<20))
		return true
	}
	e.served.Add(1)
	w.Field("X-Path", string(r.Path))
	w.Status(http.StatusCreated)
	w.Body(append([]byte(nil), r.Body...))
	return true
}

// start serves on loopback: fast paths through e, the rest answered by
// net/http with 200 "slow <path> <body>". It returns the address and
// the server; the test's cleanup shuts it down and checks Serve's error.
func start(t *testing.T, e *echoFast, tune func(*Server)) (string, *Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Fast: e, MaxBody: 1 << 20, Fallback: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "slow %s %s", r.URL.Path, b)
	})}}
	if tune != nil {
		tune(s)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve = %v, want ErrServerClosed", err)
		}
	})
	return ln.Addr().String(), s
}

func post(path, body string, extra ...string) string {
	return "POST " + path + " HTTP/1.1\r\nHost: t\r\n" + strings.Join(extra, "") + fmt.Sprintf("Content-Length: %d\r\n\r\n", len(body)) + body
}

// readAnswers reads n responses off br.
func readAnswers(t *testing.T, br *bufio.Reader, n int) []string {
	t.Helper()
	var got []string
	for range n {
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v", len(got)+1, err)
		}
		b, _ := io.ReadAll(res.Body)
		_ = res.Body.Close()
		got = append(got, fmt.Sprintf("%d %s %s", res.StatusCode, res.Header.Get("X-Path"), b))
	}
	return got
}

func dial(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

// A keep-alive client (net/http's) gets the fast path's answers and the
// fallback's on the same listener.
func TestServeFastAndFallback(t *testing.T) {
	e := &echoFast{}
	addr, _ := start(t, e, nil)
	cl := &http.Client{Transport: &http.Transport{}}
	defer cl.CloseIdleConnections()
	for i := range 20 {
		res, err := cl.Post("http://"+addr+"/fast/a%3D", "text/plain", strings.NewReader(fmt.Sprint("m", i)))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		_ = res.Body.Close()
		if res.StatusCode != http.StatusCreated || string(b) != fmt.Sprint("m", i) || res.Header.Get("X-Path") != "/fast/a=" ||
			res.Header.Get("Date") == "" || res.ContentLength != int64(len(b)) {
			t.Fatalf("post %d: %d %q %v", i, res.StatusCode, b, res.Header)
		}
	}
	if n := e.served.Load(); n != 20 {
		t.Fatalf("fast path served %d of 20", n)
	}
	res, err := cl.Get("http://" + addr + "/other")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if string(b) != "slow /other " {
		t.Fatalf("GET /other: %q", b)
	}
}

// Pipelined requests in one write are answered in order; a request the
// fast path leaves moves the connection to net/http with the rest of
// what was read, and the answers stay in order.
func TestPipelinedAndHandoff(t *testing.T) {
	e := &echoFast{}
	addr, _ := start(t, e, nil)
	c, br := dial(t, addr)
	in := post("/fast/1", "a") + post("/fast/2", "bb") + post("/slow/3", "ccc") + post("/fast/4", "dddd")
	if _, err := c.Write([]byte(in)); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(readAnswers(t, br, 4), "|")
	want := "201 /fast/1 a|201 /fast/2 bb|200  slow /slow/3 ccc|200  slow /fast/4 dddd"
	if got != want {
		t.Fatalf("answers:\n%s\nwant\n%s", got, want)
	}
}

// A request that comes a byte at a time, and a body larger than one
// read, are read whole.
func TestPartialReads(t *testing.T) {
	e := &echoFast{}
	addr, _ := start(t, e, nil)
	c, br := dial(t, addr)
	small := post("/fast/slowly", "xyz")
	for i := range len(small) {
		if _, err := c.Write([]byte{small[i]}); err != nil {
			t.Fatal(err)
		}
	}
	if got := readAnswers(t, br, 1)[0]; got != "201 /fast/slowly xyz" {
		t.Fatalf("byte-wise: %q", got)
	}
	body := strings.Repeat("0123456789", 70_000) // 700 KB: many reads
	if _, err := c.Write([]byte(post("/fast/big-body", body))); err != nil {
		t.Fatal(err)
	}
	if got := readAnswers(t, br, 1)[0]; got != "201 /fast/big-body "+body {
		t.Fatalf("700 KB body: %d bytes back", len(got))
	}
	// Over MaxBody: net/http reads it.
	over := strings.Repeat("z", 1<<20+1)
	if _, err := c.Write([]byte(post("/fast/over", over))); err != nil {
		t.Fatal(err)
	}
	if got := readAnswers(t, br, 1)[0]; got != "200  slow /fast/over "+over {
		t.Fatalf("over MaxBody: %.40q", got)
	}
}

// An answer the socket cannot take at once is written as the client
// reads; the next request is served after it.
func TestSlowReader(t *testing.T) {
	e := &echoFast{}
	addr, _ := start(t, e, nil)
	c, br := dial(t, addr)
	if _, err := c.Write([]byte(post("/fast/big", "") + post("/fast/after", "z"))); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, res.Body)
	if n != 8<<20 {
		t.Fatalf("big answer: %d bytes", n)
	}
	if got := readAnswers(t, br, 1)[0]; got != "201 /fast/after z" {
		t.Fatalf("after the big answer: %q", got)
	}
}

// Connection: close is answered with Connection: close, then EOF.
func TestConnectionClose(t *testing.T) {
	addr, _ := start(t, &echoFast{}, nil)
	c, br := dial(t, addr)
	if _, err := c.Write([]byte(post("/fast/bye", "b", "Connection: close\r\n") + post("/fast/never", "n"))); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	if !res.Close {
		t.Fatalf("no Connection: close in %v", res.Header)
	}
	if b, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("after close: %q, %v; want EOF", b, err)
	}
}

// A handler's panic closes its connection; the server goes on.
func TestPanicClosesConnection(t *testing.T) {
	addr, _ := start(t, &echoFast{}, nil)
	c, br := dial(t, addr)
	if _, err := c.Write([]byte(post("/fast/panic", ""))); err != nil {
		t.Fatal(err)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("after a panic: %v; want EOF", err)
	}
	c2, br2 := dial(t, addr)
	if _, err := c2.Write([]byte(post("/fast/ok", "k"))); err != nil {
		t.Fatal(err)
	}
	if got := readAnswers(t, br2, 1)[0]; got != "201 /fast/ok k" {
		t.Fatalf("after a panic elsewhere: %q", got)
	}
}

// The fallback's IdleTimeout closes an idle connection, and its
// ReadTimeout one whose request does not come whole.
func TestTimeouts(t *testing.T) {
	addr, _ := start(t, &echoFast{}, func(s *Server) {
		s.Fallback.IdleTimeout = 100 * time.Millisecond
		s.Fallback.ReadTimeout = 100 * time.Millisecond
	})
	idle, ibr := dial(t, addr)
	if _, err := idle.Write([]byte(post("/fast/x", "1"))); err != nil {
		t.Fatal(err)
	}
	readAnswers(t, ibr, 1)
	half, hbr := dial(t, addr)
	if _, err := half.Write([]byte("POST /fast/y HTTP/1.1\r\nHost: t\r\n")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for _, br := range []*bufio.Reader{ibr, hbr} {
		if _, err := br.ReadByte(); err != io.EOF {
			t.Fatalf("read: %v; want EOF", err)
		}
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("closed after %v", d)
	}
}

// Shutdown closes the fast path's connections and waits for the
// fallback's active request.
func TestShutdown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	s := &Server{Fast: &echoFast{}, Fallback: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		_, _ = io.WriteString(w, "finished")
	})}}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	fast, fbr := dial(t, ln.Addr().String())
	if _, err := fast.Write([]byte(post("/fast/x", "1"))); err != nil {
		t.Fatal(err)
	}
	readAnswers(t, fbr, 1)
	slow, sbr := dial(t, ln.Addr().String())
	if _, err := slow.Write([]byte(post("/slow", ""))); err != nil {
		t.Fatal(err)
	}
	<-entered
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	if _, err := fbr.ReadByte(); err != io.EOF {
		t.Fatalf("fast connection after Shutdown: %v; want EOF", err)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) before the fallback's request ended", err)
	case <-time.After(20 * time.Millisecond):
	}
	close(release)
	if got := readAnswers(t, sbr, 1)[0]; got != "200  finished" {
		t.Fatalf("fallback's answer: %q", got)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("Serve = %v", err)
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Fatal("still accepting after Shutdown")
	}
}
