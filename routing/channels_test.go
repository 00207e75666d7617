package routing

import (
	"net/http"
	"strings"
	"testing"

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
