package cluster

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Registry deletions run off the caller's goroutine. Disconnect runs on
// a connection server's event loop (an epoll shard serves thousands of
// connections): a registry round trip there, one per closed connection,
// stalled every other connection of the shard during mass disconnects,
// and for seconds when the registry was unreachable.
//
// A worker deletes what is queued in batches of up to deleteBatch ids
// (Registry.DeleteMany: one pipeline with Redis), so a mass disconnect
// costs a round trip per batch, not per connection. Workers times batch
// bounds what one node has in flight at the registry: at 8 x 256, 56
// nodes closing a million connections at once queued 114,000 scripts at
// one Redis, pipelines waited past go-redis's 3 s read timeout, and the
// retries and reconnections took Redis down for every node; at 4 x 64
// every node still saw its heartbeats time out for a minute. 2 x 16
// queues 32 deletions per node (the unbatched deleter had 8 in flight)
// while one round trip still carries 16.
//
// A deletion that fails (the registry is unreachable) is kept and tried
// again every deleteRetry: the record of a closed connection would
// otherwise stay, its lease renewed by every heartbeat of its live node.
const (
	deleteWorkers = 2                // batches in flight at once
	deleteBatch   = 16               // ids in one batch at most
	deleteQueue   = 64 << 10         // ids waiting; past this they wait for the next retry
	deleteTimeout = 5 * time.Second  // bound on one deletion
	deleteRetry   = 10 * time.Second // how often failed deletions are tried again
	maxFailed     = 64 << 10         // failed deletions kept for retrying; more are logged and dropped
)

// Deleter deletes registry records in the background, in batches. It
// takes the delete function (storage.Registry.DeleteMany), not the
// registry, so the Recorder of every API on a node shares one.
type Deleter struct {
	del   func(ctx context.Context, ids []string) error
	log   *slog.Logger
	ch    chan string
	stop  chan struct{} // closed by close: the retry loop ends
	retry time.Duration

	// closeMu guards closed: senders hold it for reading while they
	// send, close takes it for writing before it closes ch, so nothing
	// is sent on a closed channel.
	closeMu sync.RWMutex
	closed  bool

	failedMu sync.Mutex
	failed   map[string]struct{}

	wg sync.WaitGroup
}

// NewDeleter starts a deleter calling del (a registry's DeleteMany);
// Close stops it. log nil: slog.Default().
func NewDeleter(del func(ctx context.Context, ids []string) error, log *slog.Logger) *Deleter {
	return newDeleter(del, log, deleteRetry, deleteQueue)
}

func newDeleter(del func(ctx context.Context, ids []string) error, log *slog.Logger, retry time.Duration, queue int) *Deleter {
	if log == nil {
		log = slog.Default()
	}
	d := &Deleter{del: del, log: log, ch: make(chan string, queue), stop: make(chan struct{}), retry: retry, failed: map[string]struct{}{}}
	d.wg.Add(deleteWorkers + 1)
	for range deleteWorkers {
		go d.work()
	}
	go d.retryLoop()
	return d
}

func (d *Deleter) work() {
	defer d.wg.Done()
	batch := make([]string, 0, deleteBatch)
	for id := range d.ch {
		// Take whatever else is queued, without waiting for more.
		batch = append(batch[:0], id)
	fill:
		for len(batch) < deleteBatch {
			select {
			case id, ok := <-d.ch:
				if !ok {
					break fill
				}
				batch = append(batch, id)
			default:
				break fill
			}
		}
		if err := d.deleteNow(batch...); err != nil {
			kept := 0
			for _, id := range batch {
				if d.keepForRetry(id) {
					kept++
				}
			}
			d.log.Warn("registry delete failed; retrying later", "connections", len(batch),
				"connectionId", batch[0], "err", err)
			if kept < len(batch) {
				d.log.Error("registry delete failed; too many pending retries, the records stay",
					"connections", len(batch)-kept, "err", err)
			}
		}
	}
}

// deleteNow deletes the records of ids, within deleteTimeout.
func (d *Deleter) deleteNow(ids ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), deleteTimeout)
	defer cancel()
	return d.del(ctx, ids)
}

// keepForRetry remembers id for the next retry round; false when
// maxFailed ids are waiting already.
func (d *Deleter) keepForRetry(id string) bool {
	d.failedMu.Lock()
	defer d.failedMu.Unlock()
	if len(d.failed) >= maxFailed {
		return false
	}
	d.failed[id] = struct{}{}
	return true
}

// retryLoop queues the failed deletions again every d.retry.
func (d *Deleter) retryLoop() {
	defer d.wg.Done()
	t := time.NewTicker(d.retry)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
		}
		d.closeMu.RLock()
		if !d.closed {
			d.failedMu.Lock()
		requeue:
			for id := range d.failed {
				select {
				case d.ch <- id:
					delete(d.failed, id)
				default: // the queue is full: the rest wait for the next round
					break requeue
				}
			}
			d.failedMu.Unlock()
		}
		d.closeMu.RUnlock()
	}
}

// Delete queues the deletion of id's record and returns at once: when
// the queue is full the id waits for the next retry round instead. After
// close it deletes inline, so that nothing is lost.
func (d *Deleter) Delete(id string) {
	d.closeMu.RLock()
	if !d.closed {
		select {
		case d.ch <- id:
		default:
			if !d.keepForRetry(id) {
				d.log.Error("registry delete queue and retries full; the record stays", "connectionId", id)
			}
		}
		d.closeMu.RUnlock()
		return
	}
	d.closeMu.RUnlock()
	if err := d.deleteNow(id); err != nil {
		d.log.Warn("registry delete failed", "connectionId", id, "err", err)
	}
}

// Close stops taking ids and waits, until ctx ends, for the queued ones
// to be deleted. Failed deletions still pending are logged.
func (d *Deleter) Close(ctx context.Context) error {
	d.closeMu.Lock()
	if !d.closed {
		d.closed = true
		close(d.stop)
		close(d.ch)
	}
	d.closeMu.Unlock()
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	d.failedMu.Lock()
	left := len(d.failed)
	d.failedMu.Unlock()
	if left > 0 {
		d.log.Warn("registry deletions still failing at shutdown; their records expire with this node", "count", left)
	}
	return nil
}
