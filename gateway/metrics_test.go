package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// scrape gathers the gateway's metrics as "name{k="v",...}" → value,
// labels sorted by name (histograms as name_count and name_sum).
func scrape(t *testing.T, g *Gateway) map[string]float64 {
	t.Helper()
	mfs, err := g.promReg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+`="`+l.GetValue()+`"`)
			}
			sort.Strings(ls)
			key := "{" + strings.Join(ls, ",") + "}"
			switch {
			case m.Counter != nil:
				out[mf.GetName()+key] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[mf.GetName()+key] = m.GetGauge().GetValue()
			case m.Histogram != nil:
				out[mf.GetName()+"_count"+key] = float64(m.GetHistogram().GetSampleCount())
				out[mf.GetName()+"_sum"+key] = m.GetHistogram().GetSampleSum()
			}
		}
	}
	return out
}

// waitMetrics polls until every series in want has its value (counters
// that move just after a frame is handed to the socket may lag the
// client's read), failing with what differs after testTimeout.
func waitMetrics(t *testing.T, g *Gateway, want map[string]float64) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for {
		got := scrape(t, g)
		var bad []string
		for k, v := range want {
			if got[k] != v {
				bad = append(bad, k)
			}
		}
		if len(bad) == 0 {
			return
		}
		if time.Now().After(deadline) {
			sort.Strings(bad)
			for _, k := range bad {
				t.Errorf("%s = %v, want %v", k, got[k], want[k])
			}
			t.FailNow()
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Every AWS-named WebSocket metric is moved by what it counts: ConnectCount,
// MessageCount (with @connections pushes as outgoing messages),
// IntegrationError (failures and 4xx/5xx answers, mock routes included),
// ClientError, ExecutionError and IntegrationLatency (mock routes too).
func TestAWSMetricsWebSocket(t *testing.T) {
	b := newBackend(t)
	b.setReply(func(e event, w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/fail":
			w.WriteHeader(500)
		case "/bad":
			_, _ = io.WriteString(w, `{"statusCode":502,"body":"upstream"}`)
		default:
			_, _ = io.WriteString(w, `{"statusCode":200}`)
		}
	})
	routes := `whoami:
  routeResponse: true
  integration: {type: mock, response: {body: "$context.connectionId"}}
teapot:
  routeResponse: true
  integration: {type: mock, response: {statusCode: 418, body: "short and stout"}}
fail:
  routeResponse: true
  integration: {type: http, uri: "BACKEND/fail"}
bad:
  integration: {type: http, uri: "BACKEND/bad"}
`
	g := startGateway(t, strings.ReplaceAll(yamlAPI("", routes), "BACKEND", b.srv.URL))
	if _, resp, err := websocket.DefaultDialer.Dial(wsURL(g, "nostage"), nil); err == nil || resp == nil || resp.StatusCode != 403 {
		t.Fatalf("unknown stage: %v %v, want 403", err, resp)
	}
	c := dial(t, wsURL(g, "test"), nil)
	send(t, c, `{"action":"whoami"}`)
	id := readText(t, c)
	send(t, c, `{"action":"teapot"}`)
	readText(t, c)
	send(t, c, `{"action":"nope"}`) // no route, no $default: Forbidden
	if got := readText(t, c); !strings.Contains(got, `"Forbidden"`) {
		t.Fatalf("no route: %q", got)
	}
	send(t, c, `{"action":"fail"}`)
	if got := readText(t, c); !strings.Contains(got, "Internal server error") {
		t.Fatalf("failing integration: %q", got)
	}
	send(t, c, `{"action":"bad"}`)
	b.next()
	for range 2 {
		if resp, body := doHTTP(t, "POST", mgmtURL(g, "test")+"/@connections/"+id, "pushed"); resp.StatusCode != 200 {
			t.Fatalf("@connections post: %d %s", resp.StatusCode, body)
		}
		if got := readText(t, c); got != "pushed" {
			t.Fatalf("pushed %q", got)
		}
	}
	const s = `api="t",`
	waitMetrics(t, g, map[string]float64{
		`portico_connects_total{` + s + `result="accepted",stage="test"}`:                     1,
		`portico_connects_total{` + s + `result="rejected",stage=""}`:                         1,
		`portico_connections_open{` + s + `stage="test"}`:                                     1,
		`portico_messages_total{` + s + `direction="in",route="whoami",stage="test"}`:         1,
		`portico_messages_total{` + s + `direction="out",route="whoami",stage="test"}`:        1,
		`portico_messages_total{` + s + `direction="in",route="$default",stage="test"}`:       1,
		`portico_messages_total{` + s + `direction="out",route="$default",stage="test"}`:      2, // Forbidden, Internal server error
		`portico_messages_total{` + s + `direction="out",route="@connections",stage="test"}`:  2,
		`portico_integration_duration_seconds_count{` + s + `route="whoami",stage="test"}`:    1,
		`portico_integration_duration_seconds_count{` + s + `route="teapot",stage="test"}`:    1,
		`portico_integration_duration_seconds_count{` + s + `route="fail",stage="test"}`:      1,
		`portico_integration_errors_total{` + s + `kind="4xx",route="teapot",stage="test"}`:   1,
		`portico_integration_errors_total{` + s + `kind="error",route="fail",stage="test"}`:   1,
		`portico_integration_errors_total{` + s + `kind="5xx",route="bad",stage="test"}`:      1,
		`portico_integration_errors_total{` + s + `kind="timeout",route="fail",stage="test"}`: 0,
		`portico_client_errors_total{` + s + `reason="no_route",stage="test"}`:                1,
		`portico_client_errors_total{` + s + `reason="no_stage",stage=""}`:                    1,
		`portico_execution_errors_total{` + s + `stage="test"}`:                               1,
		`portico_management_requests_total{code="200",op="post"}`:                             2,
		`portico_integration_duration_seconds_count{` + s + `route="bad",stage="test"}`:       1,
		`portico_messages_total{` + s + `direction="in",route="bad",stage="test"}`:            1,
		`portico_messages_total{` + s + `direction="out",route="teapot",stage="test"}`:        1,
		`portico_messages_total{` + s + `direction="in",route="teapot",stage="test"}`:         1,
		`portico_messages_total{` + s + `direction="in",route="fail",stage="test"}`:           1,
	})
}

// HTTP APIs: Count, 4XXError and 5XXError (by status class), Latency and
// IntegrationLatency, with IntegrationError for a proxied backend's 5xx
// and a mock's 4xx.
func TestAWSMetricsHTTP(t *testing.T) {
	back := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }))
	t.Cleanup(back.Close)
	routes := "GET /teapot:\n  integration: {type: mock, response: {statusCode: 418, body: no}}\n" +
		"GET /ok:\n  integration: {type: mock, response: {body: ok}}\n" +
		"GET /down:\n  integration: {type: http_proxy, uri: \"" + back.URL + "\"}\n"
	g := startGateway(t, httpAPI("http", "", "- name: prod\n", routes))
	base := apiURL(g) + "/prod"
	for path, want := range map[string]int{"/teapot": 418, "/ok": 200, "/down": 503} {
		if resp, body := call(t, "GET", base+path, "", nil); resp.StatusCode != want {
			t.Errorf("GET %s: %d %q, want %d", path, resp.StatusCode, body, want)
		}
	}
	const s = `api="pets",`
	waitMetrics(t, g, map[string]float64{
		`portico_http_requests_total{` + s + `route="GET /teapot",stage="prod",status_class="4xx"}`: 1,
		`portico_http_requests_total{` + s + `route="GET /ok",stage="prod",status_class="2xx"}`:     1,
		`portico_http_requests_total{` + s + `route="GET /down",stage="prod",status_class="5xx"}`:   1,
		`portico_http_latency_seconds_count{` + s + `route="GET /ok",stage="prod"}`:                 1,
		`portico_integration_duration_seconds_count{` + s + `route="GET /ok",stage="prod"}`:         1,
		`portico_integration_duration_seconds_count{` + s + `route="GET /down",stage="prod"}`:       1,
		`portico_integration_errors_total{` + s + `kind="4xx",route="GET /teapot",stage="prod"}`:    1,
		`portico_integration_errors_total{` + s + `kind="5xx",route="GET /down",stage="prod"}`:      1,
	})
}
