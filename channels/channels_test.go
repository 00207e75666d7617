package channels

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/portico-gateway/portico/connections"
	"github.com/portico-gateway/portico/metrics"
	"github.com/portico-gateway/portico/routing/auth"
)

// fakeConn records what it is sent; its queue takes room frames, then
// answers ErrQueueFull until drained.
type fakeConn struct {
	info  connections.Info
	state any

	mu     sync.Mutex
	room   int // frames the queue still takes; <0: unbounded
	got    []string
	closed int
	last   *connections.Prepared // the last message sent with SendPrepared
}

func newConn(id string) *fakeConn {
	return &fakeConn{info: connections.Info{ID: id, Stage: "prod", ConnectedAt: time.UnixMilli(1740996000120)}, room: -1}
}

func (c *fakeConn) Info() *connections.Info { return &c.info }
func (c *fakeConn) State() any              { return c.state }
func (c *fakeConn) LastActive() time.Time   { return time.Time{} }
func (c *fakeConn) Send(data []byte, _ bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed != 0 {
		return connections.ErrClosed
	}
	if c.room == 0 {
		return connections.ErrQueueFull
	}
	if c.room > 0 {
		c.room--
	}
	c.got = append(c.got, string(data))
	return nil
}

// SendPrepared queues all of ps or none, as the servers do.
func (c *fakeConn) SendPrepared(ps ...*connections.Prepared) error {
	c.mu.Lock()
	if c.room >= 0 && c.room < len(ps) && c.closed == 0 {
		c.mu.Unlock()
		return connections.ErrQueueFull
	}
	if len(ps) > 0 {
		c.last = ps[len(ps)-1]
	}
	c.mu.Unlock()
	for _, p := range ps {
		if err := c.Send(p.Data(), p.Binary()); err != nil {
			return err
		}
	}
	return nil
}
func (c *fakeConn) Close(code int, _ string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = code
	return nil
}
func (c *fakeConn) frames() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.got...)
}
func (c *fakeConn) setRoom(n int) { c.mu.Lock(); c.room = n; c.mu.Unlock() }

type nopHandler struct{}

func (nopHandler) Connect(context.Context, *connections.ConnectRequest) *connections.ConnectResult {
	return &connections.ConnectResult{Stage: "prod"}
}
func (nopHandler) Message(connections.Conn, connections.Message) {}
func (nopHandler) Disconnect(connections.Conn, int, string)      {}

type env struct {
	t   *testing.T
	r   *Registry
	hub *connections.Hub
	h   connections.Handler
	now time.Time
	m   *metrics.Set
}

func newEnv(t *testing.T, overflow string, cfgs ...Config) *env {
	e := &env{t: t, now: time.Unix(1000, 0), m: metrics.New(nil)}
	e.r = New(Options{APIs: []API{{Name: "chat", Stages: []string{"prod"}, Channels: cfgs, Overflow: overflow}},
		Now: func() time.Time { return e.now }, Metrics: e.m})
	e.hub = connections.NewHub()
	e.h = e.r.Handler("chat", e.hub, nopHandler{})
	return e
}

// disconnect closes c as a server does: out of its hub, then Disconnect.
func (e *env) disconnect(c connections.Conn, code int) {
	e.hub.Remove(c)
	e.h.Disconnect(c, code, "")
}

// open connects a fake conn through the handler, with an optional query.
func (e *env) open(id, query string) *fakeConn {
	c := newConn(id)
	req := &connections.ConnectRequest{Info: &c.info, Request: httptest.NewRequest("GET", "/prod"+query, nil)}
	if !e.h.Connect(context.Background(), req).Accepted() {
		e.t.Fatal("refused")
	}
	e.h.(connections.Opener).Opened(c)
	e.hub.Add(c) // as servers do, once the 101 is written
	return c
}

func (e *env) sub(c *fakeConn, name string) {
	e.t.Helper()
	if err := e.r.Subscribe(c, name, nil); err != nil {
		e.t.Fatalf("subscribe %s: %v", name, err)
	}
}

func (e *env) pub(name, data string, exclude string) Result {
	e.t.Helper()
	res, err := e.r.Publish(context.Background(), "prod", name, []byte(data), false, exclude)
	if err != nil {
		e.t.Fatalf("publish: %v", err)
	}
	return res
}

func TestPublishReachesMembersInOrder(t *testing.T) {
	e := newEnv(t, "")
	a, b, other := e.open("a", ""), e.open("b", ""), e.open("c", "")
	e.sub(a, "room:1")
	e.sub(b, "room:1")
	e.sub(a, "room:1") // twice: still one membership
	e.sub(other, "room:2")
	for i := range 3 {
		if res := e.pub("room:1", fmt.Sprint(i), ""); res != (Result{Delivered: 2}) {
			t.Fatalf("publish %d: %+v, want 2 delivered", i, res)
		}
	}
	if res := e.pub("room:1", "not to b", "b"); res.Delivered != 1 {
		t.Errorf("exclude: %+v", res)
	}
	if got := strings.Join(a.frames(), ","); got != "0,1,2,not to b" {
		t.Errorf("a got %s", got)
	}
	if got := strings.Join(b.frames(), ","); got != "0,1,2" {
		t.Errorf("b got %s", got)
	}
	if len(other.frames()) != 0 {
		t.Errorf("a member of another channel got %v", other.frames())
	}
	if res := e.pub("nobody:here", "x", ""); res != (Result{}) {
		t.Errorf("publish to an empty channel: %+v", res)
	}
	if got := e.r.ChannelsOf(a); fmt.Sprint(got) != "[room:1]" {
		t.Errorf("ChannelsOf(a) = %v", got)
	}
	if ok, err := e.r.Unsubscribe(a, "room:1"); !ok || err != nil {
		t.Errorf("unsubscribe: %v %v", ok, err)
	}
	if res := e.pub("room:1", "after", ""); res.Delivered != 1 {
		t.Errorf("after unsubscribe: %+v", res)
	}
}

func TestNames(t *testing.T) {
	e := newEnv(t, "")
	c := e.open("a", "")
	for _, bad := range []string{"", "has space", "ünï", strings.Repeat("x", MaxNameBytes+1), "a,b"} {
		if err := e.r.Subscribe(c, bad, nil); !errors.Is(err, ErrInvalidName) {
			t.Errorf("subscribe %q: %v, want ErrInvalidName", bad, err)
		}
		if _, err := e.r.Publish(context.Background(), "prod", bad, nil, false, ""); !errors.Is(err, ErrInvalidName) {
			t.Errorf("publish %q: %v, want ErrInvalidName", bad, err)
		}
	}
	for _, good := range []string{"room:1", "user@example.com/inbox", "a.b-c_d", strings.Repeat("x", MaxNameBytes)} {
		if err := ValidName(good); err != nil {
			t.Errorf("%q: %v", good, err)
		}
	}
	if l, err := ParseList(" room:1, user:42,,"); err != nil || fmt.Sprint(l) != "[room:1 user:42]" {
		t.Errorf("ParseList: %v %v", l, err)
	}
	if _, err := ParseList("room:1, bad name"); err == nil {
		t.Error("ParseList took a bad name")
	}
	name, pos, err := ParseRecover("a@b:c@Ep0ch:17")
	if err != nil || name != "a@b:c" || pos != (Position{"Ep0ch", 17}) {
		t.Errorf("ParseRecover: %q %+v %v", name, pos, err)
	}
	for _, bad := range []string{"room:1", "room:1@", "room:1@e", "room:1@e:x", "@e:1", "room:1@e:-1", "room:1@e:+1"} {
		if _, _, err := ParseRecover(bad); err == nil {
			t.Errorf("ParseRecover(%q) took it", bad)
		}
	}
	for _, tc := range []struct {
		p, n string
		ok   bool
	}{{"room:*", "room:1", true}, {"room:*", "room:", true}, {"room:*", "roo", false}, {"*:x", "a:b:x", true}, {"exact", "exact", true}, {"exact", "exact2", false}, {"a*b*c", "aXbYc", true}, {"a*b*c", "aXbY", false}} {
		if match(tc.p, tc.n) != tc.ok {
			t.Errorf("match(%q, %q) != %v", tc.p, tc.n, tc.ok)
		}
	}
}

func TestLeaveOnDisconnect(t *testing.T) {
	e := newEnv(t, "")
	a, b := e.open("a", ""), e.open("b", "")
	e.sub(a, "room:1")
	e.sub(a, "room:2")
	e.sub(b, "room:1")
	e.disconnect(a, 1000)
	if res := e.pub("room:1", "x", ""); res.Delivered != 1 {
		t.Errorf("after a left: %+v", res)
	}
	e.r.mu.RLock()
	_, kept := e.r.chans[key{"chat", "prod", "room:2"}]
	e.r.mu.RUnlock()
	if kept {
		t.Error("room:2 has no member and no history but is still held")
	}
	if err := e.r.Subscribe(a, "room:3", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("subscribe after disconnect: %v, want ErrClosed", err)
	}
	if len(e.r.ChannelsOf(a)) != 0 {
		t.Errorf("a dead connection is still in %v", e.r.ChannelsOf(a))
	}
}

type authState struct{ id *auth.Identity }

func (s authState) AuthIdentity() *auth.Identity { return s.id }

func TestPresence(t *testing.T) {
	e := newEnv(t, "", Config{Pattern: "room:*", Presence: true})
	a := e.open("a", "")
	b := newConn("b")
	b.state = authState{&auth.Identity{PrincipalID: "user-42"}}
	req := &connections.ConnectRequest{Info: &b.info, Request: httptest.NewRequest("GET", "/prod", nil)}
	e.h.Connect(context.Background(), req)
	e.h.(connections.Opener).Opened(b)
	e.hub.Add(b)
	plain := e.open("p", "")
	e.sub(a, "room:1")
	e.sub(plain, "lobby")
	e.sub(b, "room:1")
	e.sub(b, "lobby")
	e.disconnect(b, 1001)
	want := []string{
		`{"type":"portico.presence","channel":"room:1","action":"join","connectionId":"b","principalId":"user-42","connectedAt":1740996000120}`,
		`{"type":"portico.presence","channel":"room:1","action":"leave","connectionId":"b","principalId":"user-42","connectedAt":1740996000120}`,
	}
	if got := a.frames(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("a got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(b.frames()) != 0 || len(plain.frames()) != 0 {
		t.Errorf("the joiner or a channel without presence got %v %v", b.frames(), plain.frames())
	}
	page, err := e.r.Members(context.Background(), "prod", "room:1", "", 10)
	if err != nil || page.Count != 1 || len(page.Members) != 1 || page.Members[0].ConnectionID != "a" {
		t.Errorf("members: %+v %v", page, err)
	}
}

func TestMembersPaged(t *testing.T) {
	e := newEnv(t, "")
	for i := range 25 {
		e.sub(e.open(fmt.Sprintf("c%02d", i), ""), "big")
	}
	var ids []string
	cursor := ""
	for pages := 0; ; pages++ {
		p, err := e.r.Members(context.Background(), "prod", "big", cursor, 10)
		if err != nil || p.Count != 25 || pages > 3 {
			t.Fatalf("page %d: %+v %v", pages, p, err)
		}
		for _, m := range p.Members {
			ids = append(ids, m.ConnectionID)
		}
		if p.Next == "" {
			break
		}
		cursor = p.Next
	}
	if len(ids) != 25 || ids[0] != "c00" || ids[24] != "c24" {
		t.Errorf("paged through %v", ids)
	}
}

// envelopeOf decodes a portico.* frame.
func decode(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("frame %q: %v", s, err)
	}
	return m
}

func TestHistoryAndRecovery(t *testing.T) {
	e := newEnv(t, "", Config{Pattern: "room:*", History: HistoryConfig{Size: 3, TTL: time.Minute}})
	a := e.open("a", "")
	e.sub(a, "room:1")
	for i := 1; i <= 5; i++ {
		e.pub("room:1", fmt.Sprintf(`{"n":%d}`, i), "")
	}
	e.pub("room:1", "plain text", "")
	got := a.frames()
	first := decode(t, got[0])
	epoch, _ := first["epoch"].(string)
	if first["type"] != "portico.message" || first["offset"] != 1.0 || epoch == "" || fmt.Sprint(first["data"]) != "map[n:1]" {
		t.Fatalf("first envelope %s", got[0])
	}
	if last := decode(t, got[5]); last["text"] != "plain text" || last["offset"] != 6.0 {
		t.Errorf("text envelope %s", got[5])
	}

	// Within the history (last 3: offsets 4..6): replayed in order, then
	// the recovery frame.
	b := e.open("b", "?recover=room:1@"+epoch+":4")
	e.sub(b, "room:1")
	got = b.frames()
	if len(got) != 3 || decode(t, got[0])["offset"] != 5.0 || decode(t, got[1])["offset"] != 6.0 {
		t.Fatalf("recovered %v", got)
	}
	if rf := decode(t, got[2]); rf["type"] != "portico.recovery" || rf["recovered"] != true || rf["replayed"] != 2.0 || rf["offset"] != 6.0 {
		t.Errorf("recovery frame %s", got[2])
	}
	// Nothing missed: an empty replay that still says recovered.
	c := e.open("c", "")
	if err := e.r.Subscribe(c, "room:1", &Position{epoch, 6}); err != nil {
		t.Fatal(err)
	}
	if got := c.frames(); len(got) != 1 || decode(t, got[0])["replayed"] != 0.0 {
		t.Errorf("up to date: %v", got)
	}
	// Out of the history: offsets 2 and 3 are gone.
	d := e.open("d", "")
	_ = e.r.Subscribe(d, "room:1", &Position{epoch, 1})
	if got := d.frames(); len(got) != 1 || decode(t, got[0])["recovered"] != false || decode(t, got[0])["offset"] != 6.0 {
		t.Errorf("gap too old: %v", got)
	}
	// Another epoch.
	f := e.open("f", "")
	_ = e.r.Subscribe(f, "room:1", &Position{"other", 6})
	if got := f.frames(); len(got) != 1 || !strings.Contains(got[0], "new epoch") {
		t.Errorf("epoch changed: %v", got)
	}
	// Age: after the TTL nothing is retained; everyone leaves and the
	// channel goes, and a new one has a new epoch.
	e.now = e.now.Add(2 * time.Minute)
	for _, conn := range []*fakeConn{a, b, c, d, f} {
		e.disconnect(conn, 1000)
	}
	g := e.open("g", "")
	_ = e.r.Subscribe(g, "room:1", &Position{epoch, 6})
	if got := g.frames(); len(got) != 1 || !strings.Contains(got[0], "new epoch") {
		t.Errorf("after the channel was dropped: %v", got)
	}
	// No history: recovery is refused.
	h := e.open("h", "")
	_ = e.r.Subscribe(h, "lobby", &Position{epoch, 1})
	if got := h.frames(); len(got) != 1 || !strings.Contains(got[0], "keeps no history") {
		t.Errorf("no history: %v", got)
	}
}

func TestOverflowDropMarksGap(t *testing.T) {
	e := newEnv(t, OverflowDrop)
	slow, fast := e.open("slow", ""), e.open("fast", "")
	e.sub(slow, "room:1")
	e.sub(fast, "room:1")
	e.pub("room:1", "1", "")
	slow.setRoom(0)
	for _, m := range []string{"2", "3"} {
		if res := e.pub("room:1", m, ""); res != (Result{Delivered: 1, Dropped: 1}) {
			t.Errorf("publish %s: %+v", m, res)
		}
	}
	slow.setRoom(-1)
	e.pub("room:1", "4", "")
	want := `1|{"type":"portico.gap","channel":"room:1","dropped":2,"from":2,"to":3}|4`
	if got := strings.Join(slow.frames(), "|"); got != want {
		t.Errorf("slow got %s, want %s", got, want)
	}
	if got := strings.Join(fast.frames(), "|"); got != "1|2|3|4" {
		t.Errorf("fast got %s", got)
	}
	if slow.closed != 0 {
		t.Error("drop policy closed the slow member")
	}
	if v := counterValue(e.m, "drop"); v != 2 {
		t.Errorf("portico_channel_dropped_total{policy=drop} = %v, want 2", v)
	}
}

func TestOverflowClose(t *testing.T) {
	e := newEnv(t, OverflowClose)
	slow, fast := e.open("slow", ""), e.open("fast", "")
	e.sub(slow, "room:1")
	e.sub(fast, "room:1")
	slow.setRoom(0)
	if res := e.pub("room:1", "x", ""); res != (Result{Delivered: 1, Dropped: 1}) {
		t.Errorf("publish: %+v", res)
	}
	if slow.closed != connections.ClosePolicyViolation {
		t.Errorf("slow member closed with %d, want 1008", slow.closed)
	}
	if v := counterValue(e.m, "close"); v != 1 {
		t.Errorf("portico_channel_dropped_total{policy=close} = %v, want 1", v)
	}
}

func counterValue(m *metrics.Set, policy string) float64 {
	return testutil.ToFloat64(m.ChannelDropped.WithLabelValues("chat", policy))
}

// TestConcurrentPublishersKeepOneOrder: every member sees the messages of
// concurrent publishers in the same order.
func TestConcurrentPublishersKeepOneOrder(t *testing.T) {
	e := newEnv(t, "")
	var members []*fakeConn
	for i := range 20 {
		c := e.open(fmt.Sprint("m", i), "")
		e.sub(c, "room:1")
		members = append(members, c)
	}
	var wg sync.WaitGroup
	for p := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				_, _ = e.r.Publish(context.Background(), "prod", "room:1", []byte(fmt.Sprintf("%d-%d", p, i)), false, "")
			}
		}()
	}
	wg.Wait()
	ref := strings.Join(members[0].frames(), ",")
	if n := len(members[0].frames()); n != 1600 {
		t.Fatalf("member 0 got %d messages", n)
	}
	for i, m := range members {
		if strings.Join(m.frames(), ",") != ref {
			t.Fatalf("member %d saw another order", i)
		}
	}
}

// TestMemoryPerSubscription measures the heap a subscription costs: 100,000
// connections each subscribed to one channel of a few, and 10,000 each in
// ten channels (the per-connection entry counted in).
func TestMemoryPerSubscription(t *testing.T) {
	for _, tc := range []struct{ conns, perConn int }{{100_000, 1}, {10_000, 10}} {
		e := newEnv(t, "")
		conns := make([]*fakeConn, tc.conns)
		for i := range conns {
			conns[i] = newConn(fmt.Sprintf("conn-%07d", i))
		}
		before := heap()
		for i, c := range conns {
			e.r.open(c, e.r.apis[0], nil)
			for j := range tc.perConn {
				if err := e.r.Subscribe(c, fmt.Sprintf("room:%d", (i+j)%100), nil); err != nil {
					t.Fatal(err)
				}
			}
		}
		after := heap()
		per := float64(after-before) / float64(tc.conns*tc.perConn)
		t.Logf("%d connections × %d channels: %.0f bytes per subscription", tc.conns, tc.perConn, per)
		if per > 200 {
			t.Errorf("%.0f bytes per subscription, over 200", per)
		}
		runtime.KeepAlive(conns)
		runtime.KeepAlive(e)
	}
}

func heap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkPublish fans one message out to 10,000 members: deliveries per
// second, and allocations per publish (independent of the member count).
func BenchmarkPublish(b *testing.B) {
	e := newEnv(&testing.T{}, "")
	const members = 10_000
	for i := range members {
		c := &benchConn{info: connections.Info{ID: fmt.Sprint(i), Stage: "prod"}}
		e.r.open(c, e.r.apis[0], nil)
		if err := e.r.Subscribe(c, "room:1", nil); err != nil {
			b.Fatal(err)
		}
	}
	msg := []byte(`{"price":101.25,"symbol":"ACME"}`)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := e.r.Publish(context.Background(), "prod", "room:1", msg, false, ""); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)*members/b.Elapsed().Seconds(), "deliveries/s")
}

// benchConn takes every frame and keeps none.
type benchConn struct {
	info connections.Info
	n    int
}

func (c *benchConn) Info() *connections.Info                        { return &c.info }
func (c *benchConn) State() any                                     { return nil }
func (c *benchConn) LastActive() time.Time                          { return time.Time{} }
func (c *benchConn) Send([]byte, bool) error                        { c.n++; return nil }
func (c *benchConn) SendPrepared(ps ...*connections.Prepared) error { c.n++; return nil }
func (c *benchConn) Close(int, string) error                        { return nil }

// A publish encodes its message once: every member is handed the same
// Prepared, and the allocations of a publish do not grow with members.
func TestPublishEncodesOnce(t *testing.T) {
	e := newEnv(t, "")
	var conns []*fakeConn
	for i := range 50 {
		c := e.open(fmt.Sprint("m", i), "")
		e.sub(c, "room:1")
		conns = append(conns, c)
	}
	e.pub("room:1", "once", "")
	for i, c := range conns {
		if c.last == nil || c.last != conns[0].last {
			t.Fatalf("member %d was handed another Prepared", i)
		}
	}
	allocs := func(members int) float64 {
		e := newEnv(t, "")
		for i := range members {
			c := &benchConn{info: connections.Info{ID: fmt.Sprint(i), Stage: "prod"}}
			e.r.open(c, e.r.apis[0], nil)
			_ = e.r.Subscribe(c, "room:1", nil)
		}
		msg := []byte("tick")
		return testing.AllocsPerRun(100, func() {
			_, _ = e.r.Publish(context.Background(), "prod", "room:1", msg, false, "")
		})
	}
	if few, many := allocs(10), allocs(2000); many != few {
		t.Errorf("a publish allocates %v times to 10 members and %v to 2,000", few, many)
	}
}

// A connection in no channel costs the registry nothing; one that
// subscribes is found again at its close.
func TestNoMemberWithoutSubscriptions(t *testing.T) {
	e := newEnv(t, "")
	a := e.open("a", "")
	if m := e.r.member(a); m != nil {
		t.Fatalf("a connection in no channel has a member: %+v", m)
	}
	if got := e.r.ChannelsOf(a); len(got) != 0 {
		t.Errorf("ChannelsOf = %v", got)
	}
	if in, err := e.r.Unsubscribe(a, "room:1"); in || err != nil {
		t.Errorf("Unsubscribe of an open connection in no channel: %v, %v", in, err)
	}
	e.sub(a, "room:1")
	if e.r.member(a) == nil {
		t.Fatal("no member after a subscription")
	}
	e.disconnect(a, 1000)
	if e.r.member(a) != nil {
		t.Error("the member outlived its connection")
	}
	if err := e.r.Subscribe(a, "room:1", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("subscribe after close: %v, want ErrClosed", err)
	}
	if _, err := e.r.Unsubscribe(a, "room:1"); !errors.Is(err, ErrClosed) {
		t.Errorf("unsubscribe after close: %v, want ErrClosed", err)
	}
}
