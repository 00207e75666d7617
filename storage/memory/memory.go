// Package memory is the in-process connection registry, the default: it
// needs nothing installed and holds records for this node only. A process
// restart forgets them, as it forgets the sockets they describe.
//
// Node liveness is off unless WithNodeTTL is given: New() keeps records
// until they are deleted, whether or not their node ever registered,
// which is what a single gateway process needs (the registry dies with
// the node, so there is nothing to expire). With a node TTL the registry
// follows the storage package's liveness rules exactly, like the shared
// backends: a record is visible only while its node is live, and the
// records of a node that lapsed are reclaimed by a later RegisterNode or
// Heartbeat of any node.
//
// Deleted ids leave a tombstone for the tombstone period
// (storage.DefaultTombstoneTTL by default) so that a late Put or Touch
// cannot bring them back; expired tombstones are swept as deletes go by.
package memory

import (
	"context"
	"errors"
	"hash/maphash"
	"maps"
	"sync"
	"time"

	"github.com/portico-gateway/portico/storage"
)

const shards = 32

// Registry is an in-memory storage.Registry, sharded by id.
type Registry struct {
	seed    maphash.Seed
	shards  [shards]shard
	nodeTTL time.Duration // 0: liveness off
	tombTTL time.Duration

	nodesMu  sync.RWMutex
	nodes    map[string]*nodeEntry
	nextReap time.Time
}

type shard struct {
	mu        sync.RWMutex
	records   map[string]*storage.Record
	tombs     map[string]time.Time // deleted id → end of its tombstone
	nextSweep time.Time
}

type nodeEntry struct {
	node    storage.Node
	expires time.Time
}

var _ storage.Registry = (*Registry)(nil)

// Option configures a Registry.
type Option func(*Registry)

// WithNodeTTL turns node liveness on: a node stays live for ttl after its
// latest RegisterNode or Heartbeat, and only live nodes' records are
// visible. Zero (the default) turns liveness off.
func WithNodeTTL(ttl time.Duration) Option {
	return func(r *Registry) { r.nodeTTL = max(ttl, 0) }
}

// WithTombstoneTTL sets how long a deleted id stays blocked against late
// writes (storage.DefaultTombstoneTTL when zero or negative).
func WithTombstoneTTL(ttl time.Duration) Option {
	return func(r *Registry) {
		if ttl > 0 {
			r.tombTTL = ttl
		}
	}
}

// New returns an empty Registry.
func New(opts ...Option) *Registry {
	r := &Registry{
		seed:    maphash.MakeSeed(),
		tombTTL: storage.DefaultTombstoneTTL,
		nodes:   make(map[string]*nodeEntry),
	}
	for _, o := range opts {
		o(r)
	}
	for i := range r.shards {
		r.shards[i].records = make(map[string]*storage.Record)
		r.shards[i].tombs = make(map[string]time.Time)
	}
	return r
}

func (r *Registry) shard(id string) *shard { return &r.shards[maphash.String(r.seed, id)%shards] }

func clone(rec *storage.Record) *storage.Record {
	c := *rec
	c.Authorizer = maps.Clone(rec.Authorizer)
	return &c
}

// live reports whether node may show records. It takes nodesMu only, so it
// may be called with a shard lock held (the lock order is shard → nodes).
func (r *Registry) live(node string, now time.Time) bool {
	if r.nodeTTL == 0 {
		return true
	}
	r.nodesMu.RLock()
	e, ok := r.nodes[node]
	r.nodesMu.RUnlock()
	return ok && now.Before(e.expires)
}

// Put stores a copy of rec unless its id was deleted within the tombstone
// period.
func (r *Registry) Put(_ context.Context, rec *storage.Record) error {
	if rec == nil || rec.ID == "" {
		return errors.New("memory: put: record without id")
	}
	s := r.shard(rec.ID)
	c := clone(rec)
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if until, ok := s.tombs[rec.ID]; ok {
		if now.Before(until) {
			return nil // late write of a deleted connection
		}
		delete(s.tombs, rec.ID)
	}
	s.records[rec.ID] = c
	return nil
}

// Get returns a copy of the record of id or storage.ErrNotFound.
func (r *Registry) Get(_ context.Context, id string) (*storage.Record, error) {
	s := r.shard(id)
	s.mu.RLock()
	rec, ok := s.records[id]
	var c *storage.Record
	if ok {
		c = clone(rec)
	}
	s.mu.RUnlock()
	if !ok || !r.live(c.Node, time.Now()) {
		return nil, storage.ErrNotFound
	}
	return c, nil
}

// DeleteMany deletes each of ids.
func (r *Registry) DeleteMany(ctx context.Context, ids []string) error {
	for _, id := range ids {
		if err := r.Delete(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

// Delete removes the record of id and leaves a tombstone.
func (r *Registry) Delete(_ context.Context, id string) error {
	s := r.shard(id)
	now := time.Now()
	s.mu.Lock()
	delete(s.records, id)
	s.tombs[id] = now.Add(r.tombTTL)
	if now.After(s.nextSweep) {
		s.nextSweep = now.Add(r.tombTTL)
		for k, until := range s.tombs {
			if !now.Before(until) {
				delete(s.tombs, k)
			}
		}
	}
	s.mu.Unlock()
	return nil
}

// Touch raises LastActiveAt of id to at.
func (r *Registry) Touch(_ context.Context, id string, at time.Time) error {
	s := r.shard(id)
	s.mu.Lock()
	if rec, ok := s.records[id]; ok && at.After(rec.LastActiveAt) {
		rec.LastActiveAt = at
	}
	s.mu.Unlock()
	return nil
}

// TouchMany raises LastActiveAt of every id in ids to at.
func (r *Registry) TouchMany(ctx context.Context, ids []string, at time.Time) error {
	for _, id := range ids {
		_ = r.Touch(ctx, id, at)
	}
	return nil
}

// ListByNode returns copies of the records held by node.
func (r *Registry) ListByNode(_ context.Context, node string) ([]*storage.Record, error) {
	if !r.live(node, time.Now()) {
		return nil, nil
	}
	var out []*storage.Record
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.RLock()
		for _, rec := range s.records {
			if rec.Node == node {
				out = append(out, clone(rec))
			}
		}
		s.mu.RUnlock()
	}
	return out, nil
}

// RegisterNode records a copy of n and makes it live.
func (r *Registry) RegisterNode(_ context.Context, n *storage.Node) error {
	if n == nil || n.ID == "" {
		return errors.New("memory: register node: node without id")
	}
	now := time.Now()
	r.nodesMu.Lock()
	r.nodes[n.ID] = &nodeEntry{node: *n, expires: now.Add(r.nodeTTL)}
	r.nodesMu.Unlock()
	r.reap(now)
	return nil
}

// Heartbeat extends the liveness of nodeID.
func (r *Registry) Heartbeat(_ context.Context, nodeID string) error {
	now := time.Now()
	r.nodesMu.Lock()
	e, ok := r.nodes[nodeID]
	if ok && (r.nodeTTL == 0 || now.Before(e.expires)) {
		e.expires = now.Add(r.nodeTTL)
	} else {
		ok = false
	}
	r.nodesMu.Unlock()
	if !ok {
		return storage.ErrNotFound
	}
	r.reap(now)
	return nil
}

// Nodes returns copies of the live nodes.
func (r *Registry) Nodes(_ context.Context) ([]*storage.Node, error) {
	now := time.Now()
	r.nodesMu.RLock()
	defer r.nodesMu.RUnlock()
	out := make([]*storage.Node, 0, len(r.nodes))
	for _, e := range r.nodes {
		if r.nodeTTL == 0 || now.Before(e.expires) {
			n := e.node
			out = append(out, &n)
		}
	}
	return out, nil
}

// reap forgets nodes whose liveness lapsed and their records, at most
// once per node TTL.
func (r *Registry) reap(now time.Time) {
	if r.nodeTTL == 0 {
		return
	}
	r.nodesMu.Lock()
	if now.Before(r.nextReap) {
		r.nodesMu.Unlock()
		return
	}
	r.nextReap = now.Add(r.nodeTTL)
	dead := make(map[string]bool)
	for id, e := range r.nodes {
		if !now.Before(e.expires) {
			dead[id] = true
			delete(r.nodes, id)
		}
	}
	r.nodesMu.Unlock()
	if len(dead) == 0 {
		return
	}
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		for id, rec := range s.records {
			// A node may have registered again since it was found dead.
			if dead[rec.Node] && !r.live(rec.Node, now) {
				delete(s.records, id)
			}
		}
		s.mu.Unlock()
	}
}

// Close does nothing.
func (r *Registry) Close() error { return nil }
