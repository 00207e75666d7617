package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/portico-gateway/portico/storage"
)

// putScript replaces the record hash KEYS[1] by the field/value pairs in
// ARGV[2:] with a lease of ARGV[1] ms, unless the key is a tombstone.
var putScript = goredis.NewScript(`
if redis.call('HEXISTS', KEYS[1], 'deleted') == 1 then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1`)

// deleteScript turns KEYS[1] into a tombstone living ARGV[1] ms and
// returns the node the record belonged to (nil if there was none).
var deleteScript = goredis.NewScript(`
local node = redis.call('HGET', KEYS[1], 'node')
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'deleted', '1')
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return node`)

// touchScript raises lastActiveAt of the record KEYS[1] to ARGV[1]. Both
// are decimal nanoseconds without leading zeros (or empty for the zero
// time), so the longer string is the larger number and equal lengths
// compare as text. Tombstones have no lastActiveAt and are left alone.
var touchScript = goredis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 'lastActiveAt')
if not cur then return 0 end
local at = ARGV[1]
if #at > #cur or (#at == #cur and at > cur) then
  redis.call('HSET', KEYS[1], 'lastActiveAt', at)
  return 1
end
return 0`)

// Record hash fields.
const (
	fNode       = "node"
	fAPI        = "api"
	fStage      = "stage"
	fConnected  = "connectedAt"
	fLastActive = "lastActiveAt"
	fSourceIP   = "sourceIp"
	fUserAgent  = "userAgent"
	fAuthorizer = "authorizer" // JSON object; absent for a nil map
	fDeleted    = "deleted"    // present only in tombstones
)

func encodeTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return strconv.FormatInt(t.UnixNano(), 10)
}

func decodeTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(0, n), nil
}

func encodeRecord(rec *storage.Record) ([]any, error) {
	f := []any{
		fNode, rec.Node, fAPI, rec.API, fStage, rec.Stage,
		fConnected, encodeTime(rec.ConnectedAt), fLastActive, encodeTime(rec.LastActiveAt),
		fSourceIP, rec.SourceIP, fUserAgent, rec.UserAgent,
	}
	if rec.Authorizer != nil {
		b, err := json.Marshal(rec.Authorizer)
		if err != nil {
			return nil, err
		}
		f = append(f, fAuthorizer, string(b))
	}
	return f, nil
}

// decodeRecord returns nil for a missing record or a tombstone.
func decodeRecord(id string, m map[string]string) (*storage.Record, error) {
	if len(m) == 0 || m[fDeleted] != "" {
		return nil, nil
	}
	rec := &storage.Record{
		ID: id, Node: m[fNode], API: m[fAPI], Stage: m[fStage],
		SourceIP: m[fSourceIP], UserAgent: m[fUserAgent],
	}
	var err error
	if rec.ConnectedAt, err = decodeTime(m[fConnected]); err != nil {
		return nil, fmt.Errorf("record %q: %s: %w", id, fConnected, err)
	}
	if rec.LastActiveAt, err = decodeTime(m[fLastActive]); err != nil {
		return nil, fmt.Errorf("record %q: %s: %w", id, fLastActive, err)
	}
	if a, ok := m[fAuthorizer]; ok {
		if err := json.Unmarshal([]byte(a), &rec.Authorizer); err != nil {
			return nil, fmt.Errorf("record %q: %s: %w", id, fAuthorizer, err)
		}
		if rec.Authorizer == nil {
			rec.Authorizer = map[string]string{}
		}
	}
	return rec, nil
}

// Put creates or replaces the record of rec.ID, unless the id was deleted
// within the tombstone period.
func (r *Registry) Put(ctx context.Context, rec *storage.Record) error {
	if rec == nil || rec.ID == "" || rec.Node == "" {
		return errors.New("redis: put: record needs an id and a node")
	}
	fields, err := encodeRecord(rec)
	if err != nil {
		return fmt.Errorf("redis: put %q: %w", rec.ID, err)
	}
	call := &scriptCall{
		s: putScript, keys: []string{r.recordKey(rec.ID)},
		args: append([]any{r.recordTTL.Milliseconds()}, fields...),
	}
	p := &pendingPut{call: call, node: rec.Node, id: rec.ID}
	r.puts.Do(ctx, p)
	return wrap(fmt.Sprintf("put %q", rec.ID), p.err)
}

// Get returns the record of id if it exists and its node is live.
func (r *Registry) Get(ctx context.Context, id string) (*storage.Record, error) {
	m, err := r.c.HGetAll(ctx, r.recordKey(id)).Result()
	if err != nil {
		return nil, wrap(fmt.Sprintf("get %q", id), err)
	}
	rec, err := decodeRecord(id, m)
	if err != nil {
		return nil, fmt.Errorf("redis: get: %w", err)
	}
	if rec == nil {
		return nil, storage.ErrNotFound
	}
	live, err := r.c.Exists(ctx, r.nodeKey(rec.Node)).Result()
	if err != nil {
		return nil, wrap(fmt.Sprintf("get %q: node %q", id, rec.Node), err)
	}
	if live == 0 {
		return nil, storage.ErrNotFound
	}
	return rec, nil
}

// Delete replaces the record of id by a tombstone and drops it from its
// node's set.
func (r *Registry) Delete(ctx context.Context, id string) error {
	return r.DeleteMany(ctx, []string{id})
}

// DeleteMany replaces the records of ids by tombstones in one pipeline,
// then drops them from their nodes' sets in a second one (one SREM per
// node). A mass disconnect costs two round trips per batch, not two per
// connection.
func (r *Registry) DeleteMany(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	op := fmt.Sprintf("delete %q", ids[0])
	if len(ids) > 1 {
		op = fmt.Sprintf("delete %d ids", len(ids))
	}
	calls := make([]*scriptCall, len(ids))
	for i, id := range ids {
		calls[i] = &scriptCall{s: deleteScript, keys: []string{r.recordKey(id)}, args: []any{r.tombTTL.Milliseconds()}}
	}
	if err := r.runScripts(ctx, calls, nil); err != nil {
		return wrap(op, err)
	}
	byNode := map[string][]any{}
	for i, c := range calls {
		node, err := c.cmd.Text()
		if errors.Is(err, goredis.Nil) || node == "" {
			continue
		}
		if err != nil {
			return wrap(op, err)
		}
		byNode[node] = append(byNode[node], ids[i])
	}
	if len(byNode) == 0 {
		return nil
	}
	_, err := r.c.Pipelined(ctx, func(pipe goredis.Pipeliner) error {
		for node, members := range byNode {
			pipe.SRem(ctx, r.connsKey(node), members...)
		}
		return nil
	})
	return wrap(op+": node set", err)
}

// Touch raises LastActiveAt of id to at.
func (r *Registry) Touch(ctx context.Context, id string, at time.Time) error {
	return r.TouchMany(ctx, []string{id}, at)
}

// TouchMany raises LastActiveAt of every id to at in one pipeline.
func (r *Registry) TouchMany(ctx context.Context, ids []string, at time.Time) error {
	if len(ids) == 0 || at.IsZero() {
		return nil
	}
	enc := encodeTime(at)
	calls := make([]*scriptCall, len(ids))
	for i, id := range ids {
		calls[i] = &scriptCall{s: touchScript, keys: []string{r.recordKey(id)}, args: []any{enc}}
	}
	return wrap(fmt.Sprintf("touch %d ids", len(ids)), r.runScripts(ctx, calls, nil))
}

// ListByNode returns the records held by node, if the node is live. Ids
// in the node's set whose record is gone or moved are removed from it.
func (r *Registry) ListByNode(ctx context.Context, node string) ([]*storage.Record, error) {
	op := fmt.Sprintf("list node %q", node)
	live, err := r.c.Exists(ctx, r.nodeKey(node)).Result()
	if err != nil || live == 0 {
		return nil, wrap(op, err)
	}
	var out []*storage.Record
	var stale []any
	seen := make(map[string]bool)
	err = r.scanConns(ctx, node, func(ids []string) error {
		pipe := r.c.Pipeline()
		cmds := make([]*goredis.MapStringStringCmd, 0, len(ids))
		fresh := ids[:0:0]
		for _, id := range ids {
			if !seen[id] {
				seen[id] = true
				fresh = append(fresh, id)
				cmds = append(cmds, pipe.HGetAll(ctx, r.recordKey(id)))
			}
		}
		if len(cmds) == 0 {
			return nil
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return err
		}
		for i, cmd := range cmds {
			rec, err := decodeRecord(fresh[i], cmd.Val())
			switch {
			case err != nil:
				return err
			case rec == nil || rec.Node != node:
				stale = append(stale, fresh[i])
			default:
				out = append(out, rec)
			}
		}
		return nil
	})
	if err != nil {
		return nil, wrap(op, err)
	}
	if len(stale) > 0 {
		_ = r.c.SRem(ctx, r.connsKey(node), stale...).Err() // tidying only
	}
	return out, nil
}

// scanConns calls fn with batches of the ids in node's set.
func (r *Registry) scanConns(ctx context.Context, node string, fn func(ids []string) error) error {
	var cursor uint64
	for {
		ids, next, err := r.c.SScan(ctx, r.connsKey(node), cursor, "", 5000).Result()
		if err != nil {
			return err
		}
		if len(ids) > 0 {
			if err := fn(ids); err != nil {
				return err
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}
