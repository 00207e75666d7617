package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/portico-gateway/portico/storage"
	"github.com/portico-gateway/portico/storage/storagetest"
)

func TestMain(m *testing.M) {
	// After failed dials the client probes the server from a goroutine
	// that notices Close only after its current one-second sleep.
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial"))
}

func uniquePrefix(tb testing.TB) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	return "portico-test-" + hex.EncodeToString(b) + ":"
}

// open returns a registry under a fresh prefix; its keys are removed when
// tb ends.
func open(tb testing.TB, o Options) *Registry {
	tb.Helper()
	o.Prefix = uniquePrefix(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reg, err := New(ctx, o)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() { dropPrefix(tb, o, reg.prefix) })
	return reg
}

// dropPrefix deletes every key under prefix, on every master.
func dropPrefix(tb testing.TB, o Options, prefix string) {
	c := goredis.NewUniversalClient(&goredis.UniversalOptions{Addrs: o.Addrs, IsClusterMode: o.Cluster})
	defer c.Close()
	ctx := context.Background()
	drop := func(ctx context.Context, c *goredis.Client) error {
		iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			if err := c.Del(ctx, iter.Val()).Err(); err != nil {
				return err
			}
		}
		return iter.Err()
	}
	var err error
	switch c := c.(type) {
	case *goredis.ClusterClient:
		err = c.ForEachMaster(ctx, drop)
	case *goredis.Client:
		err = drop(ctx, c)
	}
	if err != nil {
		tb.Errorf("dropping test keys: %v", err)
	}
}

func TestConformance(t *testing.T) {
	addr := storagetest.RedisAddr(t)
	storagetest.Run(t, func(t *testing.T, nodeTTL time.Duration) storage.Registry {
		return open(t, Options{Addrs: []string{addr}, NodeTTL: nodeTTL})
	})
}

func TestClusterConformance(t *testing.T) {
	addrs := storagetest.RedisCluster(t)
	storagetest.Run(t, func(t *testing.T, nodeTTL time.Duration) storage.Registry {
		return open(t, Options{Addrs: addrs, NodeTTL: nodeTTL})
	})
}

// A cluster reached through one seed address, as behind a configuration
// endpoint.
func TestClusterSingleSeed(t *testing.T) {
	addrs := storagetest.RedisCluster(t)
	reg := open(t, Options{Addrs: addrs[:1], Cluster: true})
	defer reg.Close()
	ctx := context.Background()
	if err := reg.RegisterNode(ctx, &storage.Node{ID: "n1"}); err != nil {
		t.Fatal(err)
	}
	for i := range 50 { // ids spread over every master's slots
		id := "c" + strconv.Itoa(i)
		if err := reg.Put(ctx, &storage.Record{ID: id, Node: "n1"}); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := reg.ListByNode(ctx, "n1")
	if err != nil || len(recs) != 50 {
		t.Fatalf("ListByNode = %d records, %v", len(recs), err)
	}
}

// Records outlive their lease as long as their node heartbeats, and Redis
// reclaims them once it stops.
func TestLeaseRenewal(t *testing.T) {
	addr := storagetest.RedisAddr(t)
	reg := open(t, Options{Addrs: []string{addr}, NodeTTL: 300 * time.Millisecond, RecordTTL: 600 * time.Millisecond})
	defer reg.Close()
	storagetest.HeartbeatKeepsRecord(t, reg, 2*time.Second, 50*time.Millisecond)
	ctx := context.Background()
	deadline := time.Now().Add(5 * time.Second)
	for reg.c.Exists(ctx, reg.recordKey("c1"), reg.connsKey("n1"), reg.nodeKey("n1")).Val() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("a dead node's keys were not reclaimed")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A late write that reaches Redis after the tombstone expired is stored
// again: the tombstone period bounds how late a write may be.
func TestTombstoneExpires(t *testing.T) {
	addr := storagetest.RedisAddr(t)
	reg := open(t, Options{Addrs: []string{addr}, TombstoneTTL: 100 * time.Millisecond})
	defer reg.Close()
	ctx := context.Background()
	if err := reg.RegisterNode(ctx, &storage.Node{ID: "n1"}); err != nil {
		t.Fatal(err)
	}
	if err := reg.Delete(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if ttl := reg.c.PTTL(ctx, reg.recordKey("c1")).Val(); ttl <= 0 || ttl > 100*time.Millisecond {
		t.Fatalf("tombstone TTL = %v", ttl)
	}
	for reg.c.Exists(ctx, reg.recordKey("c1")).Val() != 0 {
		time.Sleep(20 * time.Millisecond)
	}
	if err := reg.Put(ctx, &storage.Record{ID: "c1", Node: "n1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Get(ctx, "c1"); err != nil {
		t.Fatalf("Get: %v", err)
	}
}

func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestUnavailable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addr := closedAddr(t)
	if _, err := New(ctx, Options{Addrs: []string{addr}}); !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("New against a closed port = %v, want ErrUnavailable", err)
	}
	// Without client retries, so that every call fails at once.
	c := goredis.NewClient(&goredis.Options{Addr: addr, MaxRetries: -1, DialerRetries: 1})
	defer c.Close()
	reg, err := newRegistry(Options{Client: c})
	if err != nil {
		t.Fatal(err)
	}
	checks := map[string]error{
		"Put":        reg.Put(ctx, &storage.Record{ID: "c", Node: "n"}),
		"Delete":     reg.Delete(ctx, "c"),
		"TouchMany":  reg.TouchMany(ctx, []string{"c"}, time.Now()),
		"Heartbeat":  reg.Heartbeat(ctx, "n"),
		"RegisterNd": reg.RegisterNode(ctx, &storage.Node{ID: "n"}),
	}
	_, checks["Get"] = reg.Get(ctx, "c")
	_, checks["ListByNode"] = reg.ListByNode(ctx, "n")
	_, checks["Nodes"] = reg.Nodes(ctx)
	for op, err := range checks {
		if !errors.Is(err, storage.ErrUnavailable) {
			t.Errorf("%s = %v, want ErrUnavailable", op, err)
		}
	}
}

func TestNewFromEnv(t *testing.T) {
	addr := storagetest.RedisAddr(t)
	t.Setenv(EnvAddr, addr)
	t.Setenv(EnvPassword, "")
	reg, err := NewFromEnv(context.Background())
	if err != nil {
		t.Fatalf("NewFromEnv: %v", err)
	}
	defer reg.Close()
	if reg.prefix != DefaultPrefix || reg.nodeTTL != storage.DefaultNodeTTL ||
		reg.recordTTL != storage.RecordTTLFactor*storage.DefaultNodeTTL {
		t.Fatalf("defaults: prefix %q node TTL %v record TTL %v", reg.prefix, reg.nodeTTL, reg.recordTTL)
	}
}

func TestOptionErrors(t *testing.T) {
	if _, err := newRegistry(Options{Prefix: "a{b}"}); err == nil {
		t.Error("prefix with braces accepted")
	}
	if _, err := newRegistry(Options{Addrs: []string{"a:1", "b:1"}, DB: 2}); err == nil {
		t.Error("cluster with DB 2 accepted")
	}
}

func BenchmarkPut(b *testing.B) {
	reg := open(b, Options{Addrs: []string{storagetest.RedisAddr(b)}})
	b.Cleanup(func() { reg.Close() })
	storagetest.BenchmarkPut(b, reg)
}

func BenchmarkDeleteMany(b *testing.B) {
	reg := open(b, Options{Addrs: []string{storagetest.RedisAddr(b)}})
	b.Cleanup(func() { reg.Close() })
	storagetest.BenchmarkDeleteMany(b, reg)
}

func BenchmarkGet(b *testing.B) {
	reg := open(b, Options{Addrs: []string{storagetest.RedisAddr(b)}})
	b.Cleanup(func() { reg.Close() })
	storagetest.BenchmarkGet(b, reg)
}

// Concurrent Puts share pipelines (Registry.puts, a Coalescer); each must land, with its
// node's set, and each caller must hear its own result.
func TestConcurrentPutsBatch(t *testing.T) {
	addr := storagetest.RedisAddr(t)
	reg := open(t, Options{Addrs: []string{addr}})
	defer reg.Close()
	ctx := context.Background()
	for _, n := range []string{"n1", "n2"} {
		if err := reg.RegisterNode(ctx, &storage.Node{ID: n}); err != nil {
			t.Fatal(err)
		}
	}
	const count = 2000
	var wg sync.WaitGroup
	errs := make([]error, count)
	for i := range count {
		wg.Add(1)
		go func() {
			defer wg.Done()
			node := []string{"n1", "n2"}[i%2]
			errs[i] = reg.Put(ctx, &storage.Record{ID: fmt.Sprintf("c%d", i), Node: node, API: "a", Stage: "s"})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	for i := range count {
		rec, err := reg.Get(ctx, fmt.Sprintf("c%d", i))
		if err != nil || rec.Node != []string{"n1", "n2"}[i%2] {
			t.Fatalf("get c%d: %+v, %v", i, rec, err)
		}
	}
	for _, n := range []string{"n1", "n2"} {
		if got := reg.c.SCard(ctx, reg.connsKey(n)).Val(); got != count/2 {
			t.Errorf("set of %s holds %d ids, want %d", n, got, count/2)
		}
	}
	// A put whose context has ended fails, and so do the ones sharing its
	// pipeline; none hangs.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := reg.Put(cctx, &storage.Record{ID: "late", Node: "n1"}); err == nil {
		t.Error("put with a cancelled context succeeded")
	}
}

// A heartbeat does not queue for a pooled connection: with every one of
// them busy (here in pipelines blocked in BLPOP, as they are behind long
// pipelines when many nodes close connections at once), the beat still
// answers.
func TestHeartbeatOwnConnection(t *testing.T) {
	reg := open(t, Options{Addrs: []string{storagetest.RedisAddr(t)}})
	defer reg.Close()
	ctx := context.Background()
	if err := reg.RegisterNode(ctx, &storage.Node{ID: "n1"}); err != nil {
		t.Fatal(err)
	}
	c := reg.Client().(*goredis.Client)
	// Pipelines take the client's pipeline pool first and spill over to
	// its main pool: block both.
	pipelines := c.Options().PipelinePoolSize
	if pipelines <= 0 {
		pipelines = goredis.DefaultPipelinePoolSize
	}
	size := c.Options().PoolSize + pipelines
	var wg sync.WaitGroup
	defer wg.Wait()
	for range size {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = c.Pipelined(ctx, func(p goredis.Pipeliner) error {
				p.BLPop(ctx, 3*time.Second, reg.prefix+"never")
				return nil
			})
		}()
	}
	// Every pooled connection is taken once the server sees them blocked.
	for deadline := time.Now().Add(5 * time.Second); ; {
		n, err := reg.beat.Info(ctx, "clients").Result()
		if err != nil {
			t.Fatal(err)
		}
		if blocked := infoField(n, "blocked_clients"); blocked >= size {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d BLPOPs not all blocked: %s", size, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	bctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	start := time.Now()
	if err := reg.Heartbeat(bctx, "n1"); err != nil {
		t.Fatalf("Heartbeat with the pool busy: %v (after %v)", err, time.Since(start))
	}
}

// infoField reads an integer field of an INFO answer (-1 if absent).
func infoField(info, name string) int {
	for _, l := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(l, name+":"); ok {
			if n, err := strconv.Atoi(v); err == nil {
				return n
			}
		}
	}
	return -1
}
