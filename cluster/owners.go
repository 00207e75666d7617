package cluster

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/portico-gateway/portico/storage"
)

// ownerCacheSize bounds the owner cache; when full it starts over.
const ownerCacheSize = 100_000

// ownerTTL is how long an owner found in the registry is reused.
const ownerTTL = 30 * time.Second

// owners remembers which node holds a connection, so that repeated calls
// for one connection skip the registry read. A stale entry is harmless: a
// connection never moves between nodes, so if it has closed the owner
// answers Gone, and if the owner has died nobody receives the forward,
// which also ends in Gone.
type owners struct {
	reg storage.Registry
	mu  sync.Mutex
	m   map[string]ownerEntry
}

type ownerEntry struct {
	node    string
	expires time.Time
}

func newOwners(reg storage.Registry) *owners {
	return &owners{reg: reg, m: make(map[string]ownerEntry)}
}

// lookup returns the node holding id; found is false when the registry
// does not know the connection.
func (o *owners) lookup(ctx context.Context, id string) (node string, found bool, err error) {
	now := time.Now()
	o.mu.Lock()
	e, ok := o.m[id]
	o.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.node, true, nil
	}
	rec, err := o.reg.Get(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	o.mu.Lock()
	if len(o.m) >= ownerCacheSize {
		o.m = make(map[string]ownerEntry)
	}
	o.m[id] = ownerEntry{node: rec.Node, expires: now.Add(ownerTTL)}
	o.mu.Unlock()
	return rec.Node, true, nil
}

// forget drops id, after its owner turned out to be gone.
func (o *owners) forget(id string) {
	o.mu.Lock()
	delete(o.m, id)
	o.mu.Unlock()
}

// elsewhere finds the node other than self that holds id. When ok is
// false the call is settled without forwarding: res is zero when no
// other node holds the connection (the caller answers Gone), or the 503
// to answer when the registry failed.
func (o *owners) elsewhere(ctx context.Context, id, self string) (owner string, res Result, ok bool) {
	owner, found, err := o.lookup(ctx, id)
	switch {
	case err != nil:
		return "", unavailable("connection registry unreachable: " + err.Error()), false
	case !found, owner == self: // ours and not open here: Gone
		return "", Result{}, false
	}
	return owner, Result{}, true
}
