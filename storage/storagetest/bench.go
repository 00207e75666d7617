package storagetest

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/portico-gateway/portico/storage"
)

// BenchmarkPut measures Put of a new record per iteration into reg,
// whose node "n1" is registered here. Every backend runs it from its own
// BenchmarkPut, as it runs Run.
func BenchmarkPut(b *testing.B, reg storage.Registry) {
	ctx := benchNode(b, reg)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := reg.Put(ctx, benchRecord("c"+strconv.Itoa(i))); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkDeleteMany measures deleting records in batches of 256 (the
// background deleter's batch when connections close en masse), reported
// per record.
func BenchmarkDeleteMany(b *testing.B, reg storage.Registry) {
	ctx := benchNode(b, reg)
	const batch = 256
	ids := make([]string, 0, batch)
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		ids = ids[:0]
		for range batch {
			id := "d" + strconv.Itoa(i)
			i++
			if err := reg.Put(ctx, benchRecord(id)); err != nil {
				b.Fatal(err)
			}
			ids = append(ids, id)
		}
		b.StartTimer()
		if err := reg.DeleteMany(ctx, ids); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/record")
}

// BenchmarkGet measures Get of one record.
func BenchmarkGet(b *testing.B, reg storage.Registry) {
	ctx := benchNode(b, reg)
	if err := reg.Put(ctx, benchRecord("c1")); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := reg.Get(ctx, "c1"); err != nil {
			b.Fatal(err)
		}
	}
}

func benchNode(b *testing.B, reg storage.Registry) context.Context {
	ctx := context.Background()
	if err := reg.RegisterNode(ctx, &storage.Node{ID: "n1"}); err != nil {
		b.Fatal(err)
	}
	return ctx
}

func benchRecord(id string) *storage.Record {
	now := time.Now()
	return &storage.Record{
		ID: id, Node: "n1", API: "chat", Stage: "prod", ConnectedAt: now, LastActiveAt: now,
		SourceIP: "203.0.113.7", UserAgent: "bench/1.0", Authorizer: map[string]string{"principalId": "u"},
	}
}
