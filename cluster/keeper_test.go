package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/portico-gateway/portico/connections"
	"github.com/portico-gateway/portico/metrics"
	"github.com/portico-gateway/portico/storage"
	"github.com/portico-gateway/portico/storage/memory"
)

// faultyRegistry is a real (in-memory) registry whose Heartbeat and Put
// fail on demand, and which counts the Puts that reached it.
type faultyRegistry struct {
	storage.Registry
	failBeats    atomic.Int32 // the next failBeats heartbeats fail
	failRegister atomic.Bool
	failPuts     atomic.Bool
	puts         atomic.Int32
}

var errInjected = fmt.Errorf("injected: %w", storage.ErrUnavailable)

func (f *faultyRegistry) Heartbeat(ctx context.Context, node string) error {
	if f.failBeats.Add(-1) >= 0 {
		return errInjected
	}
	return f.Registry.Heartbeat(ctx, node)
}

func (f *faultyRegistry) RegisterNode(ctx context.Context, n *storage.Node) error {
	if f.failRegister.Load() {
		return errInjected
	}
	return f.Registry.RegisterNode(ctx, n)
}

func (f *faultyRegistry) Put(ctx context.Context, r *storage.Record) error {
	if f.failPuts.Load() {
		return errInjected
	}
	f.puts.Add(1)
	return f.Registry.Put(ctx, r)
}

// keeperConn is an open connection as the keeper sees it.
type keeperConn struct{ info connections.Info }

func (c *keeperConn) Info() *connections.Info { return &c.info }
func (c *keeperConn) State() any              { return nil }
func (c *keeperConn) Send([]byte, bool) error { return nil }
func (c *keeperConn) Close(int, string) error { return nil }
func (c *keeperConn) LastActive() time.Time   { return c.info.ConnectedAt }

// testClock is a clock the test moves by hand.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// testKeeper is a keeper of a registered node, driven by the test's
// clock, tracking one API whose open connections are in hub.
type testKeeper struct {
	*Keeper
	hub *connections.Hub
	rec *Recorder
	m   *metrics.Set
}

// newTestKeeper is a keeper of a registered node with n open connections
// whose records are in an in-memory registry.
func newTestKeeper(t *testing.T, n int) (*testKeeper, *faultyRegistry, *testClock) {
	t.Helper()
	f := &faultyRegistry{Registry: memory.New()}
	clock := &testClock{t: time.Now()}
	node := &storage.Node{ID: connections.NewID(), Address: "127.0.0.1:1", StartedAt: clock.t}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	m := metrics.New(nil)
	k := NewKeeper(KeeperOptions{Registry: f, Node: node, NodeTTL: 30 * time.Second, TouchInterval: time.Second,
		Metrics: m, Logger: log, Now: clock.now})
	hub := connections.NewHub()
	d := NewDeleter(f.DeleteMany, log)
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	rec, err := NewRecorder(RecorderOptions{Handler: nopHandler{}, Hub: hub, Registry: f, Deleter: d,
		Node: node.ID, API: "a", PutFailed: k.PutFailed, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	k.Track(rec)
	ctx := context.Background()
	if err := f.RegisterNode(ctx, node); err != nil {
		t.Fatal(err)
	}
	k.lastOK = clock.t
	for i := range n {
		c := &keeperConn{info: connections.Info{ID: fmt.Sprintf("%s-%d", node.ID, i), ConnectedAt: clock.t, Stage: "s"}}
		hub.Add(c)
		if err := f.Registry.Put(ctx, rec.Record(c)); err != nil {
			t.Fatal(err)
		}
	}
	return &testKeeper{Keeper: k, hub: hub, rec: rec, m: m}, f, clock
}

// nopHandler accepts every connection.
type nopHandler struct{}

func (nopHandler) Connect(context.Context, *connections.ConnectRequest) *connections.ConnectResult {
	return &connections.ConnectResult{Stage: "s"}
}
func (nopHandler) Message(connections.Conn, connections.Message) {}
func (nopHandler) Disconnect(connections.Conn, int, string)      {}

func TestKeeperRidesOutMissedBeats(t *testing.T) {
	k, f, clock := newTestKeeper(t, 10)
	ctx := context.Background()
	if got := k.outageAfter(); got != 15*time.Second {
		t.Fatalf("outageAfter = %v with a 30 s node TTL", got)
	}
	// Two beats fail, the second 14 s after the last good one: slow, not out.
	f.failBeats.Store(2)
	clock.add(10 * time.Second)
	if k.heartbeat(ctx) {
		t.Fatal("a failing beat reported success")
	}
	clock.add(4 * time.Second)
	k.heartbeat(ctx)
	if err := k.Ready(); err != nil {
		t.Fatalf("outage declared %v after the last good beat: %v", 14*time.Second, err)
	}
	if v := testutil.ToFloat64(k.m.RegistryUp); v != 1 {
		t.Errorf("portico_registry_up = %v during missed beats", v)
	}
	clock.add(time.Second)
	if !k.heartbeat(ctx) {
		t.Fatal("the beat after the missed ones failed")
	}
	if n := f.puts.Load(); n != 0 {
		t.Errorf("missed beats without an outage put %d records again, want none", n)
	}

	// Beats failing for outageAfter declare the outage...
	f.failBeats.Store(1 << 20)
	clock.add(10 * time.Second)
	k.heartbeat(ctx)
	if err := k.Ready(); err != nil {
		t.Fatalf("outage declared after one failed beat: %v", err)
	}
	clock.add(5 * time.Second)
	k.heartbeat(ctx)
	if err := k.Ready(); !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("ready() = %v after 15 s of failed beats, want an outage", err)
	}
	if v := testutil.ToFloat64(k.m.RegistryUp); v != 0 {
		t.Errorf("portico_registry_up = %v during the outage", v)
	}
	// ...and the first good beat after it puts every connection back.
	f.failBeats.Store(0)
	clock.add(time.Second)
	if !k.heartbeat(ctx) {
		t.Fatal("beat after the outage failed")
	}
	if err := k.Ready(); err != nil {
		t.Errorf("ready() = %v after recovery", err)
	}
	if v := testutil.ToFloat64(k.m.RegistryUp); v != 1 {
		t.Errorf("portico_registry_up = %v after recovery", v)
	}
	if n := f.puts.Load(); n != 10 {
		t.Errorf("recovery put %d records, want the 10 open connections", n)
	}
}

func TestKeeperDeclaresLapseAtOnce(t *testing.T) {
	k, f, clock := newTestKeeper(t, 3)
	ctx := context.Background()
	// The registry forgot the node (an empty registry came back), and
	// the node cannot register again yet.
	f.Registry = memory.New()
	f.failRegister.Store(true)
	clock.add(10 * time.Second)
	if k.heartbeat(ctx) {
		t.Fatal("a beat that could not register the forgotten node reported success")
	}
	if err := k.Ready(); err == nil {
		t.Fatal("a node the registry forgot, unable to register again, is still ready")
	}
	f.failRegister.Store(false)
	clock.add(time.Second)
	if !k.heartbeat(ctx) {
		t.Fatal("beat after registration came back failed")
	}
	if err := k.Ready(); err != nil {
		t.Errorf("ready() = %v after registering again", err)
	}
	for i := range 3 {
		if _, err := f.Get(ctx, fmt.Sprintf("%s-%d", k.node.ID, i)); err != nil {
			t.Errorf("connection %d after re-registration: %v", i, err)
		}
	}
}

func TestKeeperWritesFailedPutsAgain(t *testing.T) {
	k, f, clock := newTestKeeper(t, 0)
	ctx := context.Background()
	open := &keeperConn{info: connections.Info{ID: k.node.ID + "-open", ConnectedAt: clock.t}}
	k.hub.Add(open)
	// The router could not write either record; one connection closed since.
	k.PutFailed(open.info.ID)
	k.PutFailed(k.node.ID + "-closed")
	if v := testutil.ToFloat64(k.m.RegistryPending); v != 2 {
		t.Errorf("portico_registry_pending_records = %v, want 2", v)
	}

	// While writes still fail, the beat itself succeeds (no outage) and
	// the open connection's record stays pending.
	f.failPuts.Store(true)
	clock.add(10 * time.Second)
	if !k.heartbeat(ctx) {
		t.Error("a good beat whose pending writes failed reported failure")
	}
	if err := k.Ready(); err != nil {
		t.Errorf("failed writes declared an outage: %v", err)
	}
	if _, err := f.Get(ctx, open.info.ID); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Get before the repair = %v, want ErrNotFound", err)
	}
	if v := testutil.ToFloat64(k.m.RegistryPending); v != 1 {
		t.Errorf("portico_registry_pending_records = %v after a failed write, want 1 (the closed one dropped)", v)
	}
	f.failPuts.Store(false)
	clock.add(10 * time.Second)
	k.heartbeat(ctx)
	if _, err := f.Get(ctx, open.info.ID); err != nil {
		t.Errorf("the open connection's record after the repair: %v", err)
	}
	if n := f.puts.Load(); n != 1 {
		t.Errorf("%d puts, want 1", n)
	}
	if v := testutil.ToFloat64(k.m.RegistryPending); v != 0 {
		t.Errorf("portico_registry_pending_records = %v after the repair, want 0", v)
	}
	clock.add(10 * time.Second)
	k.heartbeat(ctx)
	if n := f.puts.Load(); n != 1 {
		t.Errorf("%d puts after the next beat, want still 1", n)
	}
}
