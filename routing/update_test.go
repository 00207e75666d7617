package routing

import (
	"context"
	"net/http"
	"sync"
	"testing"

	"github.com/portico-gateway/portico/connections"
)

// A connection opened before Update meets the new routes, stage
// variables and selection expression with its next message, and keeps
// its stage.
func TestUpdateSwapsRoutesForNextMessage(t *testing.T) {
	api := baseAPI(map[string]Route{
		"$default": {RouteResponse: true, Integration: mock("v1 ${stageVariables.env} $context.stage")},
	})
	r := newRouter(t, api)
	c := r.open(t, "prod")
	r.Message(c, connections.Message{Data: []byte(`{"action":"x"}`)})
	if f := c.next(t); f.data != "v1 production prod" {
		t.Fatalf("before Update: %q", f.data)
	}

	next := baseAPI(map[string]Route{
		"$default": {RouteResponse: true, Integration: mock("v2 ${stageVariables.env} $context.stage")},
		"ping":     {RouteResponse: true, Integration: mock("pong")},
	})
	next.RouteSelectionExpression = "$request.body.type"
	next.Stages[0].Variables = map[string]string{"env": "canary"}
	if err := r.Update(next, nil); err != nil {
		t.Fatalf("Update: %v", err)
	}
	r.Message(c, connections.Message{Data: []byte(`{"action":"ping"}`)})
	if f := c.next(t); f.data != "v2 canary prod" {
		t.Errorf("after Update, old selection key: %q, want the new $default", f.data)
	}
	r.Message(c, connections.Message{Data: []byte(`{"type":"ping"}`)})
	if f := c.next(t); f.data != "pong" {
		t.Errorf("after Update, new selection expression: %q, want pong", f.data)
	}
	// A new connection meets the new table too.
	c2 := r.open(t, "dev")
	r.Message(c2, connections.Message{Data: []byte(`{}`)})
	if f := c2.next(t); f.data != "v2  dev" {
		t.Errorf("new connection: %q", f.data)
	}
}

// A bad table leaves the running one in place.
func TestUpdateErrorKeepsTable(t *testing.T) {
	r := newRouter(t, baseAPI(map[string]Route{"$default": {RouteResponse: true, Integration: mock("old")}}))
	bad := baseAPI(map[string]Route{"$default": {RouteResponse: true, Integration: mock("new")}})
	bad.RouteSelectionExpression = "${request.body"
	if err := r.Update(bad, nil); err == nil {
		t.Fatal("Update accepted a bad selection expression")
	}
	c := r.open(t, "prod")
	r.Message(c, connections.Message{Data: []byte(`{}`)})
	if f := c.next(t); f.data != "old" {
		t.Errorf("after a failed Update: %q, want old", f.data)
	}
}

// A connection whose stage the new table lacks keeps its old stage and
// routes; new connections to that stage are refused.
func TestUpdateRemovedStage(t *testing.T) {
	r := newRouter(t, baseAPI(map[string]Route{"$default": {RouteResponse: true, Integration: mock("old $context.stage")}}))
	c := r.open(t, "dev")
	next := baseAPI(map[string]Route{"$default": {RouteResponse: true, Integration: mock("new")}})
	next.Stages = next.Stages[:1] // prod only
	if err := r.Update(next, nil); err != nil {
		t.Fatal(err)
	}
	r.Message(c, connections.Message{Data: []byte(`{}`)})
	if f := c.next(t); f.data != "old dev" {
		t.Errorf("connection on a removed stage: %q", f.data)
	}
	if res, _ := r.connect(t, "http://gw.example.com/dev", nil); res.Status != http.StatusForbidden {
		t.Errorf("connect to a removed stage: %d, want 403", res.Status)
	}
}

// Messages and Updates race freely (go test -race): no lock, no torn
// table.
func TestUpdateConcurrentWithMessages(t *testing.T) {
	a := baseAPI(map[string]Route{"$default": {RouteResponse: true, Integration: mock("a")}})
	b := baseAPI(map[string]Route{"$default": {RouteResponse: true, Integration: mock("b")}})
	r := newRouter(t, a)
	const conns, msgs = 8, 200
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			api := a
			if i%2 == 0 {
				api = b
			}
			if err := r.Update(api, nil); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var senders sync.WaitGroup
	for range conns {
		c := r.open(t, "prod")
		c.sent = make(chan frame, msgs)
		senders.Add(1)
		go func() {
			defer senders.Done()
			for range msgs {
				r.Message(c, connections.Message{Data: []byte(`{}`)})
				if f := <-c.sent; f.data != "a" && f.data != "b" {
					t.Errorf("answer %q", f.data)
				}
			}
		}()
	}
	senders.Wait()
	cancel()
	wg.Wait()
}
