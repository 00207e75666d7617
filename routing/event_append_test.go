package routing

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/portico-gateway/portico/internal/certs"
)

// checkEventJSON compares the hand-written encoding of ev with
// encoding/json's, value for value (map keys come in another order).
func checkEventJSON(t *testing.T, ev *Event) {
	t.Helper()
	want, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	got := ev.AppendJSON(nil)
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("appended JSON is invalid: %v\n%s", err, got)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("appended\n%s\nencoding/json\n%s", got, want)
	}
}

func fullEvent() *Event {
	body, reason, code := `{"action":"echo","data":"<hi>"}`, "bye\u2028", 1001
	return &Event{
		Headers:                         map[string]string{"Host": "gw.example.com", "X-Multi": "b\"\x01\xff"},
		MultiValueHeaders:               map[string][]string{"Host": {"gw.example.com"}, "X-Multi": {"a", "b\"\x01\xff"}, "Nil": nil, "Empty": {}},
		QueryStringParameters:           map[string]string{"token": "t&1"},
		MultiValueQueryStringParameters: map[string][]string{"token": {"t", "t&1"}},
		StageVariables:                  map[string]string{"env": "production"},
		RequestContext: RequestContext{
			RouteKey: "echo", DisconnectStatusCode: &code, MessageID: "m1", EventType: EventDisconnect,
			ExtendedRequestID: "r1", RequestTime: "20/Jan/2024:11:55:00 +0000", MessageDirection: "IN",
			DisconnectReason: &reason, Stage: "prod", ConnectedAt: 1705751700000, RequestTimeEpoch: -1,
			Identity:  Identity{SourceIP: "203.0.113.9", UserAgent: "ExampleClient/1.0"},
			RequestID: "r1", DomainName: "gw.example.com", ConnectionID: "c1", APIID: "k3x9q2w7ab",
			Authorizer: map[string]any{"principalId": "u", "n": 3.0, "claims": map[string]any{"sub": "u"}},
		},
		Body:            &body,
		IsBase64Encoded: true,
	}
}

func TestEventAppendJSON(t *testing.T) {
	checkEventJSON(t, fullEvent())
	checkEventJSON(t, &Event{})
	// A MESSAGE event as the router builds it: the common case.
	body := `{"action":"echo","data":"hello"}`
	checkEventJSON(t, &Event{Body: &body, RequestContext: RequestContext{RouteKey: "echo", EventType: EventMessage,
		MessageID: "m", Identity: Identity{SourceIP: "127.0.0.1"}}})
	// A CONNECT event under mutual TLS carries the client certificate.
	checkEventJSON(t, &Event{RequestContext: RequestContext{RouteKey: RouteConnect, EventType: EventConnect,
		Identity: Identity{SourceIP: "127.0.0.1", ClientCert: &certs.ClientCert{ClientCertPem: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
			SubjectDN: "CN=a", IssuerDN: "CN=ca", SerialNumber: "01", Validity: certs.Validity{NotBefore: "Dec  2 00:00:00 2026 GMT", NotAfter: "Jan  1 00:00:00 2027 GMT"}}}}})
}

func FuzzEventAppendJSON(f *testing.F) {
	f.Add("X-A", "v\x00\"", "token", "a&b", "principalId", "u", `{"action":"x"}`, int64(1), true)
	f.Fuzz(func(t *testing.T, hname, hval, qname, qval, akey, aval, body string, n int64, flag bool) {
		ev := fullEvent()
		ev.Headers[hname] = hval
		ev.MultiValueHeaders[hname] = []string{hval, hname}
		ev.QueryStringParameters = map[string]string{qname: qval}
		ev.MultiValueQueryStringParameters = map[string][]string{qname: {qval}}
		ev.StageVariables = map[string]string{qname: hval}
		rc := &ev.RequestContext
		rc.RouteKey, rc.MessageID, rc.Stage, rc.DomainName, rc.ConnectionID = hname, hval, qname, qval, body
		rc.Identity.UserAgent, rc.ConnectedAt, rc.RequestTimeEpoch = aval, n, -n
		rc.Authorizer = map[string]any{akey: aval, "n": float64(n)}
		ev.Body, ev.IsBase64Encoded = &body, flag
		if flag {
			rc.DisconnectReason, rc.DisconnectStatusCode, rc.Authorizer, ev.Body = nil, nil, nil, nil
		}
		checkEventJSON(t, ev)
	})
}

func messageEvent() *Event {
	body := `{"action":"echo","data":"hello, this is a message of about a hundred bytes, as a chat app sends"}`
	return &Event{Body: &body, RequestContext: RequestContext{RouteKey: "echo", EventType: EventMessage,
		MessageID: "L0SNbdkIvHcCIhw=", ExtendedRequestID: "L0SNbFY5vHcFQ8A=", RequestTime: "20/Jan/2024:11:55:00 +0000",
		MessageDirection: "IN", Stage: "prod", ConnectedAt: 1705751700000, RequestTimeEpoch: 1705751700123,
		Identity: Identity{SourceIP: "203.0.113.9"}, RequestID: "L0SNbFY5vHcFQ8A=", DomainName: "gw.example.com",
		ConnectionID: "L0SM9cOFvHcCIhw=", APIID: "k3x9q2w7ab"}}
}

// BenchmarkEventJSON is a MESSAGE event through encoding/json, as HTTP
// integrations encoded it before AppendJSON.
func BenchmarkEventJSON(b *testing.B) {
	ev := messageEvent()
	b.ReportAllocs()
	for b.Loop() {
		_, _ = json.Marshal(ev)
	}
}

// BenchmarkEventAppendJSON is the same event through AppendJSON.
func BenchmarkEventAppendJSON(b *testing.B) {
	ev := messageEvent()
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = ev.AppendJSON(buf[:0])
	}
}
