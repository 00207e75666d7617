package coalesce

import (
	"context"
	"runtime"
	"sync"
	"testing"
)

type coalesceItem struct {
	n     int
	twice int // set by Send
}

// Concurrent calls share batches, no batch exceeds Max, and every caller
// returns with its own result set.
func TestCoalescer(t *testing.T) {
	const calls, max = 2000, 16
	var (
		mu      sync.Mutex
		sizes   []int
		release = make(chan struct{})
		first   sync.Once
	)
	c := &Coalescer[*coalesceItem]{Max: max}
	c.Send = func(_ context.Context, batch []*coalesceItem) {
		// Hold the first batch until every other caller has queued, so
		// the later batches are certain to carry several items.
		first.Do(func() { <-release })
		mu.Lock()
		sizes = append(sizes, len(batch))
		mu.Unlock()
		for _, it := range batch {
			it.twice = 2 * it.n
		}
	}
	items := make([]*coalesceItem, calls)
	var wg sync.WaitGroup
	for i := range calls {
		items[i] = &coalesceItem{n: i}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Do(context.Background(), items[i])
		}()
	}
	for {
		c.mu.Lock()
		queued := len(c.queue)
		c.mu.Unlock()
		if queued == calls-1 {
			break
		}
		runtime.Gosched() // no signal tells that a caller has queued: poll
	}
	close(release)
	wg.Wait()
	total := 0
	for _, s := range sizes {
		if s > max {
			t.Errorf("a batch of %d items, over Max %d", s, max)
		}
		total += s
	}
	if total != calls {
		t.Errorf("batches carried %d items, want %d", total, calls)
	}
	if len(sizes) > 1+(calls-1+max-1)/max {
		t.Errorf("%d batches for %d calls: the queued calls were not coalesced", len(sizes), calls)
	}
	for i, it := range items {
		if it.twice != 2*i {
			t.Fatalf("call %d got %d, want %d", i, it.twice, 2*i)
		}
	}
	if c.busy || len(c.queue) != 0 {
		t.Errorf("after the last call: busy=%v, %d queued", c.busy, len(c.queue))
	}
}
