package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portico-gateway/portico/storage"
	"github.com/portico-gateway/portico/storage/memory"
)

// flakyRegistry fails Delete while down is set, and reports each failure.
type flakyRegistry struct {
	*memory.Registry
	down     atomic.Bool
	failures chan string
}

func (f *flakyRegistry) Delete(ctx context.Context, id string) error {
	return f.DeleteMany(ctx, []string{id})
}

func (f *flakyRegistry) DeleteMany(ctx context.Context, ids []string) error {
	if f.down.Load() {
		for _, id := range ids {
			f.failures <- id
		}
		return storage.ErrUnavailable
	}
	return f.Registry.DeleteMany(ctx, ids)
}

// A deletion that fails while the registry is away is tried again once
// it is back, so a closed connection's record does not outlive it; close
// waits for the queued deletions.
func TestDeleterRetriesFailedDeletions(t *testing.T) {
	ctx := context.Background()
	reg := &flakyRegistry{Registry: memory.New(), failures: make(chan string, 16)}
	if err := reg.RegisterNode(ctx, &storage.Node{ID: "n1"}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"c1", "c2"} {
		if err := reg.Put(ctx, &storage.Record{ID: id, Node: "n1"}); err != nil {
			t.Fatal(err)
		}
	}
	d := newDeleter(reg.DeleteMany, slog.New(slog.NewTextHandler(io.Discard, nil)), 20*time.Millisecond, deleteQueue)

	reg.down.Store(true)
	d.Delete("c1")
	if got := <-reg.failures; got != "c1" {
		t.Fatalf("failed deletion of %q, want c1", got)
	}
	reg.down.Store(false)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := reg.Get(ctx, "c1"); errors.Is(err, storage.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the failed deletion of c1 was not retried")
		}
		time.Sleep(10 * time.Millisecond) // the retry runs on its own ticker: poll
	}

	d.Delete("c2")
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Get(ctx, "c2"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("after close, c2's record: %v, want it deleted", err)
	}
	// After close a deletion runs inline.
	if err := reg.Put(ctx, &storage.Record{ID: "c3", Node: "n1"}); err != nil {
		t.Fatal(err)
	}
	d.Delete("c3")
	if _, err := reg.Get(ctx, "c3"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("deletion after close: %v, want it deleted", err)
	}
}

// blockingRegistry holds every deletion until release is closed, and
// counts the calls.
type blockingRegistry struct {
	*memory.Registry
	started chan struct{}
	release chan struct{}
	calls   atomic.Int32
}

func (b *blockingRegistry) Delete(ctx context.Context, id string) error {
	return b.DeleteMany(ctx, []string{id})
}

func (b *blockingRegistry) DeleteMany(ctx context.Context, ids []string) error {
	b.calls.Add(1)
	b.started <- struct{}{}
	<-b.release
	return b.Registry.DeleteMany(ctx, ids)
}

// delete never waits (it runs on a connection server's loop): with every
// worker stuck and the queue full, the ids wait for a retry round, and
// all are deleted once the registry answers again.
func TestDeleterNeverBlocks(t *testing.T) {
	ctx := context.Background()
	reg := &blockingRegistry{Registry: memory.New(), started: make(chan struct{}, 64), release: make(chan struct{})}
	if err := reg.RegisterNode(ctx, &storage.Node{ID: "n1"}); err != nil {
		t.Fatal(err)
	}
	const n = deleteWorkers + 2 + 10 // the workers, a queue of 2, and ten more
	ids := make([]string, n)
	for i := range ids {
		ids[i] = "c" + string(rune('a'+i))
		if err := reg.Put(ctx, &storage.Record{ID: ids[i], Node: "n1"}); err != nil {
			t.Fatal(err)
		}
	}
	d := newDeleter(reg.DeleteMany, slog.New(slog.NewTextHandler(io.Discard, nil)), 20*time.Millisecond, 2)
	for i := range deleteWorkers {
		d.Delete(ids[i])
		<-reg.started // every worker is now stuck in Delete
	}
	returned := make(chan struct{})
	go func() {
		for _, id := range ids[deleteWorkers:] {
			d.Delete(id)
		}
		close(returned)
	}()
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("delete blocked on a full queue")
	}
	close(reg.release)
	deadline := time.Now().Add(5 * time.Second)
	for _, id := range ids {
		for {
			if _, err := reg.Get(ctx, id); errors.Is(err, storage.ErrNotFound) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s was never deleted", id)
			}
			time.Sleep(10 * time.Millisecond) // retries run on their own ticker: poll
		}
	}
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// A burst of closes is deleted in batches: with the workers busy, the ids
// that queue up meanwhile go out a batch at a time, not one call each.
func TestDeleterBatchesBursts(t *testing.T) {
	ctx := context.Background()
	reg := &blockingRegistry{Registry: memory.New(), started: make(chan struct{}, 1024), release: make(chan struct{})}
	if err := reg.RegisterNode(ctx, &storage.Node{ID: "n1"}); err != nil {
		t.Fatal(err)
	}
	const n = 1000
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("c%d", i)
		if err := reg.Put(ctx, &storage.Record{ID: ids[i], Node: "n1"}); err != nil {
			t.Fatal(err)
		}
	}
	d := newDeleter(reg.DeleteMany, slog.New(slog.NewTextHandler(io.Discard, nil)), time.Hour, deleteQueue)
	for i := range deleteWorkers {
		d.Delete(ids[i])
		<-reg.started // every worker is now stuck with one id
	}
	for _, id := range ids[deleteWorkers:] {
		d.Delete(id)
	}
	close(reg.release)
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if _, err := reg.Get(ctx, id); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("%s: %v, want it deleted", id, err)
		}
	}
	// 8 single-id calls, then 992 ids in batches of at most 256: at
	// least 4 calls, and a few more when workers split the queue.
	if got, most := reg.calls.Load(), int32(deleteWorkers+(n-deleteWorkers)/deleteBatch+deleteWorkers); got > most {
		t.Errorf("%d registry calls for %d deletions, want at most %d", got, n, most)
	}
}
