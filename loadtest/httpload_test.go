package loadtest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestHTTPCompare(t *testing.T) {
	be := httptest.NewServer(TrivialBackend())
	defer be.Close()
	rp, err := NewReverseProxy(be.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httptest.NewServer(rp)
	defer proxy.Close()
	targets := []HTTPTarget{{"backend", be.URL + "/"}, {"reverse-proxy", proxy.URL + "/"}, {"again", proxy.URL + "/x"}}
	res, err := HTTPCompare(context.Background(), targets, HTTPLoadOptions{Clients: 4, Duration: 300 * time.Millisecond}, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Saturated) != 3 || len(res.AtHalf) != 3 || res.HalfRate <= 0 {
		t.Fatalf("result %+v", res)
	}
	for _, r := range append(res.Saturated, res.AtHalf...) {
		if r.Errors != 0 || r.Status["200"] == 0 || r.Status["200"] != r.Latency.Count || r.ByStatus["200"].Count != r.Latency.Count {
			t.Errorf("%s: %+v", r.Target, r)
		}
	}
	if res.Ratio["reverse-proxy"] != 1 || res.Ratio["again"] <= 0 {
		t.Errorf("ratios %v", res.Ratio)
	}
	// The open-loop phase holds the rate it was given (within a fifth;
	// it never sends more than the rate allows).
	for _, r := range res.AtHalf {
		if got := float64(r.Requests) / r.Seconds; got > res.HalfRate*1.05+1 || got < res.HalfRate*0.8 {
			t.Errorf("%s at %.0f/s sent %.0f/s", r.Target, res.HalfRate, got)
		}
	}
	if _, ok := res.AddedP99["reverse-proxy"]; !ok {
		t.Errorf("added p99 %v", res.AddedP99)
	}
}

// TestHTTPCompareRounds: the half-rate phase runs HalfRounds times, each
// round starting one target later, and the added p99 is the median of
// the rounds' figures.
func TestHTTPCompareRounds(t *testing.T) {
	be := httptest.NewServer(TrivialBackend())
	defer be.Close()
	targets := []HTTPTarget{{"backend", be.URL + "/"}, {"a", be.URL + "/a"}, {"b", be.URL + "/b"}}
	res, err := HTTPCompare(context.Background(), targets, HTTPLoadOptions{Clients: 2, Duration: 100 * time.Millisecond, HalfRounds: 3}, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, r := range res.AtHalf {
		order = append(order, r.Target)
	}
	if want := "backend a b a b backend b backend a"; strings.Join(order, " ") != want {
		t.Fatalf("half-rate order %q, want %q", strings.Join(order, " "), want)
	}
	for _, name := range []string{"a", "b"} {
		v := res.AddedP99Rounds[name]
		if len(v) != 3 || res.AddedP99[name] != median(v) {
			t.Errorf("%s: rounds %v, median %v", name, v, res.AddedP99[name])
		}
	}
	if _, ok := res.AddedP99Rounds["backend"]; ok {
		t.Errorf("the backend has no added latency: %v", res.AddedP99Rounds)
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

// TestHTTPLoadByStatus: answers are counted and timed per status code.
func TestHTTPLoadByStatus(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%2 == 0 {
			w.WriteHeader(http.StatusTooManyRequests)
		}
	}))
	defer srv.Close()
	r, err := HTTPLoad(context.Background(), HTTPTarget{"t", srv.URL}, HTTPLoadOptions{Clients: 2, Rate: 200, Duration: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if r.Status["200"] == 0 || r.Status["429"] == 0 || r.Status["200"]+r.Status["429"] != r.Requests || r.Requests > 41 {
		t.Fatalf("%+v", r)
	}
	if _, err := HTTPLoad(context.Background(), HTTPTarget{"t", "http://10.1.1.1/"}, HTTPLoadOptions{Clients: 1, Duration: time.Second}); err == nil {
		t.Fatal("a non-loopback target was accepted")
	}
}

// TestHTTPLoadOpenLoopTiming: in an open loop a request whose client was
// still busy when it fell due counts from its due time (a slow target's
// queue shows), and one whose client waited for it counts from the
// moment the client woke, the wake-up's lateness reported as SendLag.
func TestHTTPLoadOpenLoopTiming(t *testing.T) {
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond)
	}))
	defer slow.Close()
	// One client, a request due every 10 ms, each taking 20 ms: the
	// n-th waits for the n-1 before it, n*10 ms and growing.
	r, err := HTTPLoad(context.Background(), HTTPTarget{"slow", slow.URL}, HTTPLoadOptions{Clients: 1, Rate: 100, Duration: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if r.Latency.Count < 20 || r.Latency.Max < 200 {
		t.Errorf("a target at half the asked rate: %d answers, max %.1f ms; want the queue (≥ 200 ms) counted", r.Latency.Count, r.Latency.Max)
	}
	fast := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer fast.Close()
	r, err = HTTPLoad(context.Background(), HTTPTarget{"fast", fast.URL}, HTTPLoadOptions{Clients: 2, Rate: 100, Duration: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if r.SendLag == nil || r.SendLag.Count == 0 || r.SendLag.Count > r.Requests {
		t.Fatalf("send lag %+v for %d requests", r.SendLag, r.Requests)
	}
	if r.Latency.P50 > 5 {
		t.Errorf("an idle client's request to a quick target: p50 %.2f ms (from its due time?)", r.Latency.P50)
	}
}
