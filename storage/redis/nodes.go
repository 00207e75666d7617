package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/portico-gateway/portico/storage"
)

// setHashScript replaces the hash KEYS[1] by the field/value pairs in
// ARGV[2:] with a TTL of ARGV[1] ms, atomically, so a node key never
// exists without its TTL.
var setHashScript = goredis.NewScript(`
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1`)

// Node hash fields.
const (
	fAddress = "address"
	fStarted = "startedAt"
)

// RegisterNode describes n and makes it live for one node TTL.
func (r *Registry) RegisterNode(ctx context.Context, n *storage.Node) error {
	if n == nil || n.ID == "" {
		return errors.New("redis: register node: node without id")
	}
	now := time.Now()
	call := &scriptCall{
		s: setHashScript, keys: []string{r.nodeKey(n.ID)},
		args: []any{r.nodeTTL.Milliseconds(), fAddress, n.Address, fStarted, encodeTime(n.StartedAt)},
	}
	var zadd *goredis.IntCmd
	err := r.runScripts(ctx, []*scriptCall{call}, func(p goredis.Pipeliner) {
		idx := r.nodesIndexKey()
		zadd = p.ZAdd(ctx, idx, goredis.Z{Score: float64(now.Add(r.nodeTTL).UnixMilli()), Member: n.ID})
		// Forget index entries of nodes long dead.
		p.ZRemRangeByScore(ctx, idx, "-inf", strconv.FormatInt(now.Add(-10*r.nodeTTL).UnixMilli(), 10))
	})
	if err == nil {
		err = zadd.Err()
	}
	if err != nil {
		return wrap(fmt.Sprintf("register node %q", n.ID), err)
	}
	r.leases.Registered(n.ID, now) // records put from now on carry a fresh lease
	return nil
}

// Heartbeat extends the liveness of nodeID and, once per half record
// lease, the leases of its records.
func (r *Registry) Heartbeat(ctx context.Context, nodeID string) error {
	op := fmt.Sprintf("heartbeat %q", nodeID)
	now := time.Now()
	pipe := r.beat.Pipeline()
	alive := pipe.PExpire(ctx, r.nodeKey(nodeID), r.nodeTTL)
	pipe.ZAddXX(ctx, r.nodesIndexKey(), goredis.Z{Score: float64(now.Add(r.nodeTTL).UnixMilli()), Member: nodeID})
	if _, err := pipe.Exec(ctx); err != nil {
		return wrap(op, err)
	}
	if !alive.Val() {
		return storage.ErrNotFound
	}
	return r.leases.Renew(ctx, nodeID, now, func(ctx context.Context) error {
		return wrap(op+": renew leases", r.renew(ctx, nodeID))
	})
}

// renew extends the lease of every record in node's set; ids whose record
// is gone leave the set.
func (r *Registry) renew(ctx context.Context, node string) error {
	conns := r.connsKey(node)
	if err := r.c.PExpire(ctx, conns, r.recordTTL).Err(); err != nil {
		return err
	}
	var gone []any
	err := r.scanConns(ctx, node, func(ids []string) error {
		pipe := r.c.Pipeline()
		cmds := make([]*goredis.BoolCmd, len(ids))
		for i, id := range ids {
			cmds[i] = pipe.PExpire(ctx, r.recordKey(id), r.recordTTL)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return err
		}
		for i, cmd := range cmds {
			if !cmd.Val() {
				gone = append(gone, ids[i])
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(gone) > 0 {
		return r.c.SRem(ctx, conns, gone...).Err()
	}
	return nil
}

// Nodes returns the live nodes. The index may lag (its scores come from
// the nodes' clocks); each node's own key decides.
func (r *Registry) Nodes(ctx context.Context) ([]*storage.Node, error) {
	since := time.Now().Add(-r.nodeTTL).UnixMilli() // tolerate clock skew
	ids, err := r.c.ZRangeByScore(ctx, r.nodesIndexKey(), &goredis.ZRangeBy{
		Min: strconv.FormatInt(since, 10), Max: "+inf",
	}).Result()
	if err != nil {
		return nil, wrap("nodes", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	pipe := r.c.Pipeline()
	cmds := make([]*goredis.MapStringStringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HGetAll(ctx, r.nodeKey(id))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, wrap("nodes", err)
	}
	out := make([]*storage.Node, 0, len(ids))
	for i, cmd := range cmds {
		m := cmd.Val()
		if len(m) == 0 {
			continue // expired
		}
		started, err := decodeTime(m[fStarted])
		if err != nil {
			return nil, fmt.Errorf("redis: nodes: node %q: %s: %w", ids[i], fStarted, err)
		}
		out = append(out, &storage.Node{ID: ids[i], Address: m[fAddress], StartedAt: started})
	}
	return out, nil
}
