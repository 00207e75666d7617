package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/portico-gateway/portico/config"
)

// authorizerServer is a real HTTP authorizer: it records each event and
// answers Allow for the token "good", Deny for "bad", 401 for "expired".
type authorizerServer struct {
	srv    *httptest.Server
	calls  atomic.Int64
	events chan map[string]any
	gate   chan struct{} // nil: answer at once; else each call waits for it to close
}

func newAuthorizerServer(t *testing.T, gate chan struct{}) *authorizerServer {
	a := &authorizerServer{events: make(chan map[string]any, 100), gate: gate}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.calls.Add(1)
		body, _ := io.ReadAll(r.Body)
		var ev map[string]any
		if err := json.Unmarshal(body, &ev); err != nil {
			t.Errorf("authorizer event is not JSON: %s", body)
		}
		select {
		case a.events <- ev:
		default:
		}
		if a.gate != nil {
			<-a.gate
		}
		q, _ := ev["queryStringParameters"].(map[string]any)
		effect := "Allow"
		switch q["token"] {
		case "bad":
			effect = "Deny"
		case "expired":
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"message":"Unauthorized"}`)
			return
		}
		_, _ = io.WriteString(w, `{"principalId":"user-42","policyDocument":{"Version":"2012-10-17","Statement":[`+
			`{"Action":"execute-api:Invoke","Effect":"`+effect+`","Resource":"arn:aws:execute-api:*:*:*/test/$connect"}]},`+
			`"context":{"tenant":"t1","level":3,"admin":false}}`)
	}))
	t.Cleanup(a.srv.Close)
	return a
}

// authYAML is an API whose $connect a request authorizer at uri guards.
func authYAML(uri, ttl, backend string) string {
	return strings.ReplaceAll(yamlAPI(`authorizers:
  tokens:
    type: request
    uri: `+uri+`
    identitySource: [route.request.querystring.token]
    resultTtl: `+ttl+`
    timeout: 2s
`, `$connect:
  authorizationType: CUSTOM
  authorizer: tokens
  integration: {type: http, uri: "${stageVariables.backend}/connect"}
echo:
  integration: {type: http, uri: "${stageVariables.backend}/echo"}
`), "BACKEND", backend)
}

// dialWS connects to u and returns the status, the body of a refusal, or
// the connection (closed when the test ends).
func dialWS(t *testing.T, u string) (int, string, *websocket.Conn) {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial(u, nil)
	if err == nil {
		t.Cleanup(func() { c.Close() })
		return resp.StatusCode, "", c
	}
	if resp == nil {
		t.Fatalf("dial %s: %v", u, err)
	}
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), nil
}

func TestRequestAuthorizer(t *testing.T) {
	az := newAuthorizerServer(t, nil)
	be := newBackend(t)
	g := startGateway(t, authYAML(az.srv.URL, "0s", be.srv.URL))
	base := wsURL(g, "test")

	t.Run("allow", func(t *testing.T) {
		status, _, c := dialWS(t, base+"?token=good")
		if status != http.StatusSwitchingProtocols {
			t.Fatalf("status %d", status)
		}
		ev := <-az.events
		if ev["type"] != "REQUEST" || ev["methodArn"] != "arn:aws:execute-api:us-east-1:123456789012:"+g.cfg.APIs[0].ID+"/test/$connect" {
			t.Errorf("authorizer event: type %v methodArn %v", ev["type"], ev["methodArn"])
		}
		if rc, _ := ev["requestContext"].(map[string]any); rc["eventType"] != "CONNECT" || rc["routeKey"] != "$connect" {
			t.Errorf("authorizer event requestContext: %v", rc)
		}
		connect := be.nextOf("CONNECT")
		authz, _ := connect.ctx("authorizer").(map[string]any)
		if authz["principalId"] != "user-42" || authz["tenant"] != "t1" || authz["level"] != "3" || authz["admin"] != "false" {
			t.Errorf("CONNECT requestContext.authorizer = %v", authz)
		}
		if _, ok := authz["integrationLatency"].(float64); !ok {
			t.Errorf("integrationLatency = %v, want a number", authz["integrationLatency"])
		}
		send(t, c, `{"action":"echo"}`)
		msg := be.nextOf("MESSAGE")
		if a, _ := msg.ctx("authorizer").(map[string]any); a["principalId"] != "user-42" || a["level"] != "3" {
			t.Errorf("MESSAGE requestContext.authorizer = %v", a)
		}
		// GetConnection shows who the connection is (Portico's extension).
		id := connect.str("connectionId")
		resp, err := http.Get(mgmtURL(g, "test") + "/@connections/" + url.PathEscape(id))
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Authorizer struct {
				PrincipalID string            `json:"principalId"`
				Context     map[string]string `json:"context"`
			} `json:"authorizer"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if got.Authorizer.PrincipalID != "user-42" || got.Authorizer.Context["level"] != "3" {
			t.Errorf("GetConnection authorizer = %+v", got.Authorizer)
		}
	})
	t.Run("deny", func(t *testing.T) {
		before := az.calls.Load()
		status, body, _ := dialWS(t, base+"?token=bad")
		if status != http.StatusForbidden || body != `{"message":"Forbidden"}` {
			t.Errorf("got %d %s, want 403 Forbidden", status, body)
		}
		if az.calls.Load() != before+1 {
			t.Errorf("authorizer calls %d, want %d", az.calls.Load(), before+1)
		}
	})
	t.Run("unauthorized answer", func(t *testing.T) {
		status, body, _ := dialWS(t, base+"?token=expired")
		if status != http.StatusUnauthorized || body != `{"message":"Unauthorized"}` {
			t.Errorf("got %d %s, want 401 Unauthorized", status, body)
		}
	})
	t.Run("missing identity", func(t *testing.T) {
		before := az.calls.Load()
		for _, u := range []string{base, base + "?token="} {
			status, body, _ := dialWS(t, u)
			if status != http.StatusUnauthorized || body != `{"message":"Unauthorized"}` {
				t.Errorf("%s: got %d %s, want 401", u, status, body)
			}
		}
		if az.calls.Load() != before {
			t.Errorf("the authorizer was called without an identity")
		}
	})
}

func TestRequestAuthorizerDown(t *testing.T) {
	down := httptest.NewServer(http.NotFoundHandler())
	uri := down.URL
	down.Close() // nothing listens there any more: connection refused
	be := newBackend(t)
	g := startGateway(t, authYAML(uri, "300s", be.srv.URL))
	start := time.Now()
	status, body, _ := dialWS(t, wsURL(g, "test")+"?token=good")
	if status != http.StatusInternalServerError || body != `{"message":"Internal Server Error"}` {
		t.Errorf("got %d %s, want 500", status, body)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("refusing took %s: a refused connection must fail fast", d)
	}
	select {
	case e := <-be.events:
		t.Errorf("the $connect integration ran: %v", e)
	default:
	}
}

// TestRequestAuthorizerCache: concurrent connects with one token make one
// call; the answer is served from the cache until resultTtl passes on
// the injected clock, and a Deny is cached too.
func TestRequestAuthorizerCache(t *testing.T) {
	gate := make(chan struct{})
	az := newAuthorizerServer(t, gate)
	be := newBackend(t)
	var mu sync.Mutex
	now := time.Unix(1_750_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	cfg, err := config.Parse("cache.yaml", []byte(authYAML(az.srv.URL, "300s", be.srv.URL)))
	if err != nil {
		t.Fatal(err)
	}
	g := startConfigured(t, cfg, WithClock(clock))
	u := wsURL(g, "test") + "?token=good"

	const n = 8
	var wg sync.WaitGroup
	statuses := make(chan int, n)
	for range n {
		wg.Go(func() {
			c, resp, err := websocket.DefaultDialer.Dial(u, nil)
			if err != nil {
				statuses <- -1
				return
			}
			statuses <- resp.StatusCode
			c.Close()
		})
	}
	// The first call is held until the gate opens: connects arriving
	// meanwhile join it (singleflight), later ones hit the cache; either
	// way there must be one call.
	<-az.events
	close(gate)
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != http.StatusSwitchingProtocols {
			t.Errorf("a concurrent connect got %d", s)
		}
	}
	if c := az.calls.Load(); c != 1 {
		t.Errorf("%d concurrent connects with one token made %d authorizer calls, want 1", n, c)
	}
	if status, _, _ := dialWS(t, u); status != http.StatusSwitchingProtocols || az.calls.Load() != 1 {
		t.Errorf("a later connect: %d, calls %d; want a cache hit", status, az.calls.Load())
	}
	// A Deny is cached as well.
	if status, _, _ := dialWS(t, wsURL(g, "test")+"?token=bad"); status != 403 {
		t.Errorf("deny: %d", status)
	}
	if status, _, _ := dialWS(t, wsURL(g, "test")+"?token=bad"); status != 403 || az.calls.Load() != 2 {
		t.Errorf("cached deny: %d, calls %d (want 2)", status, az.calls.Load())
	}
	mu.Lock()
	now = now.Add(301 * time.Second)
	mu.Unlock()
	if status, _, _ := dialWS(t, u); status != http.StatusSwitchingProtocols || az.calls.Load() != 3 {
		t.Errorf("after resultTtl: %d, calls %d (want 3: the entry expired)", status, az.calls.Load())
	}
}

// startConfigured is startGateway for a parsed configuration and options.
func startConfigured(t *testing.T, cfg *config.File, opts ...Option) *Gateway {
	t.Helper()
	cfg.Management.Address = "127.0.0.1:0"
	cfg.Connections.Mode = testMode
	for i := range cfg.APIs {
		cfg.APIs[i].Listen = "127.0.0.1:0"
	}
	g, err := New(context.Background(), cfg, opts...)
	if err != nil {
		t.Fatalf("gateway.New: %v", err)
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatalf("gateway.Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		_ = g.Shutdown(ctx)
	})
	return g
}

func TestIAMWithoutAuthorizerFailsAtStart(t *testing.T) {
	yml := strings.ReplaceAll(yamlAPI("", "$connect:\n  authorizationType: AWS_IAM\n$default:\n  integration: {type: mock}\n"), "BACKEND", "http://127.0.0.1:1")
	_, err := config.Parse("iam.yaml", []byte(yml))
	if err == nil || !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), "iam.yaml:9: apis[0].routes.$connect.authorizationType: AWS_IAM checks SigV4 signatures made with the keys of management.credentials") {
		t.Errorf("got %v", err)
	}
}
