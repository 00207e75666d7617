package gateway

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// slowDialer dials with a tiny receive buffer and a small MSS, so that
// the kernel buffers little for a client that does not read (over
// loopback, the server's send buffer is sized from the MSS: megabytes at
// loopback's 64 KB) and its server-side queue fills quickly.
var slowDialer = &websocket.Dialer{NetDial: func(network, addr string) (net.Conn, error) {
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			if serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_MAXSEG, 536); serr == nil {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 2048)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	return d.Dial(network, addr)
}}

// One client that never reads does not slow the others, and is handled by
// the overflow policy: drop (it gets a gap frame once it reads again).
func TestChannelSlowConsumerDrop(t *testing.T) {
	const readers, msgs = 999, 300
	g := startGateway(t, `connections: {sendQueueBytes: 65536}
apis:
  - name: t
    # The client that never reads must meet the overflow policy, not the
    # write timeout, however slow a loaded machine makes the test.
    limits: {writeTimeout: 10m}
    stages: [{name: test}]
    routes:
      $connect: {subscribe: ["all"]}
      $default: {integration: {type: mock}}
`)
	slow, _, err := slowDialer.Dial(wsURL(g, "test"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	conns := make([]*websocket.Conn, readers)
	for i := range conns {
		conns[i] = dial(t, wsURL(g, "test"), nil)
	}
	payload := strings.Repeat("x", 1000)
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	start := time.Now()
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.SetReadDeadline(time.Now().Add(60 * time.Second))
			for i := 1; i <= msgs; i++ {
				_, data, err := c.ReadMessage()
				if err != nil {
					errs <- err
					return
				}
				if want := fmt.Sprintf("%04d", i); string(data[:4]) != want {
					errs <- fmt.Errorf("got %q, want %s", data[:4], want)
					return
				}
			}
		}()
	}
	dropped := 0
	for i := 1; i <= msgs; i++ {
		res := publish(t, g, "all", fmt.Sprintf("%04d%s", i, payload), "")
		if res.Delivered+res.Dropped != readers+1 {
			t.Fatalf("publish %d: %+v", i, res)
		}
		dropped += res.Dropped
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("a reader: %v", err)
	}
	t.Logf("%d readers × %d messages in %v; %d deliveries dropped", readers, msgs, time.Since(start), dropped)
	if dropped == 0 {
		t.Fatal("the client that never reads had nothing dropped")
	}
	waitMetric(t, g, fmt.Sprintf(`portico_channel_dropped_total{api="t",policy="drop"} %d`, dropped))
	// The slow client reads at last: what it got, then (once a message
	// reaches it again) a gap frame counting what it missed. On a loaded
	// machine its socket may take a message between two runs of drops:
	// then a gap frame comes before that message too, and the gaps
	// together count exactly what was dropped.
	frames := make(chan string, msgs+1100)
	go func() {
		defer close(frames)
		for {
			_ = slow.SetReadDeadline(time.Now().Add(testTimeout))
			_, data, err := slow.ReadMessage()
			if err != nil {
				return
			}
			frames <- string(data)
		}
	}()
	final, finalsDropped := "", 0
	for k := 0; final == ""; k++ {
		if res := publish(t, g, "all", fmt.Sprintf("final-%d", k), ""); res.Dropped == 0 {
			final = fmt.Sprintf("final-%d", k)
		} else {
			dropped++
			finalsDropped++
		}
		if k > 1000 {
			t.Fatal("the slow client's queue never drained")
		}
	}
	var messages, gapped, gaps int
	lastWasGap := false
	for f := range frames {
		if f == final {
			break
		}
		var gap struct {
			Type     string
			Dropped  int
			From, To int
		}
		if strings.HasPrefix(f, "{") && json.Unmarshal([]byte(f), &gap) == nil && gap.Type == "portico.gap" {
			if gap.Dropped <= 0 || gap.To-gap.From+1 != gap.Dropped {
				t.Errorf("gap frame %q: dropped does not match from..to", f)
			}
			gapped += gap.Dropped
			gaps++
			lastWasGap = true
			continue
		}
		messages++
		lastWasGap = false
	}
	if gapped != dropped || gaps == 0 {
		t.Errorf("%d gap frames counting %d dropped, want at least one counting %d", gaps, gapped, dropped)
	}
	if !lastWasGap {
		t.Error("the message after the drops came without a gap frame before it")
	}
	if messages+gapped != msgs+finalsDropped {
		t.Errorf("%d messages and %d dropped for %d published before the last", messages, gapped, msgs+finalsDropped)
	}
}

// With channelOverflow close, the client that does not read is closed
// with 1008 and the others get everything.
func TestChannelSlowConsumerClose(t *testing.T) {
	const readers, msgs = 50, 300
	b := newBackend(t)
	g := startGateway(t, strings.ReplaceAll(`connections: {sendQueueBytes: 65536}
apis:
  - name: t
    channelOverflow: close
    limits: {writeTimeout: 10m} # the overflow policy closes it, not the write timeout
    stages: [{name: test, variables: {backend: BACKEND}}]
    routes:
      $connect: {subscribe: ["all"]}
      $disconnect: {integration: {type: http, uri: "${stageVariables.backend}/disconnect"}}
      $default: {integration: {type: mock}}
`, "BACKEND", b.srv.URL))
	slow, _, err := slowDialer.Dial(wsURL(g, "test"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	conns := make([]*websocket.Conn, readers)
	for i := range conns {
		conns[i] = dial(t, wsURL(g, "test"), nil)
	}
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
			for i := 0; i < msgs; i++ {
				if _, _, err := c.ReadMessage(); err != nil {
					t.Errorf("reader: %v", err)
					return
				}
			}
		}()
	}
	payload := strings.Repeat("y", 1000)
	for range msgs {
		publish(t, g, "all", payload, "")
	}
	wg.Wait()
	e := b.nextOf("DISCONNECT")
	if code, _ := e.ctx("disconnectStatusCode").(float64); code != 1008 {
		t.Errorf("the slow client was closed with %v, want 1008", e.ctx("disconnectStatusCode"))
	}
	if p := members(t, g, "all", ""); p.Count != readers {
		t.Errorf("%d members left, want %d", p.Count, readers)
	}
	waitMetric(t, g, `portico_channel_dropped_total{api="t",policy="close"}`)
}
