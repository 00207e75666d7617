// Package relay carries @connections operations to the gateway node that
// holds the connection, over Redis pub/sub.
//
// Every node subscribes to one channel of its own, "<prefix>relay:<node>".
// A node that receives POST, GET or DELETE for a connection it does not
// hold looks the connection up in the registry; if another node owns it,
// the node publishes the operation on the owner's channel and waits for
// the owner's answer on its own channel. The caller gets the owner's
// answer (200 only once the owner handed the frame to the socket), 410
// when no node holds the connection or the owner is gone (PUBLISH reached
// no subscriber), and 504 when the owner does not answer in time: never a
// hang.
//
// Why pub/sub and not streams: an operation is only worth delivering
// while its caller waits (a few seconds at most); a node that is down
// cannot act on it later, so the durability of streams buys nothing and
// costs trimming and consumer groups. One channel per node also gives a
// later broadcast feature its shape: fan a message out once per node,
// each node then delivers to its own connections.
package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/portico-gateway/portico/management"
	"github.com/portico-gateway/portico/storage"
	"github.com/portico-gateway/portico/storage/redis"
)

// DefaultTimeout bounds how long a forwarded operation waits for the owner.
const DefaultTimeout = 5 * time.Second

// Options configure a Relay.
type Options struct {
	Client   goredis.UniversalClient // required
	Node     string                  // this node's id; required
	Prefix   string                  // channel prefix; "": "portico:"
	Registry storage.Registry        // finds a connection's owner; required
	// Local runs an operation on this node's connections; required.
	Local   func(*management.Op) management.Result
	Timeout time.Duration // 0: DefaultTimeout
	Logger  *slog.Logger  // nil: slog.Default()
}

// Relay forwards operations between nodes.
type Relay struct {
	o       Options
	owners  *owners
	sub     *goredis.PubSub
	seq     atomic.Uint64
	mu      sync.Mutex
	pending map[uint64]chan management.Result
	done    chan struct{}
	// publishes shares pipelines between concurrent PUBLISHes: under
	// load, forwards and answers go out many per round trip instead of
	// each waiting for a pooled connection of its own.
	publishes redis.Coalescer[*publish]
}

// publish is one PUBLISH waiting for its pipeline.
type publish struct {
	channel   string
	payload   []byte
	receivers int64
	err       error
}

// sendPublishes sends batch in one pipeline and sets each result.
func (r *Relay) sendPublishes(ctx context.Context, batch []*publish) {
	cmds := make([]*goredis.IntCmd, len(batch))
	_, _ = r.o.Client.Pipelined(ctx, func(pipe goredis.Pipeliner) error {
		for i, p := range batch {
			cmds[i] = pipe.Publish(ctx, p.channel, p.payload)
		}
		return nil
	})
	for i, p := range batch {
		p.receivers, p.err = cmds[i].Result()
	}
}

// publish sends payload on channel, sharing a pipeline with concurrent
// publishes, and returns how many subscribers received it.
func (r *Relay) publish(ctx context.Context, channel string, payload []byte) (int64, error) {
	p := &publish{channel: channel, payload: payload}
	r.publishes.Do(ctx, p)
	return p.receivers, p.err
}

func (r *Relay) channel(node string) string { return r.o.Prefix + "relay:" + node }

// New subscribes to this node's channel and starts serving requests.
func New(ctx context.Context, o Options) (*Relay, error) {
	if o.Client == nil || o.Node == "" || o.Registry == nil || o.Local == nil {
		return nil, errors.New("relay: Client, Node, Registry and Local are required")
	}
	if o.Prefix == "" {
		o.Prefix = "portico:"
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	r := &Relay{o: o, owners: newOwners(o.Registry), pending: map[uint64]chan management.Result{}, done: make(chan struct{})}
	r.publishes.Send = r.sendPublishes
	r.sub = o.Client.Subscribe(ctx, r.channel(o.Node))
	if _, err := r.sub.Receive(ctx); err != nil { // the subscription confirmation
		_ = r.sub.Close()
		return nil, fmt.Errorf("relay: subscribing to %s: %w", r.channel(o.Node), err)
	}
	go r.serve()
	return r, nil
}

// Close stops serving; operations in flight end with their timeout.
func (r *Relay) Close() error {
	err := r.sub.Close()
	<-r.done
	return err
}

// serve handles requests and replies arriving on this node's channel.
// go-redis re-subscribes by itself after a Redis outage.
func (r *Relay) serve() {
	defer close(r.done)
	for msg := range r.sub.Channel() {
		env, err := decodeEnvelope([]byte(msg.Payload))
		if err != nil {
			r.o.Logger.Warn("relay: dropping a message", "err", err)
			continue
		}
		switch {
		case env.Op != nil:
			go r.answer(env)
		case env.Result != nil:
			r.mu.Lock()
			ch := r.pending[env.Seq]
			delete(r.pending, env.Seq)
			r.mu.Unlock()
			if ch != nil {
				ch <- *env.Result
			}
		}
	}
}

// answer runs a request from another node and publishes the result.
func (r *Relay) answer(req envelope) {
	res := r.o.Local(req.Op)
	out := appendEnvelope(nil, &envelope{Seq: req.Seq, From: r.o.Node, Result: &res})
	ctx, cancel := context.WithTimeout(context.Background(), r.o.Timeout)
	defer cancel()
	if _, err := r.publish(ctx, r.channel(req.From), out); err != nil {
		r.o.Logger.Warn("relay: answering failed", "to", req.From, "err", err)
	}
}

// Forward runs o on the node that holds the connection. ok is false when
// the registry knows no other live node holding it.
func (r *Relay) Forward(ctx context.Context, o *management.Op) (management.Result, bool) {
	owner, res, ok := r.owners.elsewhere(ctx, o.ID, r.o.Node)
	if !ok {
		return res, res.Status != 0
	}
	seq := r.seq.Add(1)
	ch := make(chan management.Result, 1)
	r.mu.Lock()
	r.pending[seq] = ch
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.pending, seq)
		r.mu.Unlock()
	}()
	payload := appendEnvelope(nil, &envelope{Seq: seq, From: r.o.Node, Op: o})
	ctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	defer cancel()
	receivers, err := r.publish(ctx, r.channel(owner), payload)
	switch {
	case err != nil:
		return unavailable("relay unreachable: " + err.Error()), true
	case receivers == 0:
		// The owner is not listening: it is gone, and so is the connection.
		r.owners.forget(o.ID)
		return management.Result{}, false
	}
	select {
	case res := <-ch:
		return res, true
	case <-ctx.Done():
		return timedOut(r.o.Timeout), true
	}
}

func unavailable(msg string) management.Result {
	return management.Result{Status: http.StatusServiceUnavailable, ErrType: "ServiceUnavailableException", Message: msg}
}
