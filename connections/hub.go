package connections

import (
	"hash/maphash"
	"sync"
)

const hubShards = 64

// Hub finds open connections by id. It is sharded so that connects,
// disconnects and lookups on different ids rarely contend. Every server
// mode registers its connections in a Hub; management looks them up there.
type Hub struct {
	seed   maphash.Seed
	shards [hubShards]hubShard
}

type hubShard struct {
	mu    sync.RWMutex
	conns map[string]Conn
}

// NewHub returns an empty Hub.
func NewHub() *Hub {
	h := &Hub{seed: maphash.MakeSeed()}
	for i := range h.shards {
		h.shards[i].conns = make(map[string]Conn)
	}
	return h
}

func (h *Hub) shard(id string) *hubShard {
	return &h.shards[maphash.String(h.seed, id)%hubShards]
}

// Add registers c under its id.
func (h *Hub) Add(c Conn) {
	s := h.shard(c.Info().ID)
	s.mu.Lock()
	s.conns[c.Info().ID] = c
	s.mu.Unlock()
}

// Remove unregisters c; it is a no-op if another connection now holds the id.
func (h *Hub) Remove(c Conn) {
	id := c.Info().ID
	s := h.shard(id)
	s.mu.Lock()
	if s.conns[id] == c {
		delete(s.conns, id)
	}
	s.mu.Unlock()
}

// Get returns the open connection with id.
func (h *Hub) Get(id string) (Conn, bool) {
	s := h.shard(id)
	s.mu.RLock()
	c, ok := s.conns[id]
	s.mu.RUnlock()
	return c, ok
}

// Len returns the number of registered connections.
func (h *Hub) Len() int {
	n := 0
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.RLock()
		n += len(s.conns)
		s.mu.RUnlock()
	}
	return n
}

// Range calls f for every connection until f returns false. It holds a
// shard's read lock while calling f for that shard's connections: f must
// not call back into the Hub.
func (h *Hub) Range(f func(Conn) bool) {
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.RLock()
		for _, c := range s.conns {
			if !f(c) {
				s.mu.RUnlock()
				return
			}
		}
		s.mu.RUnlock()
	}
}
