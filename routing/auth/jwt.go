package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/portico-gateway/portico/metrics"
)

// DefaultLeeway is the clock skew allowed on exp, nbf and iat.
const DefaultLeeway = 60 * time.Second

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
type JWT struct {
	o      JWTOptions
	algs   []string
	parser *jwt.Parser
	count  counters
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
	algs := slices.Clone(signedAlgs)
	if len(o.Secret) > 0 {
		algs = append(algs, "HS256")
	}
	j := &JWT{o: o, algs: algs, count: newCounters(o.Metrics, o.API, o.Name)}
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
	claims := jwt.MapClaims{}
	_, err := j.parser.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) { return j.key(ctx, t) })
	if err != nil {
		if errors.Is(err, ErrAuthorizerFailure) {
			return nil, fmt.Errorf("authorizer %s: %w", j.o.Name, err)
		}
		return nil, fmt.Errorf("%w: %w", ErrUnauthorized, err)
	}
	tokenScopes := scopesOf(claims)
	if err := j.audience(claims, scopes); err != nil {
		return nil, err
	}
	if len(scopes) > 0 && !slices.ContainsFunc(scopes, func(s string) bool { return slices.Contains(tokenScopes, s) }) {
		return nil, fmt.Errorf("%w: the token has none of the scopes %v", ErrForbidden, scopes)
	}
	return &Identity{Type: j.o.Type, Claims: claims, Scopes: tokenScopes,
		Subprotocol: selectedSubprotocol([]Source{j.o.Source}, r)}, nil
}

// key picks the key that verifies t, refusing what must never verify.
func (j *JWT) key(ctx context.Context, t *jwt.Token) (any, error) {
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
