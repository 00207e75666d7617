package auth

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/portico-gateway/portico/metrics"
)

// DefaultLeeway is the clock skew allowed on exp, nbf and iat.
const DefaultLeeway = 60 * time.Second

// Verified-token cache defaults: a JWT authorizer keeps this many
// verified tokens, each for at most this long (and never past its exp).
const (
	DefaultTokenCacheSize = 10000
	DefaultTokenCacheTTL  = 300 * time.Second
	// MaxTokenCacheTTL bounds TokenCacheTTL.
	MaxTokenCacheTTL = time.Hour
)

// signedAlgs are the asymmetric algorithms a JWT authorizer accepts;
// HS256 is added only when a shared secret is configured. "none" never
// is.
var signedAlgs = []string{"RS256", "RS384", "RS512", "ES256", "ES384", "EdDSA"}

// JWTOptions configure a JWT or Cognito user pool authorizer. The zero
// value of each optional field means the default noted beside it.
type JWTOptions struct {
	// Name is the authorizer's configured name, for metrics. Required.
	Name string
	// API is the API's name, for metrics.
	API string
	// Type is TypeJWT or TypeCognito. Required.
	Type string
	// Issuer must equal the token's iss. Required. Its
	// /.well-known/openid-configuration names the keys.
	Issuer string
	// Audience: for TypeJWT the token's aud (a string or a list), or
	// client_id when it has no aud, must be one of these; required. For
	// TypeCognito, the app client ids: an id token's aud, an access
	// token's client_id must be one of them; nil: any client.
	Audience []string
	// JWKSURI is where the keys are. "": from the issuer's discovery
	// document.
	JWKSURI string
	// Source is where the token is (a "Bearer " prefix is removed).
	// Required.
	Source Source
	// Secret, when set, also accepts HS256 tokens signed with it.
	Secret []byte
	// Leeway is the clock skew allowed on exp, nbf and iat. 0:
	// DefaultLeeway.
	Leeway time.Duration
	// Timeout bounds fetching the discovery document and the keys. 0:
	// DefaultTimeout.
	Timeout time.Duration
	// Keys caches the issuers' keys. nil: one of its own, using Client
	// and Now.
	Keys *KeyCache
	// Client fetches keys when Keys is nil. nil: http.DefaultClient.
	Client *http.Client
	// TokenCacheSize bounds the verified-token cache (entries; the least
	// recently used goes first). 0: DefaultTokenCacheSize.
	TokenCacheSize int
	// TokenCacheTTL is the longest a verified token is used from the
	// cache without verifying its signature again; an entry also ends
	// when the token expires (exp plus Leeway) and when the key that
	// verified it is no longer the issuer's. 0: DefaultTokenCacheTTL;
	// negative: no cache, every token is verified.
	TokenCacheTTL time.Duration
	// Now is the clock for exp, nbf and iat. nil: time.Now.
	Now func() time.Time
	// Metrics receives AuthorizerRequests. nil: not counted.
	Metrics *metrics.Set
}

// JWT validates JSON Web Tokens signed by an issuer's keys (RS256,
// RS384, RS512, ES256, ES384, EdDSA; HS256 only with a configured
// secret): signature, iss, aud (or client_id), exp, nbf, iat, and per
// route the scopes. A token that fails any check is 401; a missing
// scope is 403; keys that cannot be fetched are 500. A token's jku and
// x5u headers are never fetched: a token that names a key URL other
// than the configured jwksUri is refused.
//
// TypeCognito is AWS's Cognito user pool authorizer: it also requires
// token_use "id" or "access" and checks aud (id tokens) or client_id
// (access tokens) against the app client ids.
//
// Tokens that pass every check but the route's scopes are cached by
// their SHA-256 (TokenCacheSize, TokenCacheTTL), as Envoy's jwt_authn
// caches them: a connect with the same token again skips the signature
// but not the checks of time (exp, nbf, iat against the clock now),
// audience and scopes. A token that fails is never cached; a tampered
// token has another hash, and is verified.
type JWT struct {
	o      JWTOptions
	algs   []string
	parser *jwt.Parser
	cache  *lruCache[[sha256.Size]byte, *verifiedToken] // nil: no cache
	count  counters
}

// verifiedToken is what a cache entry holds: the token's claims as they
// were verified, and what decides whether they still hold.
type verifiedToken struct {
	claims   jwt.MapClaims  // read-only once cached: identities share it
	strs     map[string]any // claims stringified (Identity.ClaimStrings), as shared
	scopes   []string
	nbf, iat time.Time // zero: the token has none
	kid      string
	key      *jose.JSONWebKey // the issuer's key that verified it; nil: HS256 (the configured secret)
	// identity is the one the requests of this token that select no
	// subprotocol share; nil until the first.
	identity atomic.Pointer[Identity]
}

var _ Authorizer = (*JWT)(nil)

// NewJWT checks o and returns the authorizer.
func NewJWT(o JWTOptions) (*JWT, error) {
	switch {
	case o.Name == "":
		return nil, errors.New("auth: a JWT authorizer needs a name")
	case o.Type != TypeJWT && o.Type != TypeCognito:
		return nil, fmt.Errorf("auth: authorizer %q: type %q (want %s or %s)", o.Name, o.Type, TypeJWT, TypeCognito)
	case o.Issuer == "":
		return nil, fmt.Errorf("auth: authorizer %q needs an issuer", o.Name)
	case o.Type == TypeJWT && len(o.Audience) == 0:
		return nil, fmt.Errorf("auth: JWT authorizer %q needs an audience", o.Name)
	case o.Source.Kind == 0:
		return nil, fmt.Errorf("auth: authorizer %q needs an identity source", o.Name)
	case o.TokenCacheTTL > MaxTokenCacheTTL:
		return nil, fmt.Errorf("auth: authorizer %q: token cache TTL %s (want at most %s)", o.Name, o.TokenCacheTTL, MaxTokenCacheTTL)
	}
	if o.Leeway <= 0 {
		o.Leeway = DefaultLeeway
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Keys == nil {
		o.Keys = NewKeyCache(o.Client, o.Now, 0)
	}
	if o.TokenCacheSize <= 0 {
		o.TokenCacheSize = DefaultTokenCacheSize
	}
	if o.TokenCacheTTL == 0 {
		o.TokenCacheTTL = DefaultTokenCacheTTL
	}
	algs := slices.Clone(signedAlgs)
	if len(o.Secret) > 0 {
		algs = append(algs, "HS256")
	}
	j := &JWT{o: o, algs: algs, count: newCounters(o.Metrics, o.API, o.Name)}
	if o.TokenCacheTTL > 0 {
		j.cache = newLRUCache[[sha256.Size]byte, *verifiedToken](o.TokenCacheSize, o.TokenCacheTTL, o.Now)
	}
	j.parser = jwt.NewParser(
		jwt.WithValidMethods(algs),
		jwt.WithIssuer(o.Issuer),
		jwt.WithLeeway(o.Leeway),
		jwt.WithTimeFunc(o.Now),
		jwt.WithIssuedAt(),
		jwt.WithExpirationRequired(),
		jwt.WithJSONNumber(),
	)
	return j, nil
}

// Authorize implements Authorizer without route scopes.
func (j *JWT) Authorize(ctx context.Context, r *Request) (*Identity, error) {
	return j.authorize(ctx, r, nil)
}

// WithScopes is j for a route with authorizationScopes: the token's
// scope (space separated) or scp must hold at least one of scopes, else
// 403. No scopes: j itself.
func (j *JWT) WithScopes(scopes []string) Authorizer {
	if len(scopes) == 0 {
		return j
	}
	return scoped{j, slices.Clone(scopes)}
}

type scoped struct {
	j      *JWT
	scopes []string
}

func (s scoped) Authorize(ctx context.Context, r *Request) (*Identity, error) {
	return s.j.authorize(ctx, r, s.scopes)
}

func (j *JWT) authorize(ctx context.Context, r *Request, scopes []string) (*Identity, error) {
	id, err := j.check(ctx, r, scopes)
	j.count.record(err)
	if err != nil && errors.Is(err, ErrUnauthorized) {
		err = invalidToken(err)
	}
	return id, err
}

func (j *JWT) check(ctx context.Context, r *Request, scopes []string) (*Identity, error) {
	v, ok := j.o.Source.Value(r)
	if !ok {
		return nil, fmt.Errorf("%w: the identity source is missing or empty", ErrUnauthorized)
	}
	raw := trimBearer(v)
	vt, err := j.verified(ctx, raw)
	if err != nil {
		return nil, err
	}
	if err := j.audience(vt.claims, scopes); err != nil {
		return nil, err
	}
	if len(scopes) > 0 && !slices.ContainsFunc(scopes, func(s string) bool { return slices.Contains(vt.scopes, s) }) {
		return nil, fmt.Errorf("%w: the token has none of the scopes %v", ErrForbidden, scopes)
	}
	if sub := selectedSubprotocol([]Source{j.o.Source}, r); sub != "" {
		return &Identity{Type: j.o.Type, Claims: vt.claims, Scopes: vt.scopes, claimStrings: vt.strs, Subprotocol: sub}, nil
	}
	if id := vt.identity.Load(); id != nil {
		return id, nil
	}
	vt.identity.CompareAndSwap(nil, &Identity{Type: j.o.Type, Claims: vt.claims, Scopes: vt.scopes, claimStrings: vt.strs, shared: true})
	return vt.identity.Load(), nil
}

// RequestOnly implements RequestOnly: a JWT authorizer reads its token
// from a header, the query string or a stage variable, and nothing else
// of the request; not with a context.NAME identity source.
func (j *JWT) RequestOnly() bool { return j.o.Source.Kind != FromContext }

func (s scoped) RequestOnly() bool { return s.j.RequestOnly() }

// verified is raw's claims once its signature, iss, exp, nbf and iat
// hold (and its aud or client_id, route scopes aside): from the cache
// when raw was verified before and still holds now, else verified and
// then cached.
func (j *JWT) verified(ctx context.Context, raw string) (*verifiedToken, error) {
	var sum [sha256.Size]byte
	if j.cache != nil {
		sum = sha256.Sum256([]byte(raw))
		if vt, hit := j.cache.get(sum); hit {
			if j.stillValid(vt) {
				return vt, nil
			}
			j.cache.remove(sum)
		}
	}
	vt := &verifiedToken{claims: jwt.MapClaims{}}
	_, err := j.parser.ParseWithClaims(raw, vt.claims, func(t *jwt.Token) (any, error) { return j.key(ctx, t, vt) })
	if err != nil {
		if errors.Is(err, ErrAuthorizerFailure) {
			return nil, fmt.Errorf("authorizer %s: %w", j.o.Name, err)
		}
		return nil, fmt.Errorf("%w: %w", ErrUnauthorized, err)
	}
	vt.scopes = scopesOf(vt.claims)
	vt.strs = stringClaims(vt.claims)
	if j.cache == nil {
		return vt, nil
	}
	// Cached only when every check but the route's scopes passed:
	// a token of another audience is refused again in full.
	if err := j.audience(vt.claims, nil); err != nil {
		return nil, err
	}
	exp, _ := vt.claims.GetExpirationTime() // required: the parser checked it
	if nbf, _ := vt.claims.GetNotBefore(); nbf != nil {
		vt.nbf = nbf.Time
	}
	if iat, _ := vt.claims.GetIssuedAt(); iat != nil {
		vt.iat = iat.Time
	}
	if exp != nil {
		j.cache.putUntil(sum, vt, exp.Add(j.o.Leeway))
	}
	return vt, nil
}

// stillValid reports whether a cached token holds now as it held when it
// was verified: exp (the entry ends with it), nbf and iat against the
// clock with the leeway, as the parser checks them, and the key that
// verified it is still the issuer's.
func (j *JWT) stillValid(vt *verifiedToken) bool {
	now := j.o.Now().Add(j.o.Leeway)
	if (!vt.nbf.IsZero() && now.Before(vt.nbf)) || (!vt.iat.IsZero() && now.Before(vt.iat)) {
		return false
	}
	return vt.key == nil || j.o.Keys.Current(j.o.Issuer, vt.kid, vt.key)
}

// key picks the key that verifies t, refusing what must never verify,
// and notes it in vt.
func (j *JWT) key(ctx context.Context, t *jwt.Token, vt *verifiedToken) (any, error) {
	for _, h := range []string{"jku", "x5u"} {
		if u, ok := t.Header[h]; ok && (j.o.JWKSURI == "" || u != j.o.JWKSURI) {
			return nil, fmt.Errorf("the token's %s header names a key URL that is not this issuer's", h)
		}
	}
	alg := t.Method.Alg()
	if alg == "HS256" {
		return j.o.Secret, nil // only in algs when a secret is set
	}
	kid, _ := t.Header["kid"].(string)
	if kid == "" {
		return nil, errors.New("the token has no kid")
	}
	k, err := j.o.Keys.Key(ctx, j.o.Issuer, j.o.JWKSURI, kid, j.o.Timeout)
	if err != nil {
		return nil, err
	}
	if !keyFits(k, alg) {
		return nil, fmt.Errorf("key %q does not verify %s signatures", kid, alg)
	}
	vt.kid, vt.key = kid, k
	return k.Key, nil
}

// audience checks aud / client_id (and Cognito's token_use).
func (j *JWT) audience(claims jwt.MapClaims, scopes []string) error {
	clientID, _ := claims["client_id"].(string)
	aud, _ := claims.GetAudience()
	if j.o.Type == TypeCognito {
		use, _ := claims["token_use"].(string)
		switch {
		case use == "id" && len(scopes) > 0:
			return fmt.Errorf("%w: the route needs scopes: an access token, not an id token", ErrUnauthorized)
		case use == "id":
			if len(j.o.Audience) > 0 && !slices.ContainsFunc(aud, func(a string) bool { return slices.Contains(j.o.Audience, a) }) {
				return fmt.Errorf("%w: the id token's aud %v is not an allowed app client", ErrUnauthorized, aud)
			}
		case use == "access":
			if len(j.o.Audience) > 0 && !slices.Contains(j.o.Audience, clientID) {
				return fmt.Errorf("%w: the access token's client_id %q is not an allowed app client", ErrUnauthorized, clientID)
			}
		default:
			return fmt.Errorf("%w: token_use %q (want id or access)", ErrUnauthorized, use)
		}
		return nil
	}
	if len(aud) > 0 {
		if slices.ContainsFunc(aud, func(a string) bool { return slices.Contains(j.o.Audience, a) }) {
			return nil
		}
		return fmt.Errorf("%w: aud %v is not an allowed audience", ErrUnauthorized, aud)
	}
	if clientID != "" && slices.Contains(j.o.Audience, clientID) {
		return nil
	}
	return fmt.Errorf("%w: the token has no allowed aud or client_id", ErrUnauthorized)
}

// scopesOf reads scope (space separated) or scp (a list or a string).
func scopesOf(claims jwt.MapClaims) []string {
	if s, ok := claims["scope"].(string); ok && s != "" {
		return strings.Fields(s)
	}
	switch scp := claims["scp"].(type) {
	case string:
		return strings.Fields(scp)
	case []any:
		out := make([]string, 0, len(scp))
		for _, v := range scp {
			if s, ok := v.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
