package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/portico-gateway/portico/storage"
	"github.com/portico-gateway/portico/storage/dynamodb"
	"github.com/portico-gateway/portico/storage/redis"
	"github.com/portico-gateway/portico/storage/storagetest"
)

// eventually polls f until it returns nil or testTimeout passes.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkRegistry runs the registry life cycle of one connection through a
// gateway whose storage section is storageYAML, reading the registry with reg.
func checkRegistry(t *testing.T, storageYAML string, reg storage.Registry) *Gateway {
	g := startGateway(t, storageYAML+yamlAPI("", whoamiRoutes))
	c := dial(t, wsURL(g, "test"), nil)
	send(t, c, `{"action":"whoami"}`)
	id := readText(t, c)
	ctx := context.Background()
	var rec *storage.Record
	eventually(t, "record after connect", func() (err error) {
		rec, err = reg.Get(ctx, id)
		return err
	})
	if rec.Node != g.node || rec.Stage != "test" || rec.SourceIP != "127.0.0.1" {
		t.Errorf("record %+v (node %s)", rec, g.node)
	}
	// lastActiveAt is written in batches (touchInterval), not per message.
	send(t, c, `{"action":"whoami"}`)
	readText(t, c)
	eventually(t, "lastActiveAt after a message", func() error {
		r, err := reg.Get(ctx, id)
		if err != nil {
			return err
		}
		if !r.LastActiveAt.After(rec.ConnectedAt) {
			return fmt.Errorf("lastActiveAt %v not after connectedAt %v", r.LastActiveAt, r.ConnectedAt)
		}
		return nil
	})
	return g
}

func TestRedisRegistry(t *testing.T) {
	addr := storagetest.RedisAddr(t)
	reg, err := redis.New(context.Background(), redis.Options{Addrs: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	g := checkRegistry(t, "storage: {type: redis, nodeTTL: 3s, touchInterval: 100ms, redis: {addrs: ["+addr+"]}}\n", reg)

	// A second connection stays open through a Redis outage.
	c := dial(t, wsURL(g, "test"), nil)
	send(t, c, `{"action":"whoami"}`)
	id2 := readText(t, c)
	eventually(t, "second record", func() error { _, err := reg.Get(context.Background(), id2); return err })

	restart := stopRedis(t, addr)
	waitReadyz(t, g, http.StatusServiceUnavailable)
	if _, body := doHTTP(t, "GET", "http://"+g.ManagementAddr()+"/metrics", ""); !strings.Contains(body, "\nportico_registry_up 0\n") {
		t.Errorf("/metrics during the outage lacks portico_registry_up 0")
	}
	waitMetrics(t, g, map[string]float64{"portico_channel_bus_up{}": 0})
	// Local traffic goes on without the registry.
	send(t, c, `{"action":"whoami"}`)
	if got := readText(t, c); got != id2 {
		t.Errorf("during the outage whoami answered %q", got)
	}
	if resp, _ := doHTTP(t, "POST", mgmtURL(g, "test")+"/@connections/"+id2, "local post"); resp.StatusCode != 200 {
		t.Errorf("local post during the outage: %d", resp.StatusCode)
	}
	readText(t, c)

	// Redis comes back empty: the node registers again with its connections.
	restart()
	waitReadyz(t, g, http.StatusOK)
	if _, body := doHTTP(t, "GET", "http://"+g.ManagementAddr()+"/metrics", ""); !strings.Contains(body, "\nportico_registry_up 1\n") {
		t.Errorf("/metrics after recovery lacks portico_registry_up 1")
	}
	waitMetrics(t, g, map[string]float64{"portico_channel_bus_up{}": 1})
	eventually(t, "connection registered again", func() error { _, err := reg.Get(context.Background(), id2); return err })
	c.Close()
	eventually(t, "record gone after disconnect", func() error {
		if _, err := reg.Get(context.Background(), id2); !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("Get = %v, want ErrNotFound", err)
		}
		return nil
	})
}

func TestDynamoDBRegistry(t *testing.T) {
	endpoint := storagetest.DynamoEndpoint(t)
	table := fmt.Sprintf("gw_%d", time.Now().UnixNano())
	storageYAML := fmt.Sprintf("storage: {type: dynamodb, nodeTTL: 3s, touchInterval: 100ms, dynamodb: {table: %s, endpoint: %q, region: us-east-1, createTable: true}}\n", table, endpoint)
	reg, err := dynamodb.New(context.Background(), dynamodb.Options{Table: table, EndpointURL: endpoint, Region: "us-east-1", CreateTable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	g := checkRegistry(t, storageYAML, reg)
	c := dial(t, wsURL(g, "test"), nil)
	send(t, c, `{"action":"whoami"}`)
	id := readText(t, c)
	eventually(t, "record after connect", func() error { _, err := reg.Get(context.Background(), id); return err })
	c.Close()
	eventually(t, "record gone after disconnect", func() error {
		if _, err := reg.Get(context.Background(), id); !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("Get = %v, want ErrNotFound", err)
		}
		return nil
	})
}

// stopRedis shuts the Redis at addr down (nothing saved) and returns a
// function that starts an empty one on the same port, stopped when t ends.
func stopRedis(t *testing.T, addr string) (restart func()) {
	t.Helper()
	_, port, _ := net.SplitHostPort(addr)
	// SHUTDOWN drops the connection, so redis-cli's exit status says nothing.
	_ = exec.Command("redis-cli", "-p", port, "shutdown", "nosave").Run()
	return func() {
		t.Helper()
		srv := exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = srv.Process.Kill(); _ = srv.Wait() })
	}
}

// waitReadyz waits until g's /readyz answers status.
func waitReadyz(t *testing.T, g *Gateway, status int) {
	t.Helper()
	eventually(t, fmt.Sprintf("/readyz %d", status), func() error {
		resp, body := doHTTP(t, "GET", "http://"+g.ManagementAddr()+"/readyz", "")
		if resp.StatusCode != status {
			return fmt.Errorf("readyz %d %s", resp.StatusCode, body)
		}
		return nil
	})
}

// Disconnect runs on the connection server's loop; the registry deletion
// it asks for must not hold that loop (and every other connection on it)
// while the registry is slow.
func TestSlowRegistryDeleteDoesNotStall(t *testing.T) {
	addr := storagetest.RedisAddr(t)
	g := startGateway(t, "connections: {shards: 1}\nstorage: {type: redis, nodeTTL: 3s, redis: {addrs: ["+addr+"]}}\n"+
		yamlAPI("", whoamiRoutes))
	a := dial(t, wsURL(g, "test"), nil)
	b := dial(t, wsURL(g, "test"), nil)
	send(t, b, `{"action":"whoami"}`)
	readText(t, b)
	open := func() string {
		_, body := doHTTP(t, "GET", "http://"+g.ManagementAddr()+"/metrics", "")
		for _, l := range strings.Split(body, "\n") {
			if strings.HasPrefix(l, "portico_connections_open{") {
				return l[strings.LastIndexByte(l, ' ')+1:]
			}
		}
		return ""
	}
	// Redis holds every write for 3 s: a registry deletion takes that long.
	ctx := context.Background()
	rc := goredis.NewClient(&goredis.Options{Addr: addr})
	defer rc.Close()
	if err := rc.Do(ctx, "CLIENT", "PAUSE", "3000", "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	defer rc.Do(ctx, "CLIENT", "UNPAUSE")
	a.Close()
	// Disconnect has begun once the open gauge dropped.
	eventually(t, "a's disconnect", func() error {
		if got := open(); got != "1" {
			return fmt.Errorf("portico_connections_open %q, want 1", got)
		}
		return nil
	})
	start := time.Now()
	send(t, b, `{"action":"whoami"}`)
	readText(t, b)
	if d := time.Since(start); d > time.Second {
		t.Errorf("a message waited %v behind another connection's registry deletion", d)
	}
}
