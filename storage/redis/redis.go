// Package redis is a connection registry in Redis, shared by every gateway
// node pointed at the same Redis. It works with a single Redis server and
// with Redis Cluster (github.com/redis/go-redis/v9 UniversalClient: one
// address is a single server, two or more a cluster, Options.Cluster
// forces cluster mode behind one configuration endpoint).
//
// # Keys
//
// With the default prefix "portico:" the registry writes:
//
//	portico:{c:<id>}          hash   one connection record, or its tombstone
//	portico:{n:<node>}        hash   a node: address, start time; TTL = node TTL
//	portico:{n:<node>}:conns  set    ids of the node's records (an index)
//	portico:nodes             zset   node ids scored by liveness deadline (ms)
//
// The braces are Redis Cluster hash tags: a node's description and its set
// share a slot, and every command that must be atomic touches one key
// only (a record and its tombstone are the same key), so nothing needs a
// cross-slot transaction and the same code serves a single Redis and a
// cluster. Multi-key work (Put's set update, TouchMany, ListByNode) goes
// through pipelines, which the cluster client splits per slot.
//
// # Expiry: why Get checks the node, and why records have a long lease
//
// A record is visible only while its node is live, and node liveness is
// one key with the node TTL. Heartbeat is therefore O(1): it extends that
// key (PEXPIRE), and a dead node's records vanish from Get and ListByNode
// the moment its key expires. The price is a second command in Get (the
// record names its node; Get then checks the node's key). The alternative,
// giving every record the node TTL and re-EXPIRE-ing all of a node's
// records on every heartbeat, keeps Get at one command but costs O(records)
// writes every few seconds per node and lets a record outlive its node by
// up to a heartbeat interval.
//
// Records still carry their own TTL, a lease (Options.RecordTTL, ten node
// TTLs by default), so that Redis reclaims a dead node's records by itself
// without any reaper. Heartbeat renews the leases of the node's records
// (one pipelined PEXPIRE per record, walking the node's set) only once per
// half lease rather than on every beat: at the defaults that is one write
// per record every 2.5 minutes instead of every 10 seconds.
//
// # Concurrent writes and deletes
//
// Put, Delete and Touch are Lua scripts on the record key, so each is
// atomic and Redis orders them: concurrent Put and Delete of one id end
// with the record complete or absent, and the last to reach Redis wins.
// Delete replaces the record by a tombstone (a hash holding only
// "deleted") with the tombstone TTL; Put and Touch leave a tombstoned key
// alone, so a Put that reaches Redis after a Delete never resurrects the
// record: Delete after Put wins, in either arrival order.
//
// Timestamps are stored as decimal Unix nanoseconds; Touch compares them
// as strings of digits, since Lua numbers are doubles and would round.
package redis

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/portico-gateway/portico/internal/coalesce"
	"github.com/portico-gateway/portico/storage"
)

// Environment variables read by New when the corresponding option is empty.
const (
	EnvAddr     = "PORTICO_REDIS_ADDR"     // comma-separated host:port list
	EnvPassword = "PORTICO_REDIS_PASSWORD" // AUTH password
)

// DefaultPrefix starts every key the registry writes.
const DefaultPrefix = "portico:"

// Options configure a Registry. Zero values take the documented defaults.
type Options struct {
	// Addrs are host:port addresses: one for a single Redis, the seed
	// masters of a cluster otherwise. Default: $PORTICO_REDIS_ADDR
	// (comma-separated), else 127.0.0.1:6379.
	Addrs []string
	// Cluster uses the cluster client even with a single address (a
	// cluster's configuration endpoint).
	Cluster bool
	// Password for AUTH. Default: $PORTICO_REDIS_PASSWORD.
	Password string
	// DB is the database number of a single Redis (clusters only have 0).
	DB int
	// TLS connects with TLS (system roots, server name from the address).
	TLS bool
	// Prefix starts every key. Default DefaultPrefix. It may not contain
	// braces, which would break the hash tags.
	Prefix string
	// NodeTTL is how long a node stays live after RegisterNode or
	// Heartbeat. Default storage.DefaultNodeTTL.
	NodeTTL time.Duration
	// RecordTTL is the lease of a stored record, renewed by the heartbeats
	// of its node. Default storage.RecordTTLFactor × NodeTTL; at least
	// 2 × NodeTTL.
	RecordTTL time.Duration
	// TombstoneTTL is how long a deleted id stays blocked against late
	// writes. Default storage.DefaultTombstoneTTL.
	TombstoneTTL time.Duration
	// Client, when set, is used instead of dialling from the fields above
	// (Addrs, Cluster, Password, DB and TLS are then ignored); Close does
	// not close it.
	Client goredis.UniversalClient
}

// Registry is a storage.Registry in Redis.
type Registry struct {
	c goredis.UniversalClient
	// beat carries the node's heartbeats on a connection of their own
	// (per cluster master), so that a beat never queues for a pooled
	// connection behind the node's own pipelines of registrations and
	// deletions: a node whose registry is busy is not taken for one
	// whose registry is gone. It is c when the caller supplied the client.
	beat      goredis.UniversalClient
	ownClient bool
	prefix    string
	nodeTTL   time.Duration
	recordTTL time.Duration
	tombTTL   time.Duration

	puts coalesce.Coalescer[*pendingPut] // concurrent Puts share pipelines

	leases storage.LeaseSchedule // when each node's record leases are renewed
}

var _ storage.Registry = (*Registry)(nil)

// NewFromEnv connects with the default options, taking the address and
// password from $PORTICO_REDIS_ADDR and $PORTICO_REDIS_PASSWORD.
func NewFromEnv(ctx context.Context) (*Registry, error) { return New(ctx, Options{}) }

// New connects to Redis and checks that it answers. An unreachable Redis
// yields an error wrapping storage.ErrUnavailable.
func New(ctx context.Context, o Options) (*Registry, error) {
	r, err := newRegistry(o)
	if err != nil {
		return nil, err
	}
	if err := r.c.Ping(ctx).Err(); err != nil {
		r.Close()
		return nil, wrap("ping", err)
	}
	return r, nil
}

// newRegistry applies defaults and builds the client without contacting
// Redis.
func newRegistry(o Options) (*Registry, error) {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if strings.ContainsAny(o.Prefix, "{}") {
		return nil, fmt.Errorf("redis: prefix %q contains a brace", o.Prefix)
	}
	o.NodeTTL, o.RecordTTL, o.TombstoneTTL = storage.Lifetimes(o.NodeTTL, o.RecordTTL, o.TombstoneTTL)
	r := &Registry{
		c: o.Client, prefix: o.Prefix, nodeTTL: o.NodeTTL, recordTTL: o.RecordTTL,
		tombTTL: o.TombstoneTTL,
		leases:  storage.LeaseSchedule{Every: o.RecordTTL / 2, Budget: o.RecordTTL / 8},
	}
	r.puts.Send = r.sendPuts
	if r.c != nil {
		r.beat = r.c
		return r, nil
	}
	if len(o.Addrs) == 0 {
		if env := os.Getenv(EnvAddr); env != "" {
			for _, a := range strings.Split(env, ",") {
				if a = strings.TrimSpace(a); a != "" {
					o.Addrs = append(o.Addrs, a)
				}
			}
		}
	}
	if len(o.Addrs) == 0 {
		o.Addrs = []string{"127.0.0.1:6379"}
	}
	if o.Password == "" {
		o.Password = os.Getenv(EnvPassword)
	}
	if o.DB != 0 && (o.Cluster || len(o.Addrs) > 1) {
		return nil, errors.New("redis: a cluster has only database 0")
	}
	uo := &goredis.UniversalOptions{
		Addrs: o.Addrs, IsClusterMode: o.Cluster, Password: o.Password, DB: o.DB,
	}
	if o.TLS {
		uo.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	r.c, r.ownClient = goredis.NewUniversalClient(uo), true
	bo := *uo
	bo.PoolSize, bo.PipelinePoolSize = 1, 1
	r.beat = goredis.NewUniversalClient(&bo)
	return r, nil
}

// Close closes the client the registry dialled.
func (r *Registry) Close() error {
	if !r.ownClient {
		return nil
	}
	if err := errors.Join(r.c.Close(), r.beat.Close()); err != nil {
		return fmt.Errorf("redis: close: %w", err)
	}
	return nil
}

func (r *Registry) recordKey(id string) string  { return r.prefix + "{c:" + id + "}" }
func (r *Registry) nodeKey(node string) string  { return r.prefix + "{n:" + node + "}" }
func (r *Registry) connsKey(node string) string { return r.prefix + "{n:" + node + "}:conns" }
func (r *Registry) nodesIndexKey() string       { return r.prefix + "nodes" }

// unavailable tells network trouble and a cluster without quorum from
// errors in the request itself.
func unavailable(err error) bool {
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, goredis.ErrClosed):
		return false
	}
	var rerr goredis.Error
	if errors.As(err, &rerr) {
		for _, p := range []string{"CLUSTERDOWN", "LOADING", "MASTERDOWN", "TRYAGAIN", "BUSY", "READONLY"} {
			if goredis.HasErrorPrefix(err, p) {
				return true
			}
		}
		return false
	}
	// Dial and I/O errors, timeouts, an exhausted pool.
	return true
}

// wrap adds context to err and marks it storage.ErrUnavailable when Redis
// could not be reached.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if unavailable(err) {
		return fmt.Errorf("redis: %s: %w: %w", op, storage.ErrUnavailable, err)
	}
	return fmt.Errorf("redis: %s: %w", op, err)
}

// script calls queued in a pipeline; the ones Redis answers NOSCRIPT to
// (a fresh server, a failover, SCRIPT FLUSH) are sent again with EVAL.
type scriptCall struct {
	s    *goredis.Script
	keys []string
	args []any
	cmd  *goredis.Cmd
}

func (r *Registry) runScripts(ctx context.Context, calls []*scriptCall, extra func(goredis.Pipeliner)) error {
	if len(calls) == 0 && extra == nil {
		return nil
	}
	pipe := r.c.Pipeline()
	for _, c := range calls {
		c.cmd = c.s.EvalSha(ctx, pipe, c.keys, c.args...)
	}
	if extra != nil {
		extra(pipe)
	}
	_, _ = pipe.Exec(ctx) // errors are read per command below
	var retry []*scriptCall
	for _, c := range calls {
		if goredis.HasErrorPrefix(c.cmd.Err(), "NOSCRIPT") {
			retry = append(retry, c)
		}
	}
	if len(retry) > 0 {
		pipe = r.c.Pipeline()
		for _, c := range retry {
			c.cmd = c.s.Eval(ctx, pipe, c.keys, c.args...)
		}
		_, _ = pipe.Exec(ctx)
	}
	for _, c := range calls {
		if err := c.cmd.Err(); err != nil && !errors.Is(err, goredis.Nil) {
			return err
		}
	}
	return nil
}

// Client returns the Redis client of the registry, for other users of
// the same Redis (the cross-node relay of @connections).
func (r *Registry) Client() goredis.UniversalClient { return r.c }

// BusClient returns the same client: it declares that this registry can
// carry the node bus (cluster.BusCarrier), relaying @connections between
// nodes over Redis pub/sub.
func (r *Registry) BusClient() goredis.UniversalClient { return r.c }
