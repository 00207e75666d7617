package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/portico-gateway/portico/config"
	"github.com/portico-gateway/portico/gateway"
	"github.com/portico-gateway/portico/management/client"
)

// TestChat runs the walkthrough of README.md: the gateway on the example
// configuration, the backend, and clients joining, chatting, failing to
// send, reconnecting and leaving.
func TestChat(t *testing.T) {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// The backend's address goes into the gateway's configuration and the
	// gateway's address into the backend: start the HTTP server first and
	// plug the backend in once the gateway runs. Events go through the
	// backend's handle as in ServeHTTP; the test hears when a $disconnect
	// has been handled, so that it knows what the backend has posted.
	var handler atomic.Pointer[backend]
	disconnected := make(chan struct{}, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := handler.Load()
		if r.URL.Path != "/events" {
			b.ServeHTTP(w, r)
			return
		}
		var ev event
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
			t.Errorf("event: %v", err)
			return
		}
		reply(w, b.handle(r.Context(), &ev))
		if ev.RequestContext.RouteKey == "$disconnect" {
			select {
			case disconnected <- struct{}{}:
			default: // the gateway's shutdown, once the test is done
			}
		}
	}))
	defer srv.Close()

	cfg, err := config.Load("portico.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Management.Address = "127.0.0.1:0"
	cfg.APIs[0].Listen = "127.0.0.1:0"
	cfg.APIs[0].Stages[0].Variables["backend"] = srv.URL
	origin := cfg.APIs[0].Authorizers["origin"]
	origin.URI = srv.URL + "/authorize"
	cfg.APIs[0].Authorizers["origin"] = origin
	g, err := gateway.New(context.Background(), cfg, gateway.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer g.Shutdown(context.Background())
	gw, err := client.New("http://"+g.ManagementAddr()+"/dev", client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	handler.Store(newBackend(gw, log))

	page, err := http.Get(srv.URL + "/")
	if err != nil || page.StatusCode != 200 {
		t.Fatalf("page: %v %v", err, page)
	}
	page.Body.Close()

	url := "ws://" + g.APIAddr("chat") + "/dev"
	// The page's origin: what a browser sends on the handshake.
	pageOrigin := http.Header{"Origin": {srv.URL}}
	dial := func() *websocket.Conn {
		t.Helper()
		c, _, err := websocket.DefaultDialer.Dial(url, pageOrigin)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// Another site's page is refused by the authorizer (403), a client
	// without an Origin before it is called (401).
	for origin, want := range map[string]int{"http://evil.example": http.StatusForbidden, "": http.StatusUnauthorized} {
		h := http.Header{}
		if origin != "" {
			h.Set("Origin", origin)
		}
		c, resp, err := websocket.DefaultDialer.Dial(url, h)
		if err == nil {
			c.Close()
			t.Fatalf("origin %q: connected, want HTTP %d", origin, want)
		}
		if resp == nil || resp.StatusCode != want {
			t.Fatalf("origin %q: %v %v, want HTTP %d", origin, err, resp, want)
		}
	}
	send := func(c *websocket.Conn, v any) {
		t.Helper()
		data, _ := json.Marshal(v)
		if err := c.WriteMessage(websocket.TextMessage, data); err != nil {
			t.Fatal(err)
		}
	}
	// until reads frames until one satisfies match, within a deadline,
	// and returns it and the frames read before it.
	until := func(c *websocket.Conn, what string, match func(outgoing) bool) (outgoing, []outgoing) {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		var before []outgoing
		for {
			_, data, err := c.ReadMessage()
			if err != nil {
				t.Fatalf("waiting for %s: %v (read before: %+v)", what, err, before)
			}
			var m outgoing
			if err := json.Unmarshal(data, &m); err != nil {
				t.Fatalf("waiting for %s: frame %q: %v", what, data, err)
			}
			if match(m) {
				return m, before
			}
			before = append(before, m)
		}
	}
	// next reads the next frame, which must be of type typ.
	next := func(c *websocket.Conn, typ string) outgoing {
		t.Helper()
		m, _ := until(c, typ, func(outgoing) bool { return true })
		if m.Type != typ {
			t.Fatalf("got %+v, want a frame of type %s", m, typ)
		}
		return m
	}
	frameOf := func(typ, name string) func(outgoing) bool {
		return func(m outgoing) bool { return m.Type == typ && m.Name == name }
	}
	text := func(s string) func(outgoing) bool {
		return func(m outgoing) bool { return m.Type == "message" && m.Text == s }
	}
	members := func(m outgoing, want string) {
		t.Helper()
		if got := strings.Join(m.Members, ","); got != want {
			t.Errorf("%s frame: members %q, want %q", m.Type, got, want)
		}
	}

	// ada joins an empty room under her name.
	ada := dial()
	send(ada, map[string]string{"action": "join", "name": "ada"})
	if m := next(ada, "welcome"); m.Name != "ada" {
		t.Errorf("ada's welcome %+v", m)
	} else {
		members(m, "ada")
	}

	// A second client joins without a name, learns its guest name and
	// that ada is there; ada hears it joined. It takes a name.
	bob := dial()
	send(bob, map[string]string{"action": "join"})
	w := next(bob, "welcome")
	if !strings.HasPrefix(w.Name, "guest-") {
		t.Errorf("nameless welcome %+v", w)
	}
	members(w, "ada,"+w.Name)
	members(next(ada, "join"), "ada,"+w.Name)
	send(bob, map[string]string{"action": "setname", "name": "bob"})
	if m := next(bob, "welcome"); m.Name != "bob" {
		t.Errorf("welcome after setname %+v", m)
	} else {
		members(m, "ada,bob")
	}
	if m := next(ada, "rename"); m.From != w.Name || m.Name != "bob" || m.Text != w.Name+" is now bob" {
		t.Errorf("rename %+v", m)
	} else {
		members(m, "ada,bob")
	}

	// carol joins: she is welcomed with everyone, the others are told.
	carol := dial()
	send(carol, map[string]string{"action": "join", "name": "carol"})
	if m := next(carol, "welcome"); m.Name != "carol" {
		t.Errorf("carol's welcome %+v", m)
	} else {
		members(m, "ada,bob,carol")
	}
	for _, c := range []*websocket.Conn{ada, bob} {
		m := next(c, "join")
		if m.Name != "carol" || m.Text != "carol joined" {
			t.Errorf("join %+v", m)
		}
		members(m, "ada,bob,carol")
	}

	// A message reaches everyone in the room, the sender too, with the
	// sender's id for it; a connection that has not joined gets nothing.
	dave := dial()
	send(ada, map[string]string{"action": "sendmessage", "message": "hello, room", "id": "m1"})
	for _, c := range []*websocket.Conn{ada, bob, carol} {
		if m := next(c, "message"); m.Text != "hello, room" || m.From != "ada" || m.ID != "m1" {
			t.Errorf("message %+v", m)
		}
	}
	send(dave, map[string]string{"action": "sendmessage", "message": "let me in", "id": "d1"})
	if m := next(dave, "error"); !strings.HasPrefix(m.Message, "join first") || m.Code != "notJoined" || m.ID != "d1" {
		t.Errorf("send before join: %+v", m)
	}

	// Invalid actions answer an error frame to the sender, one at a time
	// (the gateway runs a connection's messages concurrently, so answers
	// to several in flight may come in any order).
	for _, tc := range []struct {
		msg  map[string]string
		want string // prefix of the error message
		id   string
	}{
		{map[string]string{"action": "sendmessage", "message": "  ", "id": "e1"}, "empty message", "e1"},
		{map[string]string{"action": "sendmessage", "message": strings.Repeat("a", maxMessage+1), "id": "e2"}, "message too long", "e2"},
		{map[string]string{"action": "sendmessage", "message": "hi", "id": strings.Repeat("i", maxID+1)}, "message id too long", ""},
		{map[string]string{"action": "setname", "name": strings.Repeat("b", maxName+1)}, "a name has 1 to", ""},
		{map[string]string{"action": "join", "name": "bo\tb"}, "a name has no control characters", ""},
		{map[string]string{"action": "nonsense"}, "Unknown action.", ""}, // portico.yaml's $default mock
	} {
		send(bob, tc.msg)
		if m := next(bob, "error"); !strings.HasPrefix(m.Message, tc.want) || m.ID != tc.id {
			t.Errorf("%v: got %+v, want an error %q with id %q", tc.msg["action"], m, tc.want, tc.id)
		}
	}
	// ... to the sender only: what the others read up to bob's next
	// message has no error in it.
	send(bob, map[string]string{"action": "sendmessage", "message": "still here"})
	next(bob, "message")
	for _, c := range []*websocket.Conn{ada, carol} {
		if _, before := until(c, "bob's message", text("still here")); len(before) != 0 {
			t.Errorf("others got %+v", before)
		}
	}

	// ada reconnects, as the page does, under the same name before the
	// gateway reports her old connection gone: she is welcomed, and the
	// others are told neither that she joined nor, when the old
	// connection closes, that she left.
	ada2 := dial()
	send(ada2, map[string]string{"action": "join", "name": "ada"})
	if m := next(ada2, "welcome"); m.Name != "ada" {
		t.Errorf("welcome back %+v", m)
	} else {
		members(m, "ada,bob,carol")
	}
	ada.Close()
	waitDisconnect := func() {
		t.Helper()
		select {
		case <-disconnected:
		case <-time.After(10 * time.Second):
			t.Fatal("no $disconnect")
		}
	}
	waitDisconnect()

	// carol leaves: the others are told, and nothing about ada came
	// before.
	carol.Close()
	waitDisconnect()
	for _, c := range []*websocket.Conn{ada2, bob} {
		m, before := until(c, "carol's leave", frameOf("leave", "carol"))
		if m.Text != "carol left" || len(before) != 0 {
			t.Errorf("leave %+v after %+v", m, before)
		}
		members(m, "ada,bob")
	}

	// Rooms are channels: eve joins another room and hears nothing of the
	// lobby; bob moves to hers: the lobby is told he left, eve that he
	// joined, and from then on he hears her room only.
	eve := dial()
	send(eve, map[string]string{"action": "join", "name": "eve", "room": "garden"})
	if m := next(eve, "welcome"); m.Room != "garden" {
		t.Errorf("eve's welcome %+v", m)
	} else {
		members(m, "eve")
	}
	send(ada2, map[string]string{"action": "sendmessage", "message": "lobby only"})
	next(ada2, "message")
	next(bob, "message")
	send(bob, map[string]string{"action": "join", "room": "garden"})
	if m := next(bob, "welcome"); m.Room != "garden" || m.Name != "bob" {
		t.Errorf("bob's welcome in the garden %+v, want bob (a connection moving keeps its name)", m)
	}
	if m := next(eve, "join"); m.Room != "garden" {
		t.Errorf("eve heard %+v, want bob's join (and nothing of the lobby)", m)
	}
	if m := next(ada2, "leave"); m.Room != "lobby" {
		t.Errorf("ada heard %+v, want bob's leave", m)
	}
	send(ada2, map[string]string{"action": "sendmessage", "message": "anyone?"})
	next(ada2, "message")
	send(eve, map[string]string{"action": "sendmessage", "message": "hi bob"})
	if m := next(bob, "message"); m.Text != "hi bob" || m.Room != "garden" {
		t.Errorf("bob got %+v, want eve's message (not ada's)", m)
	}
	next(eve, "message")
	send(eve, map[string]string{"action": "join", "room": "no spaces"})
	if m := next(eve, "error"); !strings.HasPrefix(m.Message, "a room name has") {
		t.Errorf("bad room: %+v", m)
	}
}
