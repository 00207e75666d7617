package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/portico-gateway/portico/storage/storagetest"
)

// sharedChannelRoutes: every connection joins lobby on $connect; join
// joins the channel named in the message.
const sharedChannelRoutes = `$connect:
  subscribe: ["lobby"]
whoami:
  routeResponse: true
  integration: {type: mock, response: {body: '$context.connectionId'}}
join:
  subscribe: ["${request.body.ch}"]
  routeResponse: true
  integration: {type: mock, response: {body: 'joined'}}
`

const sharedChannelConfig = `channels:
  - pattern: "room:*"
    presence: true
  - pattern: "hist:*"
    history: {size: 100}
`

// channelNodes starts n gateways sharing one Redis (node TTL nodeTTL).
func channelNodes(t *testing.T, n int, nodeTTL string) []*Gateway {
	t.Helper()
	addr := storagetest.RedisAddr(t)
	yml := "storage: {type: redis, nodeTTL: " + nodeTTL + ", redis: {addrs: [" + addr + "]}}\n" +
		yamlAPI(sharedChannelConfig, sharedChannelRoutes)
	var gs []*Gateway
	for range n {
		gs = append(gs, startGateway(t, yml))
	}
	return gs
}

type member struct {
	c    *websocket.Conn
	id   string
	node int
}

// membersOn connects per clients to each node (all in lobby).
func membersOn(t *testing.T, gs []*Gateway, per int) []member {
	t.Helper()
	var out []member
	for i, g := range gs {
		for range per {
			c := dial(t, wsURL(g, "test"), nil)
			out = append(out, member{c, whoami(t, c), i})
		}
	}
	return out
}

// publishVia publishes without a testing.T (from goroutines).
func publishVia(g *Gateway, channel, body string) (publishResult, error) {
	resp, err := http.Post(mgmtURL(g, "test")+"/@channels/"+channel, "text/plain", strings.NewReader(body))
	if err != nil {
		return publishResult{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return publishResult{}, fmt.Errorf("publish: %d %s", resp.StatusCode, b)
	}
	var res publishResult
	return res, json.Unmarshal(b, &res)
}

// TestChannelsAcrossNodes: subscribers spread over three nodes all get
// every publish exactly once, in one order, whichever node each publish
// came through; the answer counts the publishing node's own members and
// the other nodes.
func TestChannelsAcrossNodes(t *testing.T) {
	gs := channelNodes(t, 3, "3s")
	ms := membersOn(t, gs, 2)

	if res := publish(t, gs[0], "lobby", "first", ""); res != (publishResult{Delivered: 2, Nodes: 2}) {
		t.Errorf("publish through node 0: %+v, want 2 delivered here and 2 other nodes", res)
	}
	for _, m := range ms {
		if got := readText(t, m.c); got != "first" {
			t.Fatalf("member on node %d got %q", m.node, got)
		}
	}

	// Three publishers, one per node, at once.
	const each = 20
	var wg sync.WaitGroup
	errs := make(chan error, len(gs))
	for i, g := range gs {
		wg.Go(func() {
			for j := range each {
				if _, err := publishVia(g, "lobby", fmt.Sprintf("p%d-%02d", i, j)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var orders [][]string
	for _, m := range ms {
		var got []string
		for range len(gs) * each {
			got = append(got, readText(t, m.c))
		}
		// Nothing more: the next frame is the answer to whoami.
		if id := whoami(t, m.c); id != m.id {
			t.Fatalf("member on node %d read %q after the %d messages: a message came twice", m.node, id, len(got))
		}
		orders = append(orders, got)
	}
	for i, got := range orders {
		if !slices.Equal(got, orders[0]) {
			t.Fatalf("member %d (node %d) saw another order than member 0:\n%v\n%v", i, ms[i].node, got, orders[0])
		}
	}
	// Each publisher's messages in its own order, none missing.
	next := make([]int, len(gs))
	for _, msg := range orders[0] {
		var p, j int
		if _, err := fmt.Sscanf(msg, "p%d-%d", &p, &j); err != nil || j != next[p] {
			t.Fatalf("message %q out of its publisher's order (want p%d-%02d)", msg, p, next[p])
		}
		next[p]++
	}
}

// TestChannelNodeWithoutMembersReceivesNothing: a node with no member of
// a channel reads nothing of it from Redis, and a publish through it
// reaches the nodes that have members.
func TestChannelNodeWithoutMembersReceivesNothing(t *testing.T) {
	gs := channelNodes(t, 3, "3s")
	ms := membersOn(t, gs[:2], 1)
	idle := gs[2]
	before := idle.chanBus.Received()
	for i := range 20 {
		via := gs[i%3]
		res, err := publishVia(via, "lobby", fmt.Sprintf("m%d", i))
		if err != nil {
			t.Fatal(err)
		}
		want := publishResult{Delivered: 1, Nodes: 1}
		if via == idle {
			want = publishResult{Nodes: 2}
		}
		if res != want {
			t.Errorf("publish %d through node %d: %+v, want %+v", i, i%3, res, want)
		}
	}
	for _, m := range ms {
		for i := range 20 {
			if got := readText(t, m.c); got != fmt.Sprintf("m%d", i) {
				t.Fatalf("member on node %d got %q, want m%d", m.node, got, i)
			}
		}
	}
	if got := idle.chanBus.Received() - before; got != 0 {
		t.Errorf("the node without members read %d messages from the bus, want 0", got)
	}
	// Its last member gone, a node stops receiving.
	_ = ms[1].c.Close()
	eventually(t, "node 1 unwatches lobby", func() error {
		if n := members(t, gs[0], "lobby", "").Count; n != 1 {
			return fmt.Errorf("%d members", n)
		}
		return nil
	})
	// The unsubscribe follows the leave by one flusher round.
	eventually(t, "node 1 reads no more", func() error {
		before := gs[1].chanBus.Received()
		if _, err := publishVia(gs[0], "lobby", "after"); err != nil {
			return err
		}
		readText(t, ms[0].c)
		if n := gs[1].chanBus.Received() - before; n != 0 {
			return fmt.Errorf("node 1 still read %d", n)
		}
		return nil
	})
}

// readFrame reads one text frame as JSON.
func readFrame(t *testing.T, c *websocket.Conn) map[string]any {
	t.Helper()
	s := readText(t, c)
	var f map[string]any
	if err := json.Unmarshal([]byte(s), &f); err != nil {
		t.Fatalf("frame %q: %v", s, err)
	}
	return f
}

// TestChannelRecoveryOnAnotherNode: a client that saw offsets up to 3 on
// one node reconnects to another with its position and gets what it
// missed, in order, then live messages; a stale epoch gets the
// "recovery not possible" frame.
func TestChannelRecoveryOnAnotherNode(t *testing.T) {
	gs := channelNodes(t, 3, "3s")
	c := dial(t, wsURL(gs[0], "test"), nil)
	send(t, c, `{"action":"join","ch":"hist:1"}`)
	if got := readText(t, c); got != "joined" {
		t.Fatalf("join: %q", got)
	}
	for i := 1; i <= 3; i++ {
		if res := publish(t, gs[1], "hist:1", fmt.Sprintf(`{"n":%d}`, i), ""); res.Nodes != 1 {
			t.Errorf("publish %d: %+v", i, res)
		}
	}
	var epoch string
	for i := 1; i <= 3; i++ {
		f := readFrame(t, c)
		if f["type"] != "portico.message" || f["offset"] != float64(i) {
			t.Fatalf("frame %d: %v", i, f)
		}
		epoch, _ = f["epoch"].(string)
	}
	_ = c.Close()
	eventually(t, "the member left", func() error {
		if n := members(t, gs[2], "hist:1", "").Count; n != 0 {
			return fmt.Errorf("%d members", n)
		}
		return nil
	})
	for i := 4; i <= 5; i++ {
		publish(t, gs[2], "hist:1", fmt.Sprintf(`{"n":%d}`, i), "")
	}
	if p := members(t, gs[0], "hist:1", ""); p.Epoch != epoch || p.Offset != 5 {
		t.Errorf("channel position %q:%d, want %q:5", p.Epoch, p.Offset, epoch)
	}

	// Back on another node with the position it had.
	c2 := dial(t, wsURL(gs[1], "test")+"?recover="+url.QueryEscape("hist:1@"+epoch+":3"), nil)
	send(t, c2, `{"action":"join","ch":"hist:1"}`)
	for i := 4; i <= 5; i++ {
		f := readFrame(t, c2)
		if f["type"] != "portico.message" || f["offset"] != float64(i) || f["epoch"] != epoch {
			t.Fatalf("replay %d: %v", i, f)
		}
		if d, _ := f["data"].(map[string]any); d["n"] != float64(i) {
			t.Fatalf("replay %d data: %v", i, f)
		}
	}
	f := readFrame(t, c2)
	if f["type"] != "portico.recovery" || f["recovered"] != true || f["offset"] != float64(5) || f["replayed"] != float64(2) {
		t.Fatalf("recovery frame: %v", f)
	}
	if got := readText(t, c2); got != "joined" {
		t.Fatalf("after the recovery: %q", got)
	}
	publish(t, gs[0], "hist:1", `{"n":6}`, "")
	if f := readFrame(t, c2); f["offset"] != float64(6) {
		t.Fatalf("live after the recovery: %v", f)
	}

	// A position of another epoch cannot be recovered.
	c3 := dial(t, wsURL(gs[2], "test")+"?recover="+url.QueryEscape("hist:1@other:2"), nil)
	send(t, c3, `{"action":"join","ch":"hist:1"}`)
	f = readFrame(t, c3)
	if f["type"] != "portico.recovery" || f["recovered"] != false || f["epoch"] != epoch || f["offset"] != float64(6) {
		t.Fatalf("recovery across epochs: %v", f)
	}
	// A backend can pass the position itself, through any node.
	c4 := dial(t, wsURL(gs[2], "test"), nil)
	id := whoami(t, c4)
	eventuallyStatus(t, "PUT with a position through another node", "PUT",
		mgmtURL(gs[0], "test")+"/@connections/"+url.PathEscape(id)+"/channels/hist:1?recover="+epoch+":5", 204)
	if f := readFrame(t, c4); f["offset"] != float64(6) {
		t.Fatalf("replay through PUT: %v", f)
	}
	if f := readFrame(t, c4); f["type"] != "portico.recovery" || f["recovered"] != true || f["replayed"] != float64(1) {
		t.Fatalf("recovery through PUT: %v", f)
	}
}

// eventuallyStatus repeats a request until it is answered want (the
// connection's record may still be on its way to the registry).
func eventuallyStatus(t *testing.T, what, method, u string, want int) {
	t.Helper()
	eventually(t, what, func() error {
		if resp, out := doHTTP(t, method, u, ""); resp.StatusCode != want {
			return fmt.Errorf("%d %s", resp.StatusCode, out)
		}
		return nil
	})
}

// TestChannelMembershipAcrossNodes: PUT and DELETE of a connection held
// by another node are forwarded to it; member lists and presence span
// the nodes.
func TestChannelMembershipAcrossNodes(t *testing.T) {
	gs := channelNodes(t, 3, "3s")
	a := dial(t, wsURL(gs[0], "test"), nil)
	aID := whoami(t, a)
	b := dial(t, wsURL(gs[1], "test"), nil)
	bID := whoami(t, b)

	// Presence: b's join reaches a, on another node.
	send(t, a, `{"action":"join","ch":"room:1"}`)
	readText(t, a)
	send(t, b, `{"action":"join","ch":"room:1"}`)
	readText(t, b)
	f := readFrame(t, a)
	if f["type"] != "portico.presence" || f["action"] != "join" || f["connectionId"] != bID {
		t.Fatalf("a got %v, want b's join", f)
	}
	eventually(t, "both listed through the third node", func() error {
		p := members(t, gs[2], "room:1", "")
		ids := []string{}
		for _, m := range p.Members {
			ids = append(ids, m.ConnectionID)
		}
		slices.Sort(ids)
		want := []string{aID, bID}
		slices.Sort(want)
		if p.Count != 2 || !slices.Equal(ids, want) {
			return fmt.Errorf("%+v", p)
		}
		return nil
	})

	// PUT through a node that does not hold the connection.
	put := mgmtURL(gs[2], "test") + "/@connections/" + url.PathEscape(aID) + "/channels/desk"
	eventuallyStatus(t, "forwarded PUT", "PUT", put, 204)
	if res := publish(t, gs[1], "desk", "to the desk", ""); res != (publishResult{Nodes: 1}) {
		t.Errorf("publish to desk through node 1: %+v", res)
	}
	if got := readText(t, a); got != "to the desk" {
		t.Fatalf("a got %q", got)
	}
	if got := fmt.Sprint(connectionChannels(t, gs[1], aID)); got != "[desk lobby room:1]" {
		t.Errorf("a's channels through node 1: %s", got)
	}
	if resp, out := doHTTP(t, "DELETE", put, ""); resp.StatusCode != 204 {
		t.Fatalf("forwarded DELETE: %d %s", resp.StatusCode, out)
	}
	if resp, _ := doHTTP(t, "DELETE", put, ""); resp.StatusCode != 404 {
		t.Errorf("forwarded DELETE of a channel it left: %d, want 404", resp.StatusCode)
	}
	if resp, _ := doHTTP(t, "PUT", put+"?recover=bad", ""); resp.StatusCode != 400 {
		t.Errorf("PUT with a bad position: %d, want 400", resp.StatusCode)
	}
	if resp, _ := doHTTP(t, "PUT", mgmtURL(gs[2], "test")+"/@connections/AAAAAAAAAAAAAAA=/channels/desk", ""); resp.StatusCode != 410 {
		t.Errorf("PUT for an unknown connection: %d, want 410", resp.StatusCode)
	}

	// b leaves by closing: a hears it, and the lists forget b.
	_ = b.Close()
	f = readFrame(t, a)
	if f["type"] != "portico.presence" || f["action"] != "leave" || f["connectionId"] != bID {
		t.Fatalf("a got %v, want b's leave", f)
	}
	eventually(t, "b no longer listed", func() error {
		if p := members(t, gs[2], "room:1", ""); p.Count != 1 {
			return fmt.Errorf("%+v", p)
		}
		return nil
	})
}

// TestChannelNodeDiesMembersLeave: a node that stops without leaving
// (its keeper and bus stopped, no leaves sent) stops being listed within
// the node TTL, and delivery to the other nodes goes on.
func TestChannelNodeDiesMembersLeave(t *testing.T) {
	gs := channelNodes(t, 3, "1500ms")
	ms := membersOn(t, gs, 1)
	eventually(t, "three members listed", func() error {
		if n := members(t, gs[0], "lobby", "").Count; n != 3 {
			return fmt.Errorf("%d", n)
		}
		return nil
	})
	// Node 2 goes silent: no heartbeats, no bus, its members never leave.
	dead := gs[2]
	dead.bgCancel()
	dead.bg.Wait()
	if err := dead.chanBus.Close(); err != nil {
		t.Fatal(err)
	}
	died := time.Now()
	for i := range 10 {
		if res, err := publishVia(gs[i%2], "lobby", fmt.Sprintf("m%d", i)); err != nil || res.Delivered != 1 || res.Nodes != 1 {
			t.Fatalf("publish %d after the death: %+v %v", i, res, err)
		}
	}
	for _, m := range ms[:2] {
		for i := range 10 {
			if got := readText(t, m.c); got != fmt.Sprintf("m%d", i) {
				t.Fatalf("member on node %d got %q", m.node, got)
			}
		}
	}
	eventually(t, "the dead node's member is no longer listed", func() error {
		p := members(t, gs[1], "lobby", "")
		for _, m := range p.Members {
			if m.ConnectionID == ms[2].id {
				return fmt.Errorf("still listed after %v", time.Since(died))
			}
		}
		return nil
	})
	if d := time.Since(died); d > 3*time.Second {
		t.Errorf("the dead node's member was listed for %v, over the node TTL and a beat", d)
	}
}

// TestChannelNodeDiesLeaveAnnounced: on a channel with presence, the
// members of a node that died are announced as leaving to the members on
// the other nodes, once each, a few node TTLs after the death.
func TestChannelNodeDiesLeaveAnnounced(t *testing.T) {
	gs := channelNodes(t, 3, "1500ms")
	ms := membersOn(t, gs, 1)
	for i, m := range ms {
		send(t, m.c, `{"action":"join","ch":"room:1"}`)
		if got := readText(t, m.c); got != "joined" {
			t.Fatalf("member %d: %q", i, got)
		}
		// Those who joined before hear this one join.
		for _, before := range ms[:i] {
			if f := readFrame(t, before.c); f["action"] != "join" || f["connectionId"] != m.id {
				t.Fatalf("member on node %d got %v, want the join of %s", before.node, f, m.id)
			}
		}
	}
	dead := gs[2]
	dead.bgCancel()
	dead.bg.Wait()
	if err := dead.chanBus.Close(); err != nil {
		t.Fatal(err)
	}
	died := time.Now()
	for _, m := range ms[:2] {
		f := readFrame(t, m.c)
		if f["type"] != "portico.presence" || f["action"] != "leave" || f["connectionId"] != ms[2].id || f["channel"] != "room:1" {
			t.Fatalf("member on node %d got %v, want the leave of %s", m.node, f, ms[2].id)
		}
	}
	if d := time.Since(died); d > 4*1500*time.Millisecond {
		t.Errorf("the leave came %v after the death, over four node TTLs", d)
	}
	// Once: what follows the leave is the next publish.
	if _, err := publishVia(gs[0], "room:1", "after"); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms[:2] {
		if got := readText(t, m.c); got != "after" {
			t.Fatalf("member on node %d got %q after the leave, want the next publish", m.node, got)
		}
	}
}

// TestChannelsAfterRedisRestart: while Redis is down a publish is
// answered 503; once an empty Redis is back, the nodes subscribe again,
// publishes reach every node, and the member lists are written again.
func TestChannelsAfterRedisRestart(t *testing.T) {
	addr := storagetest.RedisAddr(t)
	yml := "storage: {type: redis, nodeTTL: 1500ms, redis: {addrs: [" + addr + "]}}\n" +
		yamlAPI(sharedChannelConfig, sharedChannelRoutes)
	gs := []*Gateway{startGateway(t, yml), startGateway(t, yml)}
	ms := membersOn(t, gs, 1)
	publish(t, gs[0], "lobby", "before", "")
	for _, m := range ms {
		readText(t, m.c)
	}
	restart := stopRedis(t, addr)
	waitReadyz(t, gs[0], http.StatusServiceUnavailable)
	if resp, out := doHTTP(t, "POST", mgmtURL(gs[0], "test")+"/@channels/lobby", "during"); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("publish while Redis is down: %d %s, want 503", resp.StatusCode, out)
	}
	restart()
	eventually(t, "a publish reaches both nodes again", func() error {
		res, err := publishVia(gs[1], "lobby", "after")
		if err != nil {
			return err
		}
		if res != (publishResult{Delivered: 1, Nodes: 1}) {
			return fmt.Errorf("%+v", res)
		}
		return nil
	})
	for _, m := range ms {
		// Earlier tries may have reached one node only.
		for {
			if got := readText(t, m.c); got == "after" {
				break
			}
		}
	}
	eventually(t, "both members listed again", func() error {
		if p := members(t, gs[0], "lobby", ""); p.Count != 2 {
			return fmt.Errorf("%+v", p)
		}
		return nil
	})
}

// TestChannelsAcrossNodesOnRedisCluster: the same over a Redis Cluster
// (sharded pub/sub), with history.
func TestChannelsAcrossNodesOnRedisCluster(t *testing.T) {
	addrs := storagetest.RedisCluster(t)
	yml := "storage: {type: redis, nodeTTL: 3s, redis: {addrs: [" + strings.Join(addrs, ", ") + "]}}\n" +
		yamlAPI(sharedChannelConfig, sharedChannelRoutes)
	gs := []*Gateway{startGateway(t, yml), startGateway(t, yml)}
	ms := membersOn(t, gs, 1)
	for _, m := range ms {
		send(t, m.c, `{"action":"join","ch":"hist:c"}`)
		if got := readText(t, m.c); got != "joined" {
			t.Fatalf("join: %q", got)
		}
	}
	for i := 1; i <= 10; i++ {
		if res := publish(t, gs[i%2], "hist:c", fmt.Sprint(i), ""); res != (publishResult{Delivered: 1, Nodes: 1}) {
			t.Errorf("publish %d: %+v", i, res)
		}
	}
	for _, m := range ms {
		for i := 1; i <= 10; i++ {
			if f := readFrame(t, m.c); f["offset"] != float64(i) || f["data"] != float64(i) {
				t.Fatalf("member on node %d: %v, want offset %d", m.node, f, i)
			}
		}
	}
	eventually(t, "both listed", func() error {
		if p := members(t, gs[0], "hist:c", ""); p.Count != 2 || p.Offset != 10 {
			return fmt.Errorf("%+v", p)
		}
		return nil
	})
}
