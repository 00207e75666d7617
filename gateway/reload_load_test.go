package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Reloads under load: 1,000 connections each send a message and read
// its echo, back to back, while the file is reloaded several times.
// Every connection stays open, every message gets its reply, and after
// each reload every connection's next replies come from the new route.
func TestReloadUnderLoad(t *testing.T) {
	const (
		conns   = 1000
		reloads = 5
	)
	routes := func(v int) string {
		return `stages: [{name: test}]
routes:
  $default:
    routeResponse: true
    integration: {type: mock, response: {body: '{"v":` + strconv.Itoa(v) + `,"n":$request.body.n}'}}
`
	}
	g, f := startFromFile(t, reloadYAML(routes(0)))
	deadline := time.Now().Add(2 * time.Minute) // bounds the whole test

	type client struct {
		c         *websocket.Conn
		sent, got atomic.Int64
		version   atomic.Int64 // the version of the last reply
		err       error
	}
	clients := make([]*client, conns)
	dialer := &websocket.Dialer{HandshakeTimeout: testTimeout}
	for i := range clients {
		c, _, err := dialer.Dial(wsURL(g, "test"), nil)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
		clients[i] = &client{c: c}
	}

	// Each client reports each version it meets, once: the first reply
	// of that version.
	versions := make(chan int64, conns*(reloads+1))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := int64(1); ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				if time.Now().After(deadline) {
					cl.err = fmt.Errorf("test deadline")
					return
				}
				_ = cl.c.SetWriteDeadline(time.Now().Add(testTimeout))
				if err := cl.c.WriteMessage(websocket.TextMessage, []byte(`{"n":`+strconv.FormatInt(n, 10)+`}`)); err != nil {
					cl.err = fmt.Errorf("write %d: %w", n, err)
					return
				}
				cl.sent.Add(1)
				_ = cl.c.SetReadDeadline(time.Now().Add(testTimeout))
				_, data, err := cl.c.ReadMessage()
				if err != nil {
					cl.err = fmt.Errorf("read the reply to %d: %w", n, err)
					return
				}
				var reply struct{ V, N int64 }
				if err := json.Unmarshal(data, &reply); err != nil || reply.N != n {
					cl.err = fmt.Errorf("reply %q to message %d", data, n)
					return
				}
				cl.got.Add(1)
				if n == 1 || reply.V != cl.version.Load() {
					cl.version.Store(reply.V)
					versions <- reply.V
				}
			}
		}()
	}

	// waitAll waits until every client has had a reply of version v.
	waitAll := func(v int64) {
		t.Helper()
		for n := 0; n < conns; {
			select {
			case got := <-versions:
				if got != v {
					t.Fatalf("a client reported version %d while waiting for %d", got, v)
				}
				n++
			case <-time.After(time.Until(deadline)):
				t.Fatalf("only %d of %d clients had a reply of version %d", n, conns, v)
			}
		}
	}
	waitAll(0) // every client is sending before the first reload
	for v := 1; v <= reloads; v++ {
		f.write(reloadYAML(routes(v)))
		status, body := postReload(t, g)
		if status != http.StatusOK {
			t.Fatalf("reload %d: %d %s", v, status, body)
		}
		waitAll(int64(v))
	}
	close(stop)
	wg.Wait()

	var sent, got int64
	for i, cl := range clients {
		if cl.err != nil {
			t.Errorf("client %d: %v", i, cl.err)
		}
		sent += cl.sent.Load()
		got += cl.got.Load()
	}
	if sent != got {
		t.Errorf("%d messages sent, %d replies: %d lost", sent, got, sent-got)
	}
	if n := g.OpenConnections(); n != conns {
		t.Errorf("%d connections open after %d reloads, want %d: some were dropped", n, reloads, conns)
	}
	t.Logf("%d connections, %d reloads, %d messages, each answered", conns, reloads, sent)
}
