package gateway

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/gorilla/websocket"

	"github.com/portico-gateway/portico/config"
	"github.com/portico-gateway/portico/internal/certs/certtest"
)

// rawBackend records the raw body of every event it gets and answers
// with answer.
type rawBackend struct {
	srv    *httptest.Server
	bodies chan []byte
}

func newRawBackend(t *testing.T, answer string) *rawBackend {
	b := &rawBackend{bodies: make(chan []byte, 16)}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		b.bodies <- body
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *rawBackend) next(t *testing.T) []byte {
	t.Helper()
	select {
	case body := <-b.bodies:
		return body
	case <-time.After(testTimeout):
		t.Fatal("backend: no event")
		return nil
	}
}

// none fails if the backend got an event.
func (b *rawBackend) none(t *testing.T) {
	t.Helper()
	select {
	case body := <-b.bodies:
		t.Fatalf("the backend was called: %s", body)
	default:
	}
}

// tlsFiles writes a server certificate and a truststore for ca into a
// temporary directory and returns the YAML of a tls block using them.
func tlsFiles(t *testing.T, ca *certtest.CA, mutual bool) (yaml, certFile, keyFile string) {
	dir := t.TempDir()
	certFile, keyFile = ca.Server(t, "server one").Write(t, dir, "server")
	yaml = "tls:\n  certFile: " + certFile + "\n  keyFile: " + keyFile + "\n"
	if mutual {
		trust := filepath.Join(dir, "truststore.pem")
		certtest.WriteFile(t, trust, ca.PEM)
		yaml += "  mutualTlsAuthentication:\n    truststoreUri: " + trust + "\n"
	}
	return yaml, certFile, keyFile
}

func TestWSSMutualTLS(t *testing.T) {
	ca := certtest.NewCA(t, "Portico Test CA")
	tlsYAML, certFile, keyFile := tlsFiles(t, ca, true)
	b := newRawBackend(t, `{"statusCode":200}`)
	g := startGateway(t, yamlAPI(tlsYAML, "$connect:\n  integration: {type: http, uri: "+b.srv.URL+"}\n"))
	url := "wss://" + g.APIAddr("t") + "/test"
	client := ca.Client(t, "alice")
	dialer := func(cfg *tls.Config) *websocket.Dialer {
		return &websocket.Dialer{TLSClientConfig: cfg, HandshakeTimeout: testTimeout}
	}
	base := &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", Certificates: []tls.Certificate{client.TLS}}

	c, _, err := dialer(base).Dial(url, nil)
	if err != nil {
		t.Fatalf("wss with a client certificate: %v", err)
	}
	defer c.Close()
	if cn := c.NetConn().(*tls.Conn).ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "server one" {
		t.Errorf("server certificate %q", cn)
	}
	var ev events.APIGatewayWebsocketProxyRequest
	raw := b.next(t)
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatalf("CONNECT event: %v: %s", err, raw)
	}
	cc := ev.RequestContext.Identity.ClientCert
	if cc == nil {
		t.Fatalf("CONNECT event without identity.clientCert: %s", raw)
	}
	want := client.Cert
	if cc.SubjectDN != "CN=alice,O=Portico Clients" || cc.IssuerDN != "CN=Portico Test CA,O=Portico Test" ||
		cc.ClientCertPem != string(client.CertPEM) ||
		cc.Validity.NotBefore != want.NotBefore.UTC().Format("Jan _2 15:04:05 2006 GMT") ||
		cc.Validity.NotAfter != want.NotAfter.UTC().Format("Jan _2 15:04:05 2006 GMT") ||
		strings.TrimLeft(strings.ReplaceAll(cc.SerialNumber, ":", ""), "0") != strings.TrimLeft(want.SerialNumber.Text(16), "0") {
		t.Errorf("clientCert %+v\nfor %v", cc, want.Subject)
	}

	// Without a client certificate, or with one of another CA, the
	// handshake fails and $connect never runs.
	noCert := base.Clone()
	noCert.Certificates = nil
	if c, _, err := dialer(noCert).Dial(url, nil); err == nil {
		c.Close()
		t.Error("a client without a certificate connected")
	}
	other := base.Clone()
	other.Certificates = []tls.Certificate{certtest.NewCA(t, "Other CA").Client(t, "mallory").TLS}
	if c, _, err := dialer(other).Dial(url, nil); err == nil {
		c.Close()
		t.Error("a client certificate of another CA was accepted")
	}
	// TLS 1.1 is refused.
	old := base.Clone()
	old.MinVersion, old.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	if c, _, err := dialer(old).Dial(url, nil); err == nil {
		c.Close()
		t.Error("a TLS 1.1 client connected")
	}
	b.none(t)

	// A renewed certificate is served from the next handshake on.
	renewed := ca.Server(t, "server two")
	certtest.WriteFile(t, keyFile, renewed.KeyPEM)
	certtest.WriteFile(t, certFile, renewed.CertPEM)
	c2, _, err := dialer(base).Dial(url, nil)
	if err != nil {
		t.Fatalf("after the renewal: %v", err)
	}
	defer c2.Close()
	if cn := c2.NetConn().(*tls.Conn).ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "server two" {
		t.Errorf("after the renewal the server presents %q, want the new certificate", cn)
	}
	b.next(t)
	// The first connection is still open and working.
	if err := c.WriteControl(websocket.PingMessage, nil, time.Now().Add(testTimeout)); err != nil {
		t.Errorf("the connection opened before the renewal: %v", err)
	}
}

// dialFrom dials a WebSocket URL from a local address (127.0.0.2 to test
// source lists on loopback) with an Origin header, and returns the HTTP
// status of the handshake.
func dialFrom(t *testing.T, url, local, origin string) int {
	t.Helper()
	d := &websocket.Dialer{HandshakeTimeout: testTimeout, NetDial: func(network, addr string) (net.Conn, error) {
		nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
		return nd.Dial(network, addr)
	}}
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	c, resp, err := d.Dial(url, h)
	if err == nil {
		c.Close()
		return resp.StatusCode
	}
	if resp == nil {
		t.Fatalf("dial from %s: %v", local, err)
	}
	return resp.StatusCode
}

func TestWebSocketOriginAndSourceIPs(t *testing.T) {
	b := newRawBackend(t, `{"statusCode":200}`)
	g := startGateway(t, yamlAPI(`allowOrigins: ["https://chat.example.com", "https://*.example.org"]
sourceIpPolicy:
  allow: [127.0.0.0/8]
  deny: [127.0.0.2]
`, "$connect:\n  integration: {type: http, uri: "+b.srv.URL+"}\n"))
	url := wsURL(g, "test")
	for _, tc := range []struct {
		local, origin string
		want          int
	}{
		{"127.0.0.1", "https://evil.example.com", http.StatusForbidden},
		{"127.0.0.1", "https://example.org", http.StatusForbidden},
		{"127.0.0.2", "https://chat.example.com", http.StatusForbidden},
		{"127.0.0.2", "", http.StatusForbidden},
	} {
		if got := dialFrom(t, url, tc.local, tc.origin); got != tc.want {
			t.Errorf("from %s with Origin %q: HTTP %d, want %d", tc.local, tc.origin, got, tc.want)
		}
	}
	b.none(t) // refused before $connect ran
	for _, origin := range []string{"https://chat.example.com", "https://a.example.org", ""} {
		if got := dialFrom(t, url, "127.0.0.1", origin); got != http.StatusSwitchingProtocols {
			t.Errorf("Origin %q: HTTP %d, want 101", origin, got)
		}
		b.next(t)
	}
}

func TestHTTPSClientCertAndSourceIPs(t *testing.T) {
	ca := certtest.NewCA(t, "Portico Test CA")
	tlsYAML, _, _ := tlsFiles(t, ca, true)
	b := newRawBackend(t, `{"statusCode":200,"body":"ok"}`)
	g := startGateway(t, httpAPI("http", tlsYAML+"sourceIpPolicy: {deny: [127.0.0.2/32]}\n", "- name: prod\n",
		"GET /v2:\n  integration: {type: http, uri: "+b.srv.URL+"}\n"+
			"GET /v1:\n  integration: {type: http, uri: "+b.srv.URL+", payloadFormatVersion: \"1.0\"}\n"))
	client := ca.Client(t, "bob")
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", Certificates: []tls.Certificate{client.TLS}}}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: testTimeout}
	base := "https://" + g.APIAddr("pets") + "/prod"
	get := func(hc *http.Client, path string) (int, string) {
		t.Helper()
		resp, err := hc.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}

	if code, _ := get(hc, "/v2"); code != 200 {
		t.Fatalf("GET /v2: %d", code)
	}
	var v2 events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(b.next(t), &v2); err != nil {
		t.Fatal(err)
	}
	if cc := v2.RequestContext.Authentication.ClientCert; cc.SubjectDN != "CN=bob,O=Portico Clients" || cc.ClientCertPem != string(client.CertPEM) || cc.Validity.NotAfter == "" {
		t.Errorf("payload 2.0 authentication.clientCert %+v", cc)
	}
	if code, _ := get(hc, "/v1"); code != 200 {
		t.Fatalf("GET /v1: %d", code)
	}
	var v1 events.APIGatewayProxyRequest
	if err := json.Unmarshal(b.next(t), &v1); err != nil {
		t.Fatal(err)
	}
	if cc := v1.RequestContext.Identity.ClientCert; cc == nil || cc.IssuerDN != "CN=Portico Test CA,O=Portico Test" || cc.SerialNumber == "" {
		t.Errorf("payload 1.0 identity.clientCert %+v", cc)
	}

	// Without a client certificate the TLS handshake fails.
	bare := &http.Client{Timeout: testTimeout, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"}}}
	if resp, err := bare.Get(base + "/v2"); err == nil {
		resp.Body.Close()
		t.Error("a request without a client certificate was served")
	}

	// From a denied source: 403 before the route runs.
	denied := tr.Clone()
	denied.DialContext = (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext
	defer denied.CloseIdleConnections()
	if code, body := get(&http.Client{Transport: denied, Timeout: testTimeout}, "/v2"); code != http.StatusForbidden || body != `{"message":"Forbidden"}` {
		t.Errorf("from 127.0.0.2: %d %s, want 403", code, body)
	}
	b.none(t)
}

func TestRESTSourceIPDenied(t *testing.T) {
	b := newRawBackend(t, `{"statusCode":200,"body":"ok"}`)
	g := startGateway(t, httpAPI("rest", "id: abc123\nsourceIpPolicy: {allow: [127.0.0.1]}\n", "- name: prod\n",
		"GET /pets:\n  integration: {type: http, uri: "+b.srv.URL+"}\n"))
	hc := &http.Client{Timeout: testTimeout, Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext}}
	resp, err := hc.Get("http://" + g.APIAddr("pets") + "/prod/pets")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := `{"Message":"User: anonymous is not authorized to perform: execute-api:Invoke on resource: arn:aws:execute-api:us-east-1:123456789012:abc123/prod/GET/pets"}`
	if resp.StatusCode != http.StatusForbidden || string(body) != want || resp.Header.Get("X-Amzn-Errortype") != "AccessDeniedException" {
		t.Errorf("from a source outside allow: %d %s %s", resp.StatusCode, resp.Header.Get("X-Amzn-Errortype"), body)
	}
	b.none(t)
	if code, _ := call(t, "GET", apiURL(g)+"/prod/pets", "", nil); code.StatusCode != 200 {
		t.Errorf("from 127.0.0.1: %d", code.StatusCode)
	}
}

func TestManagementTLS(t *testing.T) {
	ca := certtest.NewCA(t, "Portico Test CA")
	tlsYAML, _, _ := tlsFiles(t, ca, false)
	g := startGateway(t, yamlAPI("", "$default:\n  integration: {type: mock}\n")+"management:\n"+indentYAML(tlsYAML, "  "))
	hc := &http.Client{Timeout: testTimeout, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"}}}
	resp, err := hc.Get("https://" + g.ManagementAddr() + "/healthz")
	if err != nil {
		t.Fatalf("https management: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("/healthz over https: %d", resp.StatusCode)
	}
}

// TestManagementTLSRefusesHTTPRelay: nodes relay @connections to each
// other's management listener over plain http (dynamodb registry with a
// relay secret), so management.tls there stops New with a clear error,
// before it reaches the registry, instead of relays that fail later.
func TestManagementTLSRefusesHTTPRelay(t *testing.T) {
	ca := certtest.NewCA(t, "Portico Test CA")
	tlsYAML, _, _ := tlsFiles(t, ca, false)
	yml := yamlAPI("", "$default:\n  integration: {type: mock}\n") + "management:\n" + indentYAML(tlsYAML, "  ") +
		"storage: {type: dynamodb, relaySecret: s3cret, dynamodb: {endpoint: \"http://127.0.0.1:1\", region: us-east-1}}\n"
	cfg, err := config.Parse("relay.yaml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(context.Background(), cfg, WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err == nil {
		_ = g.Shutdown(context.Background())
		t.Fatal("New accepted management.tls with the HTTP relay")
	}
	if !errors.Is(err, errRelayTLS) {
		t.Errorf("New: %v, want errRelayTLS", err)
	}
}
