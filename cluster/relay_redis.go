package cluster

// The Redis relay carries @connections operations to the gateway node
// that holds the connection, over Redis pub/sub.
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

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/portico-gateway/portico/internal/coalesce"
	"github.com/portico-gateway/portico/storage"
	"github.com/portico-gateway/portico/storage/redis"
)

// DefaultRelayTimeout bounds how long a forwarded operation waits for the owner.
const DefaultRelayTimeout = 5 * time.Second

// RelayOptions configure a Relay.
type RelayOptions struct {
	Client   goredis.UniversalClient // required
	Node     string                  // this node's id; required
	Prefix   string                  // channel prefix; "": redis.DefaultPrefix
	Registry storage.Registry        // finds a connection's owner; required
	// Local runs an operation on this node's connections; required.
	Local   func(*Op) Result
	Timeout time.Duration // 0: DefaultRelayTimeout
	Logger  *slog.Logger  // nil: slog.Default()
}

// Requests from other nodes are run by answer workers: goroutines that
// outlive one request (a goroutine started per request spent 6% of the
// owner node's time growing its stack). A request goes to an idle worker;
// when none is idle a new one starts, up to maxAnswerers; beyond that the
// subscription is not read until a worker is free (Redis holds the
// messages meanwhile). A worker idle for answererIdle ends.
const (
	maxAnswerers = 1024
	answererIdle = 10 * time.Second
)

// healthInterval is how long the subscription may stay silent before the
// relay pings Redis through it; a ping that cannot be written makes
// go-redis reconnect and subscribe again.
const healthInterval = 3 * time.Second

// Relay forwards operations between nodes.
type Relay struct {
	o       RelayOptions
	owners  *owners
	sub     *goredis.PubSub
	seq     atomic.Uint64
	mu      sync.Mutex
	pending map[uint64]chan Result
	// ctx is cancelled by Close; it stops the serve loop and idle answer
	// workers.
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when serve returns

	closeOnce sync.Once
	closeErr  error

	requests  chan envelope // to an idle answer worker; unbuffered
	answerers atomic.Int32  // answer workers running
	workers   sync.WaitGroup
	// publishes shares pipelines between concurrent PUBLISHes: under
	// load, forwards and answers go out many per round trip instead of
	// each waiting for a pooled connection of its own.
	publishes coalesce.Coalescer[*publish]
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
func NewRelay(ctx context.Context, o RelayOptions) (*Relay, error) {
	if o.Client == nil || o.Node == "" || o.Registry == nil || o.Local == nil {
		return nil, errors.New("relay: Client, Node, Registry and Local are required")
	}
	if o.Prefix == "" {
		o.Prefix = redis.DefaultPrefix
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultRelayTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	r := &Relay{o: o, owners: newOwners(o.Registry), pending: map[uint64]chan Result{},
		done: make(chan struct{}), requests: make(chan envelope)}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.publishes.Send = r.sendPublishes
	r.sub = o.Client.Subscribe(ctx, r.channel(o.Node))
	if _, err := r.sub.Receive(ctx); err != nil { // the subscription confirmation
		_ = r.sub.Close()
		r.cancel()
		return nil, fmt.Errorf("relay: subscribing to %s: %w", r.channel(o.Node), err)
	}
	go r.serve()
	return r, nil
}

// Close stops serving and waits for the answer workers; forwards in
// flight end with their timeout.
// A second Close returns the first one's result.
func (r *Relay) Close() error {
	r.closeOnce.Do(func() {
		r.cancel()
		r.closeErr = r.sub.Close()
		<-r.done
		r.workers.Wait()
	})
	return r.closeErr
}

// serve reads this node's channel: requests go to answer workers, replies
// to the Forward call waiting for them. It reads the subscription itself
// (not through go-redis's Channel, which adds a goroutine and a hand-off
// per message). go-redis subscribes again by itself after an outage.
func (r *Relay) serve() {
	defer close(r.done)
	for {
		m, err := r.sub.ReceiveTimeout(r.ctx, healthInterval)
		if err != nil {
			var ne net.Error
			switch {
			case r.ctx.Err() != nil || errors.Is(err, goredis.ErrClosed):
				return
			case errors.As(err, &ne) && ne.Timeout():
				_ = r.sub.Ping(r.ctx)
				continue
			}
			// Redis is unreachable; go-redis reconnects on the next read.
			select {
			case <-time.After(100 * time.Millisecond):
			case <-r.ctx.Done():
				return
			}
			continue
		}
		msg, ok := m.(*goredis.Message)
		if !ok { // a subscription confirmation or a pong
			continue
		}
		env, err := decodeEnvelope([]byte(msg.Payload))
		if err != nil {
			r.o.Logger.Warn("relay: dropping a message", "err", err)
			continue
		}
		switch {
		case env.Op != nil:
			r.dispatch(env)
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

// dispatch hands a request to an idle answer worker, or starts one.
func (r *Relay) dispatch(req envelope) {
	select {
	case r.requests <- req:
		return
	default:
	}
	if r.answerers.Load() < maxAnswerers {
		r.answerers.Add(1)
		r.workers.Add(1)
		go r.answerLoop(req)
		return
	}
	select {
	case r.requests <- req:
	case <-r.ctx.Done():
	}
}

// answerLoop is an answer worker: it answers first, then whatever
// dispatch hands it, until it has been idle for answererIdle.
func (r *Relay) answerLoop(first envelope) {
	defer r.workers.Done()
	defer r.answerers.Add(-1)
	r.answer(first)
	idle := time.NewTimer(answererIdle)
	defer idle.Stop()
	for {
		select {
		case req := <-r.requests:
			r.answer(req)
			idle.Reset(answererIdle)
		case <-idle.C:
			return
		case <-r.ctx.Done():
			return
		}
	}
}

// answer runs a request from another node and publishes the result.
func (r *Relay) answer(req envelope) {
	res := r.o.Local(req.Op)
	out := appendEnvelope(nil, &envelope{Seq: req.Seq, From: r.o.Node, Result: &res})
	// Not r.ctx: an answer being sent when Close is called still goes out.
	ctx, cancel := context.WithTimeout(context.Background(), r.o.Timeout)
	defer cancel()
	if _, err := r.publish(ctx, r.channel(req.From), out); err != nil {
		r.o.Logger.Warn("relay: answering failed", "to", req.From, "err", err)
	}
}

// Forward runs o on the node that holds the connection. ok is false when
// the registry knows no other live node holding it.
func (r *Relay) Forward(ctx context.Context, o *Op) (Result, bool) {
	owner, res, ok := r.owners.elsewhere(ctx, o.ID, r.o.Node)
	if !ok {
		return res, res.Status != 0
	}
	seq := r.seq.Add(1)
	ch := make(chan Result, 1)
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
		return Result{}, false
	}
	select {
	case res := <-ch:
		return res, true
	case <-ctx.Done():
		return timedOut(r.o.Timeout), true
	}
}
