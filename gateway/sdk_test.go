package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/portico-gateway/portico/management/client"
)

// missingDep fails the test when CI asked for every dependency
// (PORTICO_REQUIRE_DEPS), and skips it otherwise.
func missingDep(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("PORTICO_REQUIRE_DEPS") != "" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

func TestGoClient(t *testing.T) {
	g := startGateway(t, yamlAPI("", whoamiRoutes))
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	cl, err := client.New(mgmtURL(g, "test"), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, wsURL(g, "test"), nil)
	send(t, c, `{"action":"whoami"}`)
	id := readText(t, c)

	if err := cl.PostToConnection(ctx, id, []byte("from the Go client")); err != nil {
		t.Fatalf("PostToConnection: %v", err)
	}
	if got := readText(t, c); got != "from the Go client" {
		t.Errorf("client got %q", got)
	}
	info, err := cl.GetConnection(ctx, id)
	if err != nil {
		t.Fatalf("GetConnection: %v", err)
	}
	if info.Identity.SourceIP != "127.0.0.1" || time.Since(info.ConnectedAt) > time.Minute || info.LastActiveAt.Before(info.ConnectedAt) {
		t.Errorf("GetConnection = %+v", info)
	}
	var tooLarge *client.PayloadTooLargeException
	if err := cl.PostToConnection(ctx, id, make([]byte, 128<<10+1)); !errors.As(err, &tooLarge) {
		t.Errorf("oversize post: %v, want PayloadTooLargeException", err)
	}
	if err := cl.DeleteConnection(ctx, id); err != nil {
		t.Fatalf("DeleteConnection: %v", err)
	}
	if ce := readClose(t, c); ce.Code != 1000 {
		t.Errorf("close code %d", ce.Code)
	}
	var gone *client.GoneException
	if err := cl.PostToConnection(ctx, id, []byte("x")); !errors.As(err, &gone) || gone.StatusCode != 410 {
		t.Errorf("post after delete: %v, want GoneException", err)
	}
	if _, err := cl.GetConnection(ctx, id); !errors.As(err, &gone) {
		t.Errorf("get after delete: %v, want GoneException", err)
	}
	if err := cl.DeleteConnection(ctx, id); !errors.As(err, &gone) {
		t.Errorf("delete after delete: %v, want GoneException", err)
	}
}

// TestGoneWhileConnectRuns: an id whose $connect has not finished is
// not reachable yet, as in AWS.
func TestGoneWhileConnectRuns(t *testing.T) {
	b := newBackend(t)
	release := make(chan struct{})
	ids := make(chan string, 1)
	b.setReply(func(e event, w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/connect" {
			ids <- e.str("connectionId")
			<-release
		}
		_, _ = w.Write([]byte(`{"statusCode":200}`))
	})
	routes := `$connect:
  integration: {type: http, uri: "BACKEND/connect"}
` + whoamiRoutes
	g := startGateway(t, strings.ReplaceAll(yamlAPI("", routes), "BACKEND", b.srv.URL))
	dialed := make(chan error, 1)
	go func() {
		c, _, err := websocket.DefaultDialer.Dial(wsURL(g, "test"), nil)
		if err == nil {
			c.Close()
		}
		dialed <- err
	}()
	var id string
	select {
	case id = <-ids:
	case <-time.After(testTimeout):
		t.Fatal("no $connect")
	}
	resp, _ := doHTTP(t, "POST", mgmtURL(g, "test")+"/@connections/"+id, "early")
	close(release)
	if resp.StatusCode != 410 {
		t.Errorf("POST during $connect: %d, want 410", resp.StatusCode)
	}
	if err := <-dialed; err != nil {
		t.Errorf("dial: %v", err)
	}
}

// repoRoot finds the module root (where node_modules is installed).
func repoRoot(t *testing.T) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test directory")
		}
		dir = parent
	}
}

type sdkResult struct {
	Op      string         `json:"op"`
	OK      bool           `json:"ok"`
	Name    string         `json:"name"`
	Status  int            `json:"status"`
	Message string         `json:"message"`
	Result  map[string]any `json:"result"`
}

// runSDK runs management/testdata/sdk_client.mjs with the official AWS
// SDK for JavaScript v3.
func runSDK(t *testing.T, endpoint string, ops []map[string]string) []sdkResult {
	t.Helper()
	return runSDKAs(t, endpoint, nil, ops)
}

// runSDKAs is runSDK signing with creds ({"accessKeyId", "secretAccessKey"});
// nil: the script's placeholder key.
func runSDKAs(t *testing.T, endpoint string, creds map[string]string, ops []map[string]string) []sdkResult {
	t.Helper()
	root := repoRoot(t)
	node, err := exec.LookPath("node")
	if err != nil {
		missingDep(t, "node is not installed (apt-get install nodejs npm)")
	}
	if _, err := os.Stat(filepath.Join(root, "node_modules", "@aws-sdk", "client-apigatewaymanagementapi")); err != nil {
		missingDep(t, "the AWS JS SDK is not installed: run npm ci in %s", root)
	}
	a := map[string]any{"endpoint": endpoint, "region": "us-east-1", "ops": ops}
	if creds != nil {
		a["credentials"] = creds
	}
	args, _ := json.Marshal(a)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(root, "management", "testdata", "sdk_client.mjs"), string(args))
	cmd.Env = append(os.Environ(), "NODE_NO_WARNINGS=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sdk_client.mjs: %v\n%s", err, stderr.String())
	}
	var res []sdkResult
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var r sdkResult
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("sdk output %q: %v", sc.Text(), err)
		}
		res = append(res, r)
	}
	if len(res) != len(ops) {
		t.Fatalf("sdk printed %d results for %d ops:\n%s\n%s", len(res), len(ops), out, stderr.String())
	}
	return res
}

func TestOfficialJSSDK(t *testing.T) {
	g := startGateway(t, yamlAPI("", whoamiRoutes))
	c := dial(t, wsURL(g, "test"), nil)
	send(t, c, `{"action":"whoami"}`)
	id := readText(t, c)
	res := runSDK(t, mgmtURL(g, "test"), []map[string]string{
		{"op": "post", "id": id, "data": "from the JS SDK"},
		{"op": "get", "id": id},
		{"op": "delete", "id": id},
		{"op": "post", "id": id, "data": "too late"},
		{"op": "get", "id": id},
		{"op": "delete", "id": id},
	})
	for i, r := range res[:3] {
		if !r.OK {
			t.Errorf("op %d (%s) failed: %s %d %s", i, r.Op, r.Name, r.Status, r.Message)
		}
	}
	if got := readText(t, c); got != "from the JS SDK" {
		t.Errorf("client got %q", got)
	}
	ident, _ := res[1].Result["identity"].(map[string]any)
	if ident["sourceIp"] != "127.0.0.1" || res[1].Result["connectedAt"] == nil || res[1].Result["lastActiveAt"] == nil {
		t.Errorf("GetConnection through the SDK: %v", res[1].Result)
	}
	if ce := readClose(t, c); ce.Code != 1000 {
		t.Errorf("DeleteConnection closed with %d", ce.Code)
	}
	for _, r := range res[3:] {
		if r.OK || r.Name != "GoneException" || r.Status != 410 {
			t.Errorf("%s after delete: ok=%v name=%q status=%d, want GoneException 410", r.Op, r.OK, r.Name, r.Status)
		}
	}
}
