package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/portico-gateway/portico/config"
)

// reloadFile is a configuration file on disk a test rewrites and
// reloads; its listeners are loopback ports the kernel picks.
type reloadFile struct {
	t    *testing.T
	path string
}

// reloadYAML is a one-API file: management and the API on loopback
// ports, the test's connection mode, then rest (the API's stages and
// routes, indented under it).
func reloadYAML(rest string) string {
	return reloadYAMLWith("management: {address: \"127.0.0.1:0\"}\n", "", rest)
}

// reloadYAMLWith is reloadYAML with management's YAML (its address on
// a loopback port) and protocol, the API's protocol line ("" for a
// WebSocket API).
func reloadYAMLWith(management, protocol, rest string) string {
	return management + `connections: {mode: ` + testMode + `}
apis:
  - name: t
    listen: "127.0.0.1:0"
` + indent(protocol, "    ") + indent(rest, "    ")
}

// write replaces the file's content.
func (f *reloadFile) write(yml string) {
	f.t.Helper()
	if err := os.WriteFile(f.path, []byte(yml), 0o600); err != nil {
		f.t.Fatal(err)
	}
}

// startFromFile writes yml to portico.yaml and starts a gateway from it,
// as cmd/portico does.
func startFromFile(t *testing.T, yml string, opts ...Option) (*Gateway, *reloadFile) {
	t.Helper()
	f := &reloadFile{t: t, path: filepath.Join(t.TempDir(), "portico.yaml")}
	f.write(yml)
	cfg, err := config.Load(f.path)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	if len(opts) == 0 {
		opts = []Option{WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))}
	}
	g, err := New(context.Background(), cfg, opts...)
	if err != nil {
		t.Fatalf("gateway.New: %v", err)
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatalf("gateway.Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		if err := g.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return g, f
}

// postReload calls POST /admin/reload and returns the status and body.
func postReload(t *testing.T, g *Gateway) (int, []byte) {
	t.Helper()
	resp, err := http.Post("http://"+g.ManagementAddr()+"/admin/reload", "application/json", nil)
	if err != nil {
		t.Fatalf("POST /admin/reload: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

func mockRoutes(body string) string {
	return `stages:
  - name: test
    variables: {color: blue}
routes:
  $default:
    routeResponse: true
    integration: {type: mock, response: {body: "` + body + `"}}
`
}

// A reload through the management endpoint changes a mock route's
// answer for the next message of a connection opened before it.
func TestReloadChangesMockRoute(t *testing.T) {
	g, f := startFromFile(t, reloadYAML(mockRoutes(`v1 ${stageVariables.color}`)))
	c := dial(t, wsURL(g, "test"), nil)
	send(t, c, `{}`)
	if got := readText(t, c); got != "v1 blue" {
		t.Fatalf("before the reload: %q", got)
	}

	f.write(reloadYAML(strings.ReplaceAll(mockRoutes(`v2 ${stageVariables.color}`), "blue", "green")))
	status, body := postReload(t, g)
	if status != http.StatusOK {
		t.Fatalf("reload: %d %s", status, body)
	}
	var res Result
	if err := json.Unmarshal(body, &res); err != nil {
		t.Fatalf("reload answer %s: %v", body, err)
	}
	want := []string{"apis[0].routes.$default.integration.response.body", "apis[0].stages[0].variables.color"}
	if strings.Join(res.Applied, ",") != strings.Join(want, ",") || len(res.NotApplied) != 0 {
		t.Errorf("reload answer %s, want applied %q and nothing else", body, want)
	}
	send(t, c, `{}`)
	if got := readText(t, c); got != "v2 green" {
		t.Errorf("after the reload, the open connection got %q, want v2 green", got)
	}
	c2 := dial(t, wsURL(g, "test"), nil)
	send(t, c2, `{}`)
	if got := readText(t, c2); got != "v2 green" {
		t.Errorf("after the reload, a new connection got %q", got)
	}
	if n := g.OpenConnections(); n != 2 {
		t.Errorf("open connections %d, want 2", n)
	}
}

// A file that does not validate is refused with file:line: key: reason,
// and the running configuration keeps serving.
func TestReloadBadFileKeepsRunningConfig(t *testing.T) {
	g, f := startFromFile(t, reloadYAML(mockRoutes("old")))
	c := dial(t, wsURL(g, "test"), nil)

	bad := strings.Replace(reloadYAML(mockRoutes("new")), "type: mock", "type: mok", 1)
	f.write(bad)
	line := 0
	for i, l := range strings.Split(bad, "\n") {
		if strings.Contains(l, "mok") {
			line = i + 1
		}
	}
	status, body := postReload(t, g)
	wantMsg := f.path + ":" + strconv.Itoa(line) + ": apis[0].routes.$default.integration.type: "
	if status != http.StatusBadRequest || !strings.Contains(string(body), wantMsg) {
		t.Errorf("reload of a bad file: %d %s, want 400 naming %q", status, body, wantMsg)
	}
	if _, err := g.ReloadFile(context.Background()); !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), wantMsg) {
		t.Errorf("ReloadFile: %v, want config.ErrInvalid naming %q", err, wantMsg)
	}
	send(t, c, `{}`)
	if got := readText(t, c); got != "old" {
		t.Errorf("after a refused reload: %q, want old", got)
	}

	// A file that validates but whose authorizer cannot be built is
	// refused the same way (built before anything is swapped).
	f.write(reloadYAML(`stages: [{name: test}]
routes:
  $connect: {authorizationType: AWS_IAM}
  $default:
    routeResponse: true
    integration: {type: mock, response: {body: "new"}}
`))
	status, body = postReload(t, g)
	if status != http.StatusBadRequest || !strings.Contains(string(body), "apis[0].routes.$connect.authorizationType") {
		t.Errorf("reload with an unbuildable authorizer: %d %s", status, body)
	}
	send(t, c, `{}`)
	if got := readText(t, c); got != "old" {
		t.Errorf("after a refused reload: %q, want old", got)
	}
}

// Changes only a restart applies are named (file:line: key) and the
// rest is applied.
func TestReloadReportsWhatNeedsARestart(t *testing.T) {
	g, f := startFromFile(t, reloadYAML(mockRoutes("v1")))
	addr := g.APIAddr("t")
	c := dial(t, wsURL(g, "test"), nil)

	next := strings.Replace(reloadYAML(mockRoutes("v2")), `listen: "127.0.0.1:0"`, `listen: "127.0.0.1:1"`, 1)
	next += `  - name: other
    listen: "127.0.0.1:0"
    stages: [{name: test2}]
    routes: {$default: {integration: {type: mock}}}
`
	f.write(next)
	res, err := g.ReloadFile(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(res.NotApplied, "\n")
	for _, want := range []string{
		f.path + ":5: apis[0].listen: changed, but only a restart applies it",
		f.path + ":13: apis[1]: API \"other\" is new",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("not applied:\n%s\nwant a line with %q", joined, want)
		}
	}
	if len(res.NotApplied) != 2 {
		t.Errorf("not applied: %q, want two changes", res.NotApplied)
	}
	if len(res.Applied) != 1 || res.Applied[0] != "apis[0].routes.$default.integration.response.body" {
		t.Errorf("applied %q", res.Applied)
	}
	if g.APIAddr("t") != addr {
		t.Errorf("the API moved to %s", g.APIAddr("t"))
	}
	send(t, c, `{}`)
	if got := readText(t, c); got != "v2" {
		t.Errorf("the route change was not applied: %q", got)
	}
	// The same file again: nothing new applies, the same changes still
	// wait for a restart.
	res, err = g.ReloadFile(context.Background())
	if err != nil || len(res.Applied) != 0 || len(res.NotApplied) != 2 {
		t.Errorf("second reload: %+v, %v", res, err)
	}
}

// log.level changes live when the gateway owns the level.
func TestReloadLogLevel(t *testing.T) {
	var buf syncBuffer
	log, level := NewLevelLogger(config.Log{Level: "info"}, &buf)
	g, f := startFromFile(t, reloadYAML(mockRoutes("v1")), WithLogger(log), WithLogLevel(level))
	f.write("log: {level: debug}\n" + reloadYAML(mockRoutes("v1")))
	res, err := g.ReloadFile(context.Background())
	if err != nil || strings.Join(res.Applied, ",") != "log.level" {
		t.Fatalf("reload: %+v, %v", res, err)
	}
	if level.Level() != slog.LevelDebug || !g.log.Enabled(context.Background(), slog.LevelDebug) {
		t.Errorf("level %v after the reload, want debug", level.Level())
	}
	if !strings.Contains(buf.String(), "configuration reload: applied") {
		t.Errorf("no debug line after the reload:\n%s", buf.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// With management.auth iam, POST /admin/reload needs a signature by a
// key with the admin action.
func TestReloadEndpointNeedsAdmin(t *testing.T) {
	t.Setenv("PORTICO_TEST_IAM_SECRET", iamSecret)
	mgmt := strings.Replace(iamManagement, "management:\n", "management:\n  address: \"127.0.0.1:0\"\n", 1)
	g, f := startFromFile(t, reloadYAMLWith(mgmt, "", mockRoutes("v1")))
	c := dial(t, wsURL(g, "test"), nil)
	f.write(reloadYAMLWith(mgmt, "", mockRoutes("v2")))
	url := "http://" + g.ManagementAddr() + "/admin/reload"

	resp, err := http.Post(url, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("unsigned reload: %d, want 403", resp.StatusCode)
	}
	refusal(t, signedRequest(t, "POST", url, "", readerKey, readerSecret), "ForbiddenException", "User: AKIDREADER is not authorized")
	send(t, c, `{}`)
	if got := readText(t, c); got != "v1" {
		t.Fatalf("a refused caller reloaded: %q", got)
	}

	resp, err = http.DefaultClient.Do(signedRequest(t, "POST", url, "", iamKey, iamSecret))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("signed reload: %d %s", resp.StatusCode, body)
	}
	send(t, c, `{}`)
	if got := readText(t, c); got != "v2" {
		t.Errorf("after a signed reload: %q, want v2", got)
	}
	resp, err = http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
		t.Errorf("GET /admin/reload: %d Allow %q, want 405 POST", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

// An HTTP API's routes change on reload too.
func TestReloadHTTPAPI(t *testing.T) {
	api := func(body string) string {
		return `stages: [{name: $default}]
routes:
  GET /pets:
    integration: {type: mock, response: {body: "` + body + `"}}
`
	}
	mgmt := "management: {address: \"127.0.0.1:0\"}\n"
	g, f := startFromFile(t, reloadYAMLWith(mgmt, "protocol: http", api("v1")))
	get := func() string {
		t.Helper()
		resp, err := http.Get("http://" + g.APIAddr("t") + "/pets")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if got := get(); got != "v1" {
		t.Fatalf("before: %q", got)
	}
	f.write(reloadYAMLWith(mgmt, "protocol: http", api("v2")))
	if status, body := postReload(t, g); status != http.StatusOK {
		t.Fatalf("reload: %d %s", status, body)
	}
	if got := get(); got != "v2" {
		t.Errorf("after: %q, want v2", got)
	}
}

// A reload adds a route throttle and a $connect authorizer: the open
// connection's next message meets the throttle, a new connection the
// authorizer; the open connection stays open.
func TestReloadThrottleAndAuthorizer(t *testing.T) {
	g, f := startFromFile(t, reloadYAML(mockRoutes("v1")))
	c := dial(t, wsURL(g, "test"), nil)
	send(t, c, `{}`)
	if got := readText(t, c); got != "v1" {
		t.Fatalf("before: %q", got)
	}
	f.write(reloadYAML(`authorizers:
  tokens:
    type: request
    uri: http://127.0.0.1:1/authorize
    identitySource: [route.request.header.Authorization]
stages:
  - name: test
    routeSettings:
      $default: {throttlingRateLimit: 0, throttlingBurstLimit: 0}
routes:
  $connect: {authorizationType: CUSTOM, authorizer: tokens}
  $default:
    routeResponse: true
    integration: {type: mock, response: {body: "v2"}}
`))
	if status, body := postReload(t, g); status != http.StatusOK {
		t.Fatalf("reload: %d %s", status, body)
	}
	send(t, c, `{}`)
	if got := readText(t, c); frameMessage(got) != "Too Many Requests" {
		t.Errorf("after adding a closed bucket: %q, want the Too Many Requests frame", got)
	}
	_, resp, err := websocket.DefaultDialer.Dial(wsURL(g, "test"), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Errorf("a new connection without Authorization: %v (HTTP %d), want 401", err, status)
	}
	if n := g.OpenConnections(); n != 1 {
		t.Errorf("open connections %d, want 1", n)
	}
}
