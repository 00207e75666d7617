package redis

import (
	"context"
	"errors"

	goredis "github.com/redis/go-redis/v9"
)

// pendingPut is one Put waiting for its pipeline: concurrent Puts share
// pipelines (Registry.puts, a Coalescer), so a burst of handshakes costs
// Redis and the gateway one round trip per batch instead of per
// connection.
type pendingPut struct {
	call *scriptCall
	node string
	id   string
	err  error
}

// sendPuts writes the records of batch in one pipeline: each record's
// put script, then one SADD and PEXPIRE per node set. It sets each
// pending Put's err.
func (r *Registry) sendPuts(ctx context.Context, batch []*pendingPut) {
	calls := make([]*scriptCall, len(batch))
	for i, p := range batch {
		calls[i] = p.call
	}
	sadds := map[string]*goredis.IntCmd{}
	_ = r.runScripts(ctx, calls, func(pipe goredis.Pipeliner) {
		byNode := map[string][]any{}
		for _, p := range batch {
			byNode[p.node] = append(byNode[p.node], p.id)
		}
		for node, ids := range byNode {
			conns := r.connsKey(node)
			sadds[node] = pipe.SAdd(ctx, conns, ids...)
			pipe.PExpire(ctx, conns, r.recordTTL)
		}
	})
	// Errors are read per command: one record's failure is not another's.
	for _, p := range batch {
		if err := p.call.cmd.Err(); err != nil && !errors.Is(err, goredis.Nil) {
			p.err = err
		} else {
			p.err = sadds[p.node].Err()
		}
	}
}
