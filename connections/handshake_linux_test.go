package connections

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func epollAddr(t *testing.T, h Handler, l Limits) (string, *EpollServer) {
	t.Helper()
	srv, err := NewEpollServer(Options{Handler: h, Limits: l})
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, srv), srv
}

// The epoll server reads the upgrade request itself: an oversized head,
// frames sent before the 101, and a head that never ends are refused
// without running $connect; the Handler's headers cannot split the 101.
func TestEpollHandshakeLimits(t *testing.T) {
	h := &countingHandler{echoHandler: *newEchoHandler(), header: http.Header{"X-Injected": {"a\r\nSet-Cookie: evil"}}}
	addr, _ := epollAddr(t, h, Limits{HandshakeTimeout: 300 * time.Millisecond})

	big := upgradeRequest("GET", "13", goodKey, "X-Pad: "+strings.Repeat("a", maxHandshakeBytes)+"\r\n")
	if resp := rawHandshake(t, addr, big); resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("oversized head: %d, want 431", resp.StatusCode)
	}
	early := upgradeRequest("GET", "13", goodKey, "") + "\x81\x80abcd"
	if resp := rawHandshake(t, addr, early); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("data before the 101: %d, want 400", resp.StatusCode)
	}
	if n := h.connects.Load(); n != 0 {
		t.Errorf("Connect ran %d times for refused handshakes", n)
	}

	// Half a request: closed after the handshake timeout, nothing answered.
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	start := time.Now()
	_, _ = io.WriteString(nc, "GET /test HTTP/1.1\r\nHost: x\r\n")
	_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if b, err := io.ReadAll(nc); err != nil || len(b) != 0 {
		t.Errorf("stalled head: read %q, %v; want a plain close", b, err)
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Errorf("stalled head closed after %v, before the 300ms handshake timeout", d)
	}

	resp := rawHandshake(t, addr, upgradeRequest("GET", "13", goodKey, ""))
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("valid handshake: %d", resp.StatusCode)
	}
	if got := resp.Header.Values("X-Injected"); len(got) != 1 || got[0] != "a  Set-Cookie: evil" || resp.Header.Get("Set-Cookie") != "" {
		t.Errorf("handler header came out as %q, Set-Cookie %q", got, resp.Header.Get("Set-Cookie"))
	}
}

// Shutdown does not wait out a handshake that is still reading its
// request: it drops it.
func TestEpollShutdownDropsPendingHandshake(t *testing.T) {
	addr, srv := epollAddr(t, newEchoHandler(), Limits{HandshakeTimeout: time.Minute})
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_, _ = io.WriteString(nc, "GET /test HTTP/1.1\r\n")
	// The server has the socket once it is tracked as reading.
	for {
		srv.mu.Lock()
		n := len(srv.reading)
		srv.mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(time.Millisecond) // no signal for "accepted": poll
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown with a handshake pending: %v", err)
	}
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := nc.Read(make([]byte, 1)); err == nil {
		t.Error("the pending handshake's socket is still open after Shutdown")
	}
}

// addrHandler records what Connect was told of the client's address.
type addrHandler struct {
	echoHandler
	seen chan [2]string // SourceIP, Request.RemoteAddr
}

func (h *addrHandler) Connect(ctx context.Context, req *ConnectRequest) *ConnectResult {
	h.seen <- [2]string{req.Info.SourceIP, req.Request.RemoteAddr}
	return &ConnectResult{Stage: "test"}
}

// On a listener from Listen (TCP_DEFER_ACCEPT) both modes answer every
// handshake as on any other, the epoll server from sockets it accepts as
// raw descriptors; $connect sees the client's address.
func TestDeferredAcceptListener(t *testing.T) {
	for _, mode := range modes() {
		t.Run(mode, func(t *testing.T) {
			srv, err := NewServer(mode, Options{Handler: newEchoHandler()})
			if err != nil {
				t.Fatal(err)
			}
			checkRefusals(t, serveListen(t, srv))

			h := &addrHandler{echoHandler: *newEchoHandler(), seen: make(chan [2]string, 1)}
			srv, err = NewServer(mode, Options{Handler: h})
			if err != nil {
				t.Fatal(err)
			}
			addr := serveListen(t, srv)
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			if _, err := io.WriteString(nc, upgradeRequest("GET", "13", goodKey, "")); err != nil {
				t.Fatal(err)
			}
			got := <-h.seen
			if want := nc.LocalAddr().String(); got != [2]string{"127.0.0.1", want} {
				t.Errorf("Connect saw source %q, remote %q; want 127.0.0.1, %q", got[0], got[1], want)
			}
		})
	}
}

// serveListen is serve on a listener from Listen.
func serveListen(t testing.TB, srv Server) string {
	t.Helper()
	ln, err := Listen(context.Background(), "127.0.0.1:0", false, 0)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return ln.Addr().String()
}
