// Package channels holds channel membership and fan-out: a backend
// publishes one message to a channel and every connection subscribed to
// it receives it, in publish order, encoded once (connections.Prepared).
// This is a Portico extension; Amazon API Gateway has no channels.
//
// One Registry serves every API of a gateway. Its Handler decorates each
// API's connections.Handler: it registers a connection when it opens and
// takes it out of all its channels when it closes, so no channel keeps a
// dead member. Subscriptions come from routing (the X-Portico-Subscribe
// extension of integration answers, declarative route subscriptions) and
// from management (PUT /{stage}/@connections/{id}/channels/{channel}).
//
// # One node, or many
//
// Without a Bus (Options.Bus nil: the memory registry) everything lives
// in this process: a publish is handed to the channel's members under
// the channel's lock, history is a ring in memory (NewMemoryHistory),
// and nothing else is paid for.
//
// With a Bus (cluster.ChannelBus, over the Redis registry) channels span
// every node sharing that Redis; see shared.go. In short: a node watches
// a channel on the bus while it holds at least one member of it, and
// every publish, the publishing node's own delivery included, goes
// through the bus, which numbers it (one counter per channel in Redis)
// and hands it to the watching nodes in that order. Each node then
// delivers it to its own members under the channel's lock, as on one
// node. History, epochs and the member lists are kept in Redis.
//
// Locks: a connection's state lock, then the registry's map lock, then a
// channel's lock. A channel's lock is held while its message is handed to
// every member's send queue (Conn.Send and SendPrepared never block and
// never call back); no goroutine is started per channel or per member.
// The Bus's Watch, Unwatch, Join, Leave and Presence only queue work
// under the bus's own lock and never call back, so they are called with
// these locks held.
package channels

import (
	"context"
	"errors"
	"hash/maphash"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portico-gateway/portico/connections"
	"github.com/portico-gateway/portico/metrics"
	"github.com/portico-gateway/portico/routing/auth"
)

// Overflow policies: what happens to a subscriber whose send queue has no
// room for a channel message.
const (
	// OverflowDrop drops the message for that subscriber and marks the
	// gap: its next delivery is preceded by a portico.gap frame, and a
	// history channel lets it recover the missing offsets.
	OverflowDrop = "drop"
	// OverflowClose closes the subscriber with 1008.
	OverflowClose = "close"
)

// Config is the behaviour of the channels whose name matches Pattern.
type Config struct {
	// Pattern is a channel name in which '*' matches any run of
	// characters ("room:*").
	Pattern string
	// Presence sends portico.presence join and leave events to the
	// channel's members. Default false.
	Presence bool
	// History keeps recent messages for recovery. Default none.
	History HistoryConfig
}

// API is one API's channel settings.
type API struct {
	// Name is the API's name (metrics label). Required.
	Name string
	// Stages are the API's stage names: a publish to /{stage}/@channels
	// reaches the APIs that have the stage.
	Stages []string
	// Channels configure channels by name; the first match wins, and a
	// name no pattern matches has neither presence nor history.
	Channels []Config
	// Overflow is OverflowDrop (default) or OverflowClose.
	Overflow string
}

// Options configure a Registry. The zero value of each optional field
// means the default noted beside it.
type Options struct {
	// APIs are the APIs whose connections may subscribe. Required.
	APIs []API
	// Bus spans channels over the nodes sharing it. nil: this node only.
	Bus Bus
	// Node is this node's id on the bus. Required with Bus.
	Node string
	// History makes a channel's history. nil: NewMemoryHistory.
	History NewHistory
	// Now is the clock (history ages). nil: time.Now.
	Now func() time.Time
	// Metrics receives the channel counters. nil: not exported.
	Metrics *metrics.Set
	// Logger. nil: slog.Default().
	Logger *slog.Logger
}

// Result is the outcome of a publish.
type Result struct {
	// Delivered counts the subscribers on this node whose send queue took
	// the message.
	Delivered int `json:"delivered"`
	// Dropped counts the subscribers on this node whose queue was full.
	Dropped int `json:"dropped"`
	// Nodes counts the other nodes the message was handed to.
	Nodes int `json:"nodes"`
}

// Registry holds every channel of a gateway.
type Registry struct {
	apis    []*apiState
	byName  map[string]*apiState
	bus     Bus
	node    string
	history NewHistory
	now     func() time.Time
	log     *slog.Logger

	mu    sync.RWMutex
	chans map[key]*channel

	seed  maphash.Seed
	conns [connShards]connShard

	// pending holds the ?recover= positions of a connection between its
	// Connect and its Opened.
	pendingMu sync.Mutex
	pending   map[string]map[string]Position

	// With a Bus: the publishes of this node waiting for its own
	// delivery, by BusMessage.ID.
	pubID     atomic.Uint64
	waitersMu sync.Mutex
	waiters   map[uint64]chan Result
}

type apiState struct {
	API
	hub       *connections.Hub // the API's open connections (Handler); nil: none known
	stages    map[string]bool
	dropped   prometheus.Counter
	delivered prometheus.Counter
}

type key struct{ api, stage, name string }

// Key names a channel on the bus: a channel of a stage of an API.
type Key struct{ API, Stage, Name string }

func (k key) export() Key { return Key{k.api, k.stage, k.name} }

const connShards = 64

type connShard struct {
	mu sync.Mutex
	m  map[connections.Conn]*member
}

// member is one open connection of a registered API that has (or had)
// a subscription or asked to recover one: what it is subscribed to and
// the recovery positions its client asked for. It is the one
// per-connection cost of channels, and only such connections pay it: a
// member is made at a connection's first subscription (or by Opened,
// for recovery positions), not for every connection.
type member struct {
	conn connections.Conn
	api  *apiState

	mu      sync.Mutex // guards the fields below; taken before a channel's lock
	gone    bool
	subs    []*channel
	recover map[string]Position // by channel name, consumed by the subscribe
}

// channel is one channel of one stage of one API.
type channel struct {
	key key
	cfg *Config // nil: no presence, no history
	// hist is the channel's history: nil without history; with a Bus,
	// always the node's *busState of the channel (the history itself is
	// the bus's), which keeps single-node channels from paying for it.
	hist History

	// mu serialises publishes (so every member sees them in order) and
	// guards everything below.
	mu      sync.Mutex
	dead    bool // removed from the registry: look it up again
	seq     uint64
	members []sub
	index   map[*member]int32
}

// sub is one subscription: 16 bytes in the channel's member slice, plus
// its entry in the channel's index.
type sub struct {
	m *member
	// gapFrom is the first offset dropped for this member since its last
	// delivery; 0: none.
	gapFrom uint64
}

// New returns a Registry.
func New(o Options) *Registry {
	r := &Registry{byName: map[string]*apiState{}, bus: o.Bus, node: o.Node, history: o.History, now: o.Now,
		log: o.Logger, chans: map[key]*channel{}, seed: maphash.MakeSeed(),
		pending: map[string]map[string]Position{}, waiters: map[uint64]chan Result{}}
	if r.history == nil {
		r.history = NewMemoryHistory
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	m := o.Metrics
	if m == nil {
		m = metrics.New(nil)
	}
	for _, a := range o.APIs {
		if a.Overflow == "" {
			a.Overflow = OverflowDrop
		}
		st := &apiState{API: a, stages: map[string]bool{},
			dropped:   m.ChannelDropped.WithLabelValues(a.Name, a.Overflow),
			delivered: m.ChannelDeliveries.WithLabelValues(a.Name)}
		for _, s := range a.Stages {
			st.stages[s] = true
		}
		r.apis = append(r.apis, st)
		r.byName[a.Name] = st
	}
	for i := range r.conns {
		r.conns[i].m = map[connections.Conn]*member{}
	}
	return r
}

func (r *Registry) shard(c connections.Conn) *connShard {
	return &r.conns[maphash.String(r.seed, c.Info().ID)%connShards]
}

// open registers c as a connection of api.
func (r *Registry) open(c connections.Conn, api *apiState, recover map[string]Position) {
	sh := r.shard(c)
	sh.mu.Lock()
	sh.m[c] = &member{conn: c, api: api, recover: recover}
	sh.mu.Unlock()
}

func (r *Registry) member(c connections.Conn) *member {
	sh := r.shard(c)
	sh.mu.Lock()
	m := sh.m[c]
	sh.mu.Unlock()
	return m
}

// memberFor returns c's member, making it when c is an open connection
// of a registered API; nil when c is closed or unknown. Whether c is open
// is asked of its API's hub under the shard lock: a connection leaves
// its hub before its Disconnect (and so close) runs, so a member made
// here is always found and removed by close.
func (r *Registry) memberFor(c connections.Conn) *member {
	sh := r.shard(c)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if m := sh.m[c]; m != nil {
		return m
	}
	api := r.apiOf(c)
	if api == nil {
		return nil
	}
	m := &member{conn: c, api: api}
	sh.m[c] = m
	return m
}

// apiOf is the registered API whose hub holds c; nil when none does (c
// closed, or is not open yet).
func (r *Registry) apiOf(c connections.Conn) *apiState {
	id := c.Info().ID
	for _, a := range r.apis {
		if a.hub == nil {
			continue
		}
		if got, ok := a.hub.Get(id); ok && got == c {
			return a
		}
	}
	return nil
}

// isOpen reports whether c is an open connection of a registered API.
func (r *Registry) isOpen(c connections.Conn) bool { return r.apiOf(c) != nil }

// trim forgets c's member when it has nothing to keep (Opened made it
// for $connect's subscriptions, and there were none).
func (r *Registry) trim(c connections.Conn) {
	sh := r.shard(c)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	m := sh.m[c]
	if m == nil {
		return
	}
	m.mu.Lock()
	empty := len(m.subs) == 0 && len(m.recover) == 0
	m.mu.Unlock()
	if empty {
		delete(sh.m, c)
	}
}

// close takes c out of every channel it is in.
func (r *Registry) close(c connections.Conn) {
	sh := r.shard(c)
	sh.mu.Lock()
	m := sh.m[c]
	delete(sh.m, c)
	sh.mu.Unlock()
	if m == nil {
		return
	}
	m.mu.Lock()
	m.gone = true
	subs := m.subs
	m.subs, m.recover = nil, nil
	m.mu.Unlock()
	for _, ch := range subs {
		r.leave(ch, m)
	}
}

func (r *Registry) config(api *apiState, name string) *Config {
	for i := range api.Channels {
		if match(api.Channels[i].Pattern, name) {
			return &api.Channels[i]
		}
	}
	return nil
}

// lookup returns the channel, creating it when create is set.
func (r *Registry) lookup(api *apiState, stage, name string, create bool) *channel {
	k := key{api.Name, stage, name}
	r.mu.RLock()
	ch := r.chans[k]
	r.mu.RUnlock()
	if ch != nil || !create {
		return ch
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if ch = r.chans[k]; ch != nil {
		return ch
	}
	ch = &channel{key: k, cfg: r.config(api, name), index: map[*member]int32{}}
	if r.bus != nil {
		// The history is the bus's; this node watches the channel while
		// it has members here.
		ch.hist = &busState{ready: r.bus.Watch(k.export())}
	} else if ch.cfg != nil && ch.cfg.History.Enabled() {
		ch.hist = r.history(ch.cfg.History)
	}
	r.chans[k] = ch
	return ch
}

// Subscribe adds c to the channel name of its stage. A connection already
// subscribed stays so (nothing is sent again). With a recovery position
// (pos, or one the client gave on connect with ?recover=) the channel's
// retained messages after it are sent first, then a portico.recovery
// frame; no live message can come between them.
func (r *Registry) Subscribe(c connections.Conn, name string, pos *Position) error {
	if err := ValidName(name); err != nil {
		return err
	}
	m := r.memberFor(c)
	if m == nil {
		return ErrClosed
	}
	if r.bus != nil {
		return r.subscribeShared(m, name, pos)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gone {
		return ErrClosed
	}
	if pos == nil {
		if p, ok := m.recover[name]; ok {
			pos = &p
			delete(m.recover, name)
		}
	}
	for {
		ch := r.lookup(m.api, c.Info().Stage, name, true)
		ch.mu.Lock()
		if ch.dead {
			ch.mu.Unlock()
			continue
		}
		if _, ok := ch.index[m]; ok {
			ch.mu.Unlock()
			return nil
		}
		if pos != nil {
			for _, p := range r.recoverFrames(ch, *pos) {
				_ = connections.SendPrepared(c, p)
			}
		}
		ch.index[m] = int32(len(ch.members))
		ch.members = append(ch.members, sub{m: m})
		if ch.cfg != nil && ch.cfg.Presence {
			r.fanOut(ch, connections.NewPrepared(presenceFrame(name, "join", describe(c)), false), m)
		}
		ch.mu.Unlock()
		m.subs = append(m.subs, ch)
		return nil
	}
}

// recoverFrames are what a subscriber at pos is sent before it joins:
// the retained entries after pos and the recovery frame. Under ch.mu.
func (r *Registry) recoverFrames(ch *channel, pos Position) []*connections.Prepared {
	name := ch.key.name
	fail := func(reason, epoch string, last uint64) []*connections.Prepared {
		return []*connections.Prepared{connections.NewPrepared(recoveryFrame(name, false, reason, epoch, last, 0), false)}
	}
	if ch.hist == nil {
		return fail("the channel keeps no history", "", ch.seq)
	}
	epoch, last := ch.hist.Epoch(), ch.hist.Last()
	if pos.Epoch != epoch {
		return fail("the channel's history was reset (new epoch)", epoch, last)
	}
	entries, ok := ch.hist.Since(pos.Offset, r.now())
	if !ok {
		return fail("the history no longer covers the gap", epoch, last)
	}
	out := make([]*connections.Prepared, 0, len(entries)+1)
	for _, e := range entries {
		out = append(out, e.Frame)
	}
	return append(out, connections.NewPrepared(recoveryFrame(name, true, "", epoch, last, len(entries)), false))
}

// Unsubscribe takes c out of the channel; it reports whether c was in it.
func (r *Registry) Unsubscribe(c connections.Conn, name string) (bool, error) {
	if err := ValidName(name); err != nil {
		return false, err
	}
	m := r.member(c)
	if m == nil {
		if r.isOpen(c) {
			return false, nil // open, in no channel
		}
		return false, ErrClosed
	}
	m.mu.Lock()
	var ch *channel
	for i, s := range m.subs {
		if s.key.name == name {
			ch = s
			m.subs = slices.Delete(m.subs, i, i+1)
			break
		}
	}
	m.mu.Unlock()
	if ch == nil {
		return false, nil
	}
	r.leave(ch, m)
	return true, nil
}

// leave removes m from ch, sends the leave event and drops the channel
// once it has no members and no retained history.
func (r *Registry) leave(ch *channel, m *member) {
	ch.mu.Lock()
	i, ok := ch.index[m]
	if !ok {
		ch.mu.Unlock()
		return
	}
	last := int32(len(ch.members) - 1)
	if i != last {
		ch.members[i] = ch.members[last]
		ch.index[ch.members[i].m] = i
	}
	ch.members[last] = sub{}
	ch.members = ch.members[:last]
	delete(ch.index, m)
	if bs, ok := ch.hist.(*busState); ok {
		delete(bs.recovering, m)
	}
	if len(ch.members) < cap(ch.members)/4 {
		ch.members = slices.Clip(ch.members) // give back what a crowd left behind
	}
	if r.bus != nil {
		d := describe(m.conn)
		r.bus.Leave(ch.key.export(), d.ConnectionID)
		if ch.cfg != nil && ch.cfg.Presence {
			r.bus.Presence(ch.key.export(), &BusMessage{Kind: KindPresence, From: r.node,
				Data: presenceFrame(ch.key.name, "leave", d)})
		}
	} else if ch.cfg != nil && ch.cfg.Presence && len(ch.members) > 0 {
		r.fanOut(ch, connections.NewPrepared(presenceFrame(ch.key.name, "leave", describe(m.conn)), false), nil)
	}
	empty := len(ch.members) == 0 && (ch.hist == nil || !ch.hist.Retained(r.now()))
	ch.mu.Unlock()
	if empty {
		r.mu.Lock()
		ch.mu.Lock()
		if len(ch.members) == 0 && (ch.hist == nil || !ch.hist.Retained(r.now())) && !ch.dead {
			ch.dead = true
			delete(r.chans, ch.key)
			if r.bus != nil {
				r.bus.Unwatch(ch.key.export())
			}
		}
		ch.mu.Unlock()
		r.mu.Unlock()
	}
}

// Publish sends data to every member of the channel name of stage, in
// every API that has the stage, except the connection exclude ("" for
// none). The message is encoded once per channel. A channel with history
// wraps it in a portico.message envelope and retains it.
func (r *Registry) Publish(ctx context.Context, stage, name string, data []byte, binary bool, exclude string) (Result, error) {
	if err := ValidName(name); err != nil {
		return Result{}, err
	}
	var res Result
	var errs []error
	for _, api := range r.apis {
		if !api.stages[stage] {
			continue
		}
		if r.bus == nil {
			res.add(r.publish(api, stage, name, data, binary, exclude))
			continue
		}
		o, err := r.publishShared(ctx, api, stage, name, data, binary, exclude)
		res.add(o)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return res, errors.Join(errs...)
}

func (res *Result) add(o Result) {
	res.Delivered += o.Delivered
	res.Dropped += o.Dropped
	res.Nodes += o.Nodes
}

// publish delivers on this node.
func (r *Registry) publish(api *apiState, stage, name string, data []byte, binary bool, exclude string) Result {
	cfg := r.config(api, name)
	keeps := cfg != nil && cfg.History.Enabled()
	// A channel without members and without history costs a map lookup.
	ch := r.lookup(api, stage, name, keeps)
	if ch == nil {
		return Result{}
	}
	ch.mu.Lock()
	if ch.dead {
		ch.mu.Unlock()
		return r.publish(api, stage, name, data, binary, exclude)
	}
	ch.seq++
	var p *connections.Prepared
	if ch.hist != nil {
		off := ch.hist.Last() + 1
		ch.seq = off
		p = connections.NewPrepared(envelope(name, ch.hist.Epoch(), off, data, binary), false)
		ch.hist.Append(Entry{Offset: off, At: r.now(), Frame: p})
	} else {
		p = connections.NewPrepared(data, binary)
	}
	var skip *member
	if exclude != "" {
		for _, s := range ch.members {
			if s.m.conn.Info().ID == exclude {
				skip = s.m
				break
			}
		}
	}
	res, overflowed := r.deliver(ch, p, skip, true)
	ch.mu.Unlock()
	r.closeOverflowed(overflowed)
	return res
}

// fanOut sends a gateway frame (presence) to every member but skip; the
// overflow policy applies as to messages. Under ch.mu.
func (r *Registry) fanOut(ch *channel, p *connections.Prepared, skip *member) {
	_, overflowed := r.deliver(ch, p, skip, false)
	if len(overflowed) > 0 {
		// Closing takes the connection's write lock only; safe under ch.mu.
		r.closeOverflowed(overflowed)
	}
}

// deliver hands p to every member but skip, applying the overflow policy.
// A message (not a presence frame) is preceded, for a member that missed
// some, by a portico.gap frame; a message dropped under the drop policy
// starts such a gap. Under ch.mu; it returns the members to close
// (policy close).
func (r *Registry) deliver(ch *channel, p *connections.Prepared, skip *member, message bool) (Result, []connections.Conn) {
	var res Result
	var overflowed []connections.Conn
	api := r.byName[ch.key.api]
	epoch := ""
	if ch.hist != nil {
		epoch = ch.hist.Epoch()
	}
	one := []*connections.Prepared{p} // passed as is: no slice per member
	bs, _ := ch.hist.(*busState)
	for i := range ch.members {
		s := &ch.members[i]
		if s.m == skip {
			continue
		}
		if bs != nil && len(bs.recovering) > 0 {
			if rec := bs.recovering[s.m]; rec != nil {
				// Its recovery is being read: this comes after it.
				rec.held = append(rec.held, held{seq: ch.seq, epoch: epoch, p: p, message: message})
				res.Delivered++
				continue
			}
		}
		c := s.m.conn
		var err error
		if s.gapFrom != 0 && message {
			// Tell the member what it missed, together with the message:
			// both are queued or neither (the gap then grows).
			gap := connections.NewPrepared(gapFrame(ch.key.name, epoch, s.gapFrom, ch.seq-1), false)
			err = connections.SendPrepared(c, gap, p)
		} else {
			err = connections.SendPrepared(c, one...)
		}
		switch {
		case err == nil:
			s.gapFrom = 0
			res.Delivered++
		case errors.Is(err, connections.ErrQueueFull):
			res.Dropped++
			if api.Overflow == OverflowClose {
				overflowed = append(overflowed, c)
			} else if s.gapFrom == 0 && message {
				s.gapFrom = ch.seq
			}
		case errors.Is(err, connections.ErrTooLarge):
			res.Dropped++
		default: // closing: Disconnect takes it out of the channel
		}
	}
	if res.Delivered > 0 {
		api.delivered.Add(float64(res.Delivered))
	}
	if res.Dropped > 0 {
		api.dropped.Add(float64(res.Dropped))
	}
	return res, overflowed
}

func (r *Registry) closeOverflowed(cs []connections.Conn) {
	for _, c := range cs {
		_ = c.Close(connections.ClosePolicyViolation, "Channel send queue overflow")
	}
}

// describe is c as a member: its id, connectedAt and the principalId of
// its authorizer identity, when its state has one.
func describe(c connections.Conn) Member {
	info := c.Info()
	m := Member{ConnectionID: info.ID, ConnectedAt: info.ConnectedAt.UnixMilli()}
	if s, ok := c.State().(interface{ AuthIdentity() *auth.Identity }); ok {
		if id := s.AuthIdentity(); id != nil {
			m.PrincipalID = id.PrincipalID
		}
	}
	return m
}

// ChannelsOf returns the names of the channels c is subscribed to, sorted.
func (r *Registry) ChannelsOf(c connections.Conn) []string {
	m := r.member(c)
	if m == nil {
		return nil
	}
	m.mu.Lock()
	out := make([]string, 0, len(m.subs))
	for _, ch := range m.subs {
		out = append(out, ch.key.name)
	}
	m.mu.Unlock()
	sort.Strings(out)
	return out
}

// Page is one page of a channel's members.
type Page struct {
	Channel string   `json:"channel"`
	Count   int      `json:"count"`
	Members []Member `json:"members"`
	// Next is the cursor of the next page; "" on the last.
	Next string `json:"nextCursor,omitempty"`
	// Epoch and Offset are the channel's history position (history
	// channels only).
	Epoch  string `json:"epoch,omitempty"`
	Offset uint64 `json:"offset,omitempty"`
}

// Members lists the members of the channel name of stage (on this node;
// with a Bus, on every live node), in every API that has the stage, ordered by connection id: up to limit
// of them after the cursor (a connection id; "" for the first page).
func (r *Registry) Members(ctx context.Context, stage, name, cursor string, limit int) (Page, error) {
	if err := ValidName(name); err != nil {
		return Page{}, err
	}
	if r.bus != nil {
		return r.membersShared(ctx, stage, name, cursor, limit)
	}
	page := Page{Channel: name, Members: []Member{}}
	var all []connections.Conn
	for _, api := range r.apis {
		if !api.stages[stage] {
			continue
		}
		ch := r.lookup(api, stage, name, false)
		if ch == nil {
			continue
		}
		ch.mu.Lock()
		page.Count += len(ch.members)
		for _, s := range ch.members {
			if s.m.conn.Info().ID > cursor {
				all = append(all, s.m.conn)
			}
		}
		if ch.hist != nil {
			page.Epoch, page.Offset = ch.hist.Epoch(), ch.hist.Last()
		}
		ch.mu.Unlock()
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Info().ID < all[j].Info().ID })
	if len(all) > limit {
		all = all[:limit]
		page.Next = all[limit-1].Info().ID
	}
	for _, c := range all {
		page.Members = append(page.Members, describe(c))
	}
	return page, nil
}

// HasStage reports whether any API has the stage.
func (r *Registry) HasStage(stage string) bool {
	for _, api := range r.apis {
		if api.stages[stage] {
			return true
		}
	}
	return false
}

// Handler decorates next, the handler of the API named api: it keeps the
// positions of ?recover= parameters of each connection's upgrade request
// for its first subscriptions, and takes a closed connection out of every
// channel. The returned handler implements connections.Opener.
//
// hub is where the API's connection server registers its connections:
// the registry asks it whether a connection it has no member for is
// open, so that it keeps nothing for connections in no channel.
func (r *Registry) Handler(api string, hub *connections.Hub, next connections.Handler) connections.Handler {
	st := r.byName[api]
	if st != nil {
		st.hub = hub
	}
	return &handler{r: r, api: st, next: next}
}

type handler struct {
	r    *Registry
	api  *apiState
	next connections.Handler
}

func (h *handler) Connect(ctx context.Context, req *connections.ConnectRequest) *connections.ConnectResult {
	res := h.next.Connect(ctx, req)
	if !res.Accepted() || h.api == nil {
		return res
	}
	if !strings.Contains(req.Request.URL.RawQuery, "recover") {
		return res // most handshakes: no query to parse
	}
	var positions map[string]Position
	for _, v := range req.Request.URL.Query()["recover"] {
		for item := range strings.SplitSeq(v, ",") {
			name, pos, err := ParseRecover(strings.TrimSpace(item))
			if err != nil || len(positions) >= MaxListed {
				continue // a bad position is as good as none: the client gets no replay
			}
			if positions == nil {
				positions = map[string]Position{}
			}
			positions[name] = pos
		}
	}
	if positions != nil {
		h.r.pendingMu.Lock()
		h.r.pending[req.Info.ID] = positions
		h.r.pendingMu.Unlock()
	}
	return res
}

func (h *handler) Opened(c connections.Conn) {
	var positions map[string]Position
	if h.api != nil {
		h.r.pendingMu.Lock()
		if len(h.r.pending) > 0 {
			positions = h.r.pending[c.Info().ID]
			delete(h.r.pending, c.Info().ID)
		}
		h.r.pendingMu.Unlock()
	}
	// Not in its hub yet: $connect's subscriptions (the next Opened) find
	// a member made here, forgotten again if they made none. A
	// connection with neither recovery positions nor subscriptions to
	// make, most of them, costs no member at all.
	made := h.api != nil && (positions != nil || wantsChannels(c))
	if made {
		h.r.open(c, h.api, positions)
	}
	if o, ok := h.next.(connections.Opener); ok {
		o.Opened(c)
	}
	if made {
		h.r.trim(c)
	}
}

// wantsChannels reports whether c's handler has channels to join for it
// on Opened: a connection state that says so (routing's session, when
// $connect asked for subscriptions).
func wantsChannels(c connections.Conn) bool {
	p, ok := c.State().(interface{ PendingChannels() bool })
	return ok && p.PendingChannels()
}

func (h *handler) Message(c connections.Conn, m connections.Message) { h.next.Message(c, m) }

func (h *handler) Disconnect(c connections.Conn, code int, reason string) {
	h.r.close(c)
	h.next.Disconnect(c, code, reason)
}
