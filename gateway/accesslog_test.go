package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// readLines reads the access log file; Shutdown has flushed it.
func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

func shutdown(t *testing.T, g *Gateway) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := g.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

// A WebSocket stage's JSON access log: one line per CONNECT, MESSAGE
// (answered, refused for want of a route) and DISCONNECT, parsed back
// and checked field by field; Shutdown flushes it.
func TestAccessLogWebSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	format := `{"requestId":"$context.requestId","extendedRequestId":"$context.extendedRequestId","ip":"$context.identity.sourceIp",` +
		`"requestTime":"$context.requestTime","requestTimeEpoch":"$context.requestTimeEpoch","routeKey":"$context.routeKey",` +
		`"status":"$context.status","connectionId":"$context.connectionId","eventType":"$context.eventType",` +
		`"integrationLatency":"$context.integrationLatency","responseLatency":"$context.responseLatency",` +
		`"principalId":"$context.authorizer.principalId","error":"$context.error.message","stage":"$context.stage",` +
		`"apiId":"$context.apiId","messageId":"$context.messageId","closeCode":"$context.disconnectStatusCode"}`
	yml := `apis:
  - name: t
    id: abc123
    stages:
      - name: test
        accessLogSettings:
          format: '` + format + `'
          destination: ` + path + `
    routes:
      whoami:
        routeResponse: true
        integration: {type: mock, response: {body: "$context.connectionId"}}
`
	g := startGateway(t, yml)
	before := time.Now().Add(-time.Second)
	c := dial(t, wsURL(g, "test"), nil)
	send(t, c, `{"action":"whoami"}`)
	id := readText(t, c)
	send(t, c, `{"action":"nope"}`)
	readText(t, c)
	if err := c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(1000, "bye")); err != nil {
		t.Fatal(err)
	}
	readClose(t, c)
	shutdown(t, g)

	lines := readLines(t, path)
	if len(lines) != 4 {
		t.Fatalf("%d lines, want CONNECT, 2 MESSAGE, DISCONNECT:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	idRE := regexp.MustCompile(`^[A-Za-z0-9_-]{15}=$`)
	var seen []string
	for i, l := range lines {
		var e map[string]string
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("line %d %q: %v", i, l, err)
		}
		seen = append(seen, e["eventType"]+" "+e["routeKey"]+" "+e["status"])
		for k, v := range map[string]string{"ip": "127.0.0.1", "connectionId": id, "stage": "test", "apiId": "abc123", "principalId": "-"} {
			if e[k] != v {
				t.Errorf("line %d: %s = %q, want %q", i, k, e[k], v)
			}
		}
		if !idRE.MatchString(e["requestId"]) || e["extendedRequestId"] != e["requestId"] {
			t.Errorf("line %d: requestId %q, extendedRequestId %q", i, e["requestId"], e["extendedRequestId"])
		}
		epoch, err := strconv.ParseInt(e["requestTimeEpoch"], 10, 64)
		if err != nil || epoch < before.UnixMilli() || epoch > time.Now().UnixMilli() {
			t.Errorf("line %d: requestTimeEpoch %q", i, e["requestTimeEpoch"])
		}
		rt, err := time.Parse("02/Jan/2006:15:04:05 -0700", e["requestTime"])
		if err != nil || rt.Unix() != epoch/1000 {
			t.Errorf("line %d: requestTime %q (epoch %d): %v", i, e["requestTime"], epoch, err)
		}
		if _, err := strconv.Atoi(e["responseLatency"]); err != nil {
			t.Errorf("line %d: responseLatency %q", i, e["responseLatency"])
		}
		switch e["eventType"] {
		case "MESSAGE":
			if e["routeKey"] == "whoami" {
				if _, err := strconv.Atoi(e["integrationLatency"]); err != nil || !idRE.MatchString(e["messageId"]) || e["error"] != "-" {
					t.Errorf("answered message: %v", e)
				}
			} else if e["routeKey"] != "-" || e["error"] != "Forbidden" || e["integrationLatency"] != "-" {
				t.Errorf("message without a route: %v", e)
			}
		case "DISCONNECT":
			if e["closeCode"] != "1000" {
				t.Errorf("disconnect: closeCode %q", e["closeCode"])
			}
		}
	}
	want := []string{"CONNECT $connect 200", "MESSAGE whoami 200", "MESSAGE - 403", "DISCONNECT $disconnect 200"}
	if strings.Join(seen, "|") != strings.Join(want, "|") {
		t.Errorf("lines %v, want %v", seen, want)
	}
	if got := scrape(t, g)[`portico_access_log_lines_total{destination="`+path+`"}`]; got != 4 {
		t.Errorf("lines counted: %v, want 4", got)
	}
}

// An HTTP API stage's CLF-style access log, one line per request.
func TestAccessLogHTTP(t *testing.T) {
	path := filepath.Join(t.TempDir(), "http.log")
	stages := `- name: prod
  accessLogSettings:
    format: '$context.identity.sourceIp - - [$context.requestTime] "$context.httpMethod $context.path $context.protocol" $context.status $context.requestId $context.routeKey $context.integrationLatency "$context.error.message"'
    destination: ` + path + "\n"
	routes := "GET /pets/{id}:\n  integration: {type: mock, response: {statusCode: 201, body: ok}}\n"
	g := startGateway(t, httpAPI("http", "", stages, routes))
	call(t, "GET", apiURL(g)+"/prod/pets/7", "", nil)
	call(t, "GET", apiURL(g)+"/prod/nothing", "", nil)
	shutdown(t, g)
	lines := readLines(t, path)
	re := regexp.MustCompile(`^127\.0\.0\.1 - - \[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "GET (\S+) HTTP/1\.1" (\d{3}) (\S+) (.+) (\S+) "(.*)"$`)
	want := [][]string{{"/prod/pets/7", "201", "GET /pets/{id}", "", "-"}, {"/prod/nothing", "404", "-", "-", "Not Found"}}
	if len(lines) != len(want) {
		t.Fatalf("lines %q, want %d", lines, len(want))
	}
	for i, l := range lines {
		m := re.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("line %q is not the format", l)
		}
		if m[1] != want[i][0] || m[2] != want[i][1] || m[4] != want[i][2] || m[6] != want[i][4] {
			t.Errorf("line %q: got %q, want %q", l, m[1:], want[i])
		}
		if _, err := strconv.Atoi(m[5]); want[i][3] == "" && err != nil {
			t.Errorf("line %q: integrationLatency %q", l, m[5])
		}
		if !regexp.MustCompile(`^[A-Za-z0-9=_-]+$`).MatchString(m[3]) {
			t.Errorf("line %q: requestId %q", l, m[3])
		}
	}
}

// Refusals are ClientErrors and have their access log lines: a throttled
// message (429, "Too Many Requests") and a handshake refused by the
// $connect bucket of a closed stage.
func TestAccessLogRefusals(t *testing.T) {
	clk := newTestClock(time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC))
	path := filepath.Join(t.TempDir(), "access.log")
	yml := `apis:
  - name: t
    limits: {messageRateLimit: 1, messageBurstLimit: 1}
    stages:
      - name: test
        accessLogSettings: {format: '$context.eventType $context.routeKey $context.status "$context.error.message" $context.requestId', destination: ` + path + `}
      - name: closed
        routeSettings:
          $connect: {throttlingRateLimit: 0, throttlingBurstLimit: 0}
        accessLogSettings: {format: '$context.eventType $context.routeKey $context.status "$context.error.message" $context.requestId', destination: ` + path + `}
    routes:
      echo:
        routeResponse: true
        integration: {type: mock, response: {body: "$request.body.data"}}
`
	g := startGateway(t, yml, WithClock(clk.now))
	if _, resp, err := websocket.DefaultDialer.Dial(wsURL(g, "closed"), nil); err == nil || resp == nil || resp.StatusCode != 429 {
		t.Fatalf("closed stage: %v %v, want 429", err, resp)
	}
	c := dial(t, wsURL(g, "test"), nil)
	send(t, c, `{"action":"echo","data":"one"}`)
	if got := readText(t, c); got != "one" {
		t.Fatalf("first message: %q", got)
	}
	send(t, c, `{"action":"echo","data":"two"}`)
	if got := readText(t, c); !strings.Contains(got, `"Too Many Requests"`) {
		t.Fatalf("second message: %q", got)
	}
	waitMetrics(t, g, map[string]float64{
		`portico_client_errors_total{api="t",reason="throttled",stage="test"}`:   1,
		`portico_client_errors_total{api="t",reason="throttled",stage="closed"}`: 1,
	})
	shutdown(t, g)
	var got []string
	for _, l := range readLines(t, path) {
		got = append(got, l[:strings.LastIndexByte(l, ' ')]) // the request id varies
	}
	want := []string{`CONNECT $connect 429 "Too Many Requests"`, `CONNECT $connect 200 "-"`,
		`MESSAGE echo 200 "-"`, `MESSAGE echo 429 "Too Many Requests"`, `DISCONNECT $disconnect 200 "-"`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("lines\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
