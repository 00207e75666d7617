package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gorilla/websocket"

	"github.com/portico-gateway/portico/storage/storagetest"
)

const consoleToken = "console-test-token-0123456789"

// consoleYAML is an API with a request authorizer on $connect (so a
// connection has an authorizer context), a channel every connection
// joins, a mock echo route and an http route.
func consoleYAML(authorizer, backend string) string {
	return `management:
  console: {enabled: true, token: ` + consoleToken + `}
` + strings.ReplaceAll(yamlAPI(`authorizers:
  tokens:
    type: request
    uri: `+authorizer+`
    identitySource: [route.request.querystring.token]
    resultTtl: 0s
channels:
  - pattern: "room:*"
`, `$connect:
  authorizationType: CUSTOM
  authorizer: tokens
  subscribe: ["room:lobby"]
echo:
  routeResponse: true
  integration: {type: mock, response: {body: "ok"}}
whoami:
  routeResponse: true
  integration: {type: mock, response: {body: "$context.connectionId"}}
sendmessage:
  integration: {type: http, uri: "${stageVariables.backend}/send"}
`), "BACKEND", backend)
}

// chromiumPath finds the headless browser; without it the test fails
// under PORTICO_REQUIRE_DEPS and is skipped otherwise.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("PORTICO_CHROMIUM"), "/usr/bin/chromium", "chromium", "chromium-browser"} {
		if p == "" {
			continue
		}
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("PORTICO_REQUIRE_DEPS") != "" {
		t.Fatal("chromium is not installed (apt-get install chromium) and PORTICO_REQUIRE_DEPS is set")
	}
	t.Skip("chromium is not installed (apt-get install chromium); set PORTICO_REQUIRE_DEPS=1 to fail instead")
	return ""
}

// browser starts a headless Chromium for the test and collects what the
// page logs as an error or a warning: console.error/warn calls, uncaught
// exceptions, and the browser's own entries (a script the CSP refused, a
// failed load).
func browser(t *testing.T) (context.Context, func() []string) {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)), chromedp.NoSandbox, chromedp.WindowSize(1280, 1150),
		chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	var mu sync.Mutex
	var problems []string
	messages := chromedp.Console(ctx) // subscribes now: nothing the page logs is missed
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return // the context ended
			}
			switch m.Type {
			case chromedp.ConsoleError, chromedp.ConsoleWarning, chromedp.ConsoleException:
				mu.Lock()
				problems = append(problems, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line))
				mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc(); <-done })
	return ctx, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), problems...)
	}
}

// loadRun is a small load: WebSocket clients that send through the
// gateway (the echo route and the http route) and read the answers,
// until stopped or maxEach messages each.
type loadRun struct {
	stop chan struct{}
	wg   sync.WaitGroup
	sent atomic.Int64
}

func startLoad(t *testing.T, url string, clients, maxEach int) *loadRun {
	t.Helper()
	l := &loadRun{stop: make(chan struct{})}
	for range clients {
		c := dial(t, url+"?token=good", nil)
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; i < maxEach; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				msg := `{"action":"echo"}`
				if i%4 == 3 {
					msg = `{"action":"sendmessage"}`
				}
				if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
					return
				}
				if i%4 != 3 {
					_ = c.SetReadDeadline(time.Now().Add(testTimeout))
					if _, _, err := c.ReadMessage(); err != nil {
						return
					}
				}
				l.sent.Add(1)
				// A steady trickle, not a flood: the machine is shared.
				select {
				case <-l.stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
			}
		}()
	}
	t.Cleanup(l.end)
	return l
}

func (l *loadRun) end() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// TestConsoleInChromium drives the admin console in a real headless
// Chromium: the page loads without errors, asks for the token, the chart
// moves while clients send, the route tables and nodes show, and lookup,
// send and disconnect reach a real client.
// PORTICO_CONSOLE_SCREENSHOT=path also saves a screenshot of it there.
func TestConsoleInChromium(t *testing.T) {
	ctx, problems := browser(t)
	az := newAuthorizerServer(t, nil)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, `{"statusCode":200}`)
	}))
	t.Cleanup(backend.Close)
	g := startGateway(t, consoleYAML(az.srv.URL, backend.URL))
	page := "http://" + g.ManagementAddr() + "/console/"
	wait := func(expr string) chromedp.Action[chromedp.Void] {
		return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(testTimeout))
	}
	text := func(id string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID(id)))
		if err != nil {
			t.Fatalf("text of #%s: %v", id, err)
		}
		return s
	}
	canvas := func() string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('chart').toDataURL()`))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	// The page asks for the token, refuses a wrong one, then goes live.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(page),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), "not-the-console-token"),
		chromedp.Click(chromedp.CSS("#login button")),
		wait(`document.getElementById('login-error').textContent.includes('refused')`),
		chromedp.Evaluate[chromedp.Void](`document.getElementById('token').value = ''; true`),
		chromedp.SendKeys(chromedp.ID("token"), consoleToken),
		chromedp.Click(chromedp.CSS("#login button")),
		wait(`document.getElementById('status').textContent.startsWith('live')`),
	); err != nil {
		state, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify({token: document.getElementById('token').value, error: document.getElementById('login-error').textContent, status: document.getElementById('status').textContent, login: document.getElementById('login').hidden})`))
		t.Fatalf("the console did not go live: %v (page: %s; problems: %q)", err, state, problems())
	}
	before := canvas()

	// The chart moves while a load runs.
	load := startLoad(t, wsURL(g, "test"), 4, 3000)
	if err := chromedp.Do(ctx,
		wait(`Number(document.getElementById('chart').dataset.lastIn) > 0 && Number(document.getElementById('chart').dataset.samples) >= 3`),
		wait(`(() => { const r = document.querySelector('#route-stats tr[data-route="echo"]'); return r && Number(r.cells[3].textContent) > 0; })()`),
	); err != nil {
		t.Fatalf("the chart did not move under load (%d messages sent): %v", load.sent.Load(), err)
	}
	if canvas() == before {
		t.Error("the canvas is the same as before the load")
	}
	if err := chromedp.Do(ctx, wait(`document.getElementById('open-connections').textContent === '4'`)); err != nil {
		t.Errorf("open connections %q, want 4: %v", text("open-connections"), err)
	}

	// Route tables and nodes.
	if err := chromedp.Do(ctx, wait(`document.querySelectorAll('#nodes tbody tr').length > 0 && document.querySelectorAll('#apis table').length > 0`)); err != nil {
		t.Fatal(err)
	}
	apis, nodes := text("apis"), text("nodes")
	for _, want := range []string{"$connect", "CUSTOM (tokens)", "sendmessage", "${stageVariables.backend}/send", "echo", "mock"} {
		if !strings.Contains(apis, want) {
			t.Errorf("route tables lack %q:\n%s", want, apis)
		}
	}
	if !strings.Contains(nodes, g.node) || !strings.Contains(nodes, "(this node)") || !strings.Contains(nodes, "live") {
		t.Errorf("nodes:\n%s", nodes)
	}

	shot := os.Getenv("PORTICO_CONSOLE_SCREENSHOT")
	if shot != "" {
		// A longer run for the picture: more clients join half-way.
		if err := chromedp.Do(ctx, chromedp.Poll[chromedp.Void](`Number(document.getElementById('chart').dataset.samples) >= 15`,
			chromedp.WithPollingTimeout(time.Minute))); err != nil {
			t.Fatal(err)
		}
		more := startLoad(t, wsURL(g, "test"), 3, 3000)
		defer more.end()
		if err := chromedp.Do(ctx, chromedp.Poll[chromedp.Void](`Number(document.getElementById('chart').dataset.samples) >= 30`,
			chromedp.WithPollingTimeout(time.Minute))); err != nil {
			t.Fatal(err)
		}
	}

	// Lookup: info, channels and authorizer context.
	target := dial(t, wsURL(g, "test")+"?token=good", http.Header{"User-Agent": {"console-test/1"}})
	send(t, target, `{"action":"whoami"}`)
	id := readText(t, target)
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.ID("conn-id"), id),
		chromedp.Click(chromedp.CSS("#lookup button")),
		chromedp.WaitVisible(chromedp.ID("conn")),
	); err != nil {
		t.Fatalf("lookup: %v", err)
	}
	info, authCtx := text("conn-info"), text("conn-auth")
	for _, want := range []string{id, "test", "console-test/1", "127.0.0.1", "room:lobby", "user-42", "(this node)"} {
		if !strings.Contains(info, want) {
			t.Errorf("connection info lacks %q:\n%s", want, info)
		}
	}
	if !strings.Contains(authCtx, "tenant") || !strings.Contains(authCtx, "t1") {
		t.Errorf("authorizer context:\n%s", authCtx)
	}
	if shot != "" {
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(shot, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	load.end()

	// Send: the client receives what the page sent.
	const msg = "hello from the console"
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.ID("send-data"), msg),
		chromedp.Click(chromedp.CSS(`#send button[type="submit"]`)),
	); err != nil {
		t.Fatal(err)
	}
	if got := readText(t, target); got != msg {
		t.Errorf("the client got %q, want %q", got, msg)
	}
	// Disconnect: the client is closed with 1000.
	if err := chromedp.Do(ctx,
		wait(`document.getElementById('conn-status').textContent.startsWith('sent')`),
		chromedp.Click(chromedp.ID("disconnect")),
		wait(`document.getElementById('conn-status').textContent.startsWith('disconnected')`),
	); err != nil {
		t.Fatalf("send/disconnect status: %v", err)
	}
	if ce := readClose(t, target); ce.Code != websocket.CloseNormalClosure {
		t.Errorf("close code %d, want 1000", ce.Code)
	}
	if st := text("conn-status"); !strings.Contains(st, id) {
		t.Errorf("status %q", st)
	}
	if p := problems(); len(p) > 0 {
		t.Errorf("the page logged errors:\n%s", strings.Join(p, "\n"))
	}
}

func TestConsoleBackendURI(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:pw@backend.internal:8443/x?key=secret": "https://backend.internal:8443/x",
		"${stageVariables.backend}/send":                     "${stageVariables.backend}/send",
		"http://h":                                           "http://h",
		"http://a@b@h/p":                                     "http://h/p",
	} {
		if got := withoutUserInfo(in); got != want {
			t.Errorf("withoutUserInfo(%q) = %q, want %q", in, got, want)
		}
	}
}

// consoleDo calls a console endpoint of g without a token (the console
// is on loopback, with no token configured).
func consoleDo(t *testing.T, g *Gateway, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+g.ManagementAddr()+"/console/api/"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Portico-Console-Token", "-")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestConsoleAcrossNodes: two nodes share a Redis registry; the console
// of one lists both nodes, and looks up, sends to and disconnects a
// connection the other holds.
func TestConsoleAcrossNodes(t *testing.T) {
	addr := storagetest.RedisAddr(t)
	storageYAML := "management: {console: {enabled: true}}\nstorage: {type: redis, nodeTTL: 3s, redis: {addrs: [" + addr + "]}}\n"
	owner, other, c, id := twoNodes(t, storageYAML)
	eventually(t, "both nodes in the console", func() error {
		code, body := consoleDo(t, other, "GET", "nodes", "")
		if code != 200 || !strings.Contains(body, owner.node) || !strings.Contains(body, other.node) || !strings.Contains(body, `"registry":"ok"`) {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	var found struct {
		API, Stage, Node string
		Local            bool
		Connection       struct{ Identity struct{ SourceIP string } }
	}
	code, body := consoleDo(t, other, "GET", "connections/"+id, "")
	if code != 200 || json.Unmarshal([]byte(body), &found) != nil {
		t.Fatalf("lookup on the other node: %d %s", code, body)
	}
	if found.Local || found.Node != owner.node || found.Stage != "test" || found.API != "t" || found.Connection.Identity.SourceIP != "127.0.0.1" {
		t.Errorf("lookup on the other node: %s", body)
	}
	if code, body := consoleDo(t, other, "POST", "connections/"+id, "from the other console"); code != 200 {
		t.Fatalf("send: %d %s", code, body)
	}
	if got := readText(t, c); got != "from the other console" {
		t.Errorf("the client got %q", got)
	}
	if code, body := consoleDo(t, other, "DELETE", "connections/"+id, ""); code != 204 {
		t.Fatalf("disconnect: %d %s", code, body)
	}
	if ce := readClose(t, c); ce.Code != websocket.CloseNormalClosure {
		t.Errorf("close code %d", ce.Code)
	}
	eventually(t, "410 after the disconnect", func() error {
		if code, body := consoleDo(t, other, "GET", "connections/"+id, ""); code != 410 {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
}

// TestConsoleWithIAM: with management.auth iam the console's API needs
// the console token (a browser cannot sign), and the token opens the
// console only: @connections still needs a signature.
func TestConsoleWithIAM(t *testing.T) {
	t.Setenv("PORTICO_TEST_IAM_SECRET", iamSecret)
	t.Setenv("PORTICO_TEST_CONSOLE_TOKEN", consoleToken)
	yml := strings.Replace(iamManagement, "management:\n", "management:\n  console: {enabled: true, token: \"${PORTICO_TEST_CONSOLE_TOKEN}\"}\n", 1)
	g := startGateway(t, yml+yamlAPI("", whoamiRoutes))
	_, id := connect(t, g)
	base := "http://" + g.ManagementAddr() + "/console/"
	call := func(method, path, token string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, nil)
		if token != "" {
			req.Header.Set("X-Portico-Console-Token", token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := call("GET", "", ""); code != 200 || !strings.Contains(body, "console.js") {
		t.Errorf("page: %d", code)
	}
	if code, body := call("GET", "api/session", "wrong"); code != 200 || body != `{"authorized":false,"tokenRequired":true}` {
		t.Errorf("session with a wrong token: %d %s", code, body)
	}
	for _, tok := range []string{"", "-", "wrong"} {
		if code, _ := call("GET", "api/connections/"+id, tok); code != 401 {
			t.Errorf("lookup with token %q: %d, want 401", tok, code)
		}
	}
	if code, body := call("GET", "api/connections/"+id, consoleToken); code != 200 || !strings.Contains(body, `"local":true`) {
		t.Errorf("lookup with the token: %d %s", code, body)
	}
	// The console token is not a management credential.
	req, _ := http.NewRequest("GET", mgmtURL(g, "test")+"/@connections/"+id, nil)
	req.Header.Set("X-Portico-Console-Token", consoleToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("@connections with the console token: %d, want 403", resp.StatusCode)
	}
}
