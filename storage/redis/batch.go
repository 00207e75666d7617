package redis

import (
	"context"
	"errors"
	"sync"

	goredis "github.com/redis/go-redis/v9"
)

// maxPutBatch bounds the records one pipeline carries.
const maxPutBatch = 256

// putBatcher coalesces concurrent Puts into shared pipelines: while one
// pipeline is in flight, the Puts that arrive queue up, and all of them
// go out together in the next one. A burst of handshakes then costs Redis
// and the gateway one round trip (two syscalls a side) per batch instead
// of per connection; a lone Put goes out at once, as before.
//
// There is no goroutine: the caller that finds no pipeline in flight
// leads, sending the queue; when it is done it hands the lead to the
// first caller that queued meanwhile, if any, and returns.
type putBatcher struct {
	mu    sync.Mutex
	queue []*pendingPut
	busy  bool // a leader is sending
}

// pendingPut is one Put waiting for its pipeline.
type pendingPut struct {
	call *scriptCall
	node string
	id   string
	err  error
	// done receives false when the Put was sent (err is set), or true
	// when the receiver must lead the next batch.
	done chan bool
}

// do runs p in a batch and returns its result.
func (b *putBatcher) do(ctx context.Context, r *Registry, p *pendingPut) error {
	p.done = make(chan bool, 1)
	b.mu.Lock()
	b.queue = append(b.queue, p)
	if b.busy {
		b.mu.Unlock()
		if lead := <-p.done; !lead {
			return p.err
		}
	} else {
		b.busy = true
		b.mu.Unlock()
	}
	// Lead. The queue was empty when this Put became leader by finding
	// no pipeline in flight, and this Put heads it when the lead was
	// handed over: either way it is in the batch cut here.
	b.mu.Lock()
	n := min(len(b.queue), maxPutBatch)
	batch := b.queue[:n:n]
	b.queue = b.queue[n:]
	b.mu.Unlock()
	r.sendPuts(ctx, batch)
	for _, q := range batch {
		if q != p {
			q.done <- false
		}
	}
	b.mu.Lock()
	if len(b.queue) == 0 {
		b.queue = nil
		b.busy = false
		b.mu.Unlock()
		return p.err
	}
	next := b.queue[0]
	b.mu.Unlock()
	next.done <- true
	return p.err
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
