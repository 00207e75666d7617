package gateway

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

var idPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{15}=$`)

// httpRoutes is a typical API: every route goes to the test backend.
const httpRoutes = `$connect:
  integration: {type: http, uri: "${stageVariables.backend}/connect"}
$disconnect:
  integration: {type: http, uri: "${stageVariables.backend}/disconnect"}
$default:
  integration: {type: http, uri: "${stageVariables.backend}/default"}
sendmessage:
  integration: {type: http, uri: "${stageVariables.backend}/send"}
ping:
  routeResponse: true
  integration: {type: http, uri: "${stageVariables.backend}/ping"}
`

func startHTTP(t *testing.T, extra string) (*Gateway, *backend) {
	b := newBackend(t)
	g := startGateway(t, strings.ReplaceAll(yamlAPI(extra, httpRoutes), "BACKEND", b.srv.URL))
	return g, b
}

func TestConnectEventAndRejection(t *testing.T) {
	g, b := startHTTP(t, "")
	b.setReply(func(e event, w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/connect" {
			_, _ = io.WriteString(w, `{"statusCode":200}`)
			return
		}
		q, _ := e["queryStringParameters"].(map[string]any)
		if q["token"] != "good" {
			_, _ = io.WriteString(w, `{"statusCode":401,"body":"no"}`)
			return
		}
		_, _ = io.WriteString(w, `{"statusCode":200,"headers":{"Sec-WebSocket-Protocol":"chat.v1"}}`)
	})

	// Rejected: the client sees the backend's status.
	_, resp, err := websocket.DefaultDialer.Dial(wsURL(g, "test")+"?token=bad", nil)
	if err == nil || resp == nil || resp.StatusCode != 401 {
		t.Fatalf("bad token: err=%v resp=%v, want HTTP 401", err, resp)
	}
	e := b.nextOf("CONNECT")
	if e.str("routeKey") != "$connect" {
		t.Errorf("routeKey %q", e.str("routeKey"))
	}

	// Accepted, with the subprotocol from the $connect response.
	h := http.Header{"User-Agent": {"PorticoTest/1.0"}, "Sec-WebSocket-Protocol": {"chat.v1"}}
	c, resp, err := websocket.DefaultDialer.Dial(wsURL(g, "test")+"?token=good&x=1&x=2", h)
	if err != nil {
		t.Fatalf("good token: %v", err)
	}
	defer c.Close()
	if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != "chat.v1" {
		t.Errorf("subprotocol %q, want chat.v1", got)
	}
	e = b.nextOf("CONNECT")
	for key, want := range map[string]string{
		"routeKey": "$connect", "eventType": "CONNECT", "stage": "test", "messageDirection": "IN",
	} {
		if got := e.str(key); got != want {
			t.Errorf("requestContext.%s = %q, want %q", key, got, want)
		}
	}
	for _, key := range []string{"connectionId", "requestId", "extendedRequestId"} {
		if !idPattern.MatchString(e.str(key)) {
			t.Errorf("requestContext.%s = %q, not an AWS-style id", key, e.str(key))
		}
	}
	if e.str("requestId") != e.str("extendedRequestId") {
		t.Errorf("requestId %q != extendedRequestId %q", e.str("requestId"), e.str("extendedRequestId"))
	}
	if _, err := time.Parse("02/Jan/2006:15:04:05 -0700", e.str("requestTime")); err != nil {
		t.Errorf("requestTime %q: %v", e.str("requestTime"), err)
	}
	if ca, _ := e.ctx("connectedAt").(float64); time.Since(time.UnixMilli(int64(ca))) > time.Minute {
		t.Errorf("connectedAt %v is not now", e.ctx("connectedAt"))
	}
	id, _ := e.ctx("identity").(map[string]any)
	if id["sourceIp"] != "127.0.0.1" || id["userAgent"] != "PorticoTest/1.0" {
		t.Errorf("identity %v", id)
	}
	if e.str("domainName") != g.APIAddr("t") {
		t.Errorf("domainName %q, want the Host %q", e.str("domainName"), g.APIAddr("t"))
	}
	if !regexp.MustCompile(`^[a-z0-9]{10}$`).MatchString(e.str("apiId")) {
		t.Errorf("apiId %q", e.str("apiId"))
	}
	hdr, _ := e["headers"].(map[string]any)
	if hdr["Sec-WebSocket-Version"] != "13" || hdr["Host"] != g.APIAddr("t") || hdr["X-Forwarded-For"] != "127.0.0.1" {
		t.Errorf("headers %v", hdr)
	}
	mq, _ := e["multiValueQueryStringParameters"].(map[string]any)
	if fmt.Sprint(mq["x"]) != "[1 2]" {
		t.Errorf("multiValueQueryStringParameters %v", mq)
	}
	if e["isBase64Encoded"] != false {
		t.Errorf("isBase64Encoded %v", e["isBase64Encoded"])
	}
	for _, absent := range []string{"messageId", "accountId", "resourcePath", "httpMethod", "authorizer"} {
		if e.ctx(absent) != nil {
			t.Errorf("requestContext.%s present, AWS leaves it out", absent)
		}
	}
	if _, ok := e["body"]; ok {
		t.Error("CONNECT event has a body")
	}
}

func TestUnknownStageIsForbidden(t *testing.T) {
	g, _ := startHTTP(t, "")
	_, resp, err := websocket.DefaultDialer.Dial(wsURL(g, "nope"), nil)
	if err == nil || resp == nil || resp.StatusCode != 403 {
		t.Fatalf("unknown stage: err=%v resp=%v, want 403", err, resp)
	}
}

func TestConnectIntegrationFailures(t *testing.T) {
	g, b := startHTTP(t, "")
	b.setReply(func(e event, w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/connect" {
			w.WriteHeader(500)
		}
	})
	_, resp, err := websocket.DefaultDialer.Dial(wsURL(g, "test"), nil)
	if err == nil || resp == nil || resp.StatusCode != 502 {
		t.Fatalf("backend 500: err=%v resp=%v, want 502", err, resp)
	}
}

func TestConnectTimeoutIs504(t *testing.T) {
	b := newBackend(t)
	routes := `$connect:
  integration: {type: http, uri: "BACKEND/connect", timeout: 100ms}
$default:
  integration: {type: mock}
`
	g := startGateway(t, strings.ReplaceAll(yamlAPI("", routes), "BACKEND", b.srv.URL))
	b.setReply(func(e event, w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	_, resp, err := websocket.DefaultDialer.Dial(wsURL(g, "test"), nil)
	if err == nil || resp == nil || resp.StatusCode != 504 {
		t.Fatalf("slow $connect: err=%v resp=%v, want 504", err, resp)
	}
}

func TestMessageRoutes(t *testing.T) {
	g, b := startHTTP(t, "")
	c := dial(t, wsURL(g, "test"), nil)
	connID := b.nextOf("CONNECT").str("connectionId")

	send(t, c, `{"action":"sendmessage","data":"hi"}`)
	e := b.nextOf("MESSAGE")
	if e.str("routeKey") != "sendmessage" || e["body"] != `{"action":"sendmessage","data":"hi"}` {
		t.Errorf("custom route event: routeKey %q body %v", e.str("routeKey"), e["body"])
	}
	if e.str("connectionId") != connID || !idPattern.MatchString(e.str("messageId")) {
		t.Errorf("connectionId %q (want %q), messageId %q", e.str("connectionId"), connID, e.str("messageId"))
	}
	if _, ok := e["headers"]; ok {
		t.Error("MESSAGE event has headers")
	}

	// Unknown action and non-JSON text both fall to $default.
	send(t, c, `{"action":"other"}`)
	if e := b.nextOf("MESSAGE"); e.str("routeKey") != "$default" {
		t.Errorf("unknown action went to %q", e.str("routeKey"))
	}
	send(t, c, `not json at all`)
	if e := b.nextOf("MESSAGE"); e.str("routeKey") != "$default" || e["body"] != "not json at all" {
		t.Errorf("non-JSON: route %q body %v", e.str("routeKey"), e["body"])
	}
	// The one-way route sent nothing back: the next frame is the answer
	// of the two-way ping route.
	b.setReply(func(e event, w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"statusCode":200,"body":"pong"}`)
	})
	send(t, c, `{"action":"ping"}`)
	if got := readText(t, c); got != "pong" {
		t.Errorf("two-way route answered %q, want pong", got)
	}
}

func TestNoRouteGivesForbiddenFrame(t *testing.T) {
	routes := `echo:
  routeResponse: true
  integration: {type: mock, response: {body: "$request.body.data"}}
`
	g := startGateway(t, yamlAPI("", routes))
	c := dial(t, wsURL(g, "test"), nil)
	send(t, c, `{"action":"nope"}`)
	got := readText(t, c)
	re := regexp.MustCompile(`^\{"message": "Forbidden", "connectionId":"[A-Za-z0-9_-]{15}=", "requestId":"[A-Za-z0-9_-]{15}="\}$`)
	if !re.MatchString(got) {
		t.Fatalf("no-route frame %q is not AWS's byte layout", got)
	}
	// The socket stays open.
	send(t, c, `{"action":"echo","data":"still here"}`)
	if got := readText(t, c); got != "still here" {
		t.Errorf("after Forbidden: %q", got)
	}
}

func TestMockTemplates(t *testing.T) {
	routes := `whoami:
  routeResponse: true
  integration: {type: mock, response: {body: '{"id":"$context.connectionId","stage":"${context.stage}","v":"$stageVariables.backend","room":"$request.body.data.room"}'}}
quiet:
  integration: {type: mock, response: {body: "never sent: one-way"}}
$default:
  routeResponse: true
  integration: {type: mock, response: {body: "default: $request.body"}}
`
	g := startGateway(t, yamlAPI("", routes))
	c := dial(t, wsURL(g, "test"), nil)
	send(t, c, `{"action":"quiet"}`)
	send(t, c, `{"action":"whoami","data":{"room":"r1"}}`)
	var who struct{ ID, Stage, V, Room string }
	if err := json.Unmarshal([]byte(readText(t, c)), &who); err != nil {
		t.Fatal(err)
	}
	if !idPattern.MatchString(who.ID) || who.Stage != "test" || who.V != "BACKEND" || who.Room != "r1" {
		t.Errorf("whoami = %+v", who)
	}
	send(t, c, "plain")
	if got := readText(t, c); got != "default: plain" {
		t.Errorf("$default answered %q", got)
	}
}

func TestIntegrationErrorsKeepSocketOpen(t *testing.T) {
	g, b := startHTTP(t, "")
	c := dial(t, wsURL(g, "test"), nil)
	b.nextOf("CONNECT")
	b.setReply(func(e event, w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
	send(t, c, `{"action":"sendmessage"}`)
	if got := readText(t, c); !strings.HasPrefix(got, `{"message": "Internal server error", "connectionId":"`) {
		t.Errorf("backend 500 gave %q", got)
	}
	b.setReply(func(e event, w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"statusCode":"abc"}`)
	})
	send(t, c, `{"action":"sendmessage"}`)
	if got := readText(t, c); !strings.HasPrefix(got, `{"message": "Internal server error"`) {
		t.Errorf("malformed result gave %q", got)
	}
}

func TestIntegrationTimeout(t *testing.T) {
	b := newBackend(t)
	routes := `slow:
  routeResponse: true
  integration: {type: http, uri: "BACKEND/slow", timeout: 150ms}
fast:
  routeResponse: true
  integration: {type: mock, response: {body: fast}}
`
	g := startGateway(t, strings.ReplaceAll(yamlAPI("", routes), "BACKEND", b.srv.URL))
	b.setReply(func(e event, w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	c := dial(t, wsURL(g, "test"), nil)
	send(t, c, `{"action":"slow"}`)
	got := readText(t, c)
	if !strings.HasPrefix(got, `{"message": "Endpoint request timed out", "connectionId":"`) {
		t.Errorf("timeout frame %q", got)
	}
	send(t, c, `{"action":"fast"}`)
	if got := readText(t, c); got != "fast" {
		t.Errorf("after timeout: %q", got)
	}
}

func TestDisconnectOnClientClose(t *testing.T) {
	g, b := startHTTP(t, "")
	c := dial(t, wsURL(g, "test"), nil)
	id := b.nextOf("CONNECT").str("connectionId")
	msg := websocket.FormatCloseMessage(4001, "bye")
	if err := c.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	e := b.nextOf("DISCONNECT")
	if e.str("connectionId") != id || e.str("routeKey") != "$disconnect" {
		t.Errorf("disconnect event %v", e)
	}
	if code, _ := e.ctx("disconnectStatusCode").(float64); code != 4001 || e.str("disconnectReason") != "bye" {
		t.Errorf("disconnect code %v reason %q, want 4001 bye", e.ctx("disconnectStatusCode"), e.str("disconnectReason"))
	}
	hdr, _ := e["headers"].(map[string]any)
	if _, ok := hdr["x-api-key"]; !ok || hdr["Host"] != g.APIAddr("t") {
		t.Errorf("disconnect headers %v", hdr)
	}
}

func TestIdleTimeoutAndMaxDuration(t *testing.T) {
	for _, limits := range []string{"idleTimeout: 200ms", "maxConnectionDuration: 300ms"} {
		t.Run(strings.Fields(limits)[0], func(t *testing.T) {
			g, b := startHTTP(t, "limits: {"+limits+"}\n")
			c := dial(t, wsURL(g, "test"), nil)
			b.nextOf("CONNECT")
			start := time.Now()
			ce := readClose(t, c)
			if ce.Code != 1001 {
				t.Errorf("close code %d, want 1001", ce.Code)
			}
			if d := time.Since(start); d < 150*time.Millisecond {
				t.Errorf("closed after %v, before the limit", d)
			}
			e := b.nextOf("DISCONNECT")
			if code, _ := e.ctx("disconnectStatusCode").(float64); code != 1001 {
				t.Errorf("$disconnect code %v", e.ctx("disconnectStatusCode"))
			}
		})
	}
}

func TestOversizeCloses1009(t *testing.T) {
	for _, tc := range []struct {
		name      string
		writeBuf  int // client frame size
		size      int
		wantClose bool
	}{
		{"frame over frame limit", 4096, 600, true},
		{"message over message limit in small frames", 256, 1500, true},
		{"under both limits", 256, 900, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			routes := `$default:
  routeResponse: true
  integration: {type: mock, response: {body: ok}}
`
			g := startGateway(t, yamlAPI("limits: {maxFrameBytes: 512, maxMessageBytes: 1024}\n", routes))
			d := websocket.Dialer{WriteBufferSize: tc.writeBuf}
			c, _, err := d.Dial(wsURL(g, "test"), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			send(t, c, strings.Repeat("x", tc.size))
			if !tc.wantClose {
				if got := readText(t, c); got != "ok" {
					t.Errorf("got %q", got)
				}
				return
			}
			if ce := readClose(t, c); ce.Code != 1009 {
				t.Errorf("close code %d, want 1009", ce.Code)
			}
		})
	}
}

func TestBinaryAndInvalidUTF8(t *testing.T) {
	b := newBackend(t)
	routes := `$default:
  integration: {type: http, uri: "BACKEND/default"}
`
	g := startGateway(t, strings.ReplaceAll(yamlAPI("", routes), "BACKEND", b.srv.URL))
	c := dial(t, wsURL(g, "test"), nil)
	if err := c.WriteMessage(websocket.BinaryMessage, []byte{0, 1, 2, 0xff}); err != nil {
		t.Fatal(err)
	}
	e := b.nextOf("MESSAGE")
	if e["isBase64Encoded"] != true || e["body"] != base64.StdEncoding.EncodeToString([]byte{0, 1, 2, 0xff}) {
		t.Errorf("binary event: body %v isBase64Encoded %v", e["body"], e["isBase64Encoded"])
	}
	if err := c.WriteMessage(websocket.TextMessage, []byte{'a', 0xff, 0xfe}); err != nil {
		t.Fatal(err)
	}
	if ce := readClose(t, c); ce.Code != 1007 {
		t.Errorf("invalid UTF-8: close %d, want 1007", ce.Code)
	}

	g2 := startGateway(t, strings.ReplaceAll(yamlAPI("binaryFrames: reject\n", routes), "BACKEND", b.srv.URL))
	c2 := dial(t, wsURL(g2, "test"), nil)
	if err := c2.WriteMessage(websocket.BinaryMessage, []byte{1}); err != nil {
		t.Fatal(err)
	}
	if ce := readClose(t, c2); ce.Code != 1003 {
		t.Errorf("binaryFrames reject: close %d, want 1003", ce.Code)
	}
}

func TestShutdownClosesWith1001AndFiresDisconnect(t *testing.T) {
	g, b := startHTTP(t, "")
	c := dial(t, wsURL(g, "test"), nil)
	b.nextOf("CONNECT")
	done := make(chan error, 1)
	go func() { done <- g.Shutdown(t.Context()) }()
	if ce := readClose(t, c); ce.Code != 1001 {
		t.Errorf("shutdown close code %d, want 1001", ce.Code)
	}
	e := b.nextOf("DISCONNECT")
	if code, _ := e.ctx("disconnectStatusCode").(float64); code != 1001 {
		t.Errorf("$disconnect code %v, want 1001", e.ctx("disconnectStatusCode"))
	}
	if err := <-done; err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

func TestDisconnectOnDelete(t *testing.T) {
	g, b := startHTTP(t, "")
	c := dial(t, wsURL(g, "test"), nil)
	id := b.nextOf("CONNECT").str("connectionId")
	// A message through the connection shows it is open on the gateway's
	// side too (until then @connections answers 410, as during $connect).
	send(t, c, `{"action":"sendmessage"}`)
	b.nextOf("MESSAGE")
	resp, _ := doHTTP(t, "DELETE", mgmtURL(g, "test")+"/@connections/"+id, "")
	if resp.StatusCode != 204 {
		t.Fatalf("DELETE: %d", resp.StatusCode)
	}
	if ce := readClose(t, c); ce.Code != 1000 || ce.Text != "Connection Closed Normally" {
		t.Errorf("client saw close %d %q", ce.Code, ce.Text)
	}
	e := b.nextOf("DISCONNECT")
	if code, _ := e.ctx("disconnectStatusCode").(float64); code != 1000 || e.str("disconnectReason") != "Connection Closed Normally" || e.str("connectionId") != id {
		t.Errorf("$disconnect after DELETE: code %v reason %q id %q", e.ctx("disconnectStatusCode"), e.str("disconnectReason"), e.str("connectionId"))
	}
}
