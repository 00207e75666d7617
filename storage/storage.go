// Package storage holds connection registries: where the gateway records
// which connections exist, on which node, and what is known about them.
// The Registry interface is implemented once per backend in its own
// package: storage/memory (in-process, the default), storage/redis
// (a single Redis or a Redis Cluster) and storage/dynamodb (Amazon
// DynamoDB or a DynamoDB-compatible server). storage/storagetest is the
// conformance suite every backend passes. Storage knows nothing of
// sockets: a Record is plain data.
//
// # Nodes and liveness
//
// Several gateway nodes may share one registry. Each node calls
// RegisterNode when it starts and then Heartbeat at a steady interval,
// comfortably shorter than the registry's node TTL (NodeTTL, 30 seconds
// by default; heartbeating every NodeTTL/3 is the intended rhythm). A node
// is live from RegisterNode until NodeTTL after its latest RegisterNode or
// Heartbeat. A node that stops heartbeating (crash, partition) disappears
// from Nodes once its TTL runs out, and so do its connection records:
// Get and ListByNode treat a record as absent when its owning node is not
// live or when the record's own expiry has passed. A live node's records
// never expire on their own: Heartbeat keeps both the node and its
// records alive. Register a node before putting its records; a record
// whose node is not live is invisible.
//
// After a lapse, RegisterNode makes the node live again; whether records
// it held before the lapse come back with it depends on whether the
// backend had already reclaimed them, so a node that lapsed should put
// its records again.
//
// # Deletes are final
//
// Connection ids are never reused, so a write of an id that arrives after
// its Delete is a late write (a retried Put, a Touch batched before the
// close). Registries keep a short-lived tombstone for every deleted id and
// ignore, without error, any Put, Touch or TouchMany of it for at least
// the tombstone period (DefaultTombstoneTTL unless the backend is
// configured otherwise). Concurrent Put and Delete of one id therefore
// end consistent: the record is either absent or complete, never a mix,
// and a Delete that returned before a Put started always wins.
package storage

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned by Get for an id the registry does not hold
// (never created, deleted, or expired), and by Heartbeat for a node that
// is not registered or whose liveness lapsed (register it again).
var ErrNotFound = errors.New("storage: connection not found")

// ErrUnavailable marks errors caused by an unreachable or overloaded
// backend (refused or dropped connections, timeouts, throttling, a Redis
// Cluster without quorum). Backends wrap such errors so that
// errors.Is(err, ErrUnavailable) is true; callers branch on it, for
// instance to answer 503 rather than 500. Other errors (bad input,
// misconfiguration) are not wrapped.
var ErrUnavailable = errors.New("storage: backend unavailable")

// ErrLeaseRenewal is returned by Heartbeat when the node's own liveness
// was extended but renewing the leases of its records failed (a slow or
// overloaded backend, usually). The node is live; the records still hold
// their earlier lease, which lasts many heartbeats, and the next
// Heartbeat tries again. Callers log it rather than treat it as an outage.
var ErrLeaseRenewal = errors.New("storage: renewing record leases failed")

// Defaults shared by the backends. Each backend takes these from its
// options when the corresponding field is zero.
const (
	// DefaultNodeTTL is how long a node stays live after its latest
	// RegisterNode or Heartbeat.
	DefaultNodeTTL = 30 * time.Second
	// DefaultTombstoneTTL is how long a deleted id stays blocked against
	// late writes.
	DefaultTombstoneTTL = time.Minute
	// RecordTTLFactor sets the default lifetime of a stored record in
	// backends that reclaim space by expiry (Redis, DynamoDB): RecordTTL
	// defaults to RecordTTLFactor × NodeTTL. Visibility follows node
	// liveness; this longer lease only decides how soon the space of a
	// dead node's records is reclaimed, and lets Heartbeat renew leases
	// rarely instead of rewriting every record on every heartbeat.
	RecordTTLFactor = 10
)

// Lifetimes applies the shared defaults to a backend's node TTL, record
// lease and tombstone period (zero or negative: the default) and keeps
// the lease at least two node TTLs.
func Lifetimes(nodeTTL, recordTTL, tombstoneTTL time.Duration) (node, record, tombstone time.Duration) {
	if nodeTTL <= 0 {
		nodeTTL = DefaultNodeTTL
	}
	if recordTTL <= 0 {
		recordTTL = RecordTTLFactor * nodeTTL
	}
	if tombstoneTTL <= 0 {
		tombstoneTTL = DefaultTombstoneTTL
	}
	return nodeTTL, max(recordTTL, 2*nodeTTL), tombstoneTTL
}

// Record is what the registry keeps about one connection.
type Record struct {
	ID           string
	Node         string // id of the gateway node that holds the socket
	API          string // API name
	Stage        string
	ConnectedAt  time.Time
	LastActiveAt time.Time
	SourceIP     string
	UserAgent    string
	// Authorizer is the authorizer context of the connection, values
	// stringified as in events; nil without an authorizer.
	Authorizer map[string]string
}

// Node describes one gateway node sharing the registry.
type Node struct {
	ID        string
	Address   string // where other nodes reach this one (host:port)
	StartedAt time.Time
}

// Registry records connections and the nodes holding them.
// Implementations are safe for concurrent use.
type Registry interface {
	// Put creates or replaces the record of r.ID. A Put of an id deleted
	// within the tombstone period is ignored (see "Deletes are final").
	Put(ctx context.Context, r *Record) error
	// Get returns a copy of the record of id, or ErrNotFound (also when
	// the record expired or its node is not live).
	Get(ctx context.Context, id string) (*Record, error)
	// Delete removes the record of id and blocks late writes of it;
	// deleting a missing id is not an error.
	Delete(ctx context.Context, id string) error
	// DeleteMany is Delete for many ids in one batch: one pipeline (or
	// a bounded fan-out where the backend has no batch write). After an
	// error some of ids may be deleted and some not; deleting them again
	// is harmless.
	DeleteMany(ctx context.Context, ids []string) error
	// Touch raises LastActiveAt of id to at (never lowers it); a missing
	// or deleted id is not an error and is not created. Callers batch
	// touches: the hot path must not pay a round trip per message.
	Touch(ctx context.Context, id string, at time.Time) error
	// TouchMany is Touch for many ids in one batch: one round trip (or
	// one pipeline, or one bounded fan-out where the backend has no batch
	// update). Missing ids are skipped.
	TouchMany(ctx context.Context, ids []string, at time.Time) error
	// ListByNode returns the records held by node; none when the node is
	// not live.
	ListByNode(ctx context.Context, node string) ([]*Record, error)
	// RegisterNode creates or replaces the description of n.ID and makes
	// it live for one node TTL.
	RegisterNode(ctx context.Context, n *Node) error
	// Heartbeat keeps nodeID and its records alive for another node TTL.
	// It returns ErrNotFound when the node is not registered or its
	// liveness already lapsed; the caller then registers again. It
	// returns an error wrapping ErrLeaseRenewal when the node is live but
	// its records' leases could not be renewed this time.
	Heartbeat(ctx context.Context, nodeID string) error
	// Nodes returns copies of the live nodes, in no particular order.
	Nodes(ctx context.Context) ([]*Node, error)
	// Close releases the registry's resources.
	Close() error
}

// RenewalContext returns the context a backend renews record leases in:
// it ends when ctx is cancelled, but instead of ctx's deadline it has its
// own, budget from now. A heartbeat's deadline is sized for one round
// trip; renewing many thousands of leases on a loaded machine takes
// longer, and giving up only to start over on the next beat wastes the
// work done.
func RenewalContext(ctx context.Context, budget time.Duration) (context.Context, context.CancelFunc) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), budget)
	stop := context.AfterFunc(ctx, func() {
		if errors.Is(ctx.Err(), context.Canceled) {
			cancel()
		}
	})
	return rctx, func() { stop(); cancel() }
}
