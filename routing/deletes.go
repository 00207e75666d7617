package routing

import (
	"context"
	"sync"
	"time"
)

// Registry deletions run off the caller's goroutine. Disconnect runs on
// a connection server's event loop (an epoll shard serves thousands of
// connections): a registry round trip there, one per closed connection,
// stalled every other connection of the shard during mass disconnects,
// and for seconds when the registry was unreachable.
const (
	deleteWorkers = 8               // deletions in flight at once
	deleteQueue   = 64 << 10        // ids waiting; past this Disconnect waits for room
	deleteTimeout = 5 * time.Second // bound on one deletion
)

// deleter deletes registry records in the background.
type deleter struct {
	r  *Router
	ch chan string

	mu     sync.Mutex // guards closed against sends on a closed channel
	closed bool
	wg     sync.WaitGroup
}

func newDeleter(r *Router) *deleter {
	d := &deleter{r: r, ch: make(chan string, deleteQueue)}
	d.wg.Add(deleteWorkers)
	for range deleteWorkers {
		go d.work()
	}
	return d
}

func (d *deleter) work() {
	defer d.wg.Done()
	for id := range d.ch {
		ctx, cancel := context.WithTimeout(context.Background(), deleteTimeout)
		if err := d.r.reg.Delete(ctx, id); err != nil {
			d.r.log.Warn("registry delete failed", "connectionId", id, "err", err)
		}
		cancel()
	}
}

// delete queues the deletion of id's record. After close it deletes
// inline, so that nothing is lost.
func (d *deleter) delete(id string) {
	d.mu.Lock()
	if !d.closed {
		d.ch <- id // waits only when deleteQueue ids are already waiting
		d.mu.Unlock()
		return
	}
	d.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), deleteTimeout)
	defer cancel()
	if err := d.r.reg.Delete(ctx, id); err != nil {
		d.r.log.Warn("registry delete failed", "connectionId", id, "err", err)
	}
}

// close stops taking ids and waits, until ctx ends, for the queued ones
// to be deleted.
func (d *deleter) close(ctx context.Context) error {
	d.mu.Lock()
	if !d.closed {
		d.closed = true
		close(d.ch)
	}
	d.mu.Unlock()
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
