package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/portico-gateway/portico/storage/storagetest"
)

// TestChannelsSurviveANodeKilled: three gateway processes share a Redis
// and a channel with members on each; node 2 is killed (kill -9) in the
// middle of a stream of publishes. The members on the other nodes get
// every message, in order, exactly once; the killed node's members stop
// being listed within the node TTL.
func TestChannelsSurviveANodeKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs three gateway processes")
	}
	const nodeTTL = 1500 * time.Millisecond
	nodes := startNodesWith(t, 3, fmt.Sprintf("{type: redis, nodeTTL: %v, redis: {addrs: [%q]}}", nodeTTL, storagetest.RedisAddr(t)), `    routes:
      $connect:
        subscribe: ["lobby"]
      whoami:
        routeResponse: true
        integration: {type: mock, response: {body: "$context.connectionId"}}
`)
	type member struct {
		ws   *websocket.Conn
		id   string
		node int
	}
	var ms []member
	for i := range 9 {
		n := i % 3
		c, _, err := websocket.DefaultDialer.Dial("ws://"+nodes[n].ws+"/test", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.WriteMessage(websocket.TextMessage, []byte(`{"action":"whoami"}`))
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, id, err := c.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, member{c, string(id), n})
	}
	listed := func(via int) (map[string]bool, error) {
		resp, err := http.Get("http://" + nodes[via].mgmt + "/test/@channels/lobby?limit=1000")
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		var page struct {
			Count   int
			Members []struct{ ConnectionID string }
		}
		if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
			return nil, err
		}
		out := map[string]bool{}
		for _, m := range page.Members {
			out[m.ConnectionID] = true
		}
		return out, nil
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		l, err := listed(0)
		if err == nil && len(l) == len(ms) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("members listed: %v %v, want %d", l, err, len(ms))
		}
		time.Sleep(20 * time.Millisecond) // the lists are written in the background
	}

	const total = 60
	published := make(chan error, 1)
	killed := make(chan time.Time, 1)
	go func() {
		for i := range total {
			if i == total/3 {
				_ = nodes[2].cmd.Process.Signal(syscall.SIGKILL)
				killed <- time.Now()
			}
			resp, err := http.Post("http://"+nodes[i%2].mgmt+"/test/@channels/lobby", "text/plain", strings.NewReader(fmt.Sprint("m", i)))
			if err != nil {
				published <- err
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				published <- fmt.Errorf("publish %d: %d %s", i, resp.StatusCode, body)
				return
			}
		}
		published <- nil
	}()
	for _, m := range ms {
		if m.node == 2 {
			continue
		}
		_ = m.ws.SetReadDeadline(time.Now().Add(15 * time.Second))
		for i := range total {
			_, got, err := m.ws.ReadMessage()
			if err != nil || string(got) != fmt.Sprint("m", i) {
				t.Fatalf("member on node %d: %q %v, want m%d", m.node, got, err, i)
			}
		}
	}
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	_ = nodes[2].cmd.Wait()
	nodes[2].terminated = true
	died := <-killed
	for {
		l, err := listed(1)
		if err != nil {
			t.Fatal(err)
		}
		gone := true
		for _, m := range ms {
			if m.node == 2 && l[m.id] {
				gone = false
			}
		}
		if gone {
			if len(l) != 6 {
				t.Errorf("%d members listed after the kill, want the 6 of the live nodes", len(l))
			}
			break
		}
		if time.Since(died) > 2*nodeTTL {
			t.Fatalf("the killed node's members still listed %v after the kill (node TTL %v)", time.Since(died), nodeTTL)
		}
		time.Sleep(50 * time.Millisecond) // liveness lapses on Redis's clock; nothing to wait on
	}
	t.Logf("the killed node's members were gone from the list %v after the kill", time.Since(died).Round(time.Millisecond))
}
