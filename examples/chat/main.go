// Command chat is a small chat backend for Portico, written the way a chat
// Lambda for Amazon API Gateway is written: one handler receives every
// event (CONNECT, MESSAGE, DISCONNECT) and switches on the route key, and
// answers the sender alone (its welcome, or an error) in the route
// response of the two-way routes join, setname and sendmessage.
//
// Each room is a Portico channel, "room:<name>": a connection that joins
// is put into it by the X-Portico-Subscribe header of the join answer,
// and the backend tells a room something with one publish
// (POST /dev/@channels/room:<name>), however many are in it. On AWS the
// same backend would loop over @connections for every member; channels
// are a Portico extension.
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

// answer is the backend's Lambda-proxy result: the status, the body for
// the sender (two-way routes), and the channels to put the sender into or
// take it out of (Portico's X-Portico-Subscribe and X-Portico-Unsubscribe
// headers; the gateway removes them before anything reaches the client).
type answer struct {
	status      int
	body        string
	subscribe   string
	unsubscribe string
}

// outgoing is what clients receive. Type is one of
//
//	welcome  to you, after join or setname: your name, your room and who
//	         is in it
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
	Room    string   `json:"room,omitempty"`
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
	maxRoom    = 64   // characters of a room name
)

// DefaultRoom is the room of a join that names none.
const DefaultRoom = "lobby"

// channel is the Portico channel of a room.
func channel(room string) string { return "room:" + room }

// rooms is who is in which room: each connection that joined is in one
// room under a display name. It is safe for concurrent use. Presence is by
// name: two connections with the same name in a room (two tabs, or a tab
// that reconnected before the gateway reported its old connection gone)
// are one member, who joins with the first connection and leaves with the
// last.
type rooms struct {
	mu    sync.Mutex
	where map[string]string // connection id → room
	rooms map[string]*room  // room name → its members
}

// room is the members of one room: display names by connection id.
type room struct {
	names map[string]string
}

// change is the outcome of a join, leave or rename in a room: the members
// after it and whether the others are to be told (a name appeared or
// went).
type change struct {
	members  []string
	announce bool
}

// moved is the room a connection left by joining another: its name there
// and the change.
type moved struct {
	room, name string
	ch         change
}

// set gives connection id the name in room roomName (joining it if it was
// not there) and returns its previous name in that room ("" when it joins
// it). A connection that was in another room leaves it: from says which.
func (rs *rooms) set(id, roomName, name string) (oldName string, from *moved, ch change) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if prev := rs.where[id]; prev != "" && prev != roomName {
		n, left := rs.leaveLocked(id)
		from = &moved{room: prev, name: n, ch: left}
	}
	r := rs.rooms[roomName]
	if r == nil {
		r = &room{names: map[string]string{}}
		rs.rooms[roomName] = r
	}
	oldName = r.names[id]
	r.names[id] = name
	rs.where[id] = roomName
	ch = change{members: r.membersLocked()}
	if oldName != name {
		// Tell the others if a name appeared, or went with a rename.
		ch.announce = r.countLocked(name) == 1 || (oldName != "" && r.countLocked(oldName) == 0)
	}
	return oldName, from, ch
}

// leave takes connection id out of its room and returns the room and its
// name, or ok false when it had not joined.
func (rs *rooms) leave(id string) (roomName, name string, ok bool, ch change) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	roomName, ok = rs.where[id]
	if !ok {
		return "", "", false, change{}
	}
	name, ch = rs.leaveLocked(id)
	return roomName, name, true, ch
}

func (rs *rooms) leaveLocked(id string) (string, change) {
	roomName := rs.where[id]
	delete(rs.where, id)
	r := rs.rooms[roomName]
	name := r.names[id]
	delete(r.names, id)
	if len(r.names) == 0 {
		delete(rs.rooms, roomName)
	}
	return name, change{members: r.membersLocked(), announce: r.countLocked(name) == 0}
}

// of returns the room and name of connection id, or "" when it has not
// joined.
func (rs *rooms) of(id string) (roomName, name string) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	roomName = rs.where[id]
	if roomName == "" {
		return "", ""
	}
	return roomName, rs.rooms[roomName].names[id]
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

func (r *room) countLocked(name string) int {
	n := 0
	for _, v := range r.names {
		if v == name {
			n++
		}
	}
	return n
}

// backend is the chat: the rooms, and the gateway's management API to
// publish to them.
type backend struct {
	gw    *client.Client
	log   *slog.Logger
	rooms rooms
}

func newBackend(gw *client.Client, log *slog.Logger) *backend {
	return &backend{gw: gw, log: log, rooms: rooms{where: map[string]string{}, rooms: map[string]*room{}}}
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
			reply(w, answer{status: 400, body: frame(outgoing{Type: "error", Message: "not an event: " + err.Error()})})
			return
		}
		reply(w, b.handle(r.Context(), &ev))
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
func reply(w http.ResponseWriter, a answer) {
	headers := map[string]string{}
	if a.subscribe != "" {
		headers["X-Portico-Subscribe"] = a.subscribe
	}
	if a.unsubscribe != "" {
		headers["X-Portico-Unsubscribe"] = a.unsubscribe
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"statusCode": a.status, "body": a.body, "headers": headers})
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
func fail(id, format string, args ...any) answer {
	return answer{status: 400, body: frame(outgoing{Type: "error", Message: fmt.Sprintf(format, args...), ID: id})}
}

// notJoined is the answer to an action that needs the connection in the
// room when it is not.
func notJoined(id string) answer {
	return answer{status: 400, body: frame(outgoing{Type: "error", Code: "notJoined", ID: id,
		Message: `join first: send {"action":"join","name":"..."}`})}
}

// handle is the "Lambda": one function for every route.
func (b *backend) handle(ctx context.Context, ev *event) answer {
	id := ev.RequestContext.ConnectionID
	switch ev.RequestContext.RouteKey {
	case "$connect":
		// Nothing to do: the connection is not open until $connect
		// returns, so it cannot be written to yet. The page sends join
		// once it is open.
	case "$disconnect":
		// The gateway has already taken the connection out of its
		// channels; tell the room it left.
		if roomName, name, ok, ch := b.rooms.leave(id); ok && ch.announce {
			b.publish(ctx, roomName, "", outgoing{Type: "leave", Name: name, Text: name + " left", Members: ch.members})
		}
	case "join":
		var msg struct {
			Name *string `json:"name"`
			Room string  `json:"room"`
		}
		if err := json.Unmarshal([]byte(ev.Body), &msg); err != nil {
			return fail("", `send {"action":"join","name":"...","room":"..."} (name and room are optional)`)
		}
		roomName := DefaultRoom
		if msg.Room != "" {
			r, err := validRoom(msg.Room)
			if err != nil {
				return fail("", "%v", err)
			}
			roomName = r
		}
		// A connection moving to another room keeps its name.
		_, name := b.rooms.of(id)
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
		return b.setName(ctx, id, roomName, name)
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
		roomName, _ := b.rooms.of(id)
		if roomName == "" {
			return notJoined("")
		}
		return b.setName(ctx, id, roomName, name)
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
		roomName, from := b.rooms.of(id)
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
		// The sender gets its own message too, with its id: that is how
		// the page knows it went out.
		b.publish(ctx, roomName, "", outgoing{Type: "message", Room: roomName, From: from, Text: text, ID: msg.ID})
	default:
		// Reached only if portico.yaml routes more keys here than this
		// switch knows; on a one-way route the gateway drops the answer.
		return fail("", "unknown action %q", ev.RequestContext.RouteKey)
	}
	return answer{status: 200}
}

// setName joins connection id to room roomName under name, or renames it
// there; tells the others (and the room it left, if it moved); and answers
// the welcome frame for the connection itself, putting it into the room's
// channel (and out of the one it left).
func (b *backend) setName(ctx context.Context, id, roomName, name string) answer {
	old, from, ch := b.rooms.set(id, roomName, name)
	a := answer{status: 200, subscribe: channel(roomName)}
	if from != nil {
		a.unsubscribe = channel(from.room)
		if from.ch.announce {
			b.publish(ctx, from.room, id, outgoing{Type: "leave", Room: from.room, Name: from.name, Text: from.name + " left", Members: from.ch.members})
		}
	}
	if ch.announce {
		m := outgoing{Type: "join", Room: roomName, Name: name, Text: name + " joined", Members: ch.members}
		if old != "" {
			m = outgoing{Type: "rename", Room: roomName, From: old, Name: name, Text: old + " is now " + name, Members: ch.members}
		}
		// Not to the connection itself: it gets the welcome.
		b.publish(ctx, roomName, id, m)
	}
	a.body = frame(outgoing{Type: "welcome", Room: roomName, Name: name, Members: ch.members})
	return a
}

// validRoom checks a room name: 1 to 64 letters, digits, '-' and '_'.
func validRoom(s string) (string, error) {
	if len(s) == 0 || len(s) > maxRoom || strings.IndexFunc(s, func(r rune) bool {
		return !(r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_'))
	}) >= 0 {
		return "", fmt.Errorf("a room name has 1 to %d letters, digits, '-' or '_'", maxRoom)
	}
	return s, nil
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

// publish sends msg to everyone in room roomName but the connection
// exclude ("": nobody left out), with one call to the room's channel.
func (b *backend) publish(ctx context.Context, roomName, exclude string, msg outgoing) {
	if msg.Room == "" {
		msg.Room = roomName
	}
	if _, err := b.gw.Publish(ctx, channel(roomName), []byte(frame(msg)), client.PublishOptions{Exclude: exclude}); err != nil {
		b.log.Warn("publish failed", "room", roomName, "err", err)
	}
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8000", "address to serve events and the page on")
	gateway := flag.String("gateway", "http://127.0.0.1:9090/dev", "Portico's management listener and stage (@connections and @channels)")
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
