package cluster

// ChannelBus carries channels (a Portico extension) between the nodes
// sharing a Redis registry; it is the channels.Bus of those nodes. Why
// every publish goes through Redis, and what is eventually consistent,
// is in the channels package (shared.go). This file is the Redis side.
//
// # Keys and pub/sub channels
//
// Each channel of a stage of an API has one hash tag, so its keys and its
// pub/sub channel share a Redis Cluster slot and one script can touch
// them all:
//
//	<prefix>ch:{<api>|<stage>|<name>}          pub/sub channel of its messages
//	<prefix>ch:{<api>|<stage>|<name>}:seq      string  last offset (INCR)
//	<prefix>ch:{<api>|<stage>|<name>}:epoch    string  epoch of the history
//	<prefix>ch:{<api>|<stage>|<name>}:hist     stream  retained messages (fields o, d, b)
//	<prefix>ch:{<api>|<stage>|<name>}:members  hash    connection id -> node, principalId, connectedAt
//
// With a single Redis a node reads every channel it watches on one
// subscription (SUBSCRIBE, PUBLISH). With Redis Cluster it uses sharded
// pub/sub (SSUBSCRIBE, SPUBLISH): a message then travels only to the
// shard that owns the channel's slot, not to every Redis node, and
// PUBLISH's count of receivers is right; a node holds one subscription
// per Redis master it has channels on.
//
// # Watching
//
// Watch and Unwatch count per channel and only mark it; one goroutine
// (the flusher) sends what changed in one SUBSCRIBE and one UNSUBSCRIBE
// per round, a round gathering what changes within a millisecond of the
// first change, so a burst of first joins costs one command, and a leave
// followed by a join before the round costs nothing. A watch is ready
// (its channel closed) when Redis confirms every SUBSCRIBE sent for it.
// Member-list writes and presence events queue up behind the same
// goroutine and go out in order, one pipeline per round.
//
// # History
//
// A publish is one script: it makes the epoch when there is none (a new
// or lost history: the offsets start again), increments the offset,
// appends the message to the stream (XADD MAXLEN ~ size, XTRIM MINID ~
// now-ttl) and publishes it, prefixed with its offset and epoch. Keys
// expire after historyKeep without a publish (or twice the ttl, when
// longer): a channel idle that long starts again with a new epoch.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"

	"github.com/portico-gateway/portico/channels"
	"github.com/portico-gateway/portico/metrics"
	"github.com/portico-gateway/portico/storage"
	"github.com/portico-gateway/portico/storage/redis"
)

// historyKeep is how long a channel's keys live after its last publish.
const historyKeep = 24 * time.Hour

// busOpTimeout bounds one round of the flusher's writes.
const busOpTimeout = 5 * time.Second

// batchWindow is how long the flusher gathers after the first change
// before a round: the joins of a burst of connects (each to a channel of
// its own, such as user:<id>) then share a SUBSCRIBE, for a millisecond
// more on the first join of a channel.
const batchWindow = time.Millisecond

// ChannelBusOptions configure a ChannelBus.
type ChannelBusOptions struct {
	Client goredis.UniversalClient // required
	Node   string                  // this node's id; required
	Prefix string                  // key prefix; "": redis.DefaultPrefix
	// Registry tells live nodes from dead ones in member lists; required.
	Registry storage.Registry
	// NodeTTL is the registry's node TTL: member lists are renewed every
	// NodeTTL and expire after ten of them. 0: storage.DefaultNodeTTL.
	NodeTTL time.Duration
	Logger  *slog.Logger     // nil: slog.Default()
	Now     func() time.Time // how long a node has not been live; nil: time.Now
	// Metrics receives portico_channel_bus_up. nil: not exported.
	Metrics *metrics.Set
}

// Receiver is what the bus delivers to: channels.Registry.
type Receiver interface {
	// Receive delivers a message of channel k to this node's members.
	Receive(k channels.Key, m *channels.BusMessage)
	// Resync writes this node's members of k to the bus again.
	Resync(k channels.Key)
	// Departed hands over members of k whose node died (its liveness
	// lapsed over a node TTL ago) and that this node took out of the
	// channel's list; each is handed to one node only. Called from the
	// bus's goroutines, or within Members.
	Departed(k channels.Key, gone []channels.Member)
}

// ChannelBus is channels.Bus over Redis.
type ChannelBus struct {
	o       ChannelBusOptions
	sharded bool // Redis Cluster: SSUBSCRIBE and SPUBLISH

	recv     func(channels.Key, *channels.BusMessage)
	resync   func(channels.Key)
	departed func(channels.Key, []channels.Member)

	mu      sync.Mutex
	watches map[string]*watch // by pub/sub channel
	dirty   map[string]bool
	ops     []memberOp
	subs    map[string]*busSub // by Redis address ("" with a single Redis)
	kick    chan struct{}
	// moved are the shard channels Redis Cluster unsubscribed (their slot
	// moved): the flusher drops them from their old subscription (so
	// go-redis does not subscribe them there again on a reconnection),
	// reloads the slot map and subscribes on the new owner.
	moved []movedSub

	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	once    sync.Once
	started atomic.Bool
	closed  chan struct{} // closed when the flusher has returned

	received atomic.Uint64 // messages read from the bus
	failing  atomic.Int32  // subscription connections whose last read failed
	up       prometheus.Gauge

	// deadSince is when Members first found a node's entries without the
	// node live; they are deleted once that has lasted a node TTL (a node
	// re-registering after a Redis restart is not dead).
	deadMu    sync.Mutex
	deadSince map[string]time.Time
	// lastLive is the live nodes the previous sweep saw (the flusher's).
	lastLive map[string]bool
}

// watch is one channel this node watches (or did until a moment ago).
type watch struct {
	key      channels.Key
	refs     int
	active   bool // a SUBSCRIBE was sent and no UNSUBSCRIBE since
	awaiting int  // confirmations still to come for SUBSCRIBEs sent
	ready    chan struct{}
	closed   bool // ready is closed
	sub      *busSub
	// moving: Redis Cluster moved the channel's slot to another master
	// and unsubscribed this node; it subscribes again on the new owner.
	// Until that is confirmed, sunsubscribe notices for it are ignored.
	moving bool
}

// movedSub is a channel to drop from the subscription that had it.
type movedSub struct {
	sub     *busSub
	channel string
}

// memberOp is one queued write: a member list entry or a presence event.
type memberOp struct {
	channel string // pub/sub channel, the key base
	join    *channels.Member
	leave   string
	publish []byte
}

// busSub is one subscription connection and its reader.
type busSub struct {
	ps      *goredis.PubSub
	addr    string // the master's address (Redis Cluster); "" with a single Redis
	failing bool   // its last read failed; its reader's goroutine only
}

// NewChannelBus returns a bus; Start makes it read.
func NewChannelBus(o ChannelBusOptions) (*ChannelBus, error) {
	if o.Client == nil || o.Node == "" || o.Registry == nil {
		return nil, errors.New("channel bus: Client, Node and Registry are required")
	}
	if o.Prefix == "" {
		o.Prefix = redis.DefaultPrefix
	}
	if o.NodeTTL <= 0 {
		o.NodeTTL = storage.DefaultNodeTTL
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	_, sharded := o.Client.(*goredis.ClusterClient)
	b := &ChannelBus{o: o, sharded: sharded, watches: map[string]*watch{}, dirty: map[string]bool{},
		subs: map[string]*busSub{}, kick: make(chan struct{}, 1), closed: make(chan struct{}),
		deadSince: map[string]time.Time{}}
	m := o.Metrics
	if m == nil {
		m = metrics.New(nil)
	}
	b.up = m.ChannelBusUp
	b.ctx, b.cancel = context.WithCancel(context.Background())
	return b, nil
}

// Start delivers what the bus reads to r (channels.Registry: Receive)
// and starts the flusher. With a single Redis it subscribes to this
// node's own channel first, within ctx, so a Redis that cannot be reached
// fails the start. When Redis confirms again a subscription it had
// confirmed (go-redis subscribes again after a reconnection: Redis may
// have restarted empty), r.Resync writes the channel's members again.
func (b *ChannelBus) Start(ctx context.Context, r Receiver) error {
	b.recv, b.resync, b.departed = r.Receive, r.Resync, r.Departed
	b.started.Store(true)
	if !b.sharded {
		s := &busSub{ps: b.o.Client.Subscribe(ctx, b.o.Prefix+"chnode:"+b.o.Node)}
		if _, err := s.ps.Receive(ctx); err != nil {
			_ = s.ps.Close()
			b.started.Store(false)
			return fmt.Errorf("channel bus: subscribing: %w", err)
		}
		b.subs[""] = s
		b.wg.Add(1)
		go b.read(s)
	}
	go b.flush()
	return nil
}

// Close sends what is queued (leaves of connections closed at shutdown),
// then stops reading and waits for its goroutines.
func (b *ChannelBus) Close() error {
	var err error
	b.once.Do(func() {
		b.cancel()
		if !b.started.Load() {
			return
		}
		<-b.closed
		b.mu.Lock()
		subs := b.subs
		b.subs = map[string]*busSub{}
		b.mu.Unlock()
		for _, s := range subs {
			err = errors.Join(err, s.ps.Close())
		}
		b.wg.Wait()
	})
	return err
}

func (b *ChannelBus) channel(k channels.Key) string {
	return b.o.Prefix + "ch:{" + k.API + "|" + k.Stage + "|" + k.Name + "}"
}

func (b *ChannelBus) signal() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// Watch implements channels.Bus.
func (b *ChannelBus) Watch(k channels.Key) <-chan struct{} {
	ch := b.channel(k)
	b.mu.Lock()
	defer b.mu.Unlock()
	w := b.watches[ch]
	if w == nil {
		w = &watch{key: k, ready: make(chan struct{})}
		b.watches[ch] = w
	}
	w.refs++
	if w.refs == 1 && !w.active && w.closed {
		w.ready, w.closed = make(chan struct{}), false
	}
	b.dirty[ch] = true
	b.signal()
	return w.ready
}

// Unwatch implements channels.Bus.
func (b *ChannelBus) Unwatch(k channels.Key) {
	ch := b.channel(k)
	b.mu.Lock()
	defer b.mu.Unlock()
	if w := b.watches[ch]; w != nil {
		w.refs--
		b.dirty[ch] = true
		b.signal()
	}
}

// Join implements channels.Bus.
func (b *ChannelBus) Join(k channels.Key, m channels.Member) {
	b.queue(memberOp{channel: b.channel(k), join: &m})
}

// Leave implements channels.Bus.
func (b *ChannelBus) Leave(k channels.Key, id string) {
	b.queue(memberOp{channel: b.channel(k), leave: id})
}

// Presence implements channels.Bus.
func (b *ChannelBus) Presence(k channels.Key, m *channels.BusMessage) {
	b.queue(memberOp{channel: b.channel(k), publish: channels.AppendBusMessage(nil, m)})
}

func (b *ChannelBus) queue(op memberOp) {
	b.mu.Lock()
	b.ops = append(b.ops, op)
	b.mu.Unlock()
	b.signal()
}

// flush is the flusher: it sends the watches that changed and the
// queued writes, a round at a time, renews the member lists of the
// watched channels every node TTL, and every half of one looks for nodes
// that died (sweep).
func (b *ChannelBus) flush() {
	defer close(b.closed)
	renew := time.NewTicker(b.o.NodeTTL)
	defer renew.Stop()
	sweep := time.NewTicker(b.o.NodeTTL / 2)
	defer sweep.Stop()
	gather := time.NewTimer(batchWindow)
	gather.Stop()
	for {
		select {
		case <-b.kick:
			gather.Reset(batchWindow)
			select {
			case <-gather.C:
			case <-b.ctx.Done():
			}
			b.round()
		case <-renew.C:
			b.renew()
		case <-sweep.C:
			b.sweep()
		case <-b.ctx.Done():
			b.round() // what closing connections queued
			return
		}
	}
}

func (b *ChannelBus) round() {
	b.mu.Lock()
	var subscribe []string
	unsubscribe := map[*busSub][]string{}
	for ch := range b.dirty {
		w := b.watches[ch]
		if w == nil {
			continue
		}
		switch {
		case w.refs > 0 && !w.active:
			w.active = true
			w.awaiting++
			subscribe = append(subscribe, ch)
		case w.refs <= 0 && w.active:
			w.active = false
			if w.sub != nil {
				unsubscribe[w.sub] = append(unsubscribe[w.sub], ch)
			}
		}
		if w.refs <= 0 && !w.active && w.awaiting == 0 {
			delete(b.watches, ch)
		}
	}
	clear(b.dirty)
	ops := b.ops
	b.ops = nil
	moved := b.moved
	b.moved = nil
	b.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.WithoutCancel(b.ctx), busOpTimeout)
	defer cancel()
	for _, m := range moved {
		_ = m.sub.ps.SUnsubscribe(ctx, m.channel)
		b.awaitNewOwner(ctx, m)
	}
	for s, chs := range unsubscribe {
		if !b.sharded {
			if err := s.ps.Unsubscribe(ctx, chs...); err != nil {
				b.o.Logger.Warn("channel bus: unsubscribing failed", "channels", len(chs), "err", err)
			}
			continue
		}
		for _, ch := range chs {
			if err := s.ps.SUnsubscribe(ctx, ch); err != nil {
				b.o.Logger.Warn("channel bus: unsubscribing failed", "err", err)
			}
		}
	}
	if len(subscribe) > 0 {
		b.subscribe(ctx, subscribe)
	}
	if len(ops) > 0 {
		b.write(ctx, ops)
	}
}

// subscribe sends one SUBSCRIBE (with a cluster, one SSUBSCRIBE per
// slot, on the subscription of the slot's master) for chans. A failure is logged; go-redis subscribes again when it
// reconnects, and the watch becomes ready with that confirmation.
func (b *ChannelBus) subscribe(ctx context.Context, chans []string) {
	groups := map[*busSub][]string{}
	for _, ch := range chans {
		s, err := b.subFor(ctx, ch)
		if err != nil {
			b.o.Logger.Warn("channel bus: no subscription for a channel", "err", err)
			continue
		}
		b.mu.Lock()
		if w := b.watches[ch]; w != nil {
			w.sub = s
		}
		b.mu.Unlock()
		groups[s] = append(groups[s], ch)
	}
	for s, chs := range groups {
		if !b.sharded {
			if err := s.ps.Subscribe(ctx, chs...); err != nil {
				b.o.Logger.Warn("channel bus: subscribing failed", "channels", len(chs), "err", err)
			}
			continue
		}
		// SSUBSCRIBE takes the channels of one slot per call.
		bySlot := map[int][]string{}
		for _, ch := range chs {
			bySlot[keySlot(ch)] = append(bySlot[keySlot(ch)], ch)
		}
		for _, same := range bySlot {
			if err := s.ps.SSubscribe(ctx, same...); err != nil {
				b.o.Logger.Warn("channel bus: subscribing failed", "channels", len(same), "err", err)
			}
		}
	}
}

// awaitNewOwner reloads the cluster's slot map until the master of m's
// channel is no longer the one that unsubscribed it (the nodes learn of a
// slot's move one after another), within movedWait.
func (b *ChannelBus) awaitNewOwner(ctx context.Context, m movedSub) {
	cc, ok := b.o.Client.(*goredis.ClusterClient)
	if !ok {
		return
	}
	deadline := time.Now().Add(movedWait)
	for {
		cc.ReloadState(ctx)
		master, err := cc.MasterForKey(ctx, m.channel)
		if err == nil && master.Options().Addr != m.sub.addr {
			return
		}
		if time.Now().After(deadline) {
			b.o.Logger.Warn("channel bus: the cluster still names the old master of a moved channel", "addr", m.sub.addr)
			return
		}
		select {
		case <-time.After(25 * time.Millisecond):
		case <-ctx.Done():
			return
		}
	}
}

// movedWait bounds how long the flusher waits for the slot map to name
// the new master of a channel whose slot moved.
const movedWait = 2 * time.Second

// subFor is the subscription that reads ch: the one subscription with a
// single Redis, the one of the master owning ch's slot with a cluster.
func (b *ChannelBus) subFor(ctx context.Context, ch string) (*busSub, error) {
	if !b.sharded {
		b.mu.Lock()
		defer b.mu.Unlock()
		if s := b.subs[""]; s != nil {
			return s, nil
		}
		return nil, errors.New("channel bus: not started")
	}
	master, err := b.o.Client.(*goredis.ClusterClient).MasterForKey(ctx, ch)
	if err != nil {
		return nil, fmt.Errorf("channel bus: the master of %s: %w", ch, err)
	}
	addr := master.Options().Addr
	b.mu.Lock()
	defer b.mu.Unlock()
	if s := b.subs[addr]; s != nil {
		return s, nil
	}
	if b.ctx.Err() != nil {
		return nil, errors.New("channel bus: closed")
	}
	s := &busSub{ps: master.SSubscribe(ctx), addr: addr}
	b.subs[addr] = s
	b.wg.Add(1)
	go b.read(s)
	return s, nil
}

// write sends queued member-list writes and presence events in order, in
// one pipeline.
func (b *ChannelBus) write(ctx context.Context, ops []memberOp) {
	pipe := b.o.Client.Pipeline()
	lease := 10 * b.o.NodeTTL
	for _, op := range ops {
		switch {
		case op.join != nil:
			m := op.join
			v := b.o.Node + "\n" + m.PrincipalID + "\n" + strconv.FormatInt(m.ConnectedAt, 10)
			pipe.HSet(ctx, op.channel+":members", m.ConnectionID, v)
			pipe.PExpire(ctx, op.channel+":members", lease)
		case op.leave != "":
			pipe.HDel(ctx, op.channel+":members", op.leave)
		case op.publish != nil:
			if b.sharded {
				pipe.SPublish(ctx, op.channel, op.publish)
			} else {
				pipe.Publish(ctx, op.channel, op.publish)
			}
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		b.o.Logger.Warn("channel bus: member lists or presence not written", "writes", len(ops), "err", err)
	}
}

// renew extends the member lists of the channels watched here, so a list
// outlives its channel's last join for as long as members stay.
func (b *ChannelBus) renew() {
	b.mu.Lock()
	chans := make([]string, 0, len(b.watches))
	for ch, w := range b.watches {
		if w.refs > 0 {
			chans = append(chans, ch)
		}
	}
	b.mu.Unlock()
	if len(chans) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, busOpTimeout)
	defer cancel()
	pipe := b.o.Client.Pipeline()
	for _, ch := range chans {
		pipe.PExpire(ctx, ch+":members", 10*b.o.NodeTTL)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, context.Canceled) {
		b.o.Logger.Warn("channel bus: renewing member lists failed", "err", err)
	}
}

// read reads one subscription: messages go to recv, confirmations make
// watches ready.
func (b *ChannelBus) read(s *busSub) {
	defer b.wg.Done()
	for {
		m, err := s.ps.ReceiveTimeout(b.ctx, healthInterval)
		if err != nil {
			var ne net.Error
			switch {
			case b.ctx.Err() != nil || errors.Is(err, goredis.ErrClosed):
				return
			case errors.As(err, &ne) && ne.Timeout():
				_ = s.ps.Ping(b.ctx)
				continue
			}
			b.health(s, false)
			select {
			case <-time.After(100 * time.Millisecond):
			case <-b.ctx.Done():
				return
			}
			continue
		}
		b.health(s, true)
		switch m := m.(type) {
		case *goredis.Subscription:
			switch m.Kind {
			case "subscribe", "ssubscribe":
				b.confirmed(m.Channel)
			case "sunsubscribe":
				b.unsubscribed(s, m.Channel)
			}
		case *goredis.Message:
			b.received.Add(1)
			b.mu.Lock()
			w := b.watches[m.Channel]
			b.mu.Unlock()
			if w == nil {
				continue // unwatched meanwhile, or this node's own channel
			}
			msg, err := channels.DecodeBusMessage([]byte(m.Payload))
			if err != nil {
				b.o.Logger.Warn("channel bus: dropping a message", "err", err)
				continue
			}
			b.recv(w.key, &msg)
		}
	}
}

// unsubscribed handles a sunsubscribe notice on s. One this node did
// not ask for, for a channel it watches, means Redis Cluster moved the
// channel's slot to another master (resharding): the channel is
// subscribed again on the new owner by the next round. Messages
// published meanwhile do not reach this node's members (a channel with
// history lets clients recover them).
func (b *ChannelBus) unsubscribed(s *busSub, ch string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	w := b.watches[ch]
	if w == nil || !w.active || w.sub != s || w.moving {
		return // an UNSUBSCRIBE of ours, or one already being handled
	}
	b.o.Logger.Info("channel bus: a channel's slot moved to another Redis master; subscribing there", "channel", w.key.Name)
	w.moving, w.active = true, false
	w.sub = nil
	b.moved = append(b.moved, movedSub{sub: s, channel: ch})
	b.dirty[ch] = true
	b.signal()
}

// health records whether s's last read succeeded; the bus is up while
// every subscription connection reads.
func (b *ChannelBus) health(s *busSub, ok bool) {
	if s.failing == !ok {
		return
	}
	s.failing = !ok
	n := int32(1)
	if ok {
		n = -1
	}
	if b.failing.Add(n) == 0 {
		b.up.Set(1)
	} else {
		b.up.Set(0)
	}
}

func (b *ChannelBus) confirmed(ch string) {
	b.mu.Lock()
	w := b.watches[ch]
	if w == nil {
		b.mu.Unlock()
		return
	}
	if w.moving {
		w.moving = false
	}
	if w.awaiting == 0 && w.active && w.closed {
		// Not one this node asked for: go-redis subscribed again after a
		// reconnection.
		k := w.key
		b.mu.Unlock()
		b.resync(k)
		return
	}
	defer b.mu.Unlock()
	if w.awaiting > 0 {
		w.awaiting--
	}
	if w.awaiting == 0 && w.active && !w.closed {
		close(w.ready)
		w.closed = true
	}
	if w.awaiting == 0 && !w.active && w.refs <= 0 {
		delete(b.watches, ch)
	}
}

// Received returns how many messages this node has read from the bus,
// over every channel (tests count what reaches a node).
func (b *ChannelBus) Received() uint64 { return b.received.Load() }

// publishScript numbers, retains and publishes one message; see the file
// comment. It returns {receivers, offset, epoch}.
var publishScript = goredis.NewScript(`
local epoch = ''
local hist = ARGV[4] ~= '0' or ARGV[5] ~= '0'
if hist then
  epoch = redis.call('GET', KEYS[3])
  if not epoch then
    epoch = ARGV[6]
    redis.call('DEL', KEYS[1], KEYS[2])
    redis.call('SET', KEYS[3], epoch)
  end
end
local seq = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[7])
if hist then
  if ARGV[4] ~= '0' then
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'o', seq, 'd', ARGV[3], 'b', ARGV[9])
  else
    redis.call('XADD', KEYS[2], '*', 'o', seq, 'd', ARGV[3], 'b', ARGV[9])
  end
  if ARGV[5] ~= '0' then
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    redis.call('XTRIM', KEYS[2], 'MINID', '~', string.format('%d', now - tonumber(ARGV[5])))
  end
  redis.call('PEXPIRE', KEYS[2], ARGV[7])
  redis.call('PEXPIRE', KEYS[3], ARGV[7])
end
local msg = string.format('%d', seq) .. ' ' .. epoch .. ' ' .. ARGV[2] .. ARGV[3]
local n
if ARGV[8] == '1' then
  n = redis.call('SPUBLISH', ARGV[1], msg)
else
  n = redis.call('PUBLISH', ARGV[1], msg)
end
return {n, seq, epoch}`)

// sinceScript reads the retained messages after an offset: it returns
// {epoch, last, covered (0/1), entries}, entries newest first.
var sinceScript = goredis.NewScript(`
local epoch = redis.call('GET', KEYS[3])
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
if not epoch then return {'', last, 0} end
local off = tonumber(ARGV[1])
if off > last then return {epoch, last, 0} end
local n = last - off
if n == 0 then return {epoch, last, 1} end
local size = tonumber(ARGV[2])
if size > 0 and n > size then return {epoch, last, 0} end
local es = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', n)
if #es < n then return {epoch, last, 0} end
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local ms = tonumber(string.match(es[#es][1], '^(%d+)'))
  if now - ms > ttl then return {epoch, last, 0} end
end
return {epoch, last, 1, es}`)

func historyArgs(h channels.HistoryConfig) (size, ttl, keep int64) {
	size, ttl = int64(max(h.Size, 0)), max(h.TTL.Milliseconds(), 0)
	if h.TTL > 0 && ttl == 0 {
		ttl = 1
	}
	keep = max(historyKeep.Milliseconds(), 2*ttl)
	return size, ttl, keep
}

func newEpoch() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Publish implements channels.Bus.
func (b *ChannelBus) Publish(ctx context.Context, k channels.Key, m *channels.BusMessage, h channels.HistoryConfig) (int, error) {
	ch := b.channel(k)
	size, ttl, keep := historyArgs(h)
	sharded, bin := "0", "0"
	if b.sharded {
		sharded = "1"
	}
	if m.Binary {
		bin = "1"
	}
	head := channels.AppendHead(nil, m)
	res, err := publishScript.Run(ctx, b.o.Client, []string{ch + ":seq", ch + ":hist", ch + ":epoch"},
		ch, head, m.Data, size, ttl, newEpoch(), keep, sharded, bin).Slice()
	if err != nil {
		return 0, fmt.Errorf("channel bus: publish: %w", err)
	}
	if len(res) != 3 {
		return 0, fmt.Errorf("channel bus: publish: unexpected answer %v", res)
	}
	n, _ := res[0].(int64)
	if seq, ok := res[1].(int64); ok {
		m.Seq = uint64(seq)
	}
	m.Epoch, _ = res[2].(string)
	return int(n), nil
}

// Since implements channels.Bus.
func (b *ChannelBus) Since(ctx context.Context, k channels.Key, h channels.HistoryConfig, offset uint64) (channels.Replay, error) {
	ch := b.channel(k)
	size, ttl, _ := historyArgs(h)
	res, err := sinceScript.Run(ctx, b.o.Client, []string{ch + ":seq", ch + ":hist", ch + ":epoch"},
		strconv.FormatUint(offset, 10), size, ttl).Slice()
	if err != nil {
		return channels.Replay{}, fmt.Errorf("channel bus: history: %w", err)
	}
	if len(res) < 3 {
		return channels.Replay{}, fmt.Errorf("channel bus: history: unexpected answer %v", res)
	}
	var rp channels.Replay
	rp.Epoch, _ = res[0].(string)
	last, _ := res[1].(int64)
	rp.Last = uint64(last)
	covered, _ := res[2].(int64)
	if covered != 1 || len(res) < 4 {
		rp.Covered = covered == 1
		return rp, nil
	}
	entries, _ := res[3].([]any)
	for i := len(entries) - 1; i >= 0; i-- {
		e, err := streamEntry(entries[i])
		if err != nil {
			return channels.Replay{}, err
		}
		rp.Entries = append(rp.Entries, e)
	}
	// The stream holds every publish in order; anything else is not the
	// history the client is asking about.
	for i, e := range rp.Entries {
		if e.Seq != offset+1+uint64(i) {
			return rp, nil
		}
	}
	rp.Covered = true
	return rp, nil
}

// streamEntry decodes one XRANGE entry: [id, [o, <offset>, d, <data>, b, 0|1]].
func streamEntry(v any) (channels.BusMessage, error) {
	var m channels.BusMessage
	pair, ok := v.([]any)
	if !ok || len(pair) != 2 {
		return m, fmt.Errorf("channel bus: history entry %v", v)
	}
	fields, ok := pair[1].([]any)
	if !ok || len(fields)%2 != 0 {
		return m, fmt.Errorf("channel bus: history entry %v", v)
	}
	for i := 0; i < len(fields); i += 2 {
		name, _ := fields[i].(string)
		val, _ := fields[i+1].(string)
		switch name {
		case "o":
			n, err := strconv.ParseUint(val, 10, 64)
			if err != nil {
				return m, fmt.Errorf("channel bus: history entry offset %q: %w", val, err)
			}
			m.Seq = n
		case "d":
			m.Data = []byte(val)
		case "b":
			m.Binary = val == "1"
		}
	}
	return m, nil
}

// Position implements channels.Bus.
func (b *ChannelBus) Position(ctx context.Context, k channels.Key) (string, uint64, error) {
	ch := b.channel(k)
	vals, err := b.o.Client.MGet(ctx, ch+":epoch", ch+":seq").Result()
	if err != nil {
		return "", 0, fmt.Errorf("channel bus: position: %w", err)
	}
	epoch, _ := vals[0].(string)
	s, _ := vals[1].(string)
	last, _ := strconv.ParseUint(s, 10, 64)
	if epoch == "" {
		return "", 0, nil // no history yet, or lost: the next publish starts one
	}
	return epoch, last, nil
}

// Members implements channels.Bus: the list in Redis, less the members
// of nodes no longer live (which it deletes: those of nodes dead for over
// a node TTL go to the receiver's Departed).
func (b *ChannelBus) Members(ctx context.Context, k channels.Key) ([]channels.Member, error) {
	live, err := b.liveNodes(ctx)
	if err != nil {
		return nil, fmt.Errorf("channel bus: members: %w", err)
	}
	return b.members(ctx, k, live)
}

// liveNodes is the set of live nodes' ids, this one included, and it
// forgets the suspicions of nodes live again.
func (b *ChannelBus) liveNodes(ctx context.Context) (map[string]bool, error) {
	nodes, err := b.o.Registry.Nodes(ctx)
	if err != nil {
		return nil, fmt.Errorf("live nodes: %w", err)
	}
	live := map[string]bool{b.o.Node: true}
	for _, n := range nodes {
		live[n.ID] = true
	}
	b.deadMu.Lock()
	for id := range b.deadSince {
		if live[id] {
			delete(b.deadSince, id)
		}
	}
	b.deadMu.Unlock()
	return live, nil
}

// members reads k's list and returns the members of live nodes. Entries
// of a node not live are left for a node TTL after it was first seen so
// (a node re-registering after a Redis restart is not dead), then
// deleted; the members of those whose deletion this call made are handed
// to Departed.
func (b *ChannelBus) members(ctx context.Context, k channels.Key, live map[string]bool) ([]channels.Member, error) {
	key := b.channel(k) + ":members"
	all, err := b.o.Client.HGetAll(ctx, key).Result()
	if err != nil {
		return nil, fmt.Errorf("channel bus: members: %w", err)
	}
	if len(all) == 0 {
		return nil, nil
	}
	var out []channels.Member
	var dead []string
	now := b.o.Now()
	b.deadMu.Lock()
	for id, v := range all {
		parts := strings.SplitN(v, "\n", 3)
		if len(parts) != 3 {
			dead = append(dead, id)
			continue
		}
		if node := parts[0]; !live[node] {
			since, ok := b.deadSince[node]
			if !ok && len(b.deadSince) < maxDeadNodes {
				b.deadSince[node] = now
			} else if now.Sub(since) > b.o.NodeTTL {
				dead = append(dead, id)
			}
			continue
		}
		out = append(out, parseMember(id, parts))
	}
	b.deadMu.Unlock()
	if len(dead) == 0 {
		return out, nil
	}
	// Connection ids are never reused: an entry read as dead stays so.
	// One HDEL per entry, so that of several nodes deleting the same
	// entry exactly one sees it go and tells the channel.
	pipe := b.o.Client.Pipeline()
	cmds := make([]*goredis.IntCmd, len(dead))
	for i, id := range dead {
		cmds[i] = pipe.HDel(ctx, key, id)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return out, nil // the next look deletes them
	}
	var gone []channels.Member
	for i, id := range dead {
		if cmds[i].Val() == 1 {
			if parts := strings.SplitN(all[id], "\n", 3); len(parts) == 3 {
				gone = append(gone, parseMember(id, parts))
			}
		}
	}
	if len(gone) > 0 && b.departed != nil {
		b.departed(k, gone)
	}
	return out, nil
}

func parseMember(id string, parts []string) channels.Member {
	at, _ := strconv.ParseInt(parts[2], 10, 64)
	return channels.Member{ConnectionID: id, PrincipalID: parts[1], ConnectedAt: at}
}

// sweep looks for nodes that were live at the previous sweep and are no
// longer; once one has been gone for a node TTL, it reads the member
// lists of the channels watched here, so that the dead node's members are
// deleted and their channels told (Departed: presence leave events). A
// node that died leaves its members listed, and unannounced, for about
// two node TTLs.
func (b *ChannelBus) sweep() {
	ctx, cancel := context.WithTimeout(b.ctx, busOpTimeout)
	defer cancel()
	live, err := b.liveNodes(ctx)
	if err != nil {
		return // the registry's outage is reported by the keeper
	}
	now := b.o.Now()
	due := false
	b.deadMu.Lock()
	for id := range b.lastLive {
		if !live[id] {
			if _, ok := b.deadSince[id]; !ok && len(b.deadSince) < maxDeadNodes {
				b.deadSince[id] = now
			}
		}
	}
	for _, since := range b.deadSince {
		if now.Sub(since) > b.o.NodeTTL {
			due = true
		}
	}
	b.deadMu.Unlock()
	b.lastLive = live
	if !due {
		return
	}
	b.mu.Lock()
	keys := make([]channels.Key, 0, len(b.watches))
	for _, w := range b.watches {
		if w.refs > 0 {
			keys = append(keys, w.key)
		}
	}
	b.mu.Unlock()
	for _, k := range keys {
		if _, err := b.members(ctx, k, live); err != nil {
			b.o.Logger.Warn("channel bus: sweeping a member list failed", "channel", k.Name, "err", err)
			return
		}
	}
	// Entries of those nodes in lists not watched here are deleted by the
	// nodes watching them, or expire with their list.
	b.deadMu.Lock()
	for id, since := range b.deadSince {
		if now.Sub(since) > b.o.NodeTTL {
			delete(b.deadSince, id)
		}
	}
	b.deadMu.Unlock()
}

// maxDeadNodes bounds the nodes Members remembers as not live; beyond
// it, entries of nodes not live are deleted at once.
const maxDeadNodes = 1024
