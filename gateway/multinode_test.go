package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/portico-gateway/portico/storage/storagetest"
)

// TestCrossNodeConnections: @connections on any node reaches a connection
// held by another node sharing the Redis registry.
func TestCrossNodeConnections(t *testing.T) {
	addr := storagetest.RedisAddr(t)
	storageYAML := "storage: {type: redis, nodeTTL: 3s, redis: {addrs: [" + addr + "]}}\n"
	owner, other, c, id := twoNodes(t, storageYAML)

	resp, body := doHTTP(t, "POST", mgmtURL(other, "test")+"/@connections/"+id, "via the other node")
	if resp.StatusCode != 200 {
		t.Fatalf("cross-node POST: %d %s", resp.StatusCode, body)
	}
	if got := readText(t, c); got != "via the other node" {
		t.Errorf("client got %q", got)
	}
	resp, body = doHTTP(t, "GET", mgmtURL(other, "test")+"/@connections/"+id, "")
	var info struct{ Identity struct{ SourceIP string } }
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &info) != nil || info.Identity.SourceIP != "127.0.0.1" {
		t.Errorf("cross-node GET: %d %s", resp.StatusCode, body)
	}
	resp, _ = doHTTP(t, "DELETE", mgmtURL(other, "test")+"/@connections/"+id, "")
	if resp.StatusCode != 204 {
		t.Errorf("cross-node DELETE: %d", resp.StatusCode)
	}
	if ce := readClose(t, c); ce.Code != 1000 {
		t.Errorf("close code %d", ce.Code)
	}
	eventually(t, "410 after the delete", func() error {
		if resp, _ := doHTTP(t, "POST", mgmtURL(other, "test")+"/@connections/"+id, "x"); resp.StatusCode != 410 {
			return fmt.Errorf("POST after delete: %d", resp.StatusCode)
		}
		return nil
	})
	if resp, _ := doHTTP(t, "POST", mgmtURL(other, "test")+"/@connections/AAAAAAAAAAAAAAA=", "x"); resp.StatusCode != 410 {
		t.Errorf("unknown id: %d", resp.StatusCode)
	}

	// An owner that stopped listening answers promptly with 410, not a hang.
	c2 := dial(t, wsURL(owner, "test"), nil)
	send(t, c2, `{"action":"whoami"}`)
	id2 := readText(t, c2)
	if err := owner.relay.Close(); err != nil {
		t.Fatal(err)
	}
	owner.relay = nil
	start := time.Now()
	resp, _ = doHTTP(t, "POST", mgmtURL(other, "test")+"/@connections/"+id2, "x")
	if resp.StatusCode != 410 || time.Since(start) > 2*time.Second {
		t.Errorf("owner gone: %d after %v, want a prompt 410", resp.StatusCode, time.Since(start))
	}
}

// TestCrossNodeOverHTTP: with DynamoDB (no message bus), @connections on
// one node reaches a connection held by another through the owner's
// management listener, authenticated by the shared relay secret.
func TestCrossNodeOverHTTP(t *testing.T) {
	endpoint := storagetest.DynamoEndpoint(t)
	table := fmt.Sprintf("relay_%d", time.Now().UnixNano())
	storageYAML := fmt.Sprintf("storage: {type: dynamodb, nodeTTL: 3s, relaySecret: s3cret, dynamodb: {table: %s, endpoint: %q, region: us-east-1, createTable: true}}\n", table, endpoint)
	owner, other, c, id := twoNodes(t, storageYAML)
	eventuallyPosts(t, "cross-node POST", other, id, "over http")
	if got := readText(t, c); got != "over http" {
		t.Errorf("client got %q", got)
	}
	if _, body := doHTTP(t, "GET", "http://"+other.ManagementAddr()+"/metrics", ""); !strings.Contains(body, `portico_relayed_requests_total{code="200",op="post"} 1`) {
		t.Errorf("/metrics of the relaying node lacks the relayed post")
	}
	// The relay endpoint refuses callers without the secret.
	resp, _ := doHTTP(t, "POST", "http://"+owner.ManagementAddr()+"/internal/relay", `{"op":"delete","stage":"test","id":"`+id+`"}`)
	if resp.StatusCode != 403 {
		t.Errorf("relay without the secret: %d, want 403", resp.StatusCode)
	}
	if resp, _ := doHTTP(t, "DELETE", mgmtURL(other, "test")+"/@connections/"+id, ""); resp.StatusCode != 204 {
		t.Errorf("cross-node DELETE: %d", resp.StatusCode)
	}
	if ce := readClose(t, c); ce.Code != 1000 {
		t.Errorf("close %d", ce.Code)
	}
}

// TestCrossNodeAfterRedisRestart: when Redis restarts (empty), both nodes
// register again, the relay subscribes again, and cross-node calls work
// as before.
func TestCrossNodeAfterRedisRestart(t *testing.T) {
	addr := storagetest.RedisAddr(t)
	storageYAML := "storage: {type: redis, nodeTTL: 1500ms, redis: {addrs: [" + addr + "]}}\n"
	_, other, c, id := twoNodes(t, storageYAML)
	if resp, body := doHTTP(t, "POST", mgmtURL(other, "test")+"/@connections/"+id, "before"); resp.StatusCode != 200 {
		t.Fatalf("cross-node POST: %d %s", resp.StatusCode, body)
	}
	readText(t, c)

	restart := stopRedis(t, addr)
	waitReadyz(t, other, http.StatusServiceUnavailable)
	if resp, _ := doHTTP(t, "POST", mgmtURL(other, "test")+"/@connections/"+id, "during"); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("cross-node POST during the outage: %d, want 503", resp.StatusCode)
	}
	restart()
	eventuallyPosts(t, "cross-node POST after the restart", other, id, "after")
	if got := readText(t, c); got != "after" {
		t.Errorf("client got %q", got)
	}
}

// eventuallyPosts posts body to connection id through via's management
// API until it is answered 200 (a node may still be registering).
func eventuallyPosts(t *testing.T, what string, via *Gateway, id, body string) {
	t.Helper()
	eventually(t, what, func() error {
		resp, answer := doHTTP(t, "POST", mgmtURL(via, "test")+"/@connections/"+id, body)
		if resp.StatusCode != 200 {
			return fmt.Errorf("%d %s", resp.StatusCode, answer)
		}
		return nil
	})
}

// twoNodes starts two gateways sharing storageYAML's registry and
// connects a client to the first; it returns both gateways, the client
// and its connection id.
func twoNodes(t *testing.T, storageYAML string) (owner, other *Gateway, c *websocket.Conn, id string) {
	t.Helper()
	owner = startGateway(t, storageYAML+yamlAPI("", whoamiRoutes))
	other = startGateway(t, storageYAML+yamlAPI("", whoamiRoutes))
	c = dial(t, wsURL(owner, "test"), nil)
	send(t, c, `{"action":"whoami"}`)
	return owner, other, c, readText(t, c)
}
