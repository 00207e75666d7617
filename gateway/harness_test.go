package gateway

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/portico-gateway/portico/config"
)

// testTimeout bounds every wait in these tests; nothing here should take
// more than a fraction of it.
const testTimeout = 10 * time.Second

// startGateway starts a gateway in-process from YAML on loopback ports
// chosen by the kernel and stops it when the test ends.
func startGateway(t *testing.T, yml string, opts ...Option) *Gateway {
	t.Helper()
	cfg, err := config.Parse(t.Name()+".yaml", []byte(yml))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	cfg.Management.Address = "127.0.0.1:0"
	cfg.Connections.Mode = testMode
	for i := range cfg.APIs {
		cfg.APIs[i].Listen = "127.0.0.1:0"
	}
	level := slog.LevelError
	if os.Getenv("PORTICO_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	g, err := New(context.Background(), cfg, append([]Option{WithLogger(log)}, opts...)...)
	if err != nil {
		t.Fatalf("gateway.New: %v", err)
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatalf("gateway.Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		if err := g.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return g
}

// wsURL is the WebSocket URL of stage on the gateway's only API.
func wsURL(g *Gateway, stage string) string {
	return "ws://" + g.APIAddr(g.apis[0].name) + "/" + stage
}

func mgmtURL(g *Gateway, stage string) string {
	return "http://" + g.ManagementAddr() + "/" + stage
}

// dial connects a gorilla client and closes it when the test ends.
func dial(t *testing.T, url string, h http.Header) *websocket.Conn {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial(url, h)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (HTTP %d)", url, err, status)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readText reads one message and fails unless it is text.
func readText(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(testTimeout))
	mt, data, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if mt != websocket.TextMessage {
		t.Fatalf("read: message type %d, want text", mt)
	}
	return string(data)
}

// readClose reads until the server closes and returns the close error.
func readClose(t *testing.T, c *websocket.Conn) *websocket.CloseError {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(testTimeout))
	for {
		_, _, err := c.ReadMessage()
		if err == nil {
			continue
		}
		ce, ok := err.(*websocket.CloseError)
		if !ok {
			t.Fatalf("read: %v, want a close frame", err)
		}
		return ce
	}
}

func send(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// event is a decoded integration event.
type event map[string]any

func (e event) ctx(key string) any {
	rc, _ := e["requestContext"].(map[string]any)
	return rc[key]
}

func (e event) str(key string) string {
	s, _ := e.ctx(key).(string)
	return s
}

// backend is a real HTTP integration backend that records every event
// and answers with reply.
type backend struct {
	t      *testing.T
	srv    *httptest.Server
	events chan event
	mu     sync.Mutex
	reply  func(e event, w http.ResponseWriter, r *http.Request)
}

func newBackend(t *testing.T) *backend {
	b := &backend{t: t, events: make(chan event, 100)}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("backend read: %v", err)
			return
		}
		var e event
		if err := json.Unmarshal(body, &e); err != nil {
			t.Errorf("backend: event is not JSON: %v: %s", err, body)
			w.WriteHeader(400)
			return
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("backend: Content-Type %q, want application/json", ct)
		}
		b.events <- e
		b.mu.Lock()
		reply := b.reply
		b.mu.Unlock()
		if reply != nil {
			reply(e, w, r)
			return
		}
		_, _ = io.WriteString(w, `{"statusCode":200}`)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *backend) setReply(f func(e event, w http.ResponseWriter, r *http.Request)) {
	b.mu.Lock()
	b.reply = f
	b.mu.Unlock()
}

// next returns the next event, failing after testTimeout.
func (b *backend) next() event {
	b.t.Helper()
	select {
	case e := <-b.events:
		return e
	case <-time.After(testTimeout):
		b.t.Fatal("backend: no event")
		return nil
	}
}

// nextOf skips events until one of eventType arrives.
func (b *backend) nextOf(eventType string) event {
	b.t.Helper()
	for {
		e := b.next()
		if e.str("eventType") == eventType {
			return e
		}
	}
}

// yamlAPI wraps route YAML into a one-API configuration with stage "test".
func yamlAPI(extra, routes string) string {
	return `apis:
  - name: t
    stages:
      - name: test
        variables:
          backend: BACKEND
` + indent(extra, "    ") + `    routes:
` + indent(routes, "      ")
}

func indent(s, prefix string) string {
	if s == "" {
		return ""
	}
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return strings.Join(lines, "\n") + "\n"
}
