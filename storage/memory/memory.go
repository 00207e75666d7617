// Package memory is the in-process connection registry, the default: it
// needs nothing installed and holds records for this node only. Records
// live until deleted; a process restart forgets them, as it forgets the
// sockets they describe.
package memory

import (
	"context"
	"hash/maphash"
	"maps"
	"sync"
	"time"

	"github.com/portico-gateway/portico/storage"
)

const shards = 32

// Registry is an in-memory storage.Registry, sharded by id.
type Registry struct {
	seed   maphash.Seed
	shards [shards]shard
}

type shard struct {
	mu      sync.RWMutex
	records map[string]*storage.Record
}

var _ storage.Registry = (*Registry)(nil)

// New returns an empty Registry.
func New() *Registry {
	r := &Registry{seed: maphash.MakeSeed()}
	for i := range r.shards {
		r.shards[i].records = make(map[string]*storage.Record)
	}
	return r
}

func (r *Registry) shard(id string) *shard { return &r.shards[maphash.String(r.seed, id)%shards] }

func clone(rec *storage.Record) *storage.Record {
	c := *rec
	c.Authorizer = maps.Clone(rec.Authorizer)
	return &c
}

// Put stores a copy of rec.
func (r *Registry) Put(_ context.Context, rec *storage.Record) error {
	s := r.shard(rec.ID)
	c := clone(rec)
	s.mu.Lock()
	s.records[rec.ID] = c
	s.mu.Unlock()
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
	if !ok {
		return nil, storage.ErrNotFound
	}
	return c, nil
}

// Delete removes the record of id.
func (r *Registry) Delete(_ context.Context, id string) error {
	s := r.shard(id)
	s.mu.Lock()
	delete(s.records, id)
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

// ListByNode returns copies of the records held by node.
func (r *Registry) ListByNode(_ context.Context, node string) ([]*storage.Record, error) {
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

// Close does nothing.
func (r *Registry) Close() error { return nil }
