//go:build linux

package connections

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// blockingEcho echoes every message but "block", on which it signals
// entered and waits for release: the shard's loop stops reading while
// the client goes on writing.
type blockingEcho struct {
	entered, release chan struct{}
}

func (h *blockingEcho) Connect(context.Context, *ConnectRequest) *ConnectResult {
	return &ConnectResult{Stage: "test"}
}
func (h *blockingEcho) Opened(Conn) {}
func (h *blockingEcho) Message(c Conn, m Message) {
	if string(m.Data) == "block" {
		close(h.entered)
		<-h.release
		return
	}
	_ = c.Send(m.Data, m.Binary)
}
func (h *blockingEcho) Disconnect(Conn, int, string) {}

// Sockets are watched edge-triggered: a read that stops at the per-event
// bound with bytes still in the socket is not reported again until more
// arrive. A client that sent a burst and now only waits must still get
// every answer: the shard reads the rest on its next turns.
func TestEpollBurstPastReadBound(t *testing.T) {
	h := &blockingEcho{entered: make(chan struct{}), release: make(chan struct{})}
	srv, err := NewEpollServer(Options{Handler: h, Shards: 1})
	if err != nil {
		t.Fatal(err)
	}
	srv.maxRead = 1024 // the burst below is twenty times one read's bound
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+serve(t, srv)+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if err := ws.WriteMessage(websocket.TextMessage, []byte("block")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the handler never saw the first message")
	}
	const n = 100
	pad := strings.Repeat("x", 200)
	for i := 0; i < n; i++ {
		if err := ws.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf("m%03d %s", i, pad))); err != nil {
			t.Fatal(err)
		}
	}
	close(h.release) // the loop now finds ~21 KB waiting, and nothing more will come
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for i := 0; i < n; i++ {
		_, got, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("answer %d of %d: %v", i, n, err)
		}
		if want := fmt.Sprintf("m%03d %s", i, pad); string(got) != want {
			t.Fatalf("answer %d = %.8q..., want %.8q...", i, got, want)
		}
	}
}
