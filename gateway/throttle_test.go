package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/portico-gateway/portico/storage/storagetest"
)

// testClock is a clock the tests move by hand (WithClock).
type testClock struct{ ns atomic.Int64 }

func newTestClock(t time.Time) *testClock {
	c := &testClock{}
	c.ns.Store(t.UnixNano())
	return c
}
func (c *testClock) now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *testClock) add(d time.Duration) { c.ns.Add(int64(d)) }

const testKey = "partnerAkey0123456789abcd"

// echoRoutes answer every message with a mock two-way route.
const echoRoutes = `send:
  routeResponse: true
  integration: {type: mock, response: {body: "ok"}}
`

// dialStatus dials and returns the HTTP status and body of a refused
// handshake (101 and "" when it was accepted).
func dialStatus(t *testing.T, url string, h http.Header) (status int, body string, resp *http.Response) {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial(url, h)
	if err == nil {
		t.Cleanup(func() { c.Close() })
		return resp.StatusCode, "", resp
	}
	if resp == nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp
}

var errorFrameRE = regexp.MustCompile(`^\{"message": "([^"]+)", "connectionId":"[A-Za-z0-9_=-]{16}", "requestId":"[A-Za-z0-9_=-]{16}"\}$`)

// frameMessage is the message of an AWS error frame, or "" for any other
// text.
func frameMessage(s string) string {
	if m := errorFrameRE.FindStringSubmatch(s); m != nil {
		return m[1]
	}
	return ""
}

// throttleYAML is a one-API configuration: top-level YAML, then the
// API's extra keys, stage "test"'s extra keys and the routes.
func throttleYAML(top, api, stage, routes string) string {
	return top + "apis:\n  - name: t\n" + indent(api, "    ") + "    stages:\n      - name: test\n" +
		indent(stage, "        ") + "    routes:\n" + indent(routes, "      ")
}

// A burst of handshakes beyond the $connect bucket gets exactly the
// expected 429s, with AWS's body and error type; time refills it.
func TestThrottleHandshakes(t *testing.T) {
	clk := newTestClock(time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC))
	g := startGateway(t, throttleYAML("", "", "routeSettings: {$connect: {throttlingRateLimit: 1, throttlingBurstLimit: 3}}\n", echoRoutes),
		WithClock(clk.now))
	url := wsURL(g, "test")
	accepted, refused := 0, 0
	for range 8 {
		status, body, resp := dialStatus(t, url, nil)
		switch status {
		case http.StatusSwitchingProtocols:
			accepted++
		case http.StatusTooManyRequests:
			refused++
			if body != `{"message":"Too Many Requests"}` || resp.Header.Get("x-amzn-ErrorType") != "TooManyRequestsException" {
				t.Errorf("429: body %q, x-amzn-ErrorType %q", body, resp.Header.Get("x-amzn-ErrorType"))
			}
		default:
			t.Fatalf("handshake: %d %s", status, body)
		}
	}
	if accepted != 3 || refused != 5 {
		t.Fatalf("8 handshakes against a burst of 3: %d accepted, %d refused", accepted, refused)
	}
	clk.add(time.Second)
	if status, _, _ := dialStatus(t, url, nil); status != http.StatusSwitchingProtocols {
		t.Fatalf("a second later: %d", status)
	}
	if status, _, _ := dialStatus(t, url, nil); status != http.StatusTooManyRequests {
		t.Fatalf("and only one: %d", status)
	}
	_, metrics := doHTTP(t, "GET", "http://"+g.ManagementAddr()+"/metrics", "")
	if !strings.Contains(metrics, `portico_throttled_total{api="t",level="route",stage="test"} 6`) {
		t.Errorf("/metrics lacks 6 route-level refusals:\n%s", grepLines(metrics, "portico_throttled_total"))
	}
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// Throttled messages get AWS's error frame; the connection stays open
// and is served again once the bucket refills. The stage default applies
// to routes without settings of their own, and the per-connection bucket
// to each connection alone.
func TestThrottleMessages(t *testing.T) {
	clk := newTestClock(time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC))
	g := startGateway(t, throttleYAML("", "limits: {messageRateLimit: 100, messageBurstLimit: 10}\n",
		"defaultRouteSettings: {throttlingRateLimit: 1, throttlingBurstLimit: 4}\nrouteSettings: {send: {throttlingRateLimit: 1, throttlingBurstLimit: 2}}\n",
		echoRoutes+"other:\n  routeResponse: true\n  integration: {type: mock, response: {body: \"other\"}}\n"), WithClock(clk.now))
	c := dial(t, wsURL(g, "test"), nil)
	tally := func(action string, n int) (ok, throttled int) {
		t.Helper()
		for range n {
			send(t, c, `{"action":"`+action+`"}`)
		}
		for range n {
			got := readText(t, c)
			switch msg := frameMessage(got); {
			case msg == "Too Many Requests":
				throttled++
			case msg == "" && (got == "ok" || got == "other"):
				ok++
			default:
				t.Fatalf("unexpected %q", got)
			}
		}
		return ok, throttled
	}
	if ok, thr := tally("send", 5); ok != 2 || thr != 3 {
		t.Errorf("route settings (burst 2): %d ok, %d throttled", ok, thr)
	}
	if ok, thr := tally("other", 5); ok != 4 || thr != 1 {
		t.Errorf("stage default (burst 4): %d ok, %d throttled", ok, thr)
	}
	// The connection's own bucket (burst 10) is spent by now.
	send(t, c, `{"action":"send"}`)
	if got := readText(t, c); frameMessage(got) != "Too Many Requests" {
		t.Errorf("past the connection's bucket: %q", got)
	}
	clk.add(10 * time.Second)
	if ok, _ := tally("send", 1); ok != 1 {
		t.Errorf("after the refill: the connection was not served again")
	}
	c2 := dial(t, wsURL(g, "test"), nil)
	send(t, c2, `{"action":"send"}`)
	if got := readText(t, c2); got != "ok" {
		t.Errorf("second connection: %q", got)
	}
	_, metrics := doHTTP(t, "GET", "http://"+g.ManagementAddr()+"/metrics", "")
	for _, want := range []string{`level="route",stage="test"} 3`, `level="stage",stage="test"} 1`, `level="connection",stage="test"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s:\n%s", want, grepLines(metrics, "portico_throttled_total"))
		}
	}
}

// The per-connection bucket alone: a connection over it gets error
// frames while another connection is served.
func TestThrottlePerConnection(t *testing.T) {
	clk := newTestClock(time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC))
	g := startGateway(t, throttleYAML("", "limits: {messageRateLimit: 1, messageBurstLimit: 2}\n", "", echoRoutes), WithClock(clk.now))
	a, b := dial(t, wsURL(g, "test"), nil), dial(t, wsURL(g, "test"), nil)
	for range 3 {
		send(t, a, `{"action":"send"}`)
	}
	for i, want := range []string{"ok", "ok", "Too Many Requests"} {
		got := readText(t, a)
		if got != want && frameMessage(got) != want {
			t.Errorf("a, message %d: %q, want %q", i, got, want)
		}
	}
	send(t, b, `{"action":"send"}`)
	if got := readText(t, b); got != "ok" {
		t.Errorf("b: %q", got)
	}
	_, metrics := doHTTP(t, "GET", "http://"+g.ManagementAddr()+"/metrics", "")
	if !strings.Contains(metrics, `portico_throttled_total{api="t",level="connection",stage="test"} 1`) {
		t.Errorf("/metrics:\n%s", grepLines(metrics, "portico_throttled_total"))
	}
}

const planYAML = `usagePlans:
  - name: basic
    apiStages: [{api: t, stage: test}]
    throttle: {rateLimit: 100, burstLimit: 100}
    quota: {limit: 4, period: DAY}
apiKeys:
  - {name: partner-a, value: "${PORTICO_TEST_PARTNER_KEY}", usagePlans: [basic]}
`

// API keys on $connect (missing or unknown: 403), the connection keeps
// its key for its messages, a spent quota answers 429 Limit Exceeded
// (a frame on messages), the usage endpoint reports it, and the next UTC
// day starts afresh.
func TestAPIKeysAndQuota(t *testing.T) {
	t.Setenv("PORTICO_TEST_PARTNER_KEY", testKey)
	clk := newTestClock(time.Date(2026, 3, 10, 22, 0, 0, 0, time.UTC))
	g := startGateway(t, throttleYAML(planYAML, "", "", "$connect:\n  apiKeyRequired: true\n"+echoRoutes), WithClock(clk.now))
	url := wsURL(g, "test")
	for name, h := range map[string]http.Header{
		"missing": nil,
		"unknown": {"X-Api-Key": {"unknownKey0123456789abc"}},
	} {
		status, body, resp := dialStatus(t, url, h)
		if status != http.StatusForbidden || body != `{"message":"Forbidden"}` || resp.Header.Get("x-amzn-ErrorType") != "ForbiddenException" {
			t.Errorf("%s key: %d %q %q", name, status, body, resp.Header.Get("x-amzn-ErrorType"))
		}
	}
	// Header names are case-insensitive.
	c := dial(t, url, http.Header{"X-API-KEY": {testKey}}) // the 1st request of the quota
	for range 4 {
		send(t, c, `{"action":"send"}`)
	}
	for i, want := range []string{"ok", "ok", "ok", "Limit Exceeded"} {
		got := readText(t, c)
		if got != want && frameMessage(got) != want {
			t.Errorf("message %d: %q, want %q", i, got, want)
		}
	}
	status, body, resp := dialStatus(t, url, http.Header{"X-Api-Key": {testKey}})
	if status != http.StatusTooManyRequests || body != `{"message":"Limit Exceeded"}` || resp.Header.Get("x-amzn-ErrorType") != "LimitExceededException" {
		t.Errorf("handshake with the quota spent: %d %q %q", status, body, resp.Header.Get("x-amzn-ErrorType"))
	}
	usage := func() string {
		resp, body := doHTTP(t, "GET", "http://"+g.ManagementAddr()+"/usageplans/basic/usage?keyId=partner-a&startDate=2026-03-01&endDate=2026-03-31", "")
		if resp.StatusCode != 200 {
			t.Fatalf("usage: %d %s", resp.StatusCode, body)
		}
		var u map[string]any
		if err := json.Unmarshal([]byte(body), &u); err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(body)
	}
	if got, want := usage(), `{"usagePlanId":"basic","startDate":"2026-03-10","endDate":"2026-03-10","items":{"partner-a":[[4,0]]}}`; got != want {
		t.Errorf("usage:\n got %s\nwant %s", got, want)
	}
	if resp, _ := doHTTP(t, "GET", "http://"+g.ManagementAddr()+"/usageplans/basic/usage?keyId=nobody", ""); resp.StatusCode != 404 {
		t.Errorf("usage of an unknown key: %d", resp.StatusCode)
	}
	clk.add(2 * time.Hour) // 2026-03-11 00:00 UTC
	send(t, c, `{"action":"send"}`)
	if got := readText(t, c); got != "ok" {
		t.Errorf("the next day: %q", got)
	}
	if got, want := usage(), `{"usagePlanId":"basic","startDate":"2026-03-11","endDate":"2026-03-11","items":{"partner-a":[[1,3]]}}`; got != want {
		t.Errorf("usage the next day:\n got %s\nwant %s", got, want)
	}
}

// A connection may have at most maxInFlightPerConnection integration
// calls in flight; more get the Too Many Requests frame at once.
func TestInFlightPerConnection(t *testing.T) {
	b := newBackend(t)
	release := make(chan struct{})
	b.setReply(func(e event, w http.ResponseWriter, r *http.Request) {
		if e.str("eventType") == "MESSAGE" {
			<-release
		}
		_, _ = io.WriteString(w, `{"statusCode":200,"body":"done"}`)
	})
	g := startGateway(t, throttleYAML("", "limits: {maxInFlightPerConnection: 2}\n", "",
		"slow:\n  routeResponse: true\n  integration: {type: http, uri: \""+b.srv.URL+"/slow\"}\n"))
	c := dial(t, wsURL(g, "test"), nil)
	send(t, c, `{"action":"slow"}`)
	send(t, c, `{"action":"slow"}`)
	b.nextOf("MESSAGE")
	b.nextOf("MESSAGE") // both calls are in flight
	send(t, c, `{"action":"slow"}`)
	if got := readText(t, c); frameMessage(got) != "Too Many Requests" {
		t.Fatalf("third message in flight: %q", got)
	}
	close(release)
	for range 2 {
		if got := readText(t, c); got != "done" {
			t.Fatalf("answer %q", got)
		}
	}
	send(t, c, `{"action":"slow"}`)
	b.nextOf("MESSAGE")
	if got := readText(t, c); got != "done" {
		t.Fatalf("after the calls ended: %q", got)
	}
}

// clusterYAML runs route "send" at rate rps, burst 10, cluster-wide.
func clusterYAML(addr string, rps int) string {
	return throttleYAML("storage: {type: redis, nodeTTL: 3s, redis: {addrs: ["+addr+"]}}\nthrottling: {scope: cluster}\n", "",
		fmt.Sprintf("routeSettings: {send: {throttlingRateLimit: %d, throttlingBurstLimit: 10}}\n", rps), echoRoutes)
}

// Three nodes over one Redis hold a cluster-wide rate within 10%: 100 a
// second for the three together, each client offering 200 a second.
func TestClusterThrottle(t *testing.T) {
	addr := storagetest.RedisAddr(t)
	var nodes [3]*Gateway
	for i := range nodes {
		nodes[i] = startGateway(t, clusterYAML(addr, 100))
	}
	conns := make([]*websocket.Conn, len(nodes))
	for i, g := range nodes {
		conns[i] = dial(t, wsURL(g, "test"), nil)
	}
	const seconds, perSecond = 3, 200
	var ok, throttled, lastWrite atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for _, c := range conns {
		wg.Add(2)
		go func() { // reader
			defer wg.Done()
			for range seconds * perSecond {
				_ = c.SetReadDeadline(time.Now().Add(testTimeout))
				_, data, err := c.ReadMessage()
				if err != nil {
					t.Errorf("read: %v", err)
					return
				}
				if string(data) == "ok" {
					ok.Add(1)
				} else if frameMessage(string(data)) == "Too Many Requests" {
					throttled.Add(1)
				}
			}
		}()
		go func() { // writer, paced
			defer wg.Done()
			tick := time.NewTicker(time.Second / perSecond)
			defer tick.Stop()
			for range seconds * perSecond {
				<-tick.C
				if err := c.WriteMessage(websocket.TextMessage, []byte(`{"action":"send"}`)); err != nil {
					t.Errorf("write: %v", err)
					return
				}
			}
			end := time.Now().UnixNano()
			for {
				old := lastWrite.Load()
				if old >= end || lastWrite.CompareAndSwap(old, end) {
					break
				}
			}
		}()
	}
	wg.Wait()
	// Requests are offered from start to the last write.
	elapsed := time.Unix(0, lastWrite.Load()).Sub(start).Seconds()
	want := 10 + 100*elapsed
	if got := float64(ok.Load()); got < want*0.9 || got > want*1.1 {
		t.Errorf("cluster-wide: %v allowed in %.2fs, want %.0f ±10%% (throttled %d)", got, elapsed, want, throttled.Load())
	}
	t.Logf("%d allowed, %d throttled in %.2fs (want %.0f)", ok.Load(), throttled.Load(), elapsed, want)
}

// With Redis gone, each node falls back to the limits divided by the
// live node count, says so in portico_throttle_fallback, and goes back
// to cluster-wide limits when Redis returns.
func TestClusterThrottleFallback(t *testing.T) {
	addr := storagetest.RedisAddr(t)
	clk := newTestClock(time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC))
	yml := throttleYAML("storage: {type: redis, nodeTTL: 3s, redis: {addrs: ["+addr+"]}}\nthrottling: {scope: cluster}\n", "",
		"routeSettings: {send: {throttlingRateLimit: 1, throttlingBurstLimit: 30}}\n", echoRoutes)
	a := startGateway(t, yml, WithClock(clk.now))
	startGateway(t, yml)
	startGateway(t, yml)
	eventually(t, "node a counts three nodes", func() error {
		if n := a.throttle.FallbackNodes(); n != 3 {
			return fmt.Errorf("%d nodes", n)
		}
		return nil
	})
	c := dial(t, wsURL(a, "test"), nil)
	fallback := func() string {
		_, m := doHTTP(t, "GET", "http://"+a.ManagementAddr()+"/metrics", "")
		return grepLines(m, "portico_throttle_fallback ")
	}
	if got := fallback(); got != "portico_throttle_fallback 0" {
		t.Fatalf("before: %q", got)
	}
	restart := stopRedis(t, addr)
	eventually(t, "fallback reported", func() error {
		if got := fallback(); got != "portico_throttle_fallback 1" {
			return fmt.Errorf("%q", got)
		}
		return nil
	})
	for range 20 {
		send(t, c, `{"action":"send"}`)
	}
	ok := 0
	for range 20 {
		if readText(t, c) == "ok" {
			ok++
		}
	}
	if ok != 10 {
		t.Errorf("fallback: %d of 20 allowed at once, want 10 (burst 30 / 3 nodes)", ok)
	}
	restart()
	eventually(t, "back to cluster-wide", func() error {
		if got := fallback(); got != "portico_throttle_fallback 0" {
			return fmt.Errorf("%q", got)
		}
		return nil
	})
}
