package memory_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/portico-gateway/portico/storage"
	"github.com/portico-gateway/portico/storage/memory"
	"github.com/portico-gateway/portico/storage/storagetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T, nodeTTL time.Duration) storage.Registry {
		return memory.New(memory.WithNodeTTL(nodeTTL))
	})
}

// Without a node TTL (the single-process default) records need no
// registered node and never expire.
func TestLivenessOff(t *testing.T) {
	ctx := context.Background()
	reg := memory.New()
	rec := &storage.Record{ID: "c1", Node: "never-registered"}
	if err := reg.Put(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Get(ctx, "c1"); err != nil {
		t.Fatalf("Get: %v", err)
	}
	if recs, _ := reg.ListByNode(ctx, "never-registered"); len(recs) != 1 {
		t.Fatalf("ListByNode = %v", recs)
	}
}

// Tombstones are swept once their period is over.
func TestTombstonesExpire(t *testing.T) {
	ctx := context.Background()
	reg := memory.New(memory.WithTombstoneTTL(50 * time.Millisecond))
	if err := reg.Delete(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if err := reg.Put(ctx, &storage.Record{ID: "c1", Node: "n"}); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Get(ctx, "c1"); err == nil {
		t.Fatal("Put within the tombstone period was not ignored")
	}
	time.Sleep(60 * time.Millisecond)
	if err := reg.Put(ctx, &storage.Record{ID: "c1", Node: "n"}); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Get(ctx, "c1"); err != nil {
		t.Fatalf("Put after the tombstone period: %v", err)
	}
}

func BenchmarkPut(b *testing.B) { storagetest.BenchmarkPut(b, memory.New()) }

func BenchmarkGet(b *testing.B) { storagetest.BenchmarkGet(b, memory.New()) }
