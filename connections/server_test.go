package connections

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// echoHandler answers every message with itself and records disconnects.
type echoHandler struct {
	mu          sync.Mutex
	conns       map[string]Conn
	disconnects chan int
}

func newEchoHandler() *echoHandler {
	return &echoHandler{conns: map[string]Conn{}, disconnects: make(chan int, 4096)}
}

func (h *echoHandler) Connect(_ context.Context, req *ConnectRequest) *ConnectResult {
	return &ConnectResult{Stage: "test"}
}

func (h *echoHandler) Message(c Conn, m Message) {
	h.mu.Lock()
	h.conns[c.Info().ID] = c
	h.mu.Unlock()
	_ = c.Send(m.Data, m.Binary)
}

func (h *echoHandler) Disconnect(c Conn, code int, reason string) { h.disconnects <- code }

// startServer runs a server of mode on a loopback port.
func startServer(t *testing.T, mode string, h Handler, l Limits) (string, *Hub) {
	t.Helper()
	hub := NewHub()
	srv, err := NewServer(mode, Options{Handler: h, Hub: hub, Limits: l})
	if err != nil {
		t.Fatal(err)
	}
	return "ws://" + serve(t, srv) + "/test", hub
}

// serve runs srv on a loopback port until the test ends and returns the
// address.
func serve(t *testing.T, srv Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
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

func modes() []string {
	if EpollSupported {
		return []string{ModeEpoll, ModeGoroutine}
	}
	return []string{ModeGoroutine}
}

// TestSlowlorisDoesNotDelayOthers: 1,000 clients that send half a frame
// and stall must not hold the readers that serve everyone else.
func TestSlowlorisDoesNotDelayOthers(t *testing.T) {
	for _, mode := range modes() {
		t.Run(mode, func(t *testing.T) {
			url, _ := startServer(t, mode, newEchoHandler(), Limits{})
			const stalled = 1000
			for i := 0; i < stalled; i++ {
				c, _, err := websocket.DefaultDialer.Dial(url, nil)
				if err != nil {
					t.Fatalf("dial %d: %v", i, err)
				}
				t.Cleanup(func() { c.NetConn().Close() })
				// A text frame header announcing 100 masked bytes, then 3 of them.
				if _, err := c.NetConn().Write([]byte{0x81, 0x80 | 100, 1, 2, 3, 4, 'a', 'b', 'c'}); err != nil {
					t.Fatal(err)
				}
			}
			c, _, err := websocket.DefaultDialer.Dial(url, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			start := time.Now()
			for i := 0; i < 100; i++ {
				msg := "m" + strconv.Itoa(i)
				if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
					t.Fatal(err)
				}
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				_, got, err := c.ReadMessage()
				if err != nil || string(got) != msg {
					t.Fatalf("echo %d: %q %v", i, got, err)
				}
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("100 round trips took %v beside %d stalled clients", d, stalled)
			}
		})
	}
}

// TestCloseCodes: the server's close reaches the client and Disconnect.
func TestCloseCodes(t *testing.T) {
	for _, mode := range modes() {
		t.Run(mode, func(t *testing.T) {
			h := newEchoHandler()
			url, hub := startServer(t, mode, h, Limits{})
			c, _, err := websocket.DefaultDialer.Dial(url, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.WriteMessage(websocket.TextMessage, []byte("x"))
			_, _, _ = c.ReadMessage()
			var conn Conn
			hub.Range(func(x Conn) bool { conn = x; return false })
			if err := conn.Close(4321, "custom"); err != nil {
				t.Fatal(err)
			}
			if err := conn.Close(4321, "again"); !errors.Is(err, ErrClosed) {
				t.Errorf("second Close: %v, want ErrClosed", err)
			}
			if err := conn.Send([]byte("late"), false); !errors.Is(err, ErrClosed) {
				t.Errorf("Send after Close: %v, want ErrClosed", err)
			}
			_, _, err = c.ReadMessage()
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != 4321 || ce.Text != "custom" {
				t.Errorf("client saw %v", err)
			}
			select {
			case code := <-h.disconnects:
				if code != 4321 {
					t.Errorf("Disconnect code %d", code)
				}
			case <-time.After(5 * time.Second):
				t.Error("no Disconnect")
			}
			if hub.Len() != 0 {
				t.Errorf("hub still holds %d connections", hub.Len())
			}
		})
	}
}

func TestParseAllocsPerMessage(t *testing.T) {
	frame := clientFrame(true, opText, []byte(`{"action":"echo","data":"hello"}`), key)
	buf := make([]byte, len(frame))
	p := &frameParser{maxFrame: 1 << 15, maxMessage: 1 << 17}
	emit := func(frameEvent) error { return nil }
	allocs := testing.AllocsPerRun(1000, func() {
		copy(buf, frame)
		if _, err := p.parse(buf, emit); err != nil {
			t.Fatal(err)
		}
	})
	// The message is delivered in place: nothing is allocated.
	if allocs > 0 {
		t.Errorf("%v allocations per message, want none", allocs)
	}
}
