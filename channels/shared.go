package channels

// Channels across nodes (a Bus in Options).
//
// # Delivery and order
//
// A node watches a channel on the bus (Bus.Watch) while it holds at least
// one member of it, from the first member's join to the last one's leave,
// so a publish crosses the bus once per node that has members, and a
// node without members never receives it.
//
// Every publish goes through the bus, including the delivery to the
// publishing node's own members. The bus numbers it (the offset, from
// one counter per channel) and hands it on in the same step, atomically
// (one Lua script in Redis: INCR, XADD for history, PUBLISH), and Redis
// delivers the messages of one pub/sub channel to each subscriber in the
// order they were published. Each node reads its subscription on one
// goroutine and delivers each message to its members under the channel's
// lock. So every member on every node sees one order per channel, the
// order of the offsets, whichever node each publish came through.
//
// The alternative, delivering locally first and sequencing with INCR,
// would need every node to hold back and reorder what arrives (a
// message numbered 8 arriving before 7) and to decide how long to wait
// for a 7 that may never come; going through Redis costs the local
// members one round trip to Redis instead, and needs no reordering.
//
// The publishing node counts its own deliveries: it waits (up to
// localTimeout) for its message to come back and be delivered, and
// answers delivered and dropped for its own members and nodes for the
// others PUBLISH reached.
//
// # Joining
//
// The first member of a channel on a node makes the node watch it; the
// subscribe waits (up to watchTimeout) until Redis confirms the
// subscription, so a publish that follows the subscribe reaches the
// member, as on one node. Later members join at once. The bus batches
// the subscriptions asked for together into one SUBSCRIBE.
//
// A member with a recovery position is added at once but held: what the
// channel delivers meanwhile is kept for it, its history is read from
// Redis (offsets after the position, with the channel's epoch and last
// offset), the replay and the portico.recovery frame are sent, then what
// was kept, less what the replay already covered. Nothing is lost or
// sent twice between the replay and live messages.
//
// # What is eventually consistent
//
// Presence events and the member lists in Redis are written in the
// background (in order, batched): a join is announced to the members on
// other nodes, and listed, a round trip or so after it happened. A node
// that dies leaves its members in the lists until its liveness lapses
// (the registry's node TTL): lists show only members of live nodes. A
// node TTL after that, a node watching the channel deletes the dead
// node's entries and, on a channel with presence, announces each as a
// leave (Departed; about two to three node TTLs after the death).

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/portico-gateway/portico/connections"
)

// Bus carries channels between the nodes sharing it. cluster.ChannelBus
// implements it over Redis.
type Bus interface {
	// Watch makes this node receive the channel's messages (the bus calls
	// Registry.Receive) until Unwatch; calls are counted per channel. The
	// returned channel is closed once messages flow. Neither call blocks.
	Watch(k Key) <-chan struct{}
	Unwatch(k Key)
	// Publish numbers m (Seq, Epoch), retains it when h is enabled, and
	// hands it to every node watching the channel, this one included; it
	// returns how many nodes it reached.
	Publish(ctx context.Context, k Key, m *BusMessage, h HistoryConfig) (nodes int, err error)
	// Presence hands an event to every watching node, unnumbered, in the
	// background.
	Presence(k Key, m *BusMessage)
	// Since reads the channel's retained messages after offset.
	Since(ctx context.Context, k Key, h HistoryConfig, offset uint64) (Replay, error)
	// Position is the channel's epoch and last offset.
	Position(ctx context.Context, k Key) (epoch string, last uint64, err error)
	// Join and Leave record a member in the channel's list, in the
	// background.
	Join(k Key, m Member)
	Leave(k Key, connectionID string)
	// Members lists the members on every live node.
	Members(ctx context.Context, k Key) ([]Member, error)
}

// Replay is a channel's history after an offset, as the bus read it.
type Replay struct {
	Epoch string // "" when the channel has no history
	Last  uint64
	// Covered reports whether Entries are every message after the offset.
	Covered bool
	Entries []BusMessage // Seq, Data and Binary set
}

// Bounds of the waits of a node on the bus.
const (
	// watchTimeout bounds how long a first subscribe waits for the bus to
	// confirm this node's watch of the channel.
	watchTimeout = 2 * time.Second
	// recoverTimeout bounds reading a recovery from the bus.
	recoverTimeout = 2 * time.Second
	// localTimeout bounds how long a publish waits for its own node's
	// delivery before answering.
	localTimeout = 2 * time.Second
)

// busState is what a node keeps of a channel on the bus, in the
// channel's History slot: the bus's watch, the epoch of the last message
// received, and what arrives for members whose recovery is being read.
// As a History it is empty: the registry reads the bus's history
// through the Bus, never through it.
type busState struct {
	ready      <-chan struct{} // closed once this node receives the channel
	epoch      string
	recovering map[*member]*recovering // nil when none is
}

func (b *busState) Epoch() string                           { return b.epoch }
func (b *busState) Last() uint64                            { return 0 }
func (b *busState) Append(Entry)                            {}
func (b *busState) Since(uint64, time.Time) ([]Entry, bool) { return nil, false }
func (b *busState) Retained(time.Time) bool                 { return false }

// recovering is what a member whose recovery is being read has been
// handed meanwhile.
type recovering struct {
	held []held
}

type held struct {
	seq     uint64
	epoch   string
	p       *connections.Prepared
	message bool
}

// subscribeShared is Subscribe with a Bus.
func (r *Registry) subscribeShared(m *member, name string, pos *Position) error {
	m.mu.Lock()
	if m.gone {
		m.mu.Unlock()
		return ErrClosed
	}
	if pos == nil {
		if p, ok := m.recover[name]; ok {
			pos = &p
			delete(m.recover, name)
		}
	}
	var ch *channel
	for {
		ch = r.lookup(m.api, m.conn.Info().Stage, name, true)
		ch.mu.Lock()
		if ch.dead {
			ch.mu.Unlock()
			continue
		}
		break
	}
	if _, ok := ch.index[m]; ok {
		ch.mu.Unlock()
		m.mu.Unlock()
		return nil
	}
	bs := ch.hist.(*busState)
	if pos != nil {
		if bs.recovering == nil {
			bs.recovering = map[*member]*recovering{}
		}
		bs.recovering[m] = &recovering{}
	}
	ch.index[m] = int32(len(ch.members))
	ch.members = append(ch.members, sub{m: m})
	ready := bs.ready
	ch.mu.Unlock()
	m.subs = append(m.subs, ch)
	k, d := ch.key.export(), describe(m.conn)
	r.bus.Join(k, d)
	if ch.cfg != nil && ch.cfg.Presence {
		r.bus.Presence(k, &BusMessage{Kind: KindPresence, From: r.node, Exclude: d.ConnectionID,
			Data: presenceFrame(name, "join", d)})
	}
	m.mu.Unlock()

	t := time.NewTimer(watchTimeout)
	select {
	case <-ready:
	case <-t.C:
		r.log.Warn("channels: the bus did not confirm a subscription in time; messages may be missed", "channel", name)
	}
	t.Stop()
	if pos != nil {
		r.recoverShared(ch, m, *pos)
	}
	return nil
}

// recoverShared reads m's recovery from the bus and sends it, then what
// the channel delivered meanwhile.
func (r *Registry) recoverShared(ch *channel, m *member, pos Position) {
	name := ch.key.name
	fail := func(reason, epoch string, last uint64) []*connections.Prepared {
		return []*connections.Prepared{connections.NewPrepared(recoveryFrame(name, false, reason, epoch, last, 0), false)}
	}
	var frames []*connections.Prepared
	var epoch string
	var last uint64
	if ch.cfg == nil || !ch.cfg.History.Enabled() {
		ch.mu.Lock()
		last = ch.seq
		ch.mu.Unlock()
		frames = fail("the channel keeps no history", "", last)
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), recoverTimeout)
		rp, err := r.bus.Since(ctx, ch.key.export(), ch.cfg.History, pos.Offset)
		cancel()
		epoch, last = rp.Epoch, rp.Last
		switch {
		case err != nil:
			r.log.Warn("channels: reading a recovery failed", "channel", name, "err", err)
			frames = fail("the history could not be read", "", 0)
		case pos.Epoch != rp.Epoch:
			frames = fail("the channel's history was reset (new epoch)", epoch, last)
		case !rp.Covered:
			frames = fail("the history no longer covers the gap", epoch, last)
		default:
			for _, e := range rp.Entries {
				frames = append(frames, connections.NewPrepared(envelope(name, epoch, e.Seq, e.Data, e.Binary), false))
			}
			frames = append(frames, connections.NewPrepared(recoveryFrame(name, true, "", epoch, last, len(rp.Entries)), false))
		}
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	bs := ch.hist.(*busState)
	rec := bs.recovering[m]
	if rec == nil {
		return // it left meanwhile
	}
	delete(bs.recovering, m)
	if len(bs.recovering) == 0 {
		bs.recovering = nil
	}
	kept := rec.held
	for _, p := range frames {
		_ = connections.SendPrepared(m.conn, p)
	}
	for _, h := range kept {
		if h.message && h.seq <= last && h.epoch == epoch {
			continue // the replay had it, or the client was told it is past it
		}
		_ = connections.SendPrepared(m.conn, h.p)
	}
}

// Receive delivers a message from the bus to this node's members of the
// channel k. The bus calls it on its reading goroutine, one message after
// another in the order of the channel's publishes.
func (r *Registry) Receive(k Key, msg *BusMessage) {
	api := r.byName[k.API]
	if api == nil {
		return
	}
	var res Result
	if ch := r.lookup(api, k.Stage, k.Name, false); ch != nil {
		ch.mu.Lock()
		var overflowed []connections.Conn
		if !ch.dead {
			message := msg.Kind == KindPublish
			var p *connections.Prepared
			switch {
			case !message:
				p = connections.NewPrepared(msg.Data, false)
			case ch.cfg != nil && ch.cfg.History.Enabled():
				ch.seq = msg.Seq
				ch.hist.(*busState).epoch = msg.Epoch
				p = connections.NewPrepared(envelope(k.Name, msg.Epoch, msg.Seq, msg.Data, msg.Binary), false)
			default:
				ch.seq = msg.Seq
				p = connections.NewPrepared(msg.Data, msg.Binary)
			}
			var skip *member
			if msg.Exclude != "" {
				for _, s := range ch.members {
					if s.m.conn.Info().ID == msg.Exclude {
						skip = s.m
						break
					}
				}
			}
			res, overflowed = r.deliver(ch, p, skip, message)
		}
		ch.mu.Unlock()
		r.closeOverflowed(overflowed)
	}
	if msg.From == r.node && msg.ID != 0 {
		r.waitersMu.Lock()
		w := r.waiters[msg.ID]
		delete(r.waiters, msg.ID)
		r.waitersMu.Unlock()
		if w != nil {
			w <- res
		}
	}
}

// Shared reports whether the registry spans nodes (it has a Bus): a
// Subscribe may then wait for the bus (see "Joining").
func (r *Registry) Shared() bool { return r.bus != nil }

// Resync writes this node's members of channel k to the bus again (the
// bus lost them: Redis restarted empty).
func (r *Registry) Resync(k Key) {
	api := r.byName[k.API]
	if api == nil {
		return
	}
	ch := r.lookup(api, k.Stage, k.Name, false)
	if ch == nil {
		return
	}
	ch.mu.Lock()
	ms := make([]Member, 0, len(ch.members))
	for _, s := range ch.members {
		ms = append(ms, describe(s.m.conn))
	}
	ch.mu.Unlock()
	for _, m := range ms {
		r.bus.Join(k, m)
	}
}

// Departed announces members of k whose node died, when k has presence:
// the bus took them out of the channel's list and calls this on one node
// for each. The leave events go to every node watching k, as a leave
// does.
func (r *Registry) Departed(k Key, gone []Member) {
	api := r.byName[k.API]
	if api == nil {
		return
	}
	cfg := r.config(api, k.Name)
	if cfg == nil || !cfg.Presence {
		return
	}
	for _, m := range gone {
		r.bus.Presence(k, &BusMessage{Kind: KindPresence, From: r.node, Data: presenceFrame(k.Name, "leave", m)})
	}
}

// publishShared is publish with a Bus: through the bus to every node
// watching the channel, this one included.
func (r *Registry) publishShared(ctx context.Context, api *apiState, stage, name string, data []byte, binary bool, exclude string) (Result, error) {
	var h HistoryConfig
	if cfg := r.config(api, name); cfg != nil {
		h = cfg.History
	}
	msg := &BusMessage{Kind: KindPublish, From: r.node, Exclude: exclude, Binary: binary, Data: data}
	var wait chan Result
	if ch := r.lookup(api, stage, name, false); ch != nil && isClosed(ch.hist.(*busState).ready) {
		// This node has members: its delivery comes back from the bus.
		msg.ID = r.pubID.Add(1)
		wait = make(chan Result, 1)
		r.waitersMu.Lock()
		r.waiters[msg.ID] = wait
		r.waitersMu.Unlock()
		defer func() {
			r.waitersMu.Lock()
			delete(r.waiters, msg.ID)
			r.waitersMu.Unlock()
		}()
	}
	n, err := r.bus.Publish(ctx, Key{api.Name, stage, name}, msg, h)
	if err != nil {
		return Result{}, fmt.Errorf("channels: publishing to %s: %w", name, err)
	}
	res := Result{Nodes: n}
	if wait == nil {
		return res, nil
	}
	t := time.NewTimer(localTimeout)
	defer t.Stop()
	select {
	case local := <-wait:
		res.Delivered, res.Dropped, res.Nodes = local.Delivered, local.Dropped, max(n-1, 0)
	case <-t.C:
	case <-ctx.Done():
	}
	return res, nil
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// membersShared is Members with a Bus: the lists in Redis.
func (r *Registry) membersShared(ctx context.Context, stage, name, cursor string, limit int) (Page, error) {
	page := Page{Channel: name, Members: []Member{}}
	var all []Member
	for _, api := range r.apis {
		if !api.stages[stage] {
			continue
		}
		k := Key{api.Name, stage, name}
		ms, err := r.bus.Members(ctx, k)
		if err != nil {
			return Page{}, fmt.Errorf("channels: members of %s: %w", name, err)
		}
		page.Count += len(ms)
		for _, m := range ms {
			if m.ConnectionID > cursor {
				all = append(all, m)
			}
		}
		if cfg := r.config(api, name); cfg != nil && cfg.History.Enabled() {
			if page.Epoch, page.Offset, err = r.bus.Position(ctx, k); err != nil {
				return Page{}, fmt.Errorf("channels: position of %s: %w", name, err)
			}
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].ConnectionID < all[j].ConnectionID })
	if len(all) > limit {
		all = all[:limit]
		page.Next = all[limit-1].ConnectionID
	}
	page.Members = append(page.Members, all...)
	return page, nil
}
