package connections

import (
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// acceptorOf is the acceptor of a server NewServer made.
func acceptorOf(t *testing.T, srv Server) *acceptor {
	t.Helper()
	switch s := srv.(type) {
	case *EpollServer:
		return &s.acceptor
	case *GoroutineServer:
		return &s.acceptor
	}
	t.Fatalf("no acceptor in %T", srv)
	return nil
}

// waitFor polls cond every millisecond until it holds or 5 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5 s", what)
		}
	}
}

// Handshakes one after another run on one goroutine: the one that
// finished a handshake (in goroutine mode, once its connection closed)
// takes the next socket instead of a new goroutine growing its stack
// again; once no socket comes for workerIdle it exits.
func TestHandshakeGoroutinesReused(t *testing.T) {
	for _, mode := range modes() {
		t.Run(mode, func(t *testing.T) {
			h := newEchoHandler()
			srv, err := NewServer(mode, Options{Handler: h, Hub: NewHub()})
			if err != nil {
				t.Fatal(err)
			}
			a := acceptorOf(t, srv)
			a.idleFor.Store(int64(time.Minute)) // a loaded machine must not let a goroutine time out between two dials
			url := "ws://" + serve(t, srv) + "/test"
			for i := range 20 {
				c, _, err := websocket.DefaultDialer.Dial(url, nil)
				if err != nil {
					t.Fatalf("dial %d: %v", i, err)
				}
				if mode == ModeGoroutine { // its goroutine reads the connection until it closes
					_ = c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
					<-h.disconnects
				}
				waitFor(t, "the handshake's goroutine waits for the next socket", func() bool { return a.workersIdle.Load() == 1 })
				c.Close()
			}
			if n := a.workersStarted.Load(); n != 1 {
				t.Errorf("20 handshakes one after another started %d goroutines, want 1", n)
			}
			a.idleFor.Store(int64(time.Millisecond)) // from the next handshake on
			c, _, err := websocket.DefaultDialer.Dial(url, nil)
			if err != nil {
				t.Fatal(err)
			}
			if mode == ModeGoroutine {
				_ = c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
				<-h.disconnects
			}
			c.Close()
			waitFor(t, "the idle goroutine exits", func() bool { return a.workersLive.Load() == 0 })
			c, _, err = websocket.DefaultDialer.Dial(url, nil)
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
			if n := a.workersStarted.Load(); n != 2 {
				t.Errorf("a handshake after the idle goroutine exited: %d goroutines started, want 2", n)
			}
		})
	}
}
