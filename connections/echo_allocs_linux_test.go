//go:build linux

package connections

import (
	"io"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// A message echoed through the epoll server allocates nothing there: it
// is read and parsed in place, and the answer is framed in the pooled
// write queue and written once (issue 16's echo path). The client writes
// and reads raw frames on the socket so that it allocates nothing either
// (testing.AllocsPerRun counts the whole process).
func TestEpollEchoAllocs(t *testing.T) {
	url, _ := startServer(t, ModeEpoll, newEchoHandler(), Limits{})
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	nc := ws.NetConn()
	msg := []byte(`{"action":"echo","data":"hello"}`)
	frame := clientFrame(true, opText, msg, key)
	want := appendFrame(nil, opText, msg)
	got := make([]byte, len(want))
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	echo := func() {
		if _, err := nc.Write(frame); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(nc, got); err != nil {
			t.Fatal(err)
		}
	}
	echo()
	if string(got) != string(want) {
		t.Fatalf("echo %q, want %q", got, want)
	}
	allocs := testing.AllocsPerRun(500, echo)
	limit := 0.0
	if raceEnabled {
		limit = 1 // the race detector makes sync.Pool drop some buffers
	}
	if allocs > limit {
		t.Errorf("%v allocations per echoed message, want at most %v", allocs, limit)
	}
}
