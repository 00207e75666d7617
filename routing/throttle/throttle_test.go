package throttle

import (
	"errors"
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/portico-gateway/portico/metrics"
)

// fakeClock is an injected clock that moves only when told to.
type fakeClock struct{ ns atomic.Int64 }

func newClock(t time.Time) *fakeClock {
	c := &fakeClock{}
	c.ns.Store(t.UnixNano())
	return c
}
func (c *fakeClock) now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *fakeClock) add(d time.Duration) { c.ns.Add(int64(d)) }
func (c *fakeClock) set(t time.Time)     { c.ns.Store(t.UnixNano()) }

const keyA = "partnerAkey0123456789abcd" // 25 characters, as AWS wants (20 to 128)
const keyB = "partnerBkey0123456789abcd"

func TestBucketBurstThenRate(t *testing.T) {
	b := NewBucket(Limit{Rate: 10, Burst: 5})
	now := time.Unix(1000, 0).UnixNano()
	ok := 0
	for range 20 {
		if b.Allow(now) {
			ok++
		}
	}
	if ok != 5 {
		t.Fatalf("burst of 20 at one instant: %d allowed, want 5 (the burst)", ok)
	}
	// 100 ms later one token (10 a second) is back, and only one.
	now += int64(100 * time.Millisecond)
	if !b.Allow(now) || b.Allow(now) {
		t.Fatalf("after 100ms: want exactly one more")
	}
	// A second of quiet refills to the burst, not beyond.
	now += int64(10 * time.Second)
	ok = 0
	for range 20 {
		if b.Allow(now) {
			ok++
		}
	}
	if ok != 5 {
		t.Fatalf("after a quiet spell: %d allowed, want 5", ok)
	}
}

func TestBucketClosedAndFallbackShare(t *testing.T) {
	if NewBucket(Limit{}).Allow(1) {
		t.Error("rate 0, burst 0 let a request through")
	}
	b := NewBucket(Limit{Rate: 30, Burst: 30})
	ok := 0
	for range 100 {
		if b.allow(1e12, 3) {
			ok++
		}
	}
	if ok != 10 {
		t.Errorf("a third of burst 30: %d, want 10", ok)
	}
}

// gw builds a gateway and one API "chat" with stage "prod".
func gw(t *testing.T, clk *fakeClock, o Options, ao APIOptions) (*Gateway, *API, *metrics.Set) {
	t.Helper()
	m := metrics.New(nil)
	o.Clock, o.Metrics = clk.now, m
	g, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ao.Name = "chat"
	if ao.Stages == nil {
		ao.Stages = []StageOptions{{Name: "prod"}}
	}
	a, err := g.NewAPI(ao)
	if err != nil {
		t.Fatal(err)
	}
	return g, a, m
}

func connect(t *testing.T, a *API, rt *Route, hdr map[string]string) (*Conn, error) {
	t.Helper()
	h := http.Header{}
	for k, v := range hdr {
		h.Set(k, v)
	}
	return a.Connect(rt, h, url.Values{}, "")
}

func count(t *testing.T, n int, f func() error) (ok, throttled int) {
	t.Helper()
	for range n {
		switch err := f(); {
		case err == nil:
			ok++
		case errors.Is(err, ErrThrottled):
			throttled++
		default:
			t.Fatalf("unexpected %v", err)
		}
	}
	return ok, throttled
}

// The most specific configured level alone applies: route settings, else
// the stage default, else the gateway.
func TestMostSpecificLevel(t *testing.T) {
	clk := newClock(time.Unix(1_700_000_000, 0))
	_, a, m := gw(t, clk, Options{Gateway: &Limit{Rate: 100, Burst: 50}}, APIOptions{
		Stages: []StageOptions{
			{Name: "prod", Default: &Limit{Rate: 10, Burst: 20}, Routes: map[string]Limit{"send": {Rate: 1, Burst: 3}}},
			{Name: "dev"},
		},
	})
	c, err := connect(t, a, a.Route("prod", "$connect"), nil)
	if err != nil {
		t.Fatal(err)
	}
	send, other := a.Route("prod", "send"), a.Route("prod", "other")
	if ok, _ := count(t, 10, func() error { return a.Message(c, send) }); ok != 3 {
		t.Errorf("route with routeSettings (burst 3): %d allowed", ok)
	}
	// The stage default is its own bucket per route, untouched by "send".
	if ok, _ := count(t, 30, func() error { return a.Message(c, other) }); ok != 20 {
		t.Errorf("route under the stage default (burst 20): %d allowed", ok)
	}
	// dev has no settings: only the gateway bucket (burst 50, of which
	// 1+3+20 are spent).
	dc, _ := connect(t, a, a.Route("dev", "$connect"), nil)
	if ok, _ := count(t, 60, func() error { return a.Message(dc, a.Route("dev", "x")) }); ok != 50-1-3-20-1 {
		t.Errorf("gateway level: %d allowed, want %d", ok, 50-1-3-20-1)
	}
	for lv, want := range map[string]float64{LevelRoute: 7, LevelStage: 10} {
		if got := testutil.ToFloat64(m.Throttled.WithLabelValues("chat", "prod", lv)); got != want {
			t.Errorf("throttled{level=%s} = %v, want %v", lv, got, want)
		}
	}
	if got := testutil.ToFloat64(m.Throttled.WithLabelValues("chat", "dev", LevelGateway)); got != 60-25 {
		t.Errorf("throttled{dev,gateway} = %v", got)
	}
}

// A burst of handshakes beyond the $connect route's bucket gives exactly
// the expected number of refusals, and time refills it.
func TestConnectBurst(t *testing.T) {
	clk := newClock(time.Unix(1_700_000_000, 0))
	_, a, _ := gw(t, clk, Options{}, APIOptions{Stages: []StageOptions{{Name: "prod", Routes: map[string]Limit{"$connect": {Rate: 2, Burst: 4}}}}})
	rt := a.Route("prod", "$connect")
	f := func() error { _, err := connect(t, a, rt, nil); return err }
	if ok, thr := count(t, 10, f); ok != 4 || thr != 6 {
		t.Fatalf("10 at once: %d ok, %d throttled; want 4 and 6", ok, thr)
	}
	clk.add(time.Second)
	if ok, thr := count(t, 10, f); ok != 2 || thr != 8 {
		t.Fatalf("a second later: %d ok, %d throttled; want 2 and 8", ok, thr)
	}
}

func TestPerConnectionMessages(t *testing.T) {
	clk := newClock(time.Unix(1_700_000_000, 0))
	_, a, m := gw(t, clk, Options{}, APIOptions{Message: &Limit{Rate: 1, Burst: 2}})
	rt := a.Route("prod", "x")
	c1, _ := connect(t, a, a.Route("prod", "$connect"), nil)
	c2, _ := connect(t, a, a.Route("prod", "$connect"), nil)
	if ok, _ := count(t, 5, func() error { return a.Message(c1, rt) }); ok != 2 {
		t.Errorf("c1: %d", ok)
	}
	if ok, _ := count(t, 5, func() error { return a.Message(c2, rt) }); ok != 2 {
		t.Errorf("c2 has a bucket of its own: %d", ok)
	}
	if got := testutil.ToFloat64(m.Throttled.WithLabelValues("chat", "prod", LevelConnection)); got != 6 {
		t.Errorf("throttled{connection} = %v", got)
	}
}

func planOpts(q *Quota) Options {
	return Options{
		Plans: []Plan{
			{Name: "basic", Stages: []PlanStage{{"chat", "prod"}}, Throttle: &Limit{Rate: 1, Burst: 3}, Quota: q},
			{Name: "other", Stages: []PlanStage{{"chat", "dev"}}},
		},
		Keys: []Key{{Name: "partner-a", Value: keyA, Plans: []string{"basic"}}, {Name: "partner-b", Value: keyB, Plans: []string{"other"}}},
	}
}

func TestAPIKeys(t *testing.T) {
	clk := newClock(time.Unix(1_700_000_000, 0))
	_, a, _ := gw(t, clk, planOpts(nil), APIOptions{
		Stages:      []StageOptions{{Name: "prod"}, {Name: "dev"}},
		KeyRequired: map[string]bool{"$connect": true, "secret": true},
	})
	cr := a.Route("prod", "$connect")
	for name, hdr := range map[string]map[string]string{
		"missing":           nil,
		"unknown":           {"X-Api-Key": "nopenopenopenopenopenope"},
		"a prefix of a key": {"x-api-key": keyA[:20]},
		"plan not on stage": {"x-api-key": keyB},
	} {
		if _, err := connect(t, a, cr, hdr); !errors.Is(err, ErrForbidden) {
			t.Errorf("%s key: %v, want ErrForbidden", name, err)
		}
	}
	// The header name is matched case-insensitively.
	c, err := connect(t, a, cr, map[string]string{"X-API-KEY": keyA})
	if err != nil {
		t.Fatalf("valid key: %v", err)
	}
	if c.KeyName() != "partner-a" {
		t.Errorf("KeyName %q", c.KeyName())
	}
	// The connection keeps its key: its messages use the plan's bucket
	// (burst 3, one spent by the connect).
	if ok, _ := count(t, 5, func() error { return a.Message(c, a.Route("prod", "secret")) }); ok != 2 {
		t.Errorf("per-key bucket: %d allowed, want 2", ok)
	}
	// A connection without a key may use routes that do not require one
	// but not those that do.
	a2 := &API{g: a.g, name: a.name, src: a.src, stages: a.stages, keyReq: map[string]bool{"secret": true}}
	nc, err := connect(t, a2, a2.Route("prod", "$connect"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := a2.Message(nc, a2.Route("prod", "secret")); !errors.Is(err, ErrForbidden) {
		t.Errorf("keyless message to a key-required route: %v", err)
	}
	if err := a2.Message(nc, a2.Route("prod", "open")); err != nil {
		t.Errorf("keyless message to an open route: %v", err)
	}
	// The authorizer's usageIdentifierKey wins over the header.
	clk.add(10 * time.Second) // refill the key's bucket
	c3, err := a.Connect(cr, http.Header{"X-Api-Key": {"wrong"}}, nil, keyA)
	if err != nil || c3.KeyName() != "partner-a" {
		t.Errorf("usageIdentifierKey: %v %q", err, c3.KeyName())
	}
}

func TestKeyFromQueryString(t *testing.T) {
	clk := newClock(time.Unix(1_700_000_000, 0))
	_, a, _ := gw(t, clk, planOpts(nil), APIOptions{KeySelection: "$request.querystring.key", KeyRequired: map[string]bool{"$connect": true}})
	if _, err := a.Connect(a.Route("prod", "$connect"), nil, url.Values{"key": {keyA}}, ""); err != nil {
		t.Errorf("key in the query string: %v", err)
	}
	if _, err := a.Connect(a.Route("prod", "$connect"), http.Header{"X-Api-Key": {keyA}}, url.Values{}, ""); !errors.Is(err, ErrForbidden) {
		t.Errorf("key in the header when the query is configured: %v", err)
	}
}

// The quota is spent, then refills at the start of the next UTC calendar
// period, and not a moment before.
func TestQuotaRollover(t *testing.T) {
	for _, tc := range []struct {
		period      Period
		start, last time.Time // start: somewhere in a period; last: its final nanosecond
	}{
		{Day, time.Date(2026, 3, 10, 7, 0, 0, 0, time.UTC), time.Date(2026, 3, 10, 23, 59, 59, 999999999, time.UTC)},
		// 2026-03-12 is a Thursday; the week ends Sunday night.
		{Week, time.Date(2026, 3, 12, 7, 0, 0, 0, time.UTC), time.Date(2026, 3, 15, 23, 59, 59, 999999999, time.UTC)},
		{Month, time.Date(2026, 2, 3, 7, 0, 0, 0, time.UTC), time.Date(2026, 2, 28, 23, 59, 59, 999999999, time.UTC)},
	} {
		t.Run(string(tc.period), func(t *testing.T) {
			clk := newClock(tc.start)
			g, a, _ := gw(t, clk, Options{
				Plans: []Plan{{Name: "basic", Stages: []PlanStage{{"chat", "prod"}}, Quota: &Quota{Limit: 3, Period: tc.period}}},
				Keys:  []Key{{Name: "partner-a", Value: keyA, Plans: []string{"basic"}}},
			}, APIOptions{})
			c, err := connect(t, a, a.Route("prod", "$connect"), map[string]string{"x-api-key": keyA})
			if err != nil {
				t.Fatal(err)
			}
			rt := a.Route("prod", "x")
			for i := range 2 {
				if err := a.Message(c, rt); err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
			}
			if err := a.Message(c, rt); !errors.Is(err, ErrQuotaExceeded) {
				t.Fatalf("4th request: %v, want ErrQuotaExceeded", err)
			}
			u, err := g.Usage(t.Context(), "basic", "")
			if err != nil || len(u.Keys) != 1 || u.Keys[0] != (KeyUsage{Key: "partner-a", Used: 3, Remaining: 0}) {
				t.Fatalf("usage %+v %v", u, err)
			}
			if !u.End.Equal(tc.last.Add(time.Nanosecond)) {
				t.Errorf("period ends %v, want %v", u.End, tc.last.Add(time.Nanosecond))
			}
			clk.set(tc.last)
			if err := a.Message(c, rt); !errors.Is(err, ErrQuotaExceeded) {
				t.Fatalf("last instant of the period: %v", err)
			}
			clk.set(tc.last.Add(time.Nanosecond))
			if err := a.Message(c, rt); err != nil {
				t.Fatalf("first instant of the next period: %v", err)
			}
			u, _ = g.Usage(t.Context(), "basic", "partner-a")
			if u.Keys[0].Used != 1 || !u.Start.Equal(tc.last.Add(time.Nanosecond)) {
				t.Errorf("new period: %+v", u)
			}
		})
	}
}

func TestNewRefusesBadPlans(t *testing.T) {
	for name, o := range map[string]Options{
		"unknown plan": {Keys: []Key{{Name: "k", Value: keyA, Plans: []string{"nope"}}}},
		"two plans for one stage": {
			Plans: []Plan{{Name: "p1", Stages: []PlanStage{{"chat", "prod"}}}, {Name: "p2", Stages: []PlanStage{{"chat", "prod"}}}},
			Keys:  []Key{{Name: "k", Value: keyA, Plans: []string{"p1", "p2"}}},
		},
		"same value twice": {Plans: []Plan{{Name: "p"}}, Keys: []Key{{Name: "a", Value: keyA}, {Name: "b", Value: keyA}}},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestGate(t *testing.T) {
	g := NewGate(2)
	first, second, third := g.Acquire(), g.Acquire(), g.Acquire()
	if !first || !second || third {
		t.Fatalf("admitted %v %v %v, want two admitted and the third refused", first, second, third)
	}
	g.Release()
	if !g.Acquire() {
		t.Fatal("a released slot is reusable")
	}
	var none *Gate
	if !none.Acquire() {
		t.Fatal("nil gate refuses")
	}
	none.Release()
}

func FuzzParseKeySelection(f *testing.F) {
	for _, s := range []string{"", DefaultKeySelection, "$request.querystring.key", "$context.authorizer.usageIdentifierKey", "$request.header.", "$request.header.a b", "$request.body.x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		src, err := parseKeySource(s)
		if err != nil {
			return
		}
		if src.header != "" && !validToken(src.header) {
			t.Fatalf("%q: header %q", s, src.header)
		}
		_ = src.value(http.Header{}, url.Values{})
	})
}

func benchSetup(b *testing.B) (*API, *Route, func() *Conn) {
	m := metrics.New(nil)
	g, err := New(Options{Gateway: &Limit{Rate: 1e9, Burst: 1e9}, Metrics: m,
		Plans: []Plan{{Name: "basic", Stages: []PlanStage{{"chat", "prod"}}, Throttle: &Limit{Rate: 1e9, Burst: 1e9}, Quota: &Quota{Limit: 1 << 30, Period: Day}}},
		Keys:  []Key{{Name: "partner-a", Value: keyA, Plans: []string{"basic"}}}})
	if err != nil {
		b.Fatal(err)
	}
	a, _ := g.NewAPI(APIOptions{Name: "chat", Message: &Limit{Rate: 1e9, Burst: 1e9},
		Stages: []StageOptions{{Name: "prod", Routes: map[string]Limit{"send": {Rate: 1e9, Burst: 1e9}}}}})
	rt := a.Route("prod", "send")
	cr := a.Route("prod", "$connect")
	return a, rt, func() *Conn {
		c, err := a.Connect(cr, http.Header{"X-Api-Key": {keyA}}, nil, "")
		if err != nil {
			b.Fatal(err)
		}
		return c
	}
}

// BenchmarkAllowLocal is one message's decision with every local level
// configured: connection, usage plan, route, gateway and quota.
func BenchmarkAllowLocal(b *testing.B) {
	a, rt, conn := benchSetup(b)
	c := conn()
	b.ReportAllocs()
	for b.Loop() {
		if err := a.Message(c, rt); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAllowLocalParallel is the same from many connections at once.
func BenchmarkAllowLocalParallel(b *testing.B) {
	a, rt, conn := benchSetup(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		c := conn()
		for pb.Next() {
			if err := a.Message(c, rt); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// KeyInQuery says whether Connect reads the query: a query key source
// does, a header one does not.
func TestKeyInQuery(t *testing.T) {
	for expr, want := range map[string]bool{"$request.querystring.key": true, "$request.header.x-api-key": false} {
		src, err := parseKeySource(expr)
		if err != nil {
			t.Fatal(err)
		}
		if got := (&API{src: src}).KeyInQuery(); got != want {
			t.Errorf("%s: KeyInQuery %v, want %v", expr, got, want)
		}
	}
}
