// Command chat is a small chat backend for Portico, written the way a chat
// Lambda for Amazon API Gateway is written: one handler receives every
// event (CONNECT, MESSAGE, DISCONNECT) and switches on the route key;
// it broadcasts by calling @connections for every connection it knows.
//
//	go run ./cmd/portico --config examples/chat/portico.yaml
//	go run ./examples/chat
//	open http://127.0.0.1:8000/ in two browser tabs
//
// It also serves the browser page (index.html) at /.
package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/portico-gateway/portico/management/client"
)

//go:embed index.html
var page []byte

// event is the part of the Lambda-proxy event the backend reads.
type event struct {
	RequestContext struct {
		RouteKey     string `json:"routeKey"`
		ConnectionID string `json:"connectionId"`
	} `json:"requestContext"`
	Body string `json:"body"`
}

// outgoing is what clients receive.
type outgoing struct {
	Type string `json:"type"` // "message" or "system"
	From string `json:"from,omitempty"`
	Text string `json:"text"`
	At   string `json:"at"`
}

// backend holds the chat room: connection ids and display names.
type backend struct {
	gw  *client.Client
	log *slog.Logger

	mu    sync.Mutex
	names map[string]string // connection id → display name
}

func newBackend(gw *client.Client, log *slog.Logger) *backend {
	return &backend{gw: gw, log: log, names: map[string]string{}}
}

// ServeHTTP serves the page at / and events at /events.
func (b *backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/" && r.Method == http.MethodGet:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(page)
	case r.URL.Path == "/events" && r.Method == http.MethodPost:
		var ev event
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
			reply(w, 400, "not an event: "+err.Error())
			return
		}
		status, body := b.handle(r.Context(), &ev)
		reply(w, status, body)
	default:
		http.NotFound(w, r)
	}
}

// reply answers Portico in the Lambda-proxy result form.
func reply(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"statusCode": status, "body": body})
}

// handle is the "Lambda": one function for every route.
func (b *backend) handle(ctx context.Context, ev *event) (int, string) {
	id := ev.RequestContext.ConnectionID
	switch ev.RequestContext.RouteKey {
	case "$connect":
		name := "guest-" + id[:4]
		b.mu.Lock()
		b.names[id] = name
		b.mu.Unlock()
		// The connection is not open until $connect returns: announce it
		// to the others only.
		go b.broadcast(context.WithoutCancel(ctx), outgoing{Type: "system", Text: name + " joined"}, id)
	case "$disconnect":
		b.mu.Lock()
		name, ok := b.names[id]
		delete(b.names, id)
		b.mu.Unlock()
		if ok {
			b.broadcast(ctx, outgoing{Type: "system", Text: name + " left"}, "")
		}
	case "sendmessage":
		var msg struct{ Message string }
		if err := json.Unmarshal([]byte(ev.Body), &msg); err != nil || msg.Message == "" {
			return 400, `send {"action":"sendmessage","message":"..."}`
		}
		b.broadcast(ctx, outgoing{Type: "message", From: b.name(id), Text: msg.Message}, "")
	case "setname":
		var msg struct{ Name string }
		if err := json.Unmarshal([]byte(ev.Body), &msg); err != nil || msg.Name == "" || len(msg.Name) > 32 {
			return 400, `send {"action":"setname","name":"..."} (1 to 32 characters)`
		}
		b.mu.Lock()
		old := b.names[id]
		b.names[id] = msg.Name
		b.mu.Unlock()
		b.broadcast(ctx, outgoing{Type: "system", Text: old + " is now " + msg.Name}, "")
	default:
		return 400, "unknown route " + ev.RequestContext.RouteKey
	}
	return 200, ""
}

func (b *backend) name(id string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.names[id]
}

// broadcast posts msg to every known connection except skip, 16 at a
// time, and forgets connections that are gone.
func (b *backend) broadcast(ctx context.Context, msg outgoing, skip string) {
	msg.At = time.Now().UTC().Format(time.RFC3339)
	data, _ := json.Marshal(msg)
	b.mu.Lock()
	ids := make([]string, 0, len(b.names))
	for id := range b.names {
		if id != skip {
			ids = append(ids, id)
		}
	}
	b.mu.Unlock()

	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			err := b.gw.PostToConnection(ctx, id, data)
			var gone *client.GoneException
			switch {
			case errors.As(err, &gone):
				b.mu.Lock()
				delete(b.names, id)
				b.mu.Unlock()
			case err != nil:
				b.log.Warn("post failed", "connectionId", id, "err", err)
			}
		}()
	}
	wg.Wait()
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8000", "address to serve events and the page on")
	gateway := flag.String("gateway", "http://127.0.0.1:9090/dev", "the @connections endpoint: Portico's management listener and stage")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))

	gw, err := client.New(*gateway, client.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "chat:", err)
		os.Exit(1)
	}
	srv := &http.Server{Addr: *listen, Handler: newBackend(gw, log), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("chat backend listening", "address", *listen, "gateway", *gateway)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "chat:", err)
		os.Exit(1)
	}
}
