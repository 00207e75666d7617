package routing

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/portico-gateway/portico/connections"
)

// These tests decode the events the Router POSTs into aws-lambda-go's
// events.APIGatewayWebsocketProxyRequest (strictly: an unknown, e.g.
// misspelled, field fails) and check every field we set. Header-name
// spelling is left to other tests: headers are looked up here without
// regard to case.

const clfLayout = "02/Jan/2006:15:04:05 -0700"

// eventAPI sends every event type to one backend.
func eventAPI(b *backend) *API {
	api := baseAPI(map[string]Route{
		RouteConnect:    {Integration: b.spec("/connect")},
		RouteDisconnect: {Integration: b.spec("/disconnect")},
		RouteDefault:    {Integration: b.spec("/default")},
		"sendmessage":   {Integration: b.spec("/send")},
	})
	api.DomainName = "k3x9q2w7ab.execute-api.eu-west-1.amazonaws.com"
	return api
}

// topLevel returns the keys of the event's JSON object and of its
// requestContext.
func topLevel(t *testing.T, raw []byte) (top, rc map[string]json.RawMessage) {
	t.Helper()
	if err := json.Unmarshal(raw, &top); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(top["requestContext"], &rc); err != nil {
		t.Fatal(err)
	}
	return top, rc
}

func keys(m map[string]json.RawMessage) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func sameKeys(t *testing.T, what string, got map[string]json.RawMessage, want ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s has keys %v, want exactly %v", what, keys(got), want)
		return
	}
	for _, k := range want {
		if _, ok := got[k]; !ok {
			t.Errorf("%s has keys %v, want exactly %v", what, keys(got), want)
			return
		}
	}
}

// header looks a header up whatever the spelling of its name.
func header(h map[string]string, name string) (string, bool) {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return "", false
}

func multiHeader(h map[string][]string, name string) ([]string, bool) {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return nil, false
}

// checkCommon checks what every event type shares.
func checkCommon(t *testing.T, rc *events.APIGatewayWebsocketProxyRequestContext, routeKey, eventType string,
	info *connections.Info, before, after time.Time) {
	t.Helper()
	for _, f := range []struct{ name, got, want string }{
		{"routeKey", rc.RouteKey, routeKey},
		{"eventType", rc.EventType, eventType},
		{"connectionId", rc.ConnectionID, info.ID},
		{"stage", rc.Stage, "prod"},
		{"apiId", rc.APIID, "k3x9q2w7ab"},
		{"domainName", rc.DomainName, "k3x9q2w7ab.execute-api.eu-west-1.amazonaws.com"},
		{"messageDirection", rc.MessageDirection, "IN"},
		{"identity.sourceIp", rc.Identity.SourceIP, "203.0.113.9"},
		{"identity.userAgent", rc.Identity.UserAgent, "ExampleClient/1.0"},
		{"extendedRequestId", rc.ExtendedRequestID, rc.RequestID},
	} {
		if f.got != f.want {
			t.Errorf("requestContext.%s = %q, want %q", f.name, f.got, f.want)
		}
	}
	if !idPattern.MatchString(rc.RequestID) {
		t.Errorf("requestContext.requestId %q is not an AWS-style id", rc.RequestID)
	}
	if rc.ConnectedAt != 1740996000120 {
		t.Errorf("requestContext.connectedAt = %d, want %d", rc.ConnectedAt, info.ConnectedAt.UnixMilli())
	}
	if rc.RequestTimeEpoch < before.UnixMilli() || rc.RequestTimeEpoch > after.UnixMilli() {
		t.Errorf("requestContext.requestTimeEpoch %d not within [%d, %d]", rc.RequestTimeEpoch, before.UnixMilli(), after.UnixMilli())
	}
	// requestTime is requestTimeEpoch in CLF, to the second, in UTC.
	want := time.UnixMilli(rc.RequestTimeEpoch).UTC().Format(clfLayout)
	if rc.RequestTime != want || !strings.HasSuffix(rc.RequestTime, " +0000") {
		t.Errorf("requestContext.requestTime %q, want %q", rc.RequestTime, want)
	}
	if _, err := time.Parse(clfLayout, rc.RequestTime); err != nil {
		t.Errorf("requestContext.requestTime %q: %v", rc.RequestTime, err)
	}
	for _, f := range []struct {
		name  string
		empty bool
	}{
		{"accountId", rc.AccountID == ""}, {"resourceId", rc.ResourceID == ""}, {"resourcePath", rc.ResourcePath == ""},
		{"httpMethod", rc.HTTPMethod == ""}, {"error", rc.Error == ""}, {"status", rc.Status == ""},
		{"integrationLatency", rc.IntegrationLatency == ""}, {"authorizer", rc.Authorizer == nil},
	} {
		if !f.empty {
			t.Errorf("requestContext.%s is set; AWS leaves it out of WebSocket events", f.name)
		}
	}
}

var commonContextKeys = []string{"routeKey", "eventType", "extendedRequestId", "requestTime", "messageDirection",
	"stage", "connectedAt", "requestTimeEpoch", "identity", "requestId", "domainName", "connectionId", "apiId"}

func TestConnectEvent(t *testing.T) {
	b := newBackend(t)
	r := newRouter(t, eventAPI(b))
	before := time.Now()
	res, info := r.connect(t, "http://gw.example.com/prod?token=abc&x=1&x=2",
		http.Header{"User-Agent": {"ExampleClient/1.0"}, "X-Custom": {"a", "b"}, "Connection": {"Upgrade"}, "Upgrade": {"websocket"}})
	after := time.Now()
	if !res.Accepted() {
		t.Fatalf("refused: %d %s", res.Status, res.Body)
	}
	e := b.next(t)
	if e.path != "/connect" {
		t.Fatalf("event went to %s", e.path)
	}
	ev := e.ev
	checkCommon(t, &ev.RequestContext, "$connect", "CONNECT", info, before, after)
	if ev.RequestContext.MessageID != nil {
		t.Errorf("requestContext.messageId %v on CONNECT", ev.RequestContext.MessageID)
	}
	if ev.RequestContext.DisconnectStatusCode != 0 || ev.RequestContext.DisconnectReason != nil {
		t.Error("disconnect fields on CONNECT")
	}
	if want := map[string]string{"token": "abc", "x": "2"}; !reflect.DeepEqual(ev.QueryStringParameters, want) {
		t.Errorf("queryStringParameters %v, want %v", ev.QueryStringParameters, want)
	}
	if want := map[string][]string{"token": {"abc"}, "x": {"1", "2"}}; !reflect.DeepEqual(ev.MultiValueQueryStringParameters, want) {
		t.Errorf("multiValueQueryStringParameters %v, want %v", ev.MultiValueQueryStringParameters, want)
	}
	if want := map[string]string{"env": "production"}; !reflect.DeepEqual(ev.StageVariables, want) {
		t.Errorf("stageVariables %v, want %v", ev.StageVariables, want)
	}
	for name, want := range map[string]string{
		"Host": "gw.example.com", "User-Agent": "ExampleClient/1.0", "X-Custom": "b",
		"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "http",
	} {
		if got, ok := header(ev.Headers, name); !ok || got != want {
			t.Errorf("headers[%s] = %q (present %v), want %q", name, got, ok, want)
		}
	}
	if got, _ := multiHeader(ev.MultiValueHeaders, "X-Custom"); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Errorf("multiValueHeaders[X-Custom] = %q, want [a b]", got)
	}
	for _, name := range []string{"Connection", "Upgrade"} {
		if _, ok := header(ev.Headers, name); ok {
			t.Errorf("headers has %s; AWS drops it", name)
		}
	}
	if len(ev.Headers) != len(ev.MultiValueHeaders) {
		t.Errorf("headers %v and multiValueHeaders %v differ in names", ev.Headers, ev.MultiValueHeaders)
	}
	if ev.IsBase64Encoded || ev.Body != "" {
		t.Errorf("isBase64Encoded %v body %q", ev.IsBase64Encoded, ev.Body)
	}
	top, rc := topLevel(t, e.raw)
	sameKeys(t, "CONNECT event", top, "headers", "multiValueHeaders", "queryStringParameters",
		"multiValueQueryStringParameters", "stageVariables", "requestContext", "isBase64Encoded")
	sameKeys(t, "CONNECT requestContext", rc, commonContextKeys...)
}

func TestConnectEventWithoutQuery(t *testing.T) {
	b := newBackend(t)
	api := eventAPI(b)
	api.DomainName = "" // the client's Host
	r := newRouter(t, api)
	r.connect(t, "http://client.example.org/dev", nil)
	ev := b.next(t)
	if ev.ev.QueryStringParameters != nil || ev.ev.MultiValueQueryStringParameters != nil || ev.ev.StageVariables != nil {
		t.Errorf("query %v / %v / stageVariables %v, want none", ev.ev.QueryStringParameters,
			ev.ev.MultiValueQueryStringParameters, ev.ev.StageVariables)
	}
	top, _ := topLevel(t, ev.raw)
	sameKeys(t, "CONNECT event without query", top, "headers", "multiValueHeaders", "requestContext", "isBase64Encoded")
	if rc := ev.ev.RequestContext; rc.DomainName != "gw.example.com" || rc.Stage != "dev" {
		t.Errorf("domainName %q stage %q, want the Host gw.example.com and dev", rc.DomainName, rc.Stage)
	}
}

func TestMessageEvent(t *testing.T) {
	b := newBackend(t)
	r := newRouter(t, eventAPI(b))
	c := r.open(t, "prod")
	connectEv := b.next(t).ev
	var ids []string
	for _, tc := range []struct{ body, routeKey, path string }{
		{`{"action":"sendmessage","data":"hi"}`, "sendmessage", "/send"},
		{"not json", "$default", "/default"},
	} {
		before := time.Now()
		r.Message(c, connections.Message{Data: []byte(tc.body)})
		e := b.next(t)
		after := time.Now()
		if e.path != tc.path {
			t.Errorf("event went to %s, want %s", e.path, tc.path)
		}
		rc := e.ev.RequestContext
		checkCommon(t, &rc, tc.routeKey, "MESSAGE", &c.info, before, after)
		msgID, _ := rc.MessageID.(string)
		if !idPattern.MatchString(msgID) || msgID == rc.RequestID {
			t.Errorf("requestContext.messageId %v: not an id of its own", rc.MessageID)
		}
		if rc.RequestID == connectEv.RequestContext.RequestID || rc.ConnectedAt != connectEv.RequestContext.ConnectedAt {
			t.Errorf("requestId %q (CONNECT's %q), connectedAt %d (CONNECT's %d)", rc.RequestID,
				connectEv.RequestContext.RequestID, rc.ConnectedAt, connectEv.RequestContext.ConnectedAt)
		}
		ids = append(ids, rc.RequestID, msgID)
		if e.ev.Body != tc.body || e.ev.IsBase64Encoded {
			t.Errorf("body %q isBase64Encoded %v, want %q false", e.ev.Body, e.ev.IsBase64Encoded, tc.body)
		}
		top, rcKeys := topLevel(t, e.raw)
		sameKeys(t, "MESSAGE event", top, "requestContext", "body", "isBase64Encoded")
		sameKeys(t, "MESSAGE requestContext", rcKeys, append([]string{"messageId"}, commonContextKeys...)...)
	}
	if ids[0] == ids[2] || ids[1] == ids[3] {
		t.Errorf("ids repeat across messages: %v", ids)
	}
}

func TestDisconnectEvent(t *testing.T) {
	b := newBackend(t)
	r := newRouter(t, eventAPI(b))
	c := r.open(t, "prod")
	b.next(t) // CONNECT
	before := time.Now()
	r.Disconnect(c, 1005, "Client-side close frame status not set")
	e := b.next(t)
	after := time.Now()
	if e.path != "/disconnect" {
		t.Fatalf("event went to %s", e.path)
	}
	rc := e.ev.RequestContext
	checkCommon(t, &rc, "$disconnect", "DISCONNECT", &c.info, before, after)
	if rc.MessageID != nil {
		t.Errorf("requestContext.messageId %v on DISCONNECT", rc.MessageID)
	}
	if rc.DisconnectStatusCode != 1005 || rc.DisconnectReason == nil || *rc.DisconnectReason != "Client-side close frame status not set" {
		t.Errorf("disconnectStatusCode %d disconnectReason %v", rc.DisconnectStatusCode, rc.DisconnectReason)
	}
	if host, _ := header(e.ev.Headers, "Host"); host != "k3x9q2w7ab.execute-api.eu-west-1.amazonaws.com" {
		t.Errorf("headers Host %q", host)
	}
	if e.ev.Body != "" || e.ev.IsBase64Encoded || e.ev.QueryStringParameters != nil {
		t.Errorf("body %q isBase64Encoded %v query %v", e.ev.Body, e.ev.IsBase64Encoded, e.ev.QueryStringParameters)
	}
	top, rcKeys := topLevel(t, e.raw)
	sameKeys(t, "DISCONNECT event", top, "headers", "multiValueHeaders", "stageVariables", "requestContext", "isBase64Encoded")
	sameKeys(t, "DISCONNECT requestContext", rcKeys, append([]string{"disconnectStatusCode", "disconnectReason"}, commonContextKeys...)...)

	// An empty reason is still sent, as "".
	c = r.open(t, "prod")
	b.next(t)
	r.Disconnect(c, 1001, "")
	if raw := string(b.next(t).raw); !strings.Contains(raw, `"disconnectReason":""`) || !strings.Contains(raw, `"disconnectStatusCode":1001`) {
		t.Errorf("DISCONNECT with an empty reason: %s", raw)
	}
}
