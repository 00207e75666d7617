package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

// issuer is a test OpenID issuer: discovery and JWKS over HTTP, with
// request counters and keys that can be rotated.
type issuer struct {
	srv                 *httptest.Server
	url                 string
	discovery, jwksHits atomic.Int64
	mu                  sync.Mutex
	keys                map[string]any // kid -> private key
}

func newIssuer(t testing.TB) *issuer {
	is := &issuer{keys: map[string]any{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		is.discovery.Add(1)
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": is.url, "jwks_uri": is.url + "/jwks.json"})
	})
	mux.HandleFunc("/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		is.jwksHits.Add(1)
		is.mu.Lock()
		defer is.mu.Unlock()
		var set jose.JSONWebKeySet
		for kid, k := range is.keys {
			jk := jose.JSONWebKey{Key: k, KeyID: kid, Use: "sig"}
			set.Keys = append(set.Keys, jk.Public())
		}
		_ = json.NewEncoder(w).Encode(set)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { is.jwksHits.Add(1); http.NotFound(w, r) })
	is.srv = httptest.NewServer(mux)
	is.url = is.srv.URL
	t.Cleanup(is.srv.Close)
	return is
}

func (is *issuer) add(kid string, key any) {
	is.mu.Lock()
	is.keys[kid] = key
	is.mu.Unlock()
}

var (
	rsaKey, _   = rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _    = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, edKey, _ = ed25519.GenerateKey(rand.Reader)
	testNow     = time.Unix(1_750_000_000, 0)
)

// sign makes a token with claims and headers, signed with key.
func sign(t testing.TB, m jwt.SigningMethod, key any, kid string, claims jwt.MapClaims, headers map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	for k, v := range headers {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func claimsFor(iss string, extra jwt.MapClaims) jwt.MapClaims {
	c := jwt.MapClaims{"iss": iss, "sub": "u-1", "aud": "my-app", "iat": testNow.Unix(), "exp": testNow.Add(time.Hour).Unix()}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func newTestJWT(t testing.TB, is *issuer, typ string, audience []string, secret []byte, clock func() time.Time) *JWT {
	t.Helper()
	src, _ := ParseSource("route.request.header.Authorization")
	j, err := NewJWT(JWTOptions{Name: "oidc", Type: typ, Issuer: is.url, Audience: audience, Source: src, Secret: secret,
		Keys: NewKeyCache(is.srv.Client(), clock, time.Minute), Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func bearer(tok string) *Request {
	return &Request{Header: http.Header{"Authorization": {"Bearer " + tok}}, Query: url.Values{}}
}

func TestJWT(t *testing.T) {
	is := newIssuer(t)
	is.add("rsa", rsaKey)
	is.add("ec", ecKey)
	is.add("ed", edKey)
	other := newIssuer(t) // another issuer, with keys of its own
	otherKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	other.add("other", otherKey)
	clock := func() time.Time { return testNow }
	j := newTestJWT(t, is, TypeJWT, []string{"my-app"}, nil, clock)
	ctx := context.Background()
	pub, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)

	for _, tc := range []struct {
		name string
		tok  string
	}{
		{"RS256", sign(t, jwt.SigningMethodRS256, rsaKey, "rsa", claimsFor(is.url, nil), nil)},
		{"RS512", sign(t, jwt.SigningMethodRS512, rsaKey, "rsa", claimsFor(is.url, nil), nil)},
		{"ES256", sign(t, jwt.SigningMethodES256, ecKey, "ec", claimsFor(is.url, nil), nil)},
		{"EdDSA", sign(t, jwt.SigningMethodEdDSA, edKey, "ed", claimsFor(is.url, nil), nil)},
		{"aud list", sign(t, jwt.SigningMethodRS256, rsaKey, "rsa", claimsFor(is.url, jwt.MapClaims{"aud": []string{"x", "my-app"}}), nil)},
		{"client_id without aud", sign(t, jwt.SigningMethodRS256, rsaKey, "rsa", claimsFor(is.url, jwt.MapClaims{"aud": nil, "client_id": "my-app"}), nil)},
		{"expired within leeway", sign(t, jwt.SigningMethodRS256, rsaKey, "rsa", claimsFor(is.url, jwt.MapClaims{"exp": testNow.Add(-30 * time.Second).Unix()}), nil)},
	} {
		t.Run("accepts "+tc.name, func(t *testing.T) {
			id, err := j.Authorize(ctx, bearer(tc.tok))
			if err != nil {
				t.Fatal(err)
			}
			if id.Type != TypeJWT || id.Claims["sub"] != "u-1" {
				t.Errorf("identity %+v", id)
			}
		})
	}
	if n := is.jwksHits.Load(); n != 1 {
		t.Errorf("the keys were fetched %d times, want once", n)
	}

	for _, tc := range []struct {
		name string
		tok  string
	}{
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "rsa", claimsFor(is.url, nil), nil)},
		{"HS256 with the RSA public key as secret", sign(t, jwt.SigningMethodHS256, pub, "rsa", claimsFor(is.url, nil), nil)},
		{"wrong issuer", sign(t, jwt.SigningMethodRS256, rsaKey, "rsa", claimsFor("https://evil.example.com", nil), nil)},
		{"wrong audience", sign(t, jwt.SigningMethodRS256, rsaKey, "rsa", claimsFor(is.url, jwt.MapClaims{"aud": "other-app"}), nil)},
		{"no aud and wrong client_id", sign(t, jwt.SigningMethodRS256, rsaKey, "rsa", claimsFor(is.url, jwt.MapClaims{"aud": nil, "client_id": "x"}), nil)},
		{"expired", sign(t, jwt.SigningMethodRS256, rsaKey, "rsa", claimsFor(is.url, jwt.MapClaims{"exp": testNow.Add(-2 * time.Minute).Unix()}), nil)},
		{"no exp", sign(t, jwt.SigningMethodRS256, rsaKey, "rsa", claimsFor(is.url, jwt.MapClaims{"exp": nil}), nil)},
		{"nbf in the future", sign(t, jwt.SigningMethodRS256, rsaKey, "rsa", claimsFor(is.url, jwt.MapClaims{"nbf": testNow.Add(5 * time.Minute).Unix()}), nil)},
		{"iat in the future", sign(t, jwt.SigningMethodRS256, rsaKey, "rsa", claimsFor(is.url, jwt.MapClaims{"iat": testNow.Add(5 * time.Minute).Unix()}), nil)},
		{"bad signature", sign(t, jwt.SigningMethodRS256, otherKey, "rsa", claimsFor(is.url, nil), nil)},
		{"EC key named by an RSA algorithm", sign(t, jwt.SigningMethodES256, ecKey, "rsa", claimsFor(is.url, nil), nil)},
		{"no kid", sign(t, jwt.SigningMethodRS256, rsaKey, "", claimsFor(is.url, nil), nil)},
		{"jku elsewhere", sign(t, jwt.SigningMethodRS256, otherKey, "other", claimsFor(is.url, nil), map[string]any{"jku": other.url + "/jwks.json"})},
		{"x5u elsewhere", sign(t, jwt.SigningMethodRS256, otherKey, "other", claimsFor(is.url, nil), map[string]any{"x5u": other.url + "/cert.pem"})},
		{"garbage", "not.a.token"},
	} {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			if _, err := j.Authorize(ctx, bearer(tc.tok)); !errors.Is(err, ErrUnauthorized) {
				t.Errorf("got %v, want ErrUnauthorized", err)
			}
		})
	}
	if n := other.jwksHits.Load() + other.discovery.Load(); n != 0 {
		t.Errorf("the other issuer was asked %d times: jku and x5u must never be fetched", n)
	}
	t.Run("refuses a kid of another issuer", func(t *testing.T) {
		before := is.jwksHits.Load()
		tok := sign(t, jwt.SigningMethodRS256, otherKey, "other", claimsFor(is.url, nil), nil)
		if _, err := j.Authorize(ctx, bearer(tok)); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("got %v", err)
		}
		if _, err := j.Authorize(ctx, bearer(tok)); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("again: got %v", err)
		}
		if n := is.jwksHits.Load() - before; n > 1 {
			t.Errorf("unknown kids made %d fetches, want at most 1 per interval", n)
		}
	})
	t.Run("missing token", func(t *testing.T) {
		if _, err := j.Authorize(ctx, &Request{Header: http.Header{}}); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("got %v", err)
		}
	})
}

func TestJWTScopesAndSecret(t *testing.T) {
	is := newIssuer(t)
	is.add("rsa", rsaKey)
	clock := func() time.Time { return testNow }
	secret := []byte("a shared secret of enough length")
	j := newTestJWT(t, is, TypeJWT, []string{"my-app"}, secret, clock)
	ctx := context.Background()
	read := j.WithScopes([]string{"chat/read", "chat/admin"})
	ok := sign(t, jwt.SigningMethodRS256, rsaKey, "rsa", claimsFor(is.url, jwt.MapClaims{"scope": "openid chat/read"}), nil)
	scp := sign(t, jwt.SigningMethodRS256, rsaKey, "rsa", claimsFor(is.url, jwt.MapClaims{"scp": []string{"chat/admin"}}), nil)
	none := sign(t, jwt.SigningMethodRS256, rsaKey, "rsa", claimsFor(is.url, jwt.MapClaims{"scope": "openid"}), nil)
	if id, err := read.Authorize(ctx, bearer(ok)); err != nil || len(id.Scopes) != 2 {
		t.Errorf("scope: %v %v", id, err)
	}
	if _, err := read.Authorize(ctx, bearer(scp)); err != nil {
		t.Errorf("scp: %v", err)
	}
	if _, err := read.Authorize(ctx, bearer(none)); !errors.Is(err, ErrForbidden) {
		t.Errorf("no scope: got %v, want ErrForbidden", err)
	}
	hs := sign(t, jwt.SigningMethodHS256, secret, "", claimsFor(is.url, nil), nil)
	if _, err := j.Authorize(ctx, bearer(hs)); err != nil {
		t.Errorf("HS256 with the secret: %v", err)
	}
	pub, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	confused := sign(t, jwt.SigningMethodHS256, pub, "rsa", claimsFor(is.url, nil), nil)
	if _, err := j.Authorize(ctx, bearer(confused)); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("HS256 with the RSA public key, secret configured: got %v", err)
	}
}

func TestJWTKeyRotation(t *testing.T) {
	is := newIssuer(t)
	is.add("k1", rsaKey)
	var mu sync.Mutex
	now := testNow
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	j := newTestJWT(t, is, TypeJWT, []string{"my-app"}, nil, clock)
	ctx := context.Background()
	if _, err := j.Authorize(ctx, bearer(sign(t, jwt.SigningMethodRS256, rsaKey, "k1", claimsFor(is.url, nil), nil))); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(2 * time.Minute) // past the refresh interval
	mu.Unlock()
	newKey, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	is.add("k2", newKey)
	before := is.jwksHits.Load()
	tok := sign(t, jwt.SigningMethodES384, newKey, "k2", claimsFor(is.url, jwt.MapClaims{"iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}), nil)
	for range 3 {
		if _, err := j.Authorize(ctx, bearer(tok)); err != nil {
			t.Fatalf("a token of the new key: %v", err)
		}
	}
	if n := is.jwksHits.Load() - before; n != 1 {
		t.Errorf("the new kid made %d fetches, want 1", n)
	}
	// Another unknown kid right after: no fetch within the interval.
	bogus := sign(t, jwt.SigningMethodES384, newKey, "k3", claimsFor(is.url, jwt.MapClaims{"iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}), nil)
	if _, err := j.Authorize(ctx, bearer(bogus)); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("unknown kid: %v", err)
	}
	if n := is.jwksHits.Load() - before; n != 1 {
		t.Errorf("an unknown kid within the interval fetched again (%d fetches)", n)
	}
}

func TestJWTIssuerDown(t *testing.T) {
	is := newIssuer(t)
	is.srv.Close()
	j := newTestJWT(t, is, TypeJWT, []string{"my-app"}, nil, func() time.Time { return testNow })
	_, err := j.Authorize(context.Background(), bearer(sign(t, jwt.SigningMethodRS256, rsaKey, "rsa", claimsFor(is.url, nil), nil)))
	if !errors.Is(err, ErrAuthorizerFailure) {
		t.Errorf("got %v, want ErrAuthorizerFailure", err)
	}
}

func TestCognito(t *testing.T) {
	is := newIssuer(t)
	is.add("rsa", rsaKey)
	clock := func() time.Time { return testNow }
	pool := newTestJWT(t, is, TypeCognito, []string{"client-a"}, nil, clock)
	ctx := context.Background()
	idTok := sign(t, jwt.SigningMethodRS256, rsaKey, "rsa", claimsFor(is.url, jwt.MapClaims{"token_use": "id", "aud": "client-a", "cognito:groups": []string{"admin", "users"}}), nil)
	accTok := sign(t, jwt.SigningMethodRS256, rsaKey, "rsa", claimsFor(is.url, jwt.MapClaims{"token_use": "access", "aud": nil, "client_id": "client-a", "scope": "chat/read"}), nil)
	if id, err := pool.Authorize(ctx, bearer(idTok)); err != nil || id.Type != TypeCognito || Stringify(id.Claims["cognito:groups"]) != "[admin users]" {
		t.Errorf("id token: %+v %v", id, err)
	}
	if _, err := pool.Authorize(ctx, bearer(accTok)); err != nil {
		t.Errorf("access token: %v", err)
	}
	scoped := pool.WithScopes([]string{"chat/read"})
	if _, err := scoped.Authorize(ctx, bearer(accTok)); err != nil {
		t.Errorf("access token with the route's scope: %v", err)
	}
	if _, err := scoped.Authorize(ctx, bearer(idTok)); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("id token on a route with scopes: %v, want ErrUnauthorized", err)
	}
	if _, err := pool.WithScopes([]string{"chat/write"}).Authorize(ctx, bearer(accTok)); !errors.Is(err, ErrForbidden) {
		t.Errorf("access token without the scope: %v, want ErrForbidden", err)
	}
	for name, c := range map[string]jwt.MapClaims{
		"no token_use":               {"aud": "client-a"},
		"token_use refresh":          {"token_use": "refresh"},
		"id token of another client": {"token_use": "id", "aud": "client-b"},
		"access token of another":    {"token_use": "access", "aud": nil, "client_id": "client-b"},
	} {
		tok := sign(t, jwt.SigningMethodRS256, rsaKey, "rsa", claimsFor(is.url, c), nil)
		if _, err := pool.Authorize(ctx, bearer(tok)); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("%s: got %v, want ErrUnauthorized", name, err)
		}
	}
}

func TestJWTFromSubprotocol(t *testing.T) {
	is := newIssuer(t)
	is.add("rsa", rsaKey)
	src, _ := ParseSource("route.request.header.Sec-WebSocket-Protocol")
	j, err := NewJWT(JWTOptions{Name: "ws", Type: TypeJWT, Issuer: is.url, Audience: []string{"my-app"}, Source: src,
		Keys: NewKeyCache(is.srv.Client(), nil, 0), Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	tok := sign(t, jwt.SigningMethodRS256, rsaKey, "rsa", claimsFor(is.url, nil), nil)
	id, err := j.Authorize(context.Background(), &Request{Header: http.Header{"Sec-Websocket-Protocol": {"chat.v1, " + tok}}})
	if err != nil || id.Subprotocol != "chat.v1" {
		t.Errorf("identity %+v, %v; want subprotocol chat.v1", id, err)
	}
}

// BenchmarkJWT is one RS256 token authorized again and again: after the
// first, from the verified-token cache.
func BenchmarkJWT(b *testing.B) {
	is := newIssuer(b)
	is.add("rsa", rsaKey)
	j := newTestJWT(b, is, TypeJWT, []string{"my-app"}, nil, func() time.Time { return testNow })
	r := bearer(sign(b, jwt.SigningMethodRS256, rsaKey, "rsa", claimsFor(is.url, nil), nil))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := j.Authorize(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkJWTUncached is BenchmarkJWT with the verified-token cache
// off: every token's signature verified (a connect with a new token).
func BenchmarkJWTUncached(b *testing.B) {
	is := newIssuer(b)
	is.add("rsa", rsaKey)
	src, _ := ParseSource("route.request.header.Authorization")
	clock := func() time.Time { return testNow }
	j, err := NewJWT(JWTOptions{Name: "oidc", Type: TypeJWT, Issuer: is.url, Audience: []string{"my-app"}, Source: src,
		Keys: NewKeyCache(is.srv.Client(), clock, time.Minute), Now: clock, TokenCacheTTL: -1})
	if err != nil {
		b.Fatal(err)
	}
	r := bearer(sign(b, jwt.SigningMethodRS256, rsaKey, "rsa", claimsFor(is.url, nil), nil))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := j.Authorize(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
}

// A burst of first requests, all arriving while the issuer's keys are
// fetched for the first time, waits for that one fetch instead of being
// refused as an unknown kid.
func TestJWTColdStartBurst(t *testing.T) {
	is := newIssuer(t)
	is.add("rsa", rsaKey)
	release := make(chan struct{})
	slow := is.srv.Config.Handler
	is.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/jwks.json" {
			<-release // every request below is waiting by now
		}
		slow.ServeHTTP(w, r)
	})
	j := newTestJWT(t, is, TypeJWT, []string{"my-app"}, nil, func() time.Time { return testNow })
	tok := sign(t, jwt.SigningMethodRS256, rsaKey, "rsa", claimsFor(is.url, nil), nil)
	const n = 20
	errs := make(chan error, n)
	var started sync.WaitGroup
	started.Add(n)
	for range n {
		go func() {
			started.Done()
			_, err := j.Authorize(context.Background(), bearer(tok))
			errs <- err
		}()
	}
	started.Wait()
	// Let the first fetch begin and the others queue behind it.
	for is.discovery.Load() == 0 {
		runtime.Gosched()
	}
	close(release)
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("a request during the first key fetch: %v", err)
		}
	}
	if got := is.jwksHits.Load(); got != 1 {
		t.Errorf("%d key fetches for a burst, want 1", got)
	}
}

// The verified-token cache: a cached token skips its signature, never
// its other checks, and nothing but a token that passed gets in.
func TestJWTTokenCache(t *testing.T) {
	is := newIssuer(t)
	is.add("rsa", rsaKey)
	var mu sync.Mutex
	now := testNow
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	src, _ := ParseSource("route.request.header.Authorization")
	newJ := func(size int) *JWT {
		j, err := NewJWT(JWTOptions{Name: "oidc", Type: TypeJWT, Issuer: is.url, Audience: []string{"my-app"}, Source: src,
			Keys: NewKeyCache(is.srv.Client(), clock, time.Minute), Now: clock, TokenCacheSize: size})
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	ctx := context.Background()

	t.Run("a tampered sibling of a cached token is refused", func(t *testing.T) {
		j := newJ(0)
		tok := sign(t, jwt.SigningMethodRS256, rsaKey, "rsa", claimsFor(is.url, jwt.MapClaims{"sub": "u-1"}), nil)
		if _, err := j.Authorize(ctx, bearer(tok)); err != nil {
			t.Fatal(err)
		}
		if _, err := j.Authorize(ctx, bearer(tok)); err != nil {
			t.Fatalf("the cached token again: %v", err)
		}
		if n := j.cache.len(); n != 1 {
			t.Fatalf("%d cached tokens, want 1", n)
		}
		// Same header and signature, claims of someone else.
		parts := strings.Split(tok, ".")
		other := strings.Split(sign(t, jwt.SigningMethodRS256, rsaKey, "rsa", claimsFor(is.url, jwt.MapClaims{"sub": "admin"}), nil), ".")
		forged := parts[0] + "." + other[1] + "." + parts[2]
		// And the cached token with a character of its signature changed
		// (not the last: its low bits do not decode).
		i := len(tok) - 10
		flipped := tok[:i] + map[bool]string{true: "A", false: "B"}[tok[i] != 'A'] + tok[i+1:]
		for name, bad := range map[string]string{"claims swapped": forged, "signature changed": flipped} {
			if _, err := j.Authorize(ctx, bearer(bad)); !errors.Is(err, ErrUnauthorized) {
				t.Errorf("%s: got %v, want ErrUnauthorized", name, err)
			}
		}
		if n := j.cache.len(); n != 1 {
			t.Errorf("%d cached tokens after refusals, want 1: a refused token was cached", n)
		}
	})

	t.Run("a cached token expires with its exp", func(t *testing.T) {
		j := newJ(0)
		c := claimsFor(is.url, jwt.MapClaims{"iat": clock().Unix(), "exp": clock().Add(2 * time.Minute).Unix()})
		tok := sign(t, jwt.SigningMethodRS256, rsaKey, "rsa", c, nil)
		if _, err := j.Authorize(ctx, bearer(tok)); err != nil {
			t.Fatal(err)
		}
		advance(2*time.Minute + DefaultLeeway - time.Second) // within the leeway still
		if _, err := j.Authorize(ctx, bearer(tok)); err != nil {
			t.Fatalf("within the leeway: %v", err)
		}
		advance(2 * time.Second) // past exp + leeway
		if _, err := j.Authorize(ctx, bearer(tok)); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("an expired cached token: got %v, want ErrUnauthorized", err)
		}
	})

	t.Run("a cached token is not used past the cache TTL", func(t *testing.T) {
		j := newJ(0)
		c := claimsFor(is.url, jwt.MapClaims{"iat": clock().Unix(), "exp": clock().Add(24 * time.Hour).Unix()})
		tok := sign(t, jwt.SigningMethodRS256, rsaKey, "rsa", c, nil)
		if _, err := j.Authorize(ctx, bearer(tok)); err != nil {
			t.Fatal(err)
		}
		vt, _ := j.cache.get(sha256.Sum256([]byte(tok)))
		advance(DefaultTokenCacheTTL)
		if _, hit := j.cache.get(sha256.Sum256([]byte(tok))); hit {
			t.Error("the entry outlived the cache TTL")
		}
		if _, err := j.Authorize(ctx, bearer(tok)); err != nil {
			t.Fatalf("verified again: %v", err)
		}
		if again, _ := j.cache.get(sha256.Sum256([]byte(tok))); again == vt || again == nil {
			t.Error("the token was not verified and cached afresh")
		}
	})

	t.Run("refused tokens are not cached", func(t *testing.T) {
		j := newJ(0)
		for _, tok := range []string{
			sign(t, jwt.SigningMethodRS256, rsaKey, "rsa", claimsFor(is.url, jwt.MapClaims{"aud": "other-app"}), nil),
			sign(t, jwt.SigningMethodRS256, rsaKey, "rsa", claimsFor("https://evil.example.com", nil), nil),
			sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "rsa", claimsFor(is.url, nil), nil),
		} {
			for range 2 {
				if _, err := j.Authorize(ctx, bearer(tok)); !errors.Is(err, ErrUnauthorized) {
					t.Errorf("got %v, want ErrUnauthorized", err)
				}
			}
		}
		if n := j.cache.len(); n != 0 {
			t.Errorf("%d refused tokens cached", n)
		}
	})

	t.Run("the route's scopes are checked on a cached token", func(t *testing.T) {
		j := newJ(0)
		tok := sign(t, jwt.SigningMethodRS256, rsaKey, "rsa", claimsFor(is.url, jwt.MapClaims{"scope": "chat/read"}), nil)
		if _, err := j.Authorize(ctx, bearer(tok)); err != nil {
			t.Fatal(err)
		}
		if _, err := j.WithScopes([]string{"chat/admin"}).Authorize(ctx, bearer(tok)); !errors.Is(err, ErrForbidden) {
			t.Errorf("a cached token without the route's scope: got %v, want ErrForbidden", err)
		}
	})

	t.Run("the bound holds", func(t *testing.T) {
		j := newJ(3)
		var toks []string
		for i := range 5 {
			toks = append(toks, sign(t, jwt.SigningMethodRS256, rsaKey, "rsa", claimsFor(is.url, jwt.MapClaims{"sub": "u-" + strconv.Itoa(i)}), nil))
			if _, err := j.Authorize(ctx, bearer(toks[i])); err != nil {
				t.Fatal(err)
			}
		}
		if n := j.cache.len(); n != 3 {
			t.Errorf("%d cached tokens, want the bound 3", n)
		}
		if _, hit := j.cache.get(sha256.Sum256([]byte(toks[0]))); hit {
			t.Error("the least recently used token is still cached")
		}
	})

	t.Run("no cache", func(t *testing.T) {
		j, err := NewJWT(JWTOptions{Name: "oidc", Type: TypeJWT, Issuer: is.url, Audience: []string{"my-app"}, Source: src,
			Keys: NewKeyCache(is.srv.Client(), clock, time.Minute), Now: clock, TokenCacheTTL: -1})
		if err != nil || j.cache != nil {
			t.Fatalf("TokenCacheTTL -1: cache %v, %v", j.cache, err)
		}
		if _, err := NewJWT(JWTOptions{Name: "oidc", Type: TypeJWT, Issuer: is.url, Audience: []string{"my-app"}, Source: src,
			TokenCacheTTL: 2 * time.Hour}); err == nil {
			t.Error("a TTL over an hour was accepted")
		}
	})
}

// A token cached while its key was the issuer's is verified again once
// the issuer has rotated that key out, and refused.
func TestJWTTokenCacheKeyRotation(t *testing.T) {
	is := newIssuer(t)
	is.add("k1", rsaKey)
	var mu sync.Mutex
	now := testNow
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	j := newTestJWT(t, is, TypeJWT, []string{"my-app"}, nil, clock)
	ctx := context.Background()
	tok := sign(t, jwt.SigningMethodRS256, rsaKey, "k1", claimsFor(is.url, nil), nil)
	for range 2 {
		if _, err := j.Authorize(ctx, bearer(tok)); err != nil {
			t.Fatal(err)
		}
	}
	// The issuer replaces k1 (a compromised key, say) with another key
	// under the same kid; a token naming a new kid makes the gateway
	// fetch the keys again.
	newKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	is.mu.Lock()
	is.keys["k1"] = newKey
	is.keys["k2"] = newKey
	is.mu.Unlock()
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	fresh := sign(t, jwt.SigningMethodRS256, newKey, "k2", claimsFor(is.url, jwt.MapClaims{"iat": clock().Unix()}), nil)
	if _, err := j.Authorize(ctx, bearer(fresh)); err != nil {
		t.Fatalf("a token of the new key: %v", err)
	}
	if _, err := j.Authorize(ctx, bearer(tok)); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("a cached token of the rotated-out key: got %v, want ErrUnauthorized", err)
	}
}
