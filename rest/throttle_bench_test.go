package rest

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/portico-gateway/portico/routing/integration"
	"github.com/portico-gateway/portico/routing/throttle"
)

// throttledHandler is an HTTP API whose route GET /limited (a mock) has
// its own bucket of rate r and burst b, on the clock now.
func throttledHandler(tb testing.TB, r float64, b int, now func() time.Time) *Handler {
	tb.Helper()
	g, err := throttle.New(throttle.Options{Clock: now})
	if err != nil {
		tb.Fatal(err)
	}
	limits, err := g.NewAPI(throttle.APIOptions{Name: "bench", Stages: []throttle.StageOptions{{Name: DefaultStage,
		Routes: map[string]throttle.Limit{"GET /limited": {Rate: r, Burst: b}}}}})
	if err != nil {
		tb.Fatal(err)
	}
	h, err := New(Options{API: &API{Name: "bench", ID: "b1", Protocol: ProtocolHTTP, Stages: []Stage{{Name: DefaultStage}},
		Routes: map[string]Route{"GET /limited": {Integration: &integration.Spec{Type: "mock", Body: "ok"}}}},
		Throttle: limits})
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

// TestThrottledRouteKeepsItsRate: a route at 10 requests/s with a burst
// of 5, asked 20 times at every 100 ms tick of an injected clock,
// answers the burst, then one request a tick, and 429 {"message":"Too
// Many Requests"} to every other.
func TestThrottledRouteKeepsItsRate(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	h := throttledHandler(t, 10, 5, clock)
	ok, refused := 0, 0
	for tick := range 10 {
		for range 20 {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("GET", "http://api.example.com/limited", nil))
			switch w.Code {
			case http.StatusOK:
				ok++
			case http.StatusTooManyRequests:
				refused++
				if w.Body.String() != `{"message":"Too Many Requests"}` {
					t.Fatalf("429 body %q", w.Body.String())
				}
			default:
				t.Fatalf("status %d: %s", w.Code, w.Body.String())
			}
		}
		if want := 5 + tick; ok != want {
			t.Fatalf("after tick %d: %d answered, want %d (the burst, then 10/s)", tick, ok, want)
		}
		mu.Lock()
		now = now.Add(100 * time.Millisecond)
		mu.Unlock()
	}
	if refused != 200-14 {
		t.Fatalf("%d refused, want %d", refused, 200-14)
	}
}

// BenchmarkThrottled429 is the refusal of a request over its route's
// limit, from the request to the 429 written (no clock advance: every
// request is refused).
func BenchmarkThrottled429(b *testing.B) {
	now := time.Unix(1_700_000_000, 0)
	h := throttledHandler(b, 1, 1, func() time.Time { return now })
	req := httptest.NewRequest("GET", "http://api.example.com/limited", nil)
	h.ServeHTTP(httptest.NewRecorder(), req) // the burst
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		w.Body.Reset()
		h.ServeHTTP(w, req)
	}
	if w.Code != http.StatusTooManyRequests {
		b.Fatalf("status %d", w.Code)
	}
}

// BenchmarkThrottledAllowed is the same route answering (a bucket that
// never runs dry), for comparison.
func BenchmarkThrottledAllowed(b *testing.B) {
	h := throttledHandler(b, 1e12, 1<<30, time.Now)
	req := httptest.NewRequest("GET", "http://api.example.com/limited", nil)
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		w.Body.Reset()
		h.ServeHTTP(w, req)
	}
	if w.Code != http.StatusOK {
		b.Fatalf("status %d", w.Code)
	}
}
