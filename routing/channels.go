package routing

import (
	"net/http"
	"strings"

	"github.com/portico-gateway/portico/connections"
	"github.com/portico-gateway/portico/routing/expr"
)

// Channels is what routing asks of the channel registry (a Portico
// extension): to subscribe a connection to a channel of its stage, or to
// take it out of one.
type Channels interface {
	Subscribe(c connections.Conn, channel string) error
	Unsubscribe(c connections.Conn, channel string) error
}

// SharedChannels is implemented by registries whose Subscribe may wait
// for another system (channels across nodes wait for Redis on a node's
// first member of a channel). Routing then applies a route's declared
// subscriptions on a goroutine of its own, never on the connection
// server's loop, as it does for cluster-wide throttling; so with shared
// channels the answers of such mock routes may overtake each other.
type SharedChannels interface {
	Channels
	Shared() bool
}

// The extension headers of an integration's answer: a comma-separated
// list of channel names to join or leave. AWS-style backends never send
// them; they are taken out of the answer (on $connect, they do not go
// into the 101).
const (
	HeaderSubscribe   = "X-Portico-Subscribe"
	HeaderUnsubscribe = "X-Portico-Unsubscribe"
)

// channelOps are the subscriptions a route asks for: declared templates
// evaluated against the event, then the answer's extension headers.
type channelOps struct {
	subscribe, unsubscribe []string
}

// compileChannels compiles a route's declarative channel templates.
func compileChannels(srcs []string) ([]*expr.Template, error) {
	var out []*expr.Template
	for _, s := range srcs {
		t, err := expr.Compile(s)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// declared evaluates a route's templates for one event.
func (rt *route) declared(body []byte, vars expr.Resolver) channelOps {
	var ops channelOps
	for _, t := range rt.subscribe {
		if name := t.Eval(body, vars); name != "" {
			ops.subscribe = append(ops.subscribe, name)
		}
	}
	for _, t := range rt.unsubscribe {
		if name := t.Eval(body, vars); name != "" {
			ops.unsubscribe = append(ops.unsubscribe, name)
		}
	}
	return ops
}

// fromHeaders adds the extension headers of an integration's answer and
// removes them from h.
func (ops *channelOps) fromHeaders(h http.Header) {
	for _, hk := range []string{HeaderSubscribe, HeaderUnsubscribe} {
		for _, v := range h.Values(hk) {
			for item := range strings.SplitSeq(v, ",") {
				if item = strings.TrimSpace(item); item == "" {
					continue
				}
				if hk == HeaderSubscribe {
					ops.subscribe = append(ops.subscribe, item)
				} else {
					ops.unsubscribe = append(ops.unsubscribe, item)
				}
			}
		}
		h.Del(hk)
	}
}

func (ops *channelOps) empty() bool { return len(ops.subscribe) == 0 && len(ops.unsubscribe) == 0 }

// applyChannels runs ops on c: leaves first, then joins. A name the
// registry refuses is logged and skipped.
func (r *Router) applyChannels(c connections.Conn, ops channelOps) {
	if r.channels == nil || ops.empty() {
		return
	}
	for _, name := range ops.unsubscribe {
		if err := r.channels.Unsubscribe(c, name); err != nil {
			r.log.Debug("channel unsubscribe refused", "connectionId", c.Info().ID, "channel", name, "err", err)
		}
	}
	for _, name := range ops.subscribe {
		if err := r.channels.Subscribe(c, name); err != nil {
			r.log.Warn("channel subscribe refused", "connectionId", c.Info().ID, "channel", name, "err", err)
		}
	}
}

// Opened makes the subscriptions $connect asked for, before the client
// has its 101 (connections.Opener).
func (r *Router) Opened(c connections.Conn) {
	s, _ := c.State().(*session)
	if s == nil || s.x == nil || s.x.pending == nil {
		return
	}
	ops := *s.x.pending
	s.x.pending = nil
	r.applyChannels(c, ops)
}

// PendingChannels reports whether $connect asked for subscriptions that
// Opened is still to make (the channels registry asks, to keep nothing
// for the connections that ask for none).
func (s *session) PendingChannels() bool { return s.x != nil && s.x.pending != nil }

func (s *session) setPending(ops channelOps) {
	if !ops.empty() {
		s.extra().pending = &ops
	}
}
