package cluster

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/portico-gateway/portico/storage"
	"github.com/portico-gateway/portico/storage/memory"
	"github.com/portico-gateway/portico/storage/storagetest"
)

// TestMain also checks that Close leaves no goroutine behind: neither the
// serve loop nor an answer worker.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// pair is two relays on one Redis: from forwards to owner, which holds
// every connection whose id starts with "c".
type pair struct {
	from, owner *Relay
	client      *goredis.Client
	prefix      string
}

func newPair(t *testing.T, local func(*Op) Result) *pair {
	t.Helper()
	client := goredis.NewClient(&goredis.Options{Addr: storagetest.RedisAddr(t)})
	t.Cleanup(func() { _ = client.Close() })
	reg := memory.New()
	ctx := context.Background()
	for i := range 100 {
		if err := reg.Put(ctx, &storage.Record{ID: fmt.Sprintf("c%d", i), Node: "owner", Stage: "dev"}); err != nil {
			t.Fatal(err)
		}
	}
	p := &pair{client: client, prefix: fmt.Sprintf("test%d:", time.Now().UnixNano())}
	var err error
	p.owner, err = NewRelay(ctx, RelayOptions{Client: client, Node: "owner", Prefix: p.prefix, Registry: reg, Local: local, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	p.from, err = NewRelay(ctx, RelayOptions{Client: client, Node: "from", Prefix: p.prefix, Registry: reg, Timeout: 2 * time.Second,
		Local: func(*Op) Result { return Result{Status: http.StatusGone} }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.from.Close(); err != nil {
			t.Error(err)
		}
		if err := p.owner.Close(); err != nil {
			t.Error(err)
		}
	})
	return p
}

func (p *pair) post(id string) Result {
	res, ok := p.from.Forward(context.Background(), &Op{Kind: "post", Stage: "dev", ID: id, Data: []byte("hi " + id)})
	if !ok {
		return Result{Status: -1}
	}
	return res
}

// Requests that wait on their connection do not hold up the others: each
// gets an answer worker of its own, and workers are reused afterwards.
func TestRelayAnswersConcurrently(t *testing.T) {
	const n = 20
	entered := make(chan string, n)
	release := make(chan struct{})
	p := newPair(t, func(o *Op) Result {
		entered <- o.ID
		<-release
		return Result{Status: http.StatusOK}
	})
	var wg sync.WaitGroup
	results := make([]Result, n)
	for i := range n {
		wg.Go(func() { results[i] = p.post(fmt.Sprintf("c%d", i)) })
	}
	timeout := time.After(5 * time.Second)
	for range n {
		select {
		case <-entered:
		case <-timeout:
			t.Fatal("the owner did not run all requests at once: a waiting request holds up the others")
		}
	}
	if got := p.owner.answerers.Load(); got != n {
		t.Errorf("%d answer workers for %d waiting requests", got, n)
	}
	close(release)
	wg.Wait()
	for i, res := range results {
		if res.Status != http.StatusOK {
			t.Errorf("post %d: %+v", i, res)
		}
	}
	// The workers stay for the next requests.
	for i := range 50 {
		if res := p.post(fmt.Sprintf("c%d", i)); res.Status != http.StatusOK {
			t.Fatalf("post after the burst: %+v", res)
		}
		<-entered
	}
	if got := p.owner.answerers.Load(); got > n {
		t.Errorf("%d answer workers after sequential posts; the %d idle ones were not reused", got, n)
	}
}

// A message this node cannot read (another envelope version, garbage) is
// dropped without stopping the relay.
func TestRelaySurvivesMalformedMessages(t *testing.T) {
	p := newPair(t, func(*Op) Result { return Result{Status: http.StatusOK} })
	ctx := context.Background()
	for _, msg := range []string{"", "{\"seq\":1}", "\x02\x01\x01\x01a"} {
		if err := p.client.Publish(ctx, p.prefix+"relay:owner", msg).Err(); err != nil {
			t.Fatal(err)
		}
		if err := p.client.Publish(ctx, p.prefix+"relay:from", msg).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if res := p.post("c1"); res.Status != http.StatusOK {
		t.Fatalf("post after malformed messages: %+v", res)
	}
}

// Close stops answer workers that are idle and waits for busy ones, whose
// answers still reach the caller.
func TestRelayCloseWaitsForWorkers(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	p := newPair(t, func(*Op) Result {
		entered <- struct{}{}
		<-release
		return Result{Status: http.StatusOK}
	})
	posted := make(chan Result)
	go func() { posted <- p.post("c1") }()
	<-entered
	closed := make(chan error)
	go func() { closed <- p.owner.Close() }()
	select {
	case <-closed:
		t.Fatal("Close returned while an answer worker was still running")
	case <-time.After(50 * time.Millisecond): // Close is blocked, as it should be
	}
	close(release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if got := p.owner.answerers.Load(); got != 0 {
		t.Fatalf("%d answer workers after Close", got)
	}
	if res := <-posted; res.Status != http.StatusOK {
		t.Fatalf("the post answered while Close waited got %+v, want 200", res)
	}
}
