package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/portico-gateway/portico/management/client"
	"github.com/portico-gateway/portico/storage/storagetest"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type node struct {
	cmd        *exec.Cmd
	ws, mgmt   string
	gw         *client.Client
	logs       string
	terminated bool
}

// startNodes builds the binary and runs n gateway processes sharing the
// registry that storage (the YAML value of the storage key) describes;
// each has its own ports.
func startNodes(t *testing.T, n int, storage string) []*node {
	t.Helper()
	return startNodesWith(t, n, storage, `    routes:
      whoami:
        routeResponse: true
        integration: {type: mock, response: {body: "$context.connectionId"}}
`)
}

// startNodesWith is startNodes with api as the rest of the API's YAML
// (its routes, its channels), indented under it.
func startNodesWith(t *testing.T, n int, storage, api string) []*node {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "portico")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var nodes []*node
	for i := 0; i < n; i++ {
		nd := &node{ws: freeAddr(t), mgmt: freeAddr(t), logs: filepath.Join(dir, fmt.Sprintf("node%d.log", i))}
		cfg := fmt.Sprintf(`management: {address: %q}
storage: %s
apis:
  - name: multi
    listen: %q
    stages: [{name: test}]
`, nd.mgmt, storage, nd.ws) + api
		path := filepath.Join(dir, fmt.Sprintf("node%d.yaml", i))
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		logf, err := os.Create(nd.logs)
		if err != nil {
			t.Fatal(err)
		}
		nd.cmd = exec.Command(bin, "--config", path)
		nd.cmd.Stdout, nd.cmd.Stderr = logf, logf
		if err := nd.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if !nd.terminated {
				_ = nd.cmd.Process.Signal(syscall.SIGTERM)
				_ = nd.cmd.Wait()
			}
			if t.Failed() {
				b, _ := os.ReadFile(nd.logs)
				t.Logf("node %d log:\n%s", i, b)
			}
		})
		if nd.gw, err = client.New("http://"+nd.mgmt+"/test", client.Options{}); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, nd)
	}
	for i, nd := range nodes {
		deadline := time.Now().Add(20 * time.Second)
		for {
			resp, err := http.Get("http://" + nd.mgmt + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d never became ready: %v", i, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nodes
}

// TestThreeProcessesOneRedis: three gateway processes share a Redis;
// clients spread over them; every client gets exactly its own message
// posted through one node; after kill -9 of a node, posts to its
// connections end with 410 promptly and the others are unaffected.
func TestThreeProcessesOneRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs three gateway processes")
	}
	threeProcesses(t, fmt.Sprintf("{type: redis, nodeTTL: 3s, redis: {addrs: [%q]}}", storagetest.RedisAddr(t)))
}

// TestThreeProcessesOneDynamoDB: the same with a DynamoDB-protocol
// server (dynalite) as the registry; posts cross nodes over the
// management listeners' /internal/relay, authenticated by the secret.
func TestThreeProcessesOneDynamoDB(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs three gateway processes")
	}
	table := fmt.Sprintf("multinode_%d", time.Now().UnixNano())
	threeProcesses(t, fmt.Sprintf("{type: dynamodb, nodeTTL: 3s, relaySecret: s3cret, dynamodb: {table: %s, endpoint: %q, region: us-east-1, createTable: true}}",
		table, storagetest.DynamoEndpoint(t)))
}

func threeProcesses(t *testing.T, storage string) {
	nodes := startNodes(t, 3, storage)
	type cl struct {
		ws   *websocket.Conn
		id   string
		node int
	}
	var clients []cl
	for i := 0; i < 30; i++ {
		n := i % 3
		c, _, err := websocket.DefaultDialer.Dial("ws://"+nodes[n].ws+"/test", nil)
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		defer c.Close()
		if err := c.WriteMessage(websocket.TextMessage, []byte(`{"action":"whoami"}`)); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, id, err := c.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, cl{c, string(id), n})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	post := func(round string) {
		t.Helper()
		for i, c := range clients {
			if c.node == -1 {
				continue
			}
			msg := fmt.Sprintf("%s-%d", round, i)
			if err := nodes[0].gw.PostToConnection(ctx, c.id, []byte(msg)); err != nil {
				t.Fatalf("post to client %d (node %d) through node 0: %v", i, c.node, err)
			}
		}
		for i, c := range clients {
			if c.node == -1 {
				continue
			}
			_ = c.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, got, err := c.ws.ReadMessage()
			if want := fmt.Sprintf("%s-%d", round, i); err != nil || string(got) != want {
				t.Fatalf("client %d (node %d) got %q, %v; want %q", i, c.node, got, err, want)
			}
		}
	}
	post("first")

	// kill -9 the third node.
	dead := nodes[2]
	if err := dead.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = dead.cmd.Wait()
	dead.terminated = true
	for i := range clients {
		if clients[i].node != 2 {
			continue
		}
		start := time.Now()
		err := nodes[0].gw.PostToConnection(ctx, clients[i].id, []byte("to a dead node"))
		var gone *client.GoneException
		if !errors.As(err, &gone) {
			t.Errorf("post to client %d on the killed node: %v, want GoneException", i, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("post to the killed node took %v", d)
		}
		clients[i].node = -1
	}
	post("after-kill")
}
