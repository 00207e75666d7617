package routing

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"log/slog"
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
