//go:build linux

package wsclient

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/sys/unix"
)

// testServer is a gorilla/websocket server whose behaviour depends on the
// path: /echo echoes, /chatty pings and sends a fragmented message first,
// /slow starts reading late, /bye closes with 4000, /deny answers 403.
type testServer struct {
	*httptest.Server
	mu       sync.Mutex
	pongs    int
	closes   []int // close codes the server received
	remotes  []string
	fragment string // what /chatty sends
}

func newTestServer(t *testing.T) *testServer {
	ts := &testServer{fragment: strings.Repeat("0123456789", 30)}
	up := websocket.Upgrader{WriteBufferSize: 64} // small: long messages go out in fragments
	ts.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/deny" {
			http.Error(w, "no", http.StatusForbidden)
			return
		}
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		ts.mu.Lock()
		ts.remotes = append(ts.remotes, r.RemoteAddr)
		ts.mu.Unlock()
		c.SetPongHandler(func(string) error { ts.mu.Lock(); ts.pongs++; ts.mu.Unlock(); return nil })
		switch r.URL.Path {
		case "/chatty":
			_ = c.WriteControl(websocket.PingMessage, []byte("hi"), time.Now().Add(time.Second))
			_ = c.WriteMessage(websocket.TextMessage, []byte(ts.fragment))
		case "/slow":
			time.Sleep(300 * time.Millisecond)
		case "/bye":
			_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4000, "go away"), time.Now().Add(time.Second))
		}
		for {
			mt, data, err := c.ReadMessage()
			if err != nil {
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					ts.mu.Lock()
					ts.closes = append(ts.closes, ce.Code)
					ts.mu.Unlock()
				}
				return
			}
			if err := c.WriteMessage(mt, data); err != nil {
				return
			}
		}
	}))
	t.Cleanup(ts.Close)
	return ts
}

func (ts *testServer) url(t *testing.T, path string) *url.URL {
	u, err := url.Parse("ws" + strings.TrimPrefix(ts.URL, "http") + path)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

type received struct {
	conn int
	op   byte
	data string
}

func newTestPool(t *testing.T, msgs chan received, closes chan int) *Pool {
	p, err := NewPool(Config{
		Loops: 2, MaxConns: 16,
		OnMessage: func(c *Conn, op byte, payload []byte) { msgs <- received{c.ID, op, string(payload)} },
		OnClose:   func(c *Conn, code int, err error) { closes <- code },
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func next(t *testing.T, ch chan received) received {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no message within 5s")
	}
	return received{}
}

func TestPoolEchoSizesAndBackpressure(t *testing.T) {
	ts := newTestServer(t)
	msgs, closes := make(chan received, 100), make(chan int, 4)
	p := newTestPool(t, msgs, closes)
	ctx := context.Background()
	c, err := p.Dial(ctx, ts.url(t, "/echo"), DialOptions{Source: net.ParseIP("127.0.0.3")})
	if err != nil {
		t.Fatal(err)
	}
	// The event loop needs the socket non-blocking; detach relies on the
	// duplicate sharing the runtime's O_NONBLOCK.
	if fl, err := unix.FcntlInt(uintptr(c.fd), unix.F_GETFL, 0); err != nil || fl&unix.O_NONBLOCK == 0 {
		t.Fatalf("the pooled socket is blocking (flags %#x, %v)", fl, err)
	}
	for _, n := range []int{0, 5, 125, 126, 65535, 65536, 200000} {
		want := strings.Repeat("y", n)
		if err := c.SendText([]byte(want)); err != nil {
			t.Fatal(err)
		}
		if m := next(t, msgs); m.op != OpText || m.data != want {
			t.Fatalf("echo of %d bytes came back as %d bytes", n, len(m.data))
		}
	}
	// A server that starts reading late: the socket fills, the rest waits
	// in the send queue and goes out on EPOLLOUT, in order.
	slow, err := p.Dial(ctx, ts.url(t, "/slow"), DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// A small send buffer (no autotuning) makes the socket fill fast.
	if err := unix.SetsockoptInt(slow.fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 8192); err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte("z"), 64<<10)
	for i := range 48 {
		chunk[0] = byte('a' + i%26)
		if err := slow.Send(OpBinary, chunk); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	for i := range 48 {
		if m := next(t, msgs); m.conn != slow.ID || m.data[0] != byte('a'+i%26) || len(m.data) != len(chunk) {
			t.Fatalf("slow echo %d out of order or cut", i)
		}
	}
	p.Shutdown(2 * time.Second)
	st := p.Stats()
	if st.CleanClosed != 2 || st.Open != 0 || st.ForcedClosed != 0 {
		t.Errorf("stats after shutdown: %+v", st)
	}
	waitFor(t, func() bool { ts.mu.Lock(); defer ts.mu.Unlock(); return len(ts.closes) == 2 })
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.closes[0] != CloseNormal || !strings.HasPrefix(ts.remotes[0], "127.0.0.3:") {
		t.Errorf("server saw close codes %v from %v", ts.closes, ts.remotes)
	}
}

func TestPoolPingFragmentsAndServerClose(t *testing.T) {
	ts := newTestServer(t)
	msgs, closes := make(chan received, 100), make(chan int, 4)
	p := newTestPool(t, msgs, closes)
	defer p.Shutdown(time.Second)
	ctx := context.Background()
	if _, err := p.Dial(ctx, ts.url(t, "/chatty"), DialOptions{}); err != nil {
		t.Fatal(err)
	}
	if m := next(t, msgs); m.data != ts.fragment {
		t.Errorf("fragmented message reassembled as %q", m.data)
	}
	waitFor(t, func() bool { ts.mu.Lock(); defer ts.mu.Unlock(); return ts.pongs == 1 })

	if _, err := p.Dial(ctx, ts.url(t, "/bye"), DialOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-closes:
		if code != 4000 {
			t.Errorf("OnClose code %d, want 4000", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("OnClose not called")
	}
	if st := p.Stats(); st.ServerClosed != 1 || st.CloseCodes[4000] != 1 {
		t.Errorf("stats %+v", st)
	}
	// The server got our answer to its close.
	waitFor(t, func() bool { ts.mu.Lock(); defer ts.mu.Unlock(); return len(ts.closes) == 1 && ts.closes[0] == 4000 })
}

func TestPoolDialErrors(t *testing.T) {
	ts := newTestServer(t)
	p := newTestPool(t, make(chan received, 1), make(chan int, 1))
	ctx := context.Background()
	_, err := p.Dial(ctx, ts.url(t, "/deny"), DialOptions{})
	var se *StatusError
	if !errors.As(err, &se) || se.Code != http.StatusForbidden {
		t.Errorf("dial /deny: %v", err)
	}
	u := ts.url(t, "/echo")
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	u.Host = ln.Addr().String()
	ln.Close() // nothing listens there now
	if _, err := p.Dial(ctx, u, DialOptions{Timeout: time.Second}); !errors.Is(err, unix.ECONNREFUSED) {
		t.Errorf("dial to a closed port: %v, want connection refused", err)
	}
	// A server that accepts and never answers: the dial times out.
	mute, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	u.Host = mute.Addr().String()
	if _, err := p.Dial(ctx, u, DialOptions{Timeout: 200 * time.Millisecond}); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("dial to a mute server: %v, want a timeout", err)
	}
	// A host name goes through Go's resolver and dialer instead.
	lu := ts.url(t, "/echo")
	lu.Host = "localhost:" + lu.Port()
	c, err := p.Dial(ctx, lu, DialOptions{})
	if err != nil {
		t.Fatalf("dial by host name: %v", err)
	}
	if !c.Open() {
		t.Error("connection dialled by host name is not open")
	}
	p.Shutdown(0)
	if _, err := p.Dial(ctx, ts.url(t, "/echo"), DialOptions{}); !errors.Is(err, ErrPoolClosed) {
		t.Errorf("dial after Shutdown: %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
	}
}
