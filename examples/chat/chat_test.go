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
// configuration, the backend, and three clients chatting.
func TestChat(t *testing.T) {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// The backend's address goes into the gateway's configuration and the
	// gateway's address into the backend: start the HTTP server first and
	// plug the backend in once the gateway runs.
	var handler atomic.Pointer[backend]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handler.Load().ServeHTTP(w, r)
	}))
	defer srv.Close()

	cfg, err := config.Load("portico.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Management.Address = "127.0.0.1:0"
	cfg.APIs[0].Listen = "127.0.0.1:0"
	cfg.APIs[0].Stages[0].Variables["backend"] = srv.URL
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
	var clients []*websocket.Conn
	for i := 0; i < 3; i++ {
		c, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, c)
	}
	// next reads until a message whose text satisfies match arrives.
	next := func(c *websocket.Conn, match func(string) bool) outgoing {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			_, data, err := c.ReadMessage()
			if err != nil {
				t.Fatalf("waiting for a message: %v", err)
			}
			var m outgoing
			if json.Unmarshal(data, &m) == nil && match(m.Text) {
				return m
			}
		}
	}
	is := func(want string) func(string) bool { return func(s string) bool { return s == want } }
	send := func(c *websocket.Conn, v any) {
		data, _ := json.Marshal(v)
		if err := c.WriteMessage(websocket.TextMessage, data); err != nil {
			t.Fatal(err)
		}
	}
	send(clients[0], map[string]string{"action": "setname", "name": "ada"})
	send(clients[2], map[string]string{"action": "setname", "name": "carol"})
	for _, c := range clients {
		next(c, func(s string) bool { return strings.HasSuffix(s, " is now carol") })
	}
	send(clients[0], map[string]string{"action": "sendmessage", "message": "hello, room"})
	for i, c := range clients {
		m := next(c, is("hello, room"))
		if m.Type != "message" || m.From != "ada" {
			t.Errorf("client %d got %+v", i, m)
		}
	}
	send(clients[1], map[string]string{"action": "nonsense"})
	if m := next(clients[1], func(s string) bool { return strings.HasPrefix(s, "Unknown action.") }); m.Type != "system" {
		t.Errorf("$default answer %+v", m)
	}
	clients[2].Close()
	for _, c := range clients[:2] {
		if m := next(c, is("carol left")); m.Type != "system" {
			t.Errorf("leave message %+v", m)
		}
	}
}
