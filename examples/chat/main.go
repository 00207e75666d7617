// Command chat is a small chat backend for Portico, written the way a chat
// Lambda for Amazon API Gateway is written: one handler receives every
// event (CONNECT, MESSAGE, DISCONNECT) and switches on the route key;
// it broadcasts by calling @connections for every connection in the room,
// and answers the sender alone (its welcome, or an error) in the route
// response of the two-way routes join, setname and sendmessage.
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
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

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

// outgoing is what clients receive. Type is one of
//
//	welcome  to you, after join or setname: your name and who is in the room
//	join     someone joined: name, members
//	leave    someone left: name, members
//	rename   someone changed name: from (old), name (new), members
//	message  a chat message: from, text, id (the sender's id for it)
//	error    your last action failed: message, id (of the failed sendmessage),
//	         code "notJoined" when the connection is not in the room (it
//	         never joined, or the backend restarted and forgot it)
//
// join, leave and rename carry a text to show as well, for clients that
// only print text.
type outgoing struct {
	Type    string   `json:"type"`
	From    string   `json:"from,omitempty"`
	Name    string   `json:"name,omitempty"`
	Text    string   `json:"text,omitempty"`
	Members []string `json:"members,omitempty"`
	Message string   `json:"message,omitempty"`
	Code    string   `json:"code,omitempty"`
	ID      string   `json:"id,omitempty"`
	At      string   `json:"at,omitempty"`
}

// Limits on what clients send.
const (
	maxName    = 32   // characters of a display name
	maxMessage = 1000 // characters of a chat message
	maxID      = 64   // bytes of the id a client gives a message
)

// room is who is in the chat: the connections that joined, by id, and
// their display names. It is safe for concurrent use. Presence is by name:
// two connections with the same name (two tabs, or a tab that reconnected
// before the gateway reported its old connection gone) are one member, who
// joins with the first connection and leaves with the last.
type room struct {
	mu    sync.Mutex
	names map[string]string // connection id → display name
}

// change is the outcome of a join, leave or rename: the members after it,
// whether the others are to be told (a name appeared or went), and who the
// others are, taken in the same critical section so that every connection
// either is in members or is told.
type change struct {
	members  []string
	announce bool
	others   []string
}

// set gives connection id the name (joining it if it was not in the room)
// and returns its previous name ("" when it joins).
func (r *room) set(id, name string) (string, change) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.names[id]
	r.names[id] = name
	ch := change{members: r.membersLocked(), others: r.othersLocked(id)}
	if old != name {
		// Tell the others if a name appeared, or went with a rename.
		ch.announce = r.countLocked(name) == 1 || (old != "" && r.countLocked(old) == 0)
	}
	return old, ch
}

// leave takes connection id out of the room and returns its name, or ok
// false when it had not joined.
func (r *room) leave(id string) (name string, ok bool, ch change) {
	r.mu.Lock()
	defer r.mu.Unlock()
	name, ok = r.names[id]
	if !ok {
		return "", false, change{}
	}
	delete(r.names, id)
	return name, true, change{members: r.membersLocked(), announce: r.countLocked(name) == 0, others: r.othersLocked("")}
}

// name returns the name of connection id, or "" when it has not joined.
func (r *room) name(id string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.names[id]
}

// everyone returns the ids of every connection in the room.
func (r *room) everyone() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.othersLocked("")
}

// forget takes a connection the gateway reports gone out of the room,
// without telling anyone: its $disconnect does that.
func (r *room) forget(id string) {
	r.mu.Lock()
	delete(r.names, id)
	r.mu.Unlock()
}

func (r *room) membersLocked() []string {
	seen := make(map[string]bool, len(r.names))
	out := make([]string, 0, len(r.names))
	for _, n := range r.names {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

func (r *room) othersLocked(skip string) []string {
	out := make([]string, 0, len(r.names))
	for id := range r.names {
		if id != skip {
			out = append(out, id)
		}
	}
	return out
}

func (r *room) countLocked(name string) int {
	n := 0
	for _, v := range r.names {
		if v == name {
			n++
		}
	}
	return n
}

// backend is the chat: the room, and the gateway's @connections API to
// reach its members.
type backend struct {
	gw   *client.Client
	log  *slog.Logger
	room room
}

func newBackend(gw *client.Client, log *slog.Logger) *backend {
	return &backend{gw: gw, log: log, room: room{names: map[string]string{}}}
}

// ServeHTTP serves the page at / and events at /events.
func (b *backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/" && r.Method == http.MethodGet:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(page)
	case r.URL.Path == "/authorize" && r.Method == http.MethodPost:
		authorize(w, r)
	case r.URL.Path == "/events" && r.Method == http.MethodPost:
		var ev event
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
			reply(w, 400, frame(outgoing{Type: "error", Message: "not an event: " + err.Error()}))
			return
		}
		status, body := b.handle(r.Context(), &ev)
		reply(w, status, body)
	default:
		http.NotFound(w, r)
	}
}

// authorize is the $connect authorizer (a REQUEST authorizer, as a
// Lambda would be): it lets in pages served by this backend and nothing
// else, so another site's page cannot open a chat connection in its
// visitors' browsers. Browsers always send Origin on a WebSocket
// handshake; the gateway calls this backend at the address that also
// serves the page, so the page's origin is http:// and this request's
// Host. The answer is an IAM policy allowing or denying the connection
// (methodArn is the $connect route of the stage being connected to);
// its context reaches every later event as requestContext.authorizer.
func authorize(w http.ResponseWriter, r *http.Request) {
	var ev struct {
		MethodArn string            `json:"methodArn"`
		Headers   map[string]string `json:"headers"`
	}
	if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
		http.Error(w, "not an authorizer event", http.StatusBadRequest)
		return
	}
	origin := ev.Headers["Origin"]
	effect := "Deny"
	if origin == "http://"+r.Host {
		effect = "Allow"
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"principalId": origin,
		"policyDocument": map[string]any{"Version": "2012-10-17", "Statement": []map[string]string{
			{"Action": "execute-api:Invoke", "Effect": effect, "Resource": ev.MethodArn}}},
		"context": map[string]any{"origin": origin},
	})
}

// reply answers Portico in the Lambda-proxy result form. On the two-way
// routes (routeResponse: true in portico.yaml) a non-empty body goes back
// to the client that sent the message, whatever the status, as in AWS.
func reply(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"statusCode": status, "body": body})
}

// frame encodes a frame for a client.
func frame(m outgoing) string {
	if m.At == "" {
		m.At = time.Now().UTC().Format(time.RFC3339)
	}
	data, _ := json.Marshal(m)
	return string(data)
}

// fail is the answer to an action that failed: HTTP 400 and an error
// frame, which the gateway hands to the sender as the route response.
func fail(id, format string, args ...any) (int, string) {
	return 400, frame(outgoing{Type: "error", Message: fmt.Sprintf(format, args...), ID: id})
}

// notJoined is the answer to an action that needs the connection in the
// room when it is not.
func notJoined(id string) (int, string) {
	return 400, frame(outgoing{Type: "error", Code: "notJoined", ID: id,
		Message: `join first: send {"action":"join","name":"..."}`})
}

// handle is the "Lambda": one function for every route.
func (b *backend) handle(ctx context.Context, ev *event) (int, string) {
	id := ev.RequestContext.ConnectionID
	switch ev.RequestContext.RouteKey {
	case "$connect":
		// Nothing to do: the connection is not open until $connect
		// returns, so it cannot be written to yet. The page sends join
		// once it is open.
	case "$disconnect":
		if name, ok, ch := b.room.leave(id); ok && ch.announce {
			b.post(ctx, ch.others, outgoing{Type: "leave", Name: name, Text: name + " left", Members: ch.members})
		}
	case "join":
		var msg struct {
			Name *string `json:"name"`
		}
		if err := json.Unmarshal([]byte(ev.Body), &msg); err != nil {
			return fail("", `send {"action":"join","name":"..."} (the name is optional)`)
		}
		name := b.room.name(id)
		switch {
		case msg.Name != nil && *msg.Name != "":
			n, err := validName(*msg.Name)
			if err != nil {
				return fail("", "%v", err)
			}
			name = n
		case name == "":
			name = guestName(id)
		}
		return b.setName(ctx, id, name)
	case "setname":
		var msg struct {
			Name string `json:"name"`
		}
		if err := json.Unmarshal([]byte(ev.Body), &msg); err != nil {
			return fail("", `send {"action":"setname","name":"..."}`)
		}
		name, err := validName(msg.Name)
		if err != nil {
			return fail("", "%v", err)
		}
		if b.room.name(id) == "" {
			return notJoined("")
		}
		return b.setName(ctx, id, name)
	case "sendmessage":
		var msg struct {
			Message string `json:"message"`
			ID      string `json:"id"`
		}
		if err := json.Unmarshal([]byte(ev.Body), &msg); err != nil {
			return fail("", `send {"action":"sendmessage","message":"..."}`)
		}
		if len(msg.ID) > maxID {
			return fail("", "message id too long (at most %d bytes)", maxID)
		}
		from := b.room.name(id)
		if from == "" {
			return notJoined(msg.ID)
		}
		text := strings.TrimSpace(msg.Message)
		if text == "" {
			return fail(msg.ID, "empty message")
		}
		if n := utf8.RuneCountInString(text); n > maxMessage {
			return fail(msg.ID, "message too long (%d characters, at most %d)", n, maxMessage)
		}
		b.post(ctx, b.room.everyone(), outgoing{Type: "message", From: from, Text: text, ID: msg.ID})
	default:
		// Reached only if portico.yaml routes more keys here than this
		// switch knows; on a one-way route the gateway drops the answer.
		return fail("", "unknown action %q", ev.RequestContext.RouteKey)
	}
	return 200, ""
}

// setName joins connection id under name or renames it, tells the others,
// and answers the welcome frame for the connection itself.
func (b *backend) setName(ctx context.Context, id, name string) (int, string) {
	old, ch := b.room.set(id, name)
	if ch.announce {
		m := outgoing{Type: "join", Name: name, Text: name + " joined", Members: ch.members}
		if old != "" {
			m = outgoing{Type: "rename", From: old, Name: name, Text: old + " is now " + name, Members: ch.members}
		}
		b.post(ctx, ch.others, m)
	}
	return 200, frame(outgoing{Type: "welcome", Name: name, Members: ch.members})
}

// validName trims a display name and checks it.
func validName(s string) (string, error) {
	s = strings.TrimSpace(s)
	switch n := utf8.RuneCountInString(s); {
	case n == 0 || n > maxName:
		return "", fmt.Errorf("a name has 1 to %d characters", maxName)
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return "", errors.New("a name has no control characters")
	}
	return s, nil
}

// guestName is the name of a connection that joins without one.
func guestName(id string) string {
	if len(id) > 4 {
		id = id[:4]
	}
	return "guest-" + id
}

// post sends msg to the connections ids, 16 at a time, and forgets
// connections that are gone.
func (b *backend) post(ctx context.Context, ids []string, msg outgoing) {
	data := []byte(frame(msg))
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
				b.room.forget(id)
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
