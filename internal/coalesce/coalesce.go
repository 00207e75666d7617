// Package coalesce runs concurrent calls in shared batches: the storage
// backends and the node bus use it to share Redis pipelines.
package coalesce

import (
	"context"
	"sync"
)

// Coalescer runs concurrent calls in shared batches: while one batch is
// in flight, the calls that arrive queue up, and all of them go out
// together in the next one. A burst then costs Redis and the caller one
// pipeline (two syscalls a side) per batch instead of one round trip per
// call; a lone call goes out at once, with no added delay.
//
// There is no goroutine: the caller that finds no batch in flight leads,
// sending the queue; when it is done it hands the lead to the first
// caller that queued meanwhile, if any, and returns. The leader's context
// bounds the whole batch it sends.
//
// The zero value is not usable: set Send.
type Coalescer[T any] struct {
	// Send runs one batch and stores each item's result in the item
	// itself (T is usually a pointer). Required.
	Send func(ctx context.Context, batch []T)
	// Max bounds the items in one batch; 0 means 256.
	Max int

	mu    sync.Mutex
	queue []*coalesced[T]
	busy  bool // a leader is sending
}

// coalesced is one call waiting for its batch.
type coalesced[T any] struct {
	item T
	// done receives false when the item was sent, or true when the
	// receiver must lead the next batch.
	done chan bool
}

// Do runs item in a batch and returns once Send has run for it.
func (c *Coalescer[T]) Do(ctx context.Context, item T) {
	p := &coalesced[T]{item: item, done: make(chan bool, 1)}
	c.mu.Lock()
	c.queue = append(c.queue, p)
	if c.busy {
		c.mu.Unlock()
		if lead := <-p.done; !lead {
			return
		}
	} else {
		c.busy = true
		c.mu.Unlock()
	}
	// Lead. The queue was empty when this call became leader by finding
	// no batch in flight, and this call heads it when the lead was handed
	// over: either way it is in the batch cut here.
	max := c.Max
	if max <= 0 {
		max = 256
	}
	c.mu.Lock()
	n := min(len(c.queue), max)
	batch := c.queue[:n:n]
	c.queue = c.queue[n:]
	c.mu.Unlock()
	items := make([]T, n)
	for i, q := range batch {
		items[i] = q.item
	}
	c.Send(ctx, items)
	for _, q := range batch {
		if q != p {
			q.done <- false
		}
	}
	c.mu.Lock()
	if len(c.queue) == 0 {
		c.queue = nil
		c.busy = false
		c.mu.Unlock()
		return
	}
	next := c.queue[0]
	c.mu.Unlock()
	next.done <- true
}
