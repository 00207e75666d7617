package cluster

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/portico-gateway/portico/channels"
	"github.com/portico-gateway/portico/storage"
	"github.com/portico-gateway/portico/storage/memory"
	"github.com/portico-gateway/portico/storage/storagetest"
)

// got is what a bus handed to its registry.
type got struct {
	k channels.Key
	m channels.BusMessage
}

// startBus starts a bus of node on client; what it reads arrives on the
// returned channel.
func startBus(t *testing.T, client goredis.UniversalClient, node, prefix string, reg storage.Registry) (*ChannelBus, chan got) {
	return startBusAt(t, client, node, prefix, reg, nil)
}

func startBusAt(t *testing.T, client goredis.UniversalClient, node, prefix string, reg storage.Registry, now func() time.Time) (*ChannelBus, chan got) {
	t.Helper()
	b, err := NewChannelBus(ChannelBusOptions{Client: client, Node: node, Prefix: prefix, Registry: reg, NodeTTL: time.Second, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan got, 1000)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.Start(ctx, recorder(out)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Error(err)
		}
	})
	return b, out
}

// recorder hands what a bus receives to a channel.
type recorder chan got

func (r recorder) Receive(k channels.Key, m *channels.BusMessage) { r <- got{k, *m} }
func (r recorder) Resync(channels.Key)                            {}
func (r recorder) Departed(channels.Key, []channels.Member)       {}

func waitReady(t *testing.T, ready <-chan struct{}) {
	t.Helper()
	select {
	case <-ready:
	case <-time.After(5 * time.Second):
		t.Fatal("the watch never became ready")
	}
}

func receive(t *testing.T, c chan got) got {
	t.Helper()
	select {
	case g := <-c:
		return g
	case <-time.After(5 * time.Second):
		t.Fatal("nothing arrived")
		return got{}
	}
}

// commandCalls is how many times Redis at addr ran cmd.
func commandCalls(t *testing.T, c *goredis.Client, cmd string) int {
	t.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(info, "\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_"+cmd+":calls="); ok {
			n, _ := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
			return n
		}
	}
	return 0
}

// A burst of first joins costs a few SUBSCRIBEs, not one per channel; a
// channel watched twice stays watched until both are gone.
func TestChannelBusWatchesInBatches(t *testing.T) {
	client := goredis.NewClient(&goredis.Options{Addr: storagetest.RedisAddr(t)})
	t.Cleanup(func() { _ = client.Close() })
	prefix := fmt.Sprintf("t%d:", time.Now().UnixNano())
	reg := memory.New()
	a, in := startBus(t, client, "a", prefix, reg)
	pub, _ := startBus(t, client, "p", prefix, reg)

	before := commandCalls(t, client, "subscribe")
	var readies []<-chan struct{}
	for i := range 200 {
		readies = append(readies, a.Watch(channels.Key{API: "api", Stage: "dev", Name: fmt.Sprint("c", i)}))
	}
	for _, r := range readies {
		waitReady(t, r)
	}
	if n := commandCalls(t, client, "subscribe") - before; n > 3 {
		t.Errorf("200 watches cost %d SUBSCRIBEs", n)
	}

	ctx := context.Background()
	k := channels.Key{API: "api", Stage: "dev", Name: "c7"}
	a.Watch(k) // a second member
	a.Unwatch(k)
	n, err := pub.Publish(ctx, k, &channels.BusMessage{Kind: channels.KindPublish, From: "p", Data: []byte("one")}, channels.HistoryConfig{})
	if err != nil || n != 1 {
		t.Fatalf("publish: %d nodes, %v", n, err)
	}
	if g := receive(t, in); g.k != k || string(g.m.Data) != "one" || g.m.Seq != 1 || g.m.From != "p" {
		t.Fatalf("received %+v", g)
	}
	a.Unwatch(k)
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := pub.Publish(ctx, k, &channels.BusMessage{Kind: channels.KindPublish, Data: []byte("two")}, channels.HistoryConfig{})
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break // Redis no longer has the subscription
		}
		if time.Now().After(deadline) {
			t.Fatal("still watched after its last Unwatch")
		}
	}
}

// History: offsets from one counter, an epoch that stays, coverage by
// size; a lost history gets a new epoch.
func TestChannelBusHistory(t *testing.T) {
	client := goredis.NewClient(&goredis.Options{Addr: storagetest.RedisAddr(t)})
	t.Cleanup(func() { _ = client.Close() })
	prefix := fmt.Sprintf("t%d:", time.Now().UnixNano())
	b, _ := startBus(t, client, "a", prefix, memory.New())
	ctx := context.Background()
	k := channels.Key{API: "api", Stage: "dev", Name: "hist"}
	h := channels.HistoryConfig{Size: 3}
	var epoch string
	for i := 1; i <= 5; i++ {
		m := &channels.BusMessage{Kind: channels.KindPublish, Data: []byte(fmt.Sprint(i)), Binary: i == 5}
		if _, err := b.Publish(ctx, k, m, h); err != nil {
			t.Fatal(err)
		}
		if m.Seq != uint64(i) || m.Epoch == "" || (epoch != "" && m.Epoch != epoch) {
			t.Fatalf("publish %d numbered %d in epoch %q (first epoch %q)", i, m.Seq, m.Epoch, epoch)
		}
		epoch = m.Epoch
	}
	for _, c := range []struct {
		after   uint64
		covered bool
		n       int
	}{{0, false, 0}, {1, false, 0}, {2, true, 3}, {4, true, 1}, {5, true, 0}, {6, false, 0}} {
		rp, err := b.Since(ctx, k, h, c.after)
		if err != nil {
			t.Fatal(err)
		}
		if rp.Covered != c.covered || len(rp.Entries) != c.n || rp.Epoch != epoch || rp.Last != 5 {
			t.Errorf("since %d: %+v", c.after, rp)
		}
		for i, e := range rp.Entries {
			if e.Seq != c.after+1+uint64(i) || string(e.Data) != fmt.Sprint(e.Seq) || e.Binary != (e.Seq == 5) {
				t.Errorf("since %d: entry %d is %+v", c.after, i, e)
			}
		}
	}
	if e, last, err := b.Position(ctx, k); err != nil || e != epoch || last != 5 {
		t.Errorf("position %q %d %v", e, last, err)
	}
	// The history is lost (evicted, Redis restarted empty): a new epoch,
	// offsets from 1.
	if err := client.Del(ctx, b.channel(k)+":epoch").Err(); err != nil {
		t.Fatal(err)
	}
	m := &channels.BusMessage{Kind: channels.KindPublish, Data: []byte("x")}
	if _, err := b.Publish(ctx, k, m, h); err != nil {
		t.Fatal(err)
	}
	if m.Epoch == epoch || m.Seq != 1 {
		t.Errorf("after the loss: offset %d in epoch %q (was %q)", m.Seq, m.Epoch, epoch)
	}
}

// Member lists show members of live nodes only, and forget the others
// once they have not been live for a node TTL.
func TestChannelBusMembers(t *testing.T) {
	client := goredis.NewClient(&goredis.Options{Addr: storagetest.RedisAddr(t)})
	t.Cleanup(func() { _ = client.Close() })
	prefix := fmt.Sprintf("t%d:", time.Now().UnixNano())
	reg := memory.New()
	ctx := context.Background()
	for _, n := range []string{"a", "b"} {
		if err := reg.RegisterNode(ctx, &storage.Node{ID: n}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	clock := time.Unix(1_800_000_000, 0)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	a, _ := startBusAt(t, client, "a", prefix, reg, now)
	ghost, _ := startBus(t, client, "ghost", prefix, reg) // never registered: not live
	k := channels.Key{API: "api", Stage: "dev", Name: "room"}
	a.Join(k, channels.Member{ConnectionID: "c1", PrincipalID: "alice", ConnectedAt: 42})
	a.Join(k, channels.Member{ConnectionID: "c2"})
	a.Leave(k, "c2")
	ghost.Join(k, channels.Member{ConnectionID: "c3"})
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, _ := client.HLen(ctx, a.channel(k)+":members").Result()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d entries written, want c1 and c3", n)
		}
		time.Sleep(10 * time.Millisecond) // the flusher writes in the background; nothing to wait on
	}
	ms, err := a.Members(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || ms[0] != (channels.Member{ConnectionID: "c1", PrincipalID: "alice", ConnectedAt: 42}) {
		t.Errorf("members %+v, want c1 alone", ms)
	}
	if n, _ := client.HLen(ctx, a.channel(k)+":members").Result(); n != 2 {
		t.Errorf("the entry of a node not live for a moment was removed at once: %d entries", n)
	}
	mu.Lock()
	clock = clock.Add(1500 * time.Millisecond) // past the node TTL
	mu.Unlock()
	if ms, err := a.Members(ctx, k); err != nil || len(ms) != 1 {
		t.Fatalf("members %+v %v", ms, err)
	}
	if n, _ := client.HLen(ctx, a.channel(k)+":members").Result(); n != 1 {
		t.Errorf("the dead node's entry was not removed a node TTL later: %d entries", n)
	}
}

// With Redis Cluster the bus uses sharded pub/sub: SPUBLISH reaches the
// watching node, and counts it.
func TestChannelBusSharded(t *testing.T) {
	addrs := storagetest.RedisCluster(t)
	client := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: addrs})
	t.Cleanup(func() { _ = client.Close() })
	prefix := fmt.Sprintf("t%d:", time.Now().UnixNano())
	reg := memory.New()
	a, in := startBus(t, client, "a", prefix, reg)
	pub, _ := startBus(t, client, "p", prefix, reg)
	if !a.sharded {
		t.Fatal("a cluster client must use sharded pub/sub")
	}
	ctx := context.Background()
	// Channels over several slots, hence several masters, watched at
	// once (one round: several slots on one master).
	var keys []channels.Key
	var readies []<-chan struct{}
	for i := range 12 {
		k := channels.Key{API: "api", Stage: "dev", Name: fmt.Sprint("room:", i)}
		keys = append(keys, k)
		readies = append(readies, a.Watch(k))
	}
	for _, r := range readies {
		waitReady(t, r)
	}
	for i, k := range keys {
		m := &channels.BusMessage{Kind: channels.KindPublish, From: "p", Data: []byte(fmt.Sprint(i))}
		n, err := pub.Publish(ctx, k, m, channels.HistoryConfig{Size: 10})
		if err != nil || n != 1 {
			t.Fatalf("publish to %s: %d nodes, %v", k.Name, n, err)
		}
		if g := receive(t, in); g.k != k || string(g.m.Data) != fmt.Sprint(i) || g.m.Seq != 1 || g.m.Epoch != m.Epoch {
			t.Fatalf("received %+v for %s", g, k.Name)
		}
		if rp, err := pub.Since(ctx, k, channels.HistoryConfig{Size: 10}, 0); err != nil || !rp.Covered || len(rp.Entries) != 1 {
			t.Fatalf("history of %s: %+v %v", k.Name, rp, err)
		}
	}
	a.mu.Lock()
	subs := len(a.subs)
	a.mu.Unlock()
	if subs < 2 {
		t.Errorf("%d subscriptions for channels over 3 masters", subs)
	}
	a.Presence(keys[0], &channels.BusMessage{Kind: channels.KindPresence, Data: []byte("p")})
	if g := receive(t, in); g.m.Kind != channels.KindPresence || string(g.m.Data) != "p" {
		t.Fatalf("presence: %+v", g)
	}
	// Unwatched at once, none is received any more.
	for _, k := range keys {
		a.Unwatch(k)
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, k := range keys {
		for {
			n, err := pub.Publish(ctx, k, &channels.BusMessage{Kind: channels.KindPublish, Data: []byte("late")}, channels.HistoryConfig{})
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s still watched after Unwatch", k.Name)
			}
		}
	}
}
