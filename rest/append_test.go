package rest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/portico-gateway/portico/internal/certs/certtest"
	"github.com/portico-gateway/portico/routing/auth"
)

// checkAppender compares the hand-written encoding of x's event with
// encoding/json's.
func checkAppender(t *testing.T, x *exchange) {
	t.Helper()
	want, err := json.Marshal(x.eventV2())
	if err != nil {
		t.Fatal(err)
	}
	got := v2Event{x}.AppendJSON(nil)
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("appended JSON is invalid: %v\n%s", err, got)
	}
	_ = json.Unmarshal(want, &w)
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("appended\n%s\nencoding/json\n%s", got, want)
	}
}

func TestAppendEventV2(t *testing.T) {
	x := benchExchange(t)
	checkAppender(t, x)
	x.r.Header.Add("X-Multi", "a")
	x.r.Header.Add("X-Multi", "b\"<\u2028>\x01\xff")
	x.r.Header.Set("X-Forwarded-For", "10.0.0.1")
	x.identity = &auth.Identity{Type: auth.TypeJWT, Claims: map[string]any{"sub": "u", "n": 3.0}, Scopes: []string{"a"}}
	x.body = []byte{0xff, 0x00}
	x.st.vars = nil
	x.params = nil
	checkAppender(t, x)
	// Under mutual TLS, requestContext.authentication.clientCert.
	x.r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{certtest.NewCA(t, "ca").Client(t, "c").Cert}}
	checkAppender(t, x)
	if !bytes.Contains(v2Event{x}.AppendJSON(nil), []byte(`"authentication":{"clientCert":{"clientCertPem":"-----BEGIN CERTIFICATE-----`)) {
		t.Error("no authentication.clientCert")
	}
}

func FuzzAppendEventV2(f *testing.F) {
	f.Add("/prod/a%20b", "a=1&a=2&%zz", "X-A", "v\x00\"", "sid=1; x", []byte("body"))
	f.Fuzz(func(t *testing.T, path, query, hname, hval, cookie string, body []byte) {
		r := httptest.NewRequest("GET", "http://h/", nil)
		r.URL.Path, r.URL.RawQuery = path, query
		r.Header[hname] = []string{hval}
		r.Header.Set("Cookie", cookie)
		x := &exchange{h: &table{api: &API{Protocol: ProtocolHTTP}}, r: r, now: time.Unix(1, 0), st: &stage{name: "prod"},
			rt: &route{key: "GET /a"}, path: path, body: body, sourceIP: "1.2.3.4", domain: hval}
		checkAppender(t, x)
	})
}
