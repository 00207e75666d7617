//go:build linux

package loadtest

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/portico-gateway/portico/config"
	"github.com/portico-gateway/portico/gateway"
)

// The identity and signing flags run against a real gateway here: every
// authorizer type on $connect, served by AuthServer, and @connections
// with management.auth: iam.

const (
	benchKey    = "AKIDPORTICOLOAD"
	benchSecret = "portico-load-test-secret"
)

// startAuthServer serves an AuthServer on a loopback port.
func startAuthServer(t *testing.T) *AuthServer {
	t.Helper()
	a, err := NewAuthServer(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	s, err := StartServer("127.0.0.1:0", a)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	a.SetIssuer(strings.TrimSuffix(s.URL, "/"))
	return a
}

// authGateway starts a gateway with four APIs, one per $connect
// authorization (none, request, token, jwt) against the AuthServer at
// issuer, each with a whoami route, and management.auth: iam.
func authGateway(t *testing.T, issuer string) *gateway.Gateway {
	t.Helper()
	t.Setenv("PORTICO_LOAD_TEST_SECRET", benchSecret)
	api := func(name, authorizers, connect string) string {
		return `
  - name: ` + name + `
    listen: 127.0.0.1:0
    stages: [{name: dev}]` + authorizers + `
    routes:
      $connect: {` + connect + `integration: {type: mock}}
      whoami:
        routeResponse: true
        integration: {type: mock, response: {body: '{"connectionId":"$context.connectionId"}'}}`
	}
	yml := `management:
  address: 127.0.0.1:0
  auth: iam
  region: eu-west-1
  credentials:
    - {accessKeyId: ` + benchKey + `, secretAccessKey: "${PORTICO_LOAD_TEST_SECRET}"}
apis:` + api("none", "", "") +
		api("custom", `
    authorizers:
      tokens: {type: request, uri: "`+issuer+`/allow", identitySource: [route.request.querystring.token], resultTtl: 300s}`,
			"authorizationType: CUSTOM, authorizer: tokens, ") +
		api("token", `
    authorizers:
      bearer: {type: token, uri: "`+issuer+`/allow", identitySource: [method.request.header.Authorization], resultTtl: 300s}`,
			"authorizationType: CUSTOM, authorizer: bearer, ") +
		api("jwt", `
    authorizers:
      oidc: {type: jwt, issuer: "`+issuer+`", audience: [bench], identitySource: [route.request.querystring.token]}`,
			"authorizationType: JWT, authorizer: oidc, ")
	cfg, err := config.Parse(t.Name()+".yaml", []byte(yml))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("PORTICO_TEST_DEBUG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	g, err := gateway.New(context.Background(), cfg, gateway.WithLogger(log))
	if err != nil {
		t.Fatalf("gateway.New: %v", err)
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatalf("gateway.Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := g.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return g
}

func TestAuthorizerFlagsAgainstGateway(t *testing.T) {
	a := startAuthServer(t)
	g := authGateway(t, a.Issuer())
	ws := func(api string) string { return "ws://" + g.APIAddr(api) + "/dev" }
	const n = 30
	connect := func(t *testing.T, o Options) *Summary {
		t.Helper()
		o.Scenario, o.Connections, o.Concurrency, o.Duration = Connect, n, 8, 100*time.Millisecond
		s, err := Run(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	calls := func() int64 { return a.Counts().Calls }

	t.Run("none", func(t *testing.T) {
		s := connect(t, Options{URL: ws("none")})
		checkClean(t, s, nil)
	})
	t.Run("request authorizer, shared token: cached", func(t *testing.T) {
		before := calls()
		s := connect(t, Options{URL: ws("custom"), Token: "alice", TokenQuery: "token"})
		checkClean(t, s, nil)
		if got := calls() - before; got != 1 {
			t.Errorf("%d connections with one token made %d authorizer calls, want 1 (cached)", n, got)
		}
	})
	t.Run("request authorizer, a token a connection: uncached", func(t *testing.T) {
		before := calls()
		s := connect(t, Options{URL: ws("custom"), Token: "bob", TokenPerConnection: true, TokenQuery: "token"})
		checkClean(t, s, nil)
		if got := calls() - before; got != n {
			t.Errorf("%d connections with their own tokens made %d authorizer calls, want %d", n, got, n)
		}
	})
	t.Run("request authorizer, no token or a denied one", func(t *testing.T) {
		if s := connect(t, Options{URL: ws("custom")}); s.Connect.Failures["http-401"] != n {
			t.Errorf("without a token: failures %v", s.Connect.Failures)
		}
		if s := connect(t, Options{URL: ws("custom"), Token: "deny-me", TokenQuery: "token"}); s.Connect.Failures["http-403"] != n {
			t.Errorf("with a denied token: failures %v", s.Connect.Failures)
		}
	})
	t.Run("token authorizer, header template", func(t *testing.T) {
		before := calls()
		s := connect(t, Options{URL: ws("token"), Token: "carol", TokenPerConnection: true,
			Headers: []string{"Authorization: Bearer {token}", "X-Bench: 1"}})
		checkClean(t, s, nil)
		if got := calls() - before; got != n {
			t.Errorf("%d token-authorizer connections made %d calls, want %d", n, got, n)
		}
	})
	t.Run("jwt, tokens from a file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "tokens.txt")
		if err := a.WriteTokenFile(path, "user", "bench", n); err != nil {
			t.Fatal(err)
		}
		toks, err := ReadTokenFile(path)
		if err != nil || len(toks) != n {
			t.Fatalf("%d tokens, %v", len(toks), err)
		}
		subs := map[string]bool{}
		for _, tok := range toks {
			c := jwt.MapClaims{}
			if _, _, err := jwt.NewParser().ParseUnverified(tok, c); err != nil {
				t.Fatal(err)
			}
			subs[c["sub"].(string)] = true
		}
		if len(subs) != n {
			t.Errorf("%d distinct subjects in %d tokens", len(subs), n)
		}
		s := connect(t, Options{URL: ws("jwt"), Tokens: toks, TokenPerConnection: true, TokenQuery: "token"})
		checkClean(t, s, nil)
		if s := connect(t, Options{URL: ws("jwt"), Token: "not-a-jwt", TokenQuery: "token"}); s.Connect.Failures["http-401"] != n {
			t.Errorf("a garbage token: failures %v", s.Connect.Failures)
		}
		// A token for another audience is refused: the gateway checks
		// what the issuer minted.
		other, _ := a.Mint("user", "elsewhere")
		if s := connect(t, Options{URL: ws("jwt"), Token: other, TokenQuery: "token"}); s.Connect.Failures["http-401"] != n {
			t.Errorf("a token for another audience: failures %v", s.Connect.Failures)
		}
	})
	t.Run("post, SigV4", func(t *testing.T) {
		post := Options{Scenario: Post, URL: ws("custom"), Token: "dave", TokenQuery: "token",
			Management: "http://" + g.ManagementAddr(), Connections: 20, Clients: 4, Duration: 500 * time.Millisecond}
		signed := post
		signed.AccessKey, signed.SecretKey, signed.Region = benchKey, benchSecret, "eu-west-1"
		s, err := Run(context.Background(), signed)
		checkClean(t, s, err)
		if p := s.Post; p.Posts < 20 || p.Statuses["200"] != p.Posts || p.Reached != 20 || p.Signed != "SigV4 eu-west-1" {
			t.Errorf("signed posts %+v", p)
		}
		unsigned, err := Run(context.Background(), post)
		if err != nil || unsigned.Post.Statuses["403"] == 0 || unsigned.Post.Statuses["200"] != 0 || !unsigned.Failed() {
			t.Errorf("unsigned posts to management.auth iam: %+v, %v", unsigned.Post, err)
		}
		wrong := signed
		wrong.SecretKey = "not-the-secret"
		if s, err := Run(context.Background(), wrong); err != nil || s.Post.Statuses["200"] != 0 ||
			!strings.Contains(s.Post.FirstError, "signature") {
			t.Errorf("posts signed with a wrong secret: %+v, %v", s.Post, err)
		}
	})
}

func TestAuthServerEndpoints(t *testing.T) {
	a := startAuthServer(t)
	get := func(path string) (int, string) {
		resp, err := http.Get(a.Issuer() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/.well-known/openid-configuration"); code != 200 || !strings.Contains(body, `"jwks_uri":"`+a.Issuer()+`/jwks"`) {
		t.Errorf("discovery: %d %s", code, body)
	}
	if code, body := get("/jwks"); code != 200 || !strings.Contains(body, `"kid":"`+AuthServerKeyID+`"`) {
		t.Errorf("jwks: %d %s", code, body)
	}
	code, tok := get("/token?sub=erin&aud=bench")
	claims := jwt.MapClaims{}
	if _, err := jwt.Parse(strings.TrimSpace(tok), func(*jwt.Token) (any, error) { return &a.key.PublicKey, nil },
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer(a.Issuer()), jwt.WithAudience("bench")); code != 200 || err != nil {
		t.Errorf("/token: %d %q: %v", code, tok, err)
	}
	_, _, _ = jwt.NewParser().ParseUnverified(strings.TrimSpace(tok), claims)
	if claims["sub"] != "erin" {
		t.Errorf("claims %v", claims)
	}
	if code, _ := get("/token?sub=erin"); code != http.StatusBadRequest {
		t.Errorf("/token without aud: %d", code)
	}
	authorize := func(event string) (int, string) {
		resp, err := http.Post(a.Issuer()+"/allow", "application/json", strings.NewReader(event))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for event, want := range map[string]string{
		`{"type":"TOKEN","authorizationToken":"Bearer frank","methodArn":"arn"}`:     `"principalId":"frank"`,
		`{"type":"REQUEST","queryStringParameters":{"token":"gina"}}`:                `"Effect":"Allow"`,
		`{"type":"REQUEST","headers":{"authorization":"Bearer hank"}}`:               `"principalId":"hank"`,
		`{"type":"REQUEST","queryStringParameters":{"token":"deny-ivan"}}`:           `"Effect":"Deny"`,
		`{"type":"REQUEST","headers":{"Host":"x"},"queryStringParameters":{"t":""}}`: `{"message":"Unauthorized"}`,
	} {
		if _, body := authorize(event); !strings.Contains(body, want) {
			t.Errorf("%s: answered %s, want %s", event, body, want)
		}
	}
	if code, _ := authorize(`not json`); code != http.StatusBadRequest {
		t.Errorf("a body that is not an event: %d", code)
	}
	if c := a.Counts(); c.Calls != 6 || c.Allowed != 3 || c.Refused != 3 || c.Minted != 1 || c.JWKS != 1 {
		t.Errorf("counts %+v", c)
	}
	if _, err := StartServer("0.0.0.0:0", a); err == nil {
		t.Error("the authorizer listened off loopback")
	}
}

func TestIdentityOptions(t *testing.T) {
	ok := Options{Scenario: Connect, URL: "ws://127.0.0.1:8080/dev?x=1", Connections: 3, Duration: time.Second}
	o := ok
	o.Token, o.TokenPerConnection, o.TokenQuery = "t", true, "token"
	o.Headers = []string{"Authorization: Bearer {token}", "X-Fixed: yes"}
	o = o.withDefaults()
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	id, _ := o.newIdentity(mustURL(t, o.URL))
	u, h := id.forConn(mustURL(t, o.URL), 2)
	if u.String() != "ws://127.0.0.1:8080/dev?x=1&token=t-2" || h.Get("Authorization") != "Bearer t-2" || h["X-Fixed"][0] != "yes" {
		t.Errorf("connection 2: %s %v", u, h)
	}
	o.Token, o.Tokens, o.TokenPerConnection = "", []string{"a", "b", "c"}, false
	id, _ = o.newIdentity(mustURL(t, o.URL))
	if u, _ := id.forConn(mustURL(t, o.URL), 2); u.Query().Get("token") != "a" {
		t.Errorf("shared token from a file: %s", u)
	}
	o.TokenPerConnection = true
	id, _ = o.newIdentity(mustURL(t, o.URL))
	if u, _ := id.forConn(mustURL(t, o.URL), 2); u.Query().Get("token") != "c" {
		t.Errorf("a token a connection from a file: %s", u)
	}
	for name, change := range map[string]func(*Options){
		"per connection without a token": func(o *Options) { o.TokenPerConnection = true },
		"query without a token":          func(o *Options) { o.TokenQuery = "token" },
		"placeholder without a token":    func(o *Options) { o.Headers = []string{"Authorization: {token}"} },
		"token and file":                 func(o *Options) { o.Token, o.Tokens = "a", []string{"b"} },
		"file shorter than connections":  func(o *Options) { o.Tokens, o.TokenPerConnection = []string{"a", "b"}, true },
		"bad header":                     func(o *Options) { o.Headers = []string{"no colon"} },
		"header with a newline":          func(o *Options) { o.Headers = []string{"X: a\r\nY: b"} },
		"signing connect":                func(o *Options) { o.AccessKey, o.SecretKey = "AKID", "s" },
		"key without secret": func(o *Options) {
			o.Scenario, o.Management, o.AccessKey = Post, "http://127.0.0.1:9090", "AKID"
		},
	} {
		o := ok
		change(&o)
		o = o.withDefaults()
		if err := o.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
