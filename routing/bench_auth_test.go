package routing

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/portico-gateway/portico/connections"
	"github.com/portico-gateway/portico/routing/auth"
	"github.com/portico-gateway/portico/routing/throttle"
)

// benchKey is made on first use: a 2048-bit key costs every test of the
// package ~0.5 s of start-up otherwise.
var benchKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// jwtIssuer serves an OpenID issuer's discovery document and one RS256
// key, and returns a JWT authorizer of it reading ?token= (cache: the
// verified-token cache's TTL, -1 for none) and a function minting tokens.
func jwtIssuer(tb testing.TB, cache time.Duration, source string) (*auth.JWT, func(sub string) string) {
	tb.Helper()
	var url string
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": url, "jwks_uri": url + "/jwks.json"})
	})
	mux.HandleFunc("/jwks.json", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &benchKey().PublicKey, KeyID: "k1", Use: "sig", Algorithm: "RS256"}}})
	})
	srv := httptest.NewServer(mux)
	tb.Cleanup(srv.Close)
	url = srv.URL
	src, err := auth.ParseSource(source)
	if err != nil {
		tb.Fatal(err)
	}
	j, err := auth.NewJWT(auth.JWTOptions{Name: "oidc", Type: auth.TypeJWT, Issuer: url, Audience: []string{"bench"}, Source: src,
		Client: srv.Client(), TokenCacheTTL: cache})
	if err != nil {
		tb.Fatal(err)
	}
	mint := func(sub string) string {
		now := time.Now()
		t := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"iss": url, "sub": sub, "aud": "bench", "scope": "bench",
			"iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})
		t.Header["kid"] = "k1"
		s, err := t.SignedString(benchKey())
		if err != nil {
			tb.Fatal(err)
		}
		return s
	}
	return j, mint
}

// jwtConnectRouter is a router whose $connect is a mock guarded by a
// JWT authorizer (bench.sh auth's jwt variant).
func jwtConnectRouter(tb testing.TB, cache time.Duration) (*Router, func(sub string) string) {
	tb.Helper()
	j, mint := jwtIssuer(tb, cache, "route.request.querystring.token")
	r, err := New(Options{API: baseAPI(map[string]Route{RouteConnect: {Integration: mock(""), Authorizer: j}})})
	if err != nil {
		tb.Fatal(err)
	}
	return r, mint
}

func benchConnectJWT(b *testing.B, cache time.Duration) {
	r, mint := jwtConnectRouter(b, cache)
	req := &connections.ConnectRequest{Info: newInfo(), Request: httptest.NewRequest("GET", "http://gw.example.com/prod?token="+mint("u-1"), nil)}
	if !r.Connect(context.Background(), req).Accepted() {
		b.Fatal("refused")
	}
	b.ReportAllocs()
	for b.Loop() {
		if !r.Connect(context.Background(), req).Accepted() {
			b.Fatal("refused")
		}
	}
}

// BenchmarkConnectJWT is one $connect on a mock guarded by a JWT
// authorizer, the same token each time (from the verified-token cache).
func BenchmarkConnectJWT(b *testing.B) { benchConnectJWT(b, 0) }

// BenchmarkConnectJWTUncached is BenchmarkConnectJWT with the token
// cache off: the RS256 signature verified on every connect.
func BenchmarkConnectJWTUncached(b *testing.B) { benchConnectJWT(b, -1) }

// A JWT-guarded mock $connect answers without the CONNECT event (the
// inline path) exactly as the full path does: the refusals, the
// connection's requestContext.authorizer for later events, and the
// subprotocol the token came in.
func TestConnectJWTInline(t *testing.T) {
	j, mint := jwtIssuer(t, 0, "route.request.querystring.token")
	pj, pmint := jwtIssuer(t, 0, "route.request.header.Sec-WebSocket-Protocol")
	tok := mint("u-1")
	build := func(debug bool, status int, j auth.Authorizer) *Router {
		t.Helper()
		var log *slog.Logger
		if debug { // debug lines: the full path
			log = slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
		m := mock("")
		m.StatusCode = status
		r, err := New(Options{Logger: log, API: baseAPI(map[string]Route{RouteConnect: {Integration: m, Authorizer: j}})})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	for _, tc := range []struct {
		name       string
		target     string
		header     http.Header
		authz      auth.Authorizer
		mockStatus int
		want       int // 0: accepted
	}{
		{"valid token", "/prod?token=" + tok, nil, j, 200, 0},
		{"valid token again (cached)", "/prod?token=" + tok, nil, j, 200, 0},
		{"no token", "/prod", nil, j, 200, 401},
		{"tampered token", "/prod?token=" + tok[:len(tok)-10] + "AAAAAAAAAA", nil, j, 200, 401},
		{"mock refuses", "/prod?token=" + tok, nil, j, 403, 403},
		{"token in the subprotocol", "/prod", http.Header{"Sec-Websocket-Protocol": {"chat.v1, " + pmint("u-1")}}, pj, 200, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got [2]*connections.ConnectResult
			for i, debug := range []bool{true, false} {
				r := build(debug, tc.mockStatus, tc.authz)
				if r.debugOn() != debug || !r.tbl.Load().stages["prod"].connect.authzRequestOnly {
					t.Fatal("the router does not take the path under test")
				}
				req := httptest.NewRequest("GET", "http://gw.example.com"+tc.target, nil)
				for k, v := range tc.header {
					req.Header[k] = v
				}
				got[i] = r.Connect(context.Background(), &connections.ConnectRequest{Info: newInfo(), Request: req})
			}
			full, inline := got[0], got[1]
			if inline.Status != tc.want {
				t.Errorf("status %d, want %d", inline.Status, tc.want)
			}
			if tc.header != nil && inline.Header.Get("Sec-Websocket-Protocol") != "chat.v1" {
				t.Errorf("headers %v: the subprotocol is not selected", inline.Header)
			}
			if full.Status != inline.Status || full.Body != inline.Body || !reflect.DeepEqual(full.Header, inline.Header) {
				t.Errorf("inline %d %q %v, full path %d %q %v", inline.Status, inline.Body, inline.Header, full.Status, full.Body, full.Header)
			}
			if !full.Accepted() {
				return
			}
			fs, is := full.State.(*session), inline.State.(*session)
			if !reflect.DeepEqual(fs.authorizerContext(), is.authorizerContext()) || is.AuthIdentity() == nil {
				t.Errorf("requestContext.authorizer inline %v, full path %v", is.authorizerContext(), fs.authorizerContext())
			}
			if c := is.authorizerContext()["jwt"].(map[string]any)["claims"].(map[string]any); c["sub"] != "u-1" || c["aud"] != "bench" {
				t.Errorf("claims %v", c)
			}
		})
	}
}

// requestAuthorizer serves a REQUEST authorizer answering by the token
// in ?token= ("allow…": an Allow policy with context, "deny": a Deny
// policy), and returns a Lambda authorizer of it with the result cache
// on and the events it was sent, in order.
func requestAuthorizer(t testing.TB, source string) (*auth.Lambda, func() []map[string]any) {
	t.Helper()
	var mu sync.Mutex
	var events []map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var ev map[string]any
		if err := json.NewDecoder(req.Body).Decode(&ev); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		events = append(events, ev)
		mu.Unlock()
		effect := "Allow"
		if q, _ := ev["queryStringParameters"].(map[string]any); q["token"] == "deny" {
			effect = "Deny"
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"principalId": "u-1", "context": map[string]any{"tier": "gold", "n": 3},
			"policyDocument": map[string]any{"Version": "2012-10-17", "Statement": []any{
				map[string]any{"Action": "execute-api:Invoke", "Effect": effect, "Resource": ev["methodArn"]}}}})
	}))
	t.Cleanup(srv.Close)
	src, err := auth.ParseSource(source)
	if err != nil {
		t.Fatal(err)
	}
	l, err := auth.NewLambda(auth.LambdaOptions{Name: "tokens", Type: auth.TypeRequest, URI: srv.URL, Sources: []auth.Source{src},
		ResultTTL: time.Hour, Client: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return l, func() []map[string]any {
		mu.Lock()
		defer mu.Unlock()
		return append([]map[string]any(nil), events...)
	}
}

// BenchmarkConnectRequestCached is one $connect on a mock guarded by a
// REQUEST authorizer, the same token each time (from the result cache).
func BenchmarkConnectRequestCached(b *testing.B) {
	l, _ := requestAuthorizer(b, "route.request.querystring.token")
	r, err := New(Options{API: baseAPI(map[string]Route{RouteConnect: {Integration: mock(""), Authorizer: l}})})
	if err != nil {
		b.Fatal(err)
	}
	req := &connections.ConnectRequest{Info: newInfo(), Request: httptest.NewRequest("GET", "http://gw.example.com/prod?token=allow-1", nil)}
	req.Request.Header.Set("User-Agent", "ExampleClient/1.0")
	b.ReportAllocs()
	for b.Loop() {
		if !r.Connect(context.Background(), req).Accepted() {
			b.Fatal("refused")
		}
	}
}

// A mock $connect guarded by a REQUEST authorizer answers without the
// CONNECT event (the inline path) as the full path does; on a cache miss
// the authorizer is sent the same event as on the full path (built then),
// and a cache hit builds none and calls nothing.
func TestConnectRequestInline(t *testing.T) {
	build := func(debug bool, l auth.Authorizer) *Router {
		t.Helper()
		var log *slog.Logger
		if debug { // debug lines: the full path
			log = slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
		r, err := New(Options{Logger: log, API: baseAPI(map[string]Route{RouteConnect: {Integration: mock(""), Authorizer: l}})})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if ctxAuthz, _ := requestAuthorizer(t, "context.identity.sourceIp"); build(false, ctxAuthz).tbl.Load().stages["prod"].connect.authzRequestOnly {
		t.Fatal("an authorizer reading $context takes the inline path, which has no context")
	}
	lFull, fullEvents := requestAuthorizer(t, "route.request.querystring.token")
	lInline, inlineEvents := requestAuthorizer(t, "route.request.querystring.token")
	full, inline := build(true, lFull), build(false, lInline)
	if !inline.tbl.Load().stages["prod"].connect.authzRequestOnly || full.debugOn() == inline.debugOn() {
		t.Fatal("the routers do not take the paths under test")
	}
	info := newInfo()
	fe0 := 0
	for i, tc := range []struct {
		name   string
		target string
		want   int // 0: accepted
		calls  int // authorizer calls so far
	}{
		{"allowed", "/prod?token=allow-1&x=a&x=b", 0, 1},
		{"allowed again (cached)", "/prod?token=allow-1&x=a&x=b", 0, 1},
		{"denied", "/prod?token=deny", 403, 2},
		{"denied again (cached)", "/prod?token=deny", 403, 2},
		{"no token", "/prod", 401, 2},
	} {
		var got [2]*connections.ConnectResult
		for j, r := range []*Router{full, inline} {
			req := httptest.NewRequest("GET", "http://gw.example.com"+tc.target, nil)
			req.Header.Set("Authorization", "Bearer x")
			req.Header.Add("X-Many", "1")
			req.Header.Add("X-Many", "2")
			got[j] = r.Connect(context.Background(), &connections.ConnectRequest{Info: info, Request: req})
		}
		f, in := got[0], got[1]
		if in.Status != tc.want || f.Status != in.Status || f.Body != in.Body || !reflect.DeepEqual(f.Header, in.Header) {
			t.Errorf("%s: inline %d %q %v, full path %d %q %v, want %d", tc.name, in.Status, in.Body, in.Header, f.Status, f.Body, f.Header, tc.want)
		}
		fe, ie := fullEvents(), inlineEvents()
		if len(fe) != tc.calls || len(ie) != tc.calls {
			t.Fatalf("%s: %d authorizer calls on the full path, %d inline, want %d", tc.name, len(fe), len(ie), tc.calls)
		}
		if f.Accepted() {
			fa, ia := maps.Clone(f.State.(*session).authorizerContext()), maps.Clone(in.State.(*session).authorizerContext())
			delete(fa, "integrationLatency") // the call's own time
			delete(ia, "integrationLatency")
			if !reflect.DeepEqual(fa, ia) || ia["tier"] != "gold" || ia["principalId"] != "u-1" {
				t.Errorf("%s: requestContext.authorizer inline %v, full path %v", tc.name, ia, fa)
			}
		}
		if i > 0 && len(fe) == fe0 {
			continue
		}
		fe0 = len(fe)
		a, b := fe[len(fe)-1], ie[len(ie)-1]
		for _, ev := range []map[string]any{a, b} {
			rc, _ := ev["requestContext"].(map[string]any)
			if rc == nil {
				t.Fatalf("%s: an authorizer event without requestContext: %v", tc.name, ev)
			}
			if rc["connectionId"] != info.ID || rc["eventType"] != "CONNECT" || rc["requestId"] == "" {
				t.Errorf("%s: requestContext %v", tc.name, rc)
			}
			delete(rc, "requestId") // made per request
			delete(rc, "extendedRequestId")
			delete(rc, "requestTime")
			delete(rc, "requestTimeEpoch")
		}
		if !reflect.DeepEqual(a, b) {
			ja, _ := json.Marshal(a)
			jb, _ := json.Marshal(b)
			t.Errorf("%s: authorizer event inline\n%s\nfull path\n%s", tc.name, jb, ja)
		}
	}
}

// The connections of one cached token share one identity and one
// requestContext.authorizer (REQUEST and JWT alike); another token, a
// subprotocol-selecting request or another method ARN gets its own, and
// the cached policy is still evaluated against each method ARN.
func TestAuthorizedConnectionsShareIdentity(t *testing.T) {
	l, events := requestAuthorizer(t, "route.request.querystring.token")
	j, mint := jwtIssuer(t, 0, "route.request.querystring.token")
	jwtTok := mint("u-1")
	for _, tc := range []struct {
		name          string
		authz         auth.Authorizer
		token, other  string
		stageRefuses  bool // the answer's policy names the first stage's ARN only
		wantCallsHits int
	}{
		{"request", l, "allow-share", "allow-other", true, 2},
		{"jwt", j, jwtTok, mint("u-2"), false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := New(Options{API: baseAPI(map[string]Route{RouteConnect: {Integration: mock(""), Authorizer: tc.authz}})})
			if err != nil {
				t.Fatal(err)
			}
			connect := func(stage, token string) *session {
				t.Helper()
				res := r.Connect(context.Background(), &connections.ConnectRequest{Info: newInfo(),
					Request: httptest.NewRequest("GET", "http://gw.example.com/"+stage+"?token="+token, nil)})
				if !res.Accepted() {
					t.Fatalf("%s %s: refused %d %s", stage, token[:5], res.Status, res.Body)
				}
				return res.State.(*session)
			}
			ptr := func(m map[string]any) uintptr { return reflect.ValueOf(m).Pointer() }
			a, b, c := connect("prod", tc.token), connect("prod", tc.token), connect("prod", tc.token)
			if b.AuthIdentity() != c.AuthIdentity() || ptr(b.authorizerContext()) != ptr(c.authorizerContext()) || b.authorizerContext() == nil {
				t.Errorf("two cached connects of one token hold two identities or contexts")
			}
			if !reflect.DeepEqual(a.authorizerContext(), b.authorizerContext()) && tc.name == "jwt" {
				t.Errorf("contexts differ: %v, %v", a.authorizerContext(), b.authorizerContext())
			}
			if o := connect("prod", tc.other); o.AuthIdentity() == b.AuthIdentity() || ptr(o.authorizerContext()) == ptr(b.authorizerContext()) {
				t.Errorf("another token shares the first token's identity")
			}
			res := r.Connect(context.Background(), &connections.ConnectRequest{Info: newInfo(),
				Request: httptest.NewRequest("GET", "http://gw.example.com/dev?token="+tc.token, nil)})
			if tc.stageRefuses && res.Status != http.StatusForbidden {
				t.Errorf("a cached Allow for prod's ARN let a dev connect in: %d", res.Status)
			}
			if !tc.stageRefuses && res.Accepted() && res.State.(*session).AuthIdentity() != b.AuthIdentity() {
				t.Errorf("the token's identity is not shared across stages for a JWT")
			}
			if tc.name == "request" && len(events()) != tc.wantCallsHits {
				t.Errorf("%d authorizer calls, want %d", len(events()), tc.wantCallsHits)
			}
		})
	}
}

// An API key in the query string reaches the limiter on $connect (the
// router parses the query for it only when the key selection expression
// names a query parameter); with a header expression a key in the query
// does not count.
func TestConnectAPIKeyInQuery(t *testing.T) {
	const key = "partnerAkey0123456789abcd"
	g, err := throttle.New(throttle.Options{MaxInFlight: 100,
		Plans: []throttle.Plan{{Name: "basic", Stages: []throttle.PlanStage{{API: "chat", Stage: "prod"}}}},
		Keys:  []throttle.Key{{Name: "partner-a", Value: key, Plans: []string{"basic"}}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		selection string
		target    string
		want      int // 0: accepted
	}{
		{"$request.querystring.key", "/prod?key=" + key, 0},
		{"$request.querystring.key", "/prod?key=nopenopenopenopenopenope", 403},
		{"$request.querystring.key", "/prod", 403},
		{"$request.header.x-api-key", "/prod?x-api-key=" + key, 403},
	} {
		lim, err := g.NewAPI(throttle.APIOptions{Name: "chat", Stages: []throttle.StageOptions{{Name: "prod"}},
			KeySelection: tc.selection, KeyRequired: map[string]bool{RouteConnect: true}})
		if err != nil {
			t.Fatal(err)
		}
		r, err := New(Options{Throttle: lim, InFlight: g.InFlight(), API: baseAPI(map[string]Route{RouteConnect: {Integration: mock("")}})})
		if err != nil {
			t.Fatal(err)
		}
		res := r.Connect(context.Background(), &connections.ConnectRequest{Info: newInfo(), Request: httptest.NewRequest("GET", "http://gw.example.com"+tc.target, nil)})
		if res.Status != tc.want {
			t.Errorf("%s %s: status %d %s, want %d", tc.selection, tc.target, res.Status, res.Body, tc.want)
		}
	}
}
