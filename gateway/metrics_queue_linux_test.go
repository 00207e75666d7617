package gateway

import (
	"strings"
	"testing"
	"time"
)

// The send queue metrics: bytes waiting for a client that does not read,
// the sends its full queue refused, and the bytes going back to zero once
// the client reads again.
func TestSendQueueMetrics(t *testing.T) {
	g := startGateway(t, `connections: {sendQueueBytes: 65536}
apis:
  - name: t
    limits: {writeTimeout: 10m}
    stages: [{name: test}]
    routes:
      whoami:
        routeResponse: true
        integration: {type: mock, response: {body: "$context.connectionId"}}
`)
	slow, _, err := slowDialer.Dial(wsURL(g, "test"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	send(t, slow, `{"action":"whoami"}`)
	id := readText(t, slow)
	payload := strings.Repeat("x", 8000)
	refused := 0
	for i := 0; i < 1000 && refused < 3; i++ {
		resp, body := doHTTP(t, "POST", mgmtURL(g, "test")+"/@connections/"+id, payload)
		switch resp.StatusCode {
		case 200:
		case 429:
			refused++
		default:
			t.Fatalf("post %d: %d %s", i, resp.StatusCode, body)
		}
	}
	if refused != 3 {
		t.Fatalf("the queue of a client that does not read never filled")
	}
	m := scrape(t, g)
	if got := m[`portico_send_queue_overflows_total{api="t"}`]; got != 3 {
		t.Errorf("overflows = %v, want 3", got)
	}
	if got := m[`portico_send_queue_bytes{api="t"}`]; got <= 0 || got > 65536 {
		t.Errorf("queued bytes = %v, want in (0, 65536]", got)
	}
	if got := m[`portico_management_requests_total{code="429",op="post"}`]; got != 3 {
		t.Errorf("@connections 429s = %v, want 3", got)
	}
	// The client reads everything: the queue drains.
	done := make(chan error, 1)
	go func() {
		_ = slow.SetReadDeadline(time.Now().Add(testTimeout))
		for {
			if _, _, err := slow.ReadMessage(); err != nil {
				done <- err
				return
			}
		}
	}()
	waitMetrics(t, g, map[string]float64{`portico_send_queue_bytes{api="t"}`: 0})
	slow.Close()
	<-done
}
