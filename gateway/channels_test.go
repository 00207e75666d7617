package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// channelRoutes subscribe on $connect (declared and by the backend's
// X-Portico-Subscribe), on routes (declared) and through a route's answer.
const channelRoutes = `$connect:
  subscribe: ["lobby", "stage:${context.stage}"]
  integration: {type: http, uri: "${stageVariables.backend}/connect"}
$disconnect:
  integration: {type: http, uri: "${stageVariables.backend}/disconnect"}
whoami:
  routeResponse: true
  integration: {type: mock, response: {body: '$context.connectionId'}}
join:
  subscribe: ["room:${request.body.room}"]
  routeResponse: true
  integration: {type: mock, response: {body: 'joined'}}
leave:
  unsubscribe: ["room:${request.body.room}"]
  routeResponse: true
  integration: {type: mock, response: {body: 'left'}}
follow:
  routeResponse: true
  integration: {type: http, uri: "${stageVariables.backend}/follow"}
`

const channelConfig = `channels:
  - pattern: "room:*"
    presence: true
  - pattern: "hist:*"
    history: {size: 3}
  - pattern: "fleeting:*"
    history: {ttl: 1ns}
`

func startChannels(t *testing.T, extra string) (*Gateway, *backend) {
	b := newBackend(t)
	b.setReply(func(e event, w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/connect":
			q, _ := e["queryStringParameters"].(map[string]any)
			if s, _ := q["sub"].(string); s != "" {
				fmt.Fprintf(w, `{"statusCode":200,"headers":{"X-Portico-Subscribe":%q,"X-Other":"kept"}}`, s)
				return
			}
		case "/follow":
			_, _ = io.WriteString(w, `{"statusCode":200,"headers":{"X-Portico-Subscribe":"news, sports","X-Portico-Unsubscribe":"lobby"},"body":"following"}`)
			return
		}
		_, _ = io.WriteString(w, `{"statusCode":200}`)
	})
	g := startGateway(t, strings.ReplaceAll(yamlAPI(extra, channelRoutes), "BACKEND", b.srv.URL))
	return g, b
}

func whoami(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	send(t, c, `{"action":"whoami"}`)
	return readText(t, c)
}

// publishResult is the answer of POST @channels.
type publishResult struct {
	Delivered, Dropped, Nodes int
}

func publish(t *testing.T, g *Gateway, channel, body, query string) publishResult {
	t.Helper()
	resp, out := doHTTP(t, "POST", mgmtURL(g, "test")+"/@channels/"+channel+query, body)
	if resp.StatusCode != 200 {
		t.Fatalf("publish to %s: %d %s", channel, resp.StatusCode, out)
	}
	var res publishResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("publish answer %q: %v", out, err)
	}
	return res
}

type membersPage struct {
	Count   int
	Members []struct {
		ConnectionID string
		ConnectedAt  int64
	}
	NextCursor string
	Epoch      string
	Offset     uint64
}

func members(t *testing.T, g *Gateway, channel, query string) membersPage {
	t.Helper()
	resp, out := doHTTP(t, "GET", mgmtURL(g, "test")+"/@channels/"+channel+query, "")
	if resp.StatusCode != 200 {
		t.Fatalf("members of %s: %d %s", channel, resp.StatusCode, out)
	}
	var p membersPage
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("members answer %q: %v", out, err)
	}
	return p
}

func connectionChannels(t *testing.T, g *Gateway, id string) []string {
	t.Helper()
	resp, out := doHTTP(t, "GET", mgmtURL(g, "test")+"/@connections/"+url.PathEscape(id), "")
	if resp.StatusCode != 200 {
		t.Fatalf("GetConnection: %d %s", resp.StatusCode, out)
	}
	var c struct{ Channels []string }
	_ = json.Unmarshal([]byte(out), &c)
	return c.Channels
}

func TestChannelSubscribeWays(t *testing.T) {
	g, b := startChannels(t, channelConfig)
	// $connect: declared (lobby, stage:test) and by the backend's header,
	// which stays out of the 101.
	c, resp, err := websocket.DefaultDialer.Dial(wsURL(g, "test")+"?sub=vip,user:42", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	if resp.Header.Get("X-Portico-Subscribe") != "" || resp.Header.Get("X-Other") != "kept" {
		t.Errorf("101 headers %v: the extension header must be taken out, others kept", resp.Header)
	}
	// Published right after the 101: the subscriptions are already there.
	if res := publish(t, g, "vip", "hello vip", ""); res != (publishResult{Delivered: 1}) {
		t.Errorf("publish right after the 101: %+v", res)
	}
	if got := readText(t, c); got != "hello vip" {
		t.Errorf("got %q", got)
	}
	id := whoami(t, c)
	if got := fmt.Sprint(connectionChannels(t, g, id)); got != "[lobby stage:test user:42 vip]" {
		t.Errorf("channels after $connect: %s", got)
	}
	// A declared route subscription, with the name from the message.
	send(t, c, `{"action":"join","room":"7"}`)
	if got := readText(t, c); got != "joined" {
		t.Fatalf("join: %q", got)
	}
	// A route's answer: X-Portico-Subscribe and -Unsubscribe.
	send(t, c, `{"action":"follow"}`)
	if got := readText(t, c); got != "following" {
		t.Fatalf("follow: %q", got)
	}
	if got := fmt.Sprint(connectionChannels(t, g, id)); got != "[news room:7 sports stage:test user:42 vip]" {
		t.Errorf("channels after join and follow: %s", got)
	}
	// Management: PUT and DELETE.
	if resp, out := doHTTP(t, "PUT", mgmtURL(g, "test")+"/@connections/"+id+"/channels/desk/3", ""); resp.StatusCode != 204 {
		t.Fatalf("PUT: %d %s", resp.StatusCode, out)
	}
	if res := publish(t, g, "desk/3", "to the desk", ""); res.Delivered != 1 {
		t.Errorf("publish to desk/3: %+v", res)
	}
	if got := readText(t, c); got != "to the desk" {
		t.Errorf("got %q", got)
	}
	for _, ch := range []string{"desk/3", "vip"} {
		if resp, out := doHTTP(t, "DELETE", mgmtURL(g, "test")+"/@connections/"+id+"/channels/"+ch, ""); resp.StatusCode != 204 {
			t.Fatalf("DELETE %s: %d %s", ch, resp.StatusCode, out)
		}
	}
	if resp, _ := doHTTP(t, "DELETE", mgmtURL(g, "test")+"/@connections/"+id+"/channels/vip", ""); resp.StatusCode != 404 {
		t.Errorf("DELETE of a channel it is not in: %d, want 404", resp.StatusCode)
	}
	send(t, c, `{"action":"leave","room":"7"}`)
	readText(t, c)
	if got := fmt.Sprint(connectionChannels(t, g, id)); got != "[news sports stage:test user:42]" {
		t.Errorf("channels after leaving: %s", got)
	}
	if res := publish(t, g, "vip", "x", ""); res != (publishResult{}) {
		t.Errorf("publish to a channel left: %+v", res)
	}
	// Binary: bytes that are not UTF-8, or Content-Type application/octet-stream.
	req, _ := http.NewRequest("POST", mgmtURL(g, "test")+"/@channels/news", strings.NewReader("plain"))
	req.Header.Set("Content-Type", "application/octet-stream")
	if r, err := http.DefaultClient.Do(req); err != nil || r.StatusCode != 200 {
		t.Fatalf("binary publish: %v %v", r, err)
	}
	_ = c.SetReadDeadline(time.Now().Add(testTimeout))
	if mt, data, err := c.ReadMessage(); err != nil || mt != websocket.BinaryMessage || string(data) != "plain" {
		t.Errorf("binary: %d %q %v", mt, data, err)
	}
	// Bad names and unknown connections.
	for _, bad := range []string{"has%20space", strings.Repeat("x", 257)} {
		resp, out := doHTTP(t, "POST", mgmtURL(g, "test")+"/@channels/"+bad, "x")
		if resp.StatusCode != 400 || resp.Header.Get("x-amzn-ErrorType") != "BadRequestException" || !strings.Contains(out, `"message"`) {
			t.Errorf("bad name %q: %d %s %v", bad, resp.StatusCode, out, resp.Header)
		}
	}
	if resp, _ := doHTTP(t, "PUT", mgmtURL(g, "test")+"/@connections/AAAAAAAAAAAAAAA=/channels/x", ""); resp.StatusCode != 410 {
		t.Errorf("PUT for an unknown connection: %d, want 410", resp.StatusCode)
	}
	// Leaving on close: once $disconnect has run, no channel keeps it.
	_ = c.Close()
	b.nextOf("DISCONNECT")
	for _, ch := range []string{"lobby", "news", "stage:test", "user:42"} {
		if p := members(t, g, ch, ""); p.Count != 0 {
			t.Errorf("%s still has %d members after the close", ch, p.Count)
		}
	}
}

func TestChannelPublishExcludeAndLists(t *testing.T) {
	g, _ := startChannels(t, channelConfig)
	var conns []*websocket.Conn
	var ids []string
	for range 5 {
		c := dial(t, wsURL(g, "test"), nil)
		conns = append(conns, c)
		ids = append(ids, whoami(t, c))
	}
	if res := publish(t, g, "lobby", "from 0", "?exclude="+url.QueryEscape(ids[0])); res != (publishResult{Delivered: 4}) {
		t.Errorf("publish excluding the sender: %+v", res)
	}
	for i, c := range conns[1:] {
		if got := readText(t, c); got != "from 0" {
			t.Errorf("client %d got %q", i+1, got)
		}
	}
	// The sender got nothing: its next message is the answer to whoami.
	if got := whoami(t, conns[0]); got != ids[0] {
		t.Errorf("the excluded sender read %q", got)
	}
	// Members, paged.
	seen := map[string]bool{}
	cursor := ""
	for {
		p := members(t, g, "lobby", "?limit=2&cursor="+url.QueryEscape(cursor))
		if p.Count != 5 || len(p.Members) > 2 {
			t.Fatalf("page %+v", p)
		}
		for _, m := range p.Members {
			seen[m.ConnectionID] = true
		}
		if cursor = p.NextCursor; cursor == "" {
			break
		}
	}
	// Connections of the stage, paged.
	listed := map[string]bool{}
	cursor = ""
	for {
		resp, out := doHTTP(t, "GET", mgmtURL(g, "test")+"/@connections?limit=3&cursor="+url.QueryEscape(cursor), "")
		var page struct {
			Connections []struct{ ConnectionID string }
			NextCursor  string
		}
		if resp.StatusCode != 200 || json.Unmarshal([]byte(out), &page) != nil {
			t.Fatalf("list: %d %s", resp.StatusCode, out)
		}
		for _, c := range page.Connections {
			listed[c.ConnectionID] = true
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	for _, id := range ids {
		if !seen[id] || !listed[id] {
			t.Errorf("%s: in members %v, in the list %v", id, seen[id], listed[id])
		}
	}
	if resp, _ := doHTTP(t, "GET", mgmtURL(g, "test")+"/@channels/lobby?limit=0", ""); resp.StatusCode != 400 {
		t.Errorf("limit=0: %d, want 400", resp.StatusCode)
	}
}

// Concurrent publishers: every subscriber sees one order, and each
// publisher's messages in the order it sent them.
func TestChannelOrderUnderConcurrentPublishers(t *testing.T) {
	g, _ := startChannels(t, "")
	const clients, publishers, each = 5, 4, 50
	var conns []*websocket.Conn
	for range clients {
		c := dial(t, wsURL(g, "test"), nil)
		whoami(t, c) // connected and subscribed
		conns = append(conns, c)
	}
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				resp, err := http.Post(mgmtURL(g, "test")+"/@channels/lobby", "text/plain", strings.NewReader(fmt.Sprintf("%d:%d", p, i)))
				if err != nil || resp.StatusCode != 200 {
					t.Errorf("publish: %v %v", resp, err)
					return
				}
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	var ref []string
	for ci, c := range conns {
		var got []string
		next := make([]int, publishers)
		for range publishers * each {
			m := readText(t, c)
			got = append(got, m)
			var p, i int
			fmt.Sscanf(m, "%d:%d", &p, &i)
			if i != next[p] {
				t.Fatalf("client %d: publisher %d's message %d came when %d was due", ci, p, i, next[p])
			}
			next[p]++
		}
		if ref == nil {
			ref = got
		} else if strings.Join(got, ",") != strings.Join(ref, ",") {
			t.Fatalf("client %d saw another order than client 0", ci)
		}
	}
}

func TestChannelPresence(t *testing.T) {
	g, _ := startChannels(t, channelConfig)
	a := dial(t, wsURL(g, "test"), nil)
	aID := whoami(t, a)
	send(t, a, `{"action":"join","room":"1"}`)
	readText(t, a)
	b := dial(t, wsURL(g, "test"), nil)
	bID := whoami(t, b)
	send(t, b, `{"action":"join","room":"1"}`)
	if got := readText(t, b); got != "joined" { // b gets no event of its own join
		t.Fatalf("b: %q", got)
	}
	var ev struct {
		Type, Channel, Action, ConnectionID string
		ConnectedAt                         int64
	}
	if err := json.Unmarshal([]byte(readText(t, a)), &ev); err != nil || ev.Type != "portico.presence" || ev.Action != "join" ||
		ev.ConnectionID != bID || ev.Channel != "room:1" || time.Since(time.UnixMilli(ev.ConnectedAt)) > time.Minute {
		t.Errorf("join event %+v %v", ev, err)
	}
	_ = b.Close()
	if err := json.Unmarshal([]byte(readText(t, a)), &ev); err != nil || ev.Action != "leave" || ev.ConnectionID != bID {
		t.Errorf("leave event %+v %v", ev, err)
	}
	// No presence in channels not configured for it: lobby got nothing.
	if got := whoami(t, a); got != aID {
		t.Errorf("a read %q", got)
	}
}

type envelope struct {
	Type, Channel, Epoch, Reason, Text string
	Offset                             uint64
	Recovered                          *bool
	Replayed                           int
}

func readEnvelope(t *testing.T, c *websocket.Conn) envelope {
	t.Helper()
	var e envelope
	if s := readText(t, c); json.Unmarshal([]byte(s), &e) != nil {
		t.Fatalf("not a portico frame: %q", s)
	}
	return e
}

func TestChannelRecovery(t *testing.T) {
	g, b := startChannels(t, channelConfig)
	a := dial(t, wsURL(g, "test"), nil)
	aID := whoami(t, a)
	doHTTP(t, "PUT", mgmtURL(g, "test")+"/@connections/"+aID+"/channels/hist:1", "")
	publish(t, g, "hist:1", "m1", "")
	first := readEnvelope(t, a)
	if first.Type != "portico.message" || first.Offset != 1 || first.Text != "m1" || first.Epoch == "" {
		t.Fatalf("first message %+v", first)
	}
	_ = a.Close()
	b.nextOf("DISCONNECT")
	for i := 2; i <= 4; i++ {
		publish(t, g, "hist:1", fmt.Sprintf("m%d", i), "") // missed while away
	}
	recoverAt := func(offset int) *websocket.Conn {
		c := dial(t, wsURL(g, "test")+fmt.Sprintf("?sub=hist:1&recover=hist:1@%s:%d", first.Epoch, offset), nil)
		return c
	}
	// Offsets 2..4 are within the last 3: replayed in order, then the
	// recovery frame, then live messages.
	c := recoverAt(1)
	for i := 2; i <= 4; i++ {
		if e := readEnvelope(t, c); e.Offset != uint64(i) || e.Text != fmt.Sprintf("m%d", i) {
			t.Fatalf("replayed %+v, want offset %d", e, i)
		}
	}
	if e := readEnvelope(t, c); e.Type != "portico.recovery" || e.Recovered == nil || !*e.Recovered || e.Replayed != 3 || e.Offset != 4 {
		t.Errorf("recovery frame %+v", e)
	}
	publish(t, g, "hist:1", "m5", "")
	if e := readEnvelope(t, c); e.Offset != 5 {
		t.Errorf("live after recovery %+v", e)
	}
	// Offset 1 is gone (3 kept: 3..5): not recoverable, said clearly.
	c2 := recoverAt(1)
	if e := readEnvelope(t, c2); e.Type != "portico.recovery" || e.Recovered == nil || *e.Recovered || e.Offset != 5 || e.Epoch != first.Epoch {
		t.Errorf("gap too old: %+v", e)
	}
	// A new epoch: the channel's history was dropped (fleeting: keeps
	// nothing once its members left) and made again.
	f := dial(t, wsURL(g, "test")+"?sub=fleeting:1", nil)
	whoami(t, f)
	publish(t, g, "fleeting:1", "once", "")
	old := readEnvelope(t, f)
	_ = f.Close()
	b.nextOf("DISCONNECT")
	f2 := dial(t, wsURL(g, "test")+"?sub=fleeting:1&recover=fleeting:1@"+old.Epoch+":1", nil)
	if e := readEnvelope(t, f2); e.Type != "portico.recovery" || e.Recovered == nil || *e.Recovered || !strings.Contains(e.Reason, "epoch") || e.Epoch == old.Epoch {
		t.Errorf("after an epoch change: %+v (old epoch %s)", e, old.Epoch)
	}
}

// waitMetric fails unless /metrics has a line starting with want. The
// channel counters move before the publish is answered: no waiting.
func waitMetric(t *testing.T, g *Gateway, want string) {
	t.Helper()
	_, body := doHTTP(t, "GET", "http://"+g.ManagementAddr()+"/metrics", "")
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, want) {
			return
		}
	}
	t.Errorf("/metrics has no line %q", want)
}

// GetConnection's extra "channels" field does not trouble the official
// AWS SDK: it reads the AWS fields and ignores the extension.
func TestChannelsInGetConnectionWithTheJSSDK(t *testing.T) {
	g, _ := startChannels(t, "")
	c := dial(t, wsURL(g, "test"), nil)
	id := whoami(t, c)
	if got := fmt.Sprint(connectionChannels(t, g, id)); got != "[lobby stage:test]" {
		t.Fatalf("channels %s", got)
	}
	res := runSDK(t, mgmtURL(g, "test"), []map[string]string{{"op": "get", "id": id}})
	ident, _ := res[0].Result["identity"].(map[string]any)
	if !res[0].OK || ident["sourceIp"] != "127.0.0.1" || res[0].Result["connectedAt"] == nil {
		t.Errorf("GetConnection through the SDK: %+v", res[0])
	}
}
