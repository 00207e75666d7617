package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

const whoamiRoutes = `whoami:
  routeResponse: true
  integration: {type: mock, response: {body: "$context.connectionId"}}
`

func doHTTP(t *testing.T, method, url, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestManagementRawPaths(t *testing.T) {
	g := startGateway(t, yamlAPI("", whoamiRoutes))
	c := dial(t, wsURL(g, "test"), http.Header{"User-Agent": {"raw/1"}})
	send(t, c, `{"action":"whoami"}`)
	id := readText(t, c)
	escaped := strings.ReplaceAll(id, "=", "%3D")

	// POST with the id percent-encoded and @ as %40, as SDKs and awscurl send it.
	resp, body := doHTTP(t, "POST", mgmtURL(g, "test")+"/%40connections/"+escaped, "pushed")
	if resp.StatusCode != 200 || body != "" {
		t.Fatalf("POST: %d %q", resp.StatusCode, body)
	}
	if got := readText(t, c); got != "pushed" {
		t.Errorf("client got %q", got)
	}
	if resp.Header.Get("x-amzn-RequestId") == "" {
		t.Error("no x-amzn-RequestId")
	}

	resp, body = doHTTP(t, "GET", mgmtURL(g, "test")+"/@connections/"+escaped, "")
	if resp.StatusCode != 200 {
		t.Fatalf("GET: %d %s", resp.StatusCode, body)
	}
	var info struct {
		ConnectedAt, LastActiveAt string
		Identity                  struct{ SourceIP, UserAgent string }
	}
	if err := json.Unmarshal([]byte(body), &info); err != nil {
		t.Fatal(err)
	}
	ca, err1 := time.Parse(time.RFC3339Nano, info.ConnectedAt)
	la, err2 := time.Parse(time.RFC3339Nano, info.LastActiveAt)
	if err1 != nil || err2 != nil || time.Since(ca) > time.Minute || la.Before(ca) {
		t.Errorf("GET times %q %q", info.ConnectedAt, info.LastActiveAt)
	}
	if info.Identity.SourceIP != "127.0.0.1" || info.Identity.UserAgent != "raw/1" {
		t.Errorf("GET identity %+v", info.Identity)
	}

	// Over the 128 KB payload limit: 413 with AWS's error type.
	resp, _ = doHTTP(t, "POST", mgmtURL(g, "test")+"/@connections/"+escaped, strings.Repeat("x", 128<<10+1))
	if resp.StatusCode != 413 || resp.Header.Get("x-amzn-ErrorType") != "PayloadTooLargeException" {
		t.Errorf("oversize POST: %d %q", resp.StatusCode, resp.Header.Get("x-amzn-ErrorType"))
	}
	// Wrong stage for this connection's API: unknown stage is Forbidden.
	resp, _ = doHTTP(t, "POST", mgmtURL(g, "other")+"/@connections/"+escaped, "x")
	if resp.StatusCode != 403 || resp.Header.Get("x-amzn-ErrorType") != "ForbiddenException" {
		t.Errorf("unknown stage: %d %q", resp.StatusCode, resp.Header.Get("x-amzn-ErrorType"))
	}

	resp, _ = doHTTP(t, "DELETE", mgmtURL(g, "test")+"/@connections/"+escaped, "")
	if resp.StatusCode != 204 {
		t.Fatalf("DELETE: %d", resp.StatusCode)
	}
	if ce := readClose(t, c); ce.Code != 1000 || ce.Text != "Connection Closed Normally" {
		t.Errorf("DELETE closed with %d %q", ce.Code, ce.Text)
	}
	for _, m := range []string{"POST", "GET", "DELETE"} {
		resp, _ := doHTTP(t, m, mgmtURL(g, "test")+"/@connections/"+escaped, "x")
		if resp.StatusCode != 410 || resp.Header.Get("x-amzn-ErrorType") != "GoneException" {
			t.Errorf("%s after close: %d %q, want 410 GoneException", m, resp.StatusCode, resp.Header.Get("x-amzn-ErrorType"))
		}
	}
	resp, _ = doHTTP(t, "POST", mgmtURL(g, "test")+"/@connections/AAAAAAAAAAAAAAA=", "x")
	if resp.StatusCode != 410 {
		t.Errorf("unknown id: %d, want 410", resp.StatusCode)
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	g := startGateway(t, yamlAPI("", whoamiRoutes))
	c := dial(t, wsURL(g, "test"), nil)
	send(t, c, `{"action":"whoami"}`)
	readText(t, c)
	for _, p := range []string{"/healthz", "/readyz"} {
		if resp, body := doHTTP(t, "GET", "http://"+g.ManagementAddr()+p, ""); resp.StatusCode != 200 {
			t.Errorf("%s: %d %s", p, resp.StatusCode, body)
		}
	}
	wants := []string{
		`portico_connections_open{api="t",stage="test"} 1`,
		`portico_connects_total{api="t",result="accepted",stage="test"} 1`,
		`portico_messages_total{api="t",direction="in",route="whoami",stage="test"} 1`,
		`portico_messages_total{api="t",direction="out",route="whoami",stage="test"} 1`,
	}
	// The out counter moves just after the frame is handed to the socket,
	// so the client may read the frame first: poll until it shows.
	deadline := time.Now().Add(testTimeout)
	for {
		_, body := doHTTP(t, "GET", "http://"+g.ManagementAddr()+"/metrics", "")
		var missing []string
		for _, want := range wants {
			if !strings.Contains(body, want) {
				missing = append(missing, want)
			}
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics lacks %v", missing)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
