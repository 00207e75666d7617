package integration_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portico-gateway/portico/routing/integration"
)

// TestIdlePoolFollowsInFlight: 300 calls in flight at once, twice. The
// second round finds every connection of the first idle in the pool and
// opens none (a pool of 256 idle connections, as net/http's settings
// were, would close 44 and reopen them).
func TestIdlePoolFollowsInFlight(t *testing.T) {
	const n = 300
	var opened atomic.Int64
	var arrived sync.WaitGroup
	release := make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Done()
		<-release // hold every call until all n are in flight
		_, _ = w.Write([]byte(`{"statusCode":200,"body":"ok"}`))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			opened.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	client := integration.NewHTTPClientFor(n)
	integ, err := integration.New(&integration.Spec{Type: "http", URI: srv.URL, Timeout: 10 * time.Second}, nil, client)
	if err != nil {
		t.Fatal(err)
	}
	round := func() {
		arrived.Add(n)
		var done sync.WaitGroup
		errs := make(chan error, n)
		for range n {
			done.Add(1)
			go func() {
				defer done.Done()
				if _, err := integ.Invoke(context.Background(), &integration.Call{Event: map[string]string{}}); err != nil {
					errs <- err
				}
			}()
		}
		arrived.Wait()
		close(release)
		done.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		release = make(chan struct{})
	}
	round()
	if got := opened.Load(); got != n {
		t.Fatalf("first round opened %d connections, want %d", got, n)
	}
	round()
	if got := opened.Load(); got != n {
		t.Errorf("second round opened %d more connections, want 0: the idle pool dropped some", got-n)
	}
}
