package routing

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/portico-gateway/portico/connections"
	"github.com/portico-gateway/portico/metrics"
	"github.com/portico-gateway/portico/routing/expr"
)

func TestChannelHeaders(t *testing.T) {
	h := http.Header{}
	h.Add("x-portico-subscribe", "room:1, user:42")
	h.Add("X-Portico-Subscribe", ",extra,")
	h.Set("X-Portico-Unsubscribe", " lobby ")
	h.Set("Sec-WebSocket-Protocol", "chat")
	var ops channelOps
	ops.fromHeaders(h)
	if got := strings.Join(ops.subscribe, "|"); got != "room:1|user:42|extra" {
		t.Errorf("subscribe %q", got)
	}
	if got := strings.Join(ops.unsubscribe, "|"); got != "lobby" {
		t.Errorf("unsubscribe %q", got)
	}
	if len(h) != 1 || h.Get("Sec-WebSocket-Protocol") != "chat" {
		t.Errorf("headers left %v: the extension headers must go, the others stay", h)
	}
}

func TestDeclaredChannels(t *testing.T) {
	subs, err := compileChannels([]string{"room:${request.body.room}", "user:${context.authorizer.principalId}", "${request.body.missing}"})
	if err != nil {
		t.Fatal(err)
	}
	rt := &route{subscribe: subs}
	ops := rt.declared([]byte(`{"room":"7"}`), expr.Map{"context.authorizer.principalId": "u1"})
	if got := strings.Join(ops.subscribe, "|"); got != "room:7|user:u1" {
		t.Errorf("declared %q (an empty result is skipped)", got)
	}
	if _, err := compileChannels([]string{"room:${"}); err == nil {
		t.Error("a bad template compiled")
	}
}

// FuzzChannelHeaders: whatever a backend puts in the extension headers,
// parsing never panics, yields no empty or padded name, and removes them.
func FuzzChannelHeaders(f *testing.F) {
	for _, s := range []string{"room:1, user:42", ",,", " a ,b ", ""} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, sub, unsub string) {
		h := http.Header{HeaderSubscribe: {sub}, HeaderUnsubscribe: {unsub}}
		var ops channelOps
		ops.fromHeaders(h)
		for _, n := range append(ops.subscribe, ops.unsubscribe...) {
			if n == "" || n != strings.TrimSpace(n) || strings.Contains(n, ",") {
				t.Fatalf("name %q from %q / %q", n, sub, unsub)
			}
		}
		if len(h) != 0 {
			t.Fatalf("left %v", h)
		}
	})
}

// blockingChannels is a SharedChannels whose Subscribe waits until
// released, as a first subscribe across nodes waits for Redis.
type blockingChannels struct {
	shared  bool
	entered chan string
	release chan struct{}
}

func (b *blockingChannels) Subscribe(_ connections.Conn, name string) error {
	b.entered <- name
	<-b.release
	return nil
}
func (b *blockingChannels) Unsubscribe(connections.Conn, string) error { return nil }
func (b *blockingChannels) Shared() bool                               { return b.shared }

// With shared channels a route's declared subscribe runs off the
// connection server's loop: Message returns while the subscribe waits,
// and the route's answer follows the subscribe.
func TestSharedChannelsSubscribeOffTheLoop(t *testing.T) {
	for _, shared := range []bool{true, false} {
		ch := &blockingChannels{shared: shared, entered: make(chan string, 1), release: make(chan struct{})}
		api := baseAPI(map[string]Route{"join": {RouteResponse: true, Subscribe: []string{"room:${request.body.room}"}, Integration: mock("joined")}})
		r, err := New(Options{API: api, Metrics: metrics.New(nil), Logger: slog.New(slog.DiscardHandler), Channels: ch})
		if err != nil {
			t.Fatal(err)
		}
		tr := &testRouter{r, nil}
		c := tr.open(t, "prod")
		returned := make(chan struct{})
		go func() {
			r.Message(c, connections.Message{Data: []byte(`{"action":"join","room":"7"}`)})
			close(returned)
		}()
		if got := <-ch.entered; got != "room:7" {
			t.Fatalf("subscribed to %q", got)
		}
		if shared {
			select {
			case <-returned:
			case <-time.After(waitTimeout):
				t.Fatal("Message waited for the subscribe: it would hold the connection server's loop")
			}
		} else {
			select {
			case <-returned:
				t.Fatal("without shared channels the subscribe runs inline, yet Message returned before it")
			default: // Message is inside Subscribe, which waits for release
			}
		}
		select {
		case f := <-c.sent:
			t.Fatalf("answer %q before the subscribe was done", f.data)
		default:
		}
		close(ch.release)
		if f := c.next(t); f.data != "joined" {
			t.Errorf("answer %q", f.data)
		}
		<-returned
		r.shutdown(t)
	}
}
