package config

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/portico-gateway/portico/routing/auth"
)

// Authorizer is one authorizer of an API, named by its key under
// authorizers. Its keys mirror AWS's CloudFormation properties.
type Authorizer struct {
	// Type is request (AWS's REQUEST Lambda authorizer, called over
	// HTTP), token (AWS's TOKEN authorizer of REST APIs: one header),
	// jwt (a JSON Web Token from an OpenID issuer) or cognito (a Cognito
	// user pool's id or access token). Required.
	Type string `yaml:"type"`
	// URI (request, token) receives the authorizer event as a JSON POST
	// and answers as the Lambda would: an IAM policy or
	// {"isAuthorized": ...}; HTTP 401 or {"message":"Unauthorized"} is
	// the Lambda's "Unauthorized" error.
	URI string `yaml:"uri"`
	// IdentitySource lists where the identity is:
	// route.request.header.NAME, route.request.querystring.NAME,
	// method.request.header.NAME, stageVariables.NAME, context.NAME. A
	// missing or empty one refuses with 401 without calling the
	// authorizer. request: at least one, required; token, jwt, cognito:
	// exactly one, default route.request.header.Authorization.
	IdentitySource []string `yaml:"identitySource"`
	// IdentityValidationExpression (token) is a regular expression the
	// whole token must match, else 401 without a call. Default none.
	IdentityValidationExpression string `yaml:"identityValidationExpression"`
	// ResultTTL (request, token) caches answers, Allow and Deny alike,
	// per identity-source values. 0s: no cache. Default 300s; at most 1h.
	ResultTTL *Duration `yaml:"resultTtl"`
	// Timeout bounds one call of the authorizer (request, token) or one
	// fetch of an issuer's discovery document or keys (jwt, cognito).
	// Default 10s (AWS's authorizer quota).
	Timeout Duration `yaml:"timeout"`
	// ProviderARNs (cognito) are the user pools:
	// arn:aws:cognito-idp:REGION:ACCOUNT:userpool/POOL_ID. Required.
	ProviderARNs []string `yaml:"providerArns"`
	// IssuerURL (cognito) replaces https://cognito-idp.REGION.amazonaws.com
	// in the pools' issuer (https://cognito-idp.REGION.amazonaws.com/POOL_ID),
	// for a Cognito-compatible server or a test issuer. Default "".
	IssuerURL string `yaml:"issuerUrl"`
	// Issuer (jwt) must equal the token's iss; its
	// /.well-known/openid-configuration names the keys. Required.
	Issuer string `yaml:"issuer"`
	// Audience: for jwt the token's aud (or client_id, when it has no
	// aud) must be one of these, required; for cognito, the app client
	// ids an id token's aud or an access token's client_id must be one
	// of (default: any client of the pool).
	Audience []string `yaml:"audience"`
	// JWKSURI (jwt) is where the issuer's keys are. Default "": from its
	// discovery document.
	JWKSURI string `yaml:"jwksUri"`
	// Secret (jwt) also accepts HS256 tokens signed with this shared
	// secret, given as ${ENV_NAME} (read from the environment) or
	// file:PATH (read from a file, trailing newline removed), never
	// written in the file itself. Default "": HS256 is refused.
	Secret string `yaml:"secret"`
	// Leeway (jwt, cognito) is the clock skew allowed on exp, nbf and
	// iat. Default 60s.
	Leeway Duration `yaml:"leeway"`
	// TokenCacheTTL (jwt, cognito) keeps tokens that passed every check
	// (the route's scopes aside) by their SHA-256 this long, so that a
	// connect with the same token again skips its signature: never past
	// the token's exp (with the leeway), nor once the issuer no longer
	// has the key that verified it; exp, nbf, iat, audience and scopes
	// are checked on every use. 0s: no cache. Default 300s; at most 1h.
	TokenCacheTTL *Duration `yaml:"tokenCacheTtl"`
	// TokenCacheSize (jwt, cognito) bounds that cache (tokens; the least
	// recently used goes first). Default 10000.
	TokenCacheSize int `yaml:"tokenCacheSize"`
}

// Authorizer types and authorization types.
const (
	AuthorizerRequest = "request"
	AuthorizerToken   = "token"
	AuthorizerJWT     = "jwt"
	AuthorizerCognito = "cognito"

	AuthNone    = "NONE"
	AuthCustom  = "CUSTOM"
	AuthJWT     = "JWT"
	AuthCognito = "COGNITO_USER_POOLS"
	AuthIAM     = "AWS_IAM"
)

const (
	defaultRegion         = auth.DefaultRegion
	defaultAccountID      = auth.DefaultAccountID
	defaultAuthIdentity   = "route.request.header.Authorization"
	defaultTokenIdentity  = "method.request.header.Authorization"
	minAuthorizerTimeout  = 50 * time.Millisecond
	maxAuthorizerTimeout  = time.Hour
	maxAuthorizationScope = 10 // AWS's per-route quota
)

var (
	regionRE    = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d+$`)
	accountIDRE = regexp.MustCompile(`^\d{12}$`)
	userPoolRE  = regexp.MustCompile(`^arn:aws[a-z-]*:cognito-idp:([a-z]{2}(?:-[a-z]+)+-\d+):(\d{12}):userpool/([a-z]{2}(?:-[a-z]+)+-\d+_[0-9A-Za-z]+)$`)
	secretEnvRE = regexp.MustCompile(`^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$`)
)

func (a *Authorizer) applyDefaults() {
	if a.ResultTTL == nil && (a.Type == AuthorizerRequest || a.Type == AuthorizerToken) {
		d := Duration(auth.DefaultResultTTL)
		a.ResultTTL = &d
	}
	setDuration(&a.Timeout, auth.DefaultTimeout)
	setDuration(&a.Leeway, auth.DefaultLeeway)
	if a.Type == AuthorizerJWT || a.Type == AuthorizerCognito {
		if a.TokenCacheTTL == nil {
			d := Duration(auth.DefaultTokenCacheTTL)
			a.TokenCacheTTL = &d
		}
		if a.TokenCacheSize == 0 {
			a.TokenCacheSize = auth.DefaultTokenCacheSize
		}
	}
	if len(a.IdentitySource) == 0 {
		switch a.Type {
		case AuthorizerToken:
			a.IdentitySource = []string{defaultTokenIdentity}
		case AuthorizerJWT, AuthorizerCognito:
			a.IdentitySource = []string{defaultAuthIdentity}
		}
	}
}

// UserPool is a Cognito user pool named by its ARN.
type UserPool struct {
	Region, AccountID, ID string
}

// ParseUserPoolARN splits arn:aws:cognito-idp:REGION:ACCOUNT:userpool/ID.
func ParseUserPoolARN(arn string) (UserPool, bool) {
	m := userPoolRE.FindStringSubmatch(arn)
	if m == nil {
		return UserPool{}, false
	}
	return UserPool{Region: m[1], AccountID: m[2], ID: m[3]}, true
}

// Issuer is the pool's token issuer; base "" means AWS's
// https://cognito-idp.REGION.amazonaws.com.
func (p UserPool) Issuer(base string) string {
	if base == "" {
		base = "https://cognito-idp." + p.Region + ".amazonaws.com"
	}
	return strings.TrimSuffix(base, "/") + "/" + p.ID
}

// SecretValue reads the secret named by Secret (${ENV} or file:PATH);
// nil without one. The value is never part of the File, so printing a
// configuration never shows it.
func (a *Authorizer) SecretValue() ([]byte, error) {
	switch {
	case a.Secret == "":
		return nil, nil
	case secretEnvRE.MatchString(a.Secret):
		name := secretEnvRE.FindStringSubmatch(a.Secret)[1]
		v := os.Getenv(name)
		if v == "" {
			return nil, fmt.Errorf("the environment variable %s is not set or empty", name)
		}
		return []byte(v), nil
	case strings.HasPrefix(a.Secret, "file:"):
		b, err := os.ReadFile(strings.TrimPrefix(a.Secret, "file:"))
		if err != nil {
			return nil, fmt.Errorf("reading the secret: %w", err)
		}
		b = []byte(strings.TrimRight(string(b), "\r\n"))
		if len(b) == 0 {
			return nil, fmt.Errorf("the secret file %s is empty", strings.TrimPrefix(a.Secret, "file:"))
		}
		return b, nil
	}
	return nil, fmt.Errorf("want ${ENV_NAME} or file:PATH (a secret is never written in the file itself)")
}

// authorizers checks an API's authorizers.
func (v *validator) authorizers(key string, a *API) {
	if !regionRE.MatchString(a.Region) {
		v.add(key+".region", "%q is not an AWS region name such as \"us-east-1\"", a.Region)
	}
	if !accountIDRE.MatchString(a.AccountID) {
		v.add(key+".accountId", "want 12 digits, got %q", a.AccountID)
	}
	names := make([]string, 0, len(a.Authorizers))
	for n := range a.Authorizers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		ak := childPath(key+".authorizers", n)
		if strings.TrimSpace(n) == "" {
			v.add(ak, "an authorizer name must not be empty")
		}
		v.authorizer(ak, a.Authorizers[n])
	}
}

func (v *validator) authorizer(key string, a Authorizer) {
	only := func(field string, set bool, types ...string) {
		if set && !slices.Contains(types, a.Type) {
			v.add(key+"."+field, "only %s authorizers have %s", strings.Join(types, " and "), field)
		}
	}
	switch a.Type {
	case AuthorizerRequest, AuthorizerToken, AuthorizerJWT, AuthorizerCognito:
	case "":
		v.add(key+".type", "required: request, token, jwt or cognito")
		return
	default:
		v.add(key+".type", "unknown authorizer type %q (want request, token, jwt or cognito)", a.Type)
		return
	}
	only("uri", a.URI != "", AuthorizerRequest, AuthorizerToken)
	only("resultTtl", a.ResultTTL != nil, AuthorizerRequest, AuthorizerToken)
	only("identityValidationExpression", a.IdentityValidationExpression != "", AuthorizerToken)
	only("providerArns", len(a.ProviderARNs) > 0, AuthorizerCognito)
	only("issuerUrl", a.IssuerURL != "", AuthorizerCognito)
	only("issuer", a.Issuer != "", AuthorizerJWT)
	only("jwksUri", a.JWKSURI != "", AuthorizerJWT)
	only("secret", a.Secret != "", AuthorizerJWT)
	only("audience", len(a.Audience) > 0, AuthorizerJWT, AuthorizerCognito)
	only("tokenCacheTtl", a.TokenCacheTTL != nil, AuthorizerJWT, AuthorizerCognito)
	only("tokenCacheSize", a.TokenCacheSize != 0, AuthorizerJWT, AuthorizerCognito)

	if t := a.Timeout.D(); t < minAuthorizerTimeout || t > maxAuthorizerTimeout {
		v.add(key+".timeout", "want between %s and 1h, got %s", minAuthorizerTimeout, t)
	}
	if a.Leeway < 0 {
		v.add(key+".leeway", "must not be negative, got %s", a.Leeway.D())
	}
	if a.ResultTTL != nil && (*a.ResultTTL < 0 || a.ResultTTL.D() > auth.MaxResultTTL) {
		v.add(key+".resultTtl", "want 0s (no cache) to 1h, got %s", a.ResultTTL.D())
	}
	if a.TokenCacheTTL != nil && (*a.TokenCacheTTL < 0 || a.TokenCacheTTL.D() > auth.MaxTokenCacheTTL) {
		v.add(key+".tokenCacheTtl", "want 0s (no cache) to 1h, got %s", a.TokenCacheTTL.D())
	}
	if a.TokenCacheSize < 0 {
		v.add(key+".tokenCacheSize", "must not be negative, got %d", a.TokenCacheSize)
	}
	sources := make([]auth.Source, 0, len(a.IdentitySource))
	for i, s := range a.IdentitySource {
		src, err := auth.ParseSource(s)
		if err != nil {
			v.add(itemPath(key+".identitySource", i), "%v", strings.TrimPrefix(err.Error(), "auth: "))
			continue
		}
		sources = append(sources, src)
	}
	switch {
	case len(a.IdentitySource) == 0:
		v.add(key+".identitySource", "a request authorizer needs at least one identity source (e.g. route.request.header.Authorization)")
	case a.Type != AuthorizerRequest && len(a.IdentitySource) != 1:
		v.add(key+".identitySource", "a %s authorizer takes exactly one identity source, got %d", a.Type, len(a.IdentitySource))
	case a.Type != AuthorizerRequest && len(sources) == 1 && sources[0].Kind != auth.FromHeader && sources[0].Kind != auth.FromQuery:
		v.add(key+".identitySource", "a %s authorizer reads its token from a header or a query parameter, not %s", a.Type, sources[0].Expr)
	case a.Type == AuthorizerToken && len(sources) == 1 && sources[0].Kind != auth.FromHeader:
		v.add(key+".identitySource", "a token authorizer reads one header (method.request.header.NAME), not %s", sources[0].Expr)
	}

	switch a.Type {
	case AuthorizerRequest, AuthorizerToken:
		if a.URI == "" {
			v.add(key+".uri", "a %s authorizer needs a uri", a.Type)
		} else if reason := checkURL(a.URI); reason != "" {
			v.add(key+".uri", "%s", reason)
		}
		if e := a.IdentityValidationExpression; e != "" {
			if _, err := regexp.Compile(e); err != nil {
				v.add(key+".identityValidationExpression", "not a regular expression: %v", err)
			}
		}
	case AuthorizerJWT:
		if a.Issuer == "" {
			v.add(key+".issuer", "a jwt authorizer needs an issuer (the tokens' iss)")
		} else if reason := checkURL(a.Issuer); reason != "" {
			v.add(key+".issuer", "%s", reason)
		}
		if len(a.Audience) == 0 {
			v.add(key+".audience", "a jwt authorizer needs at least one audience (the tokens' aud or client_id)")
		}
		if a.JWKSURI != "" {
			if reason := checkURL(a.JWKSURI); reason != "" {
				v.add(key+".jwksUri", "%s", reason)
			}
		}
		if _, err := a.SecretValue(); err != nil {
			v.add(key+".secret", "%v", err)
		}
	case AuthorizerCognito:
		if len(a.ProviderARNs) == 0 {
			v.add(key+".providerArns", "a cognito authorizer needs the ARN of at least one user pool")
		}
		for i, arn := range a.ProviderARNs {
			if _, ok := ParseUserPoolARN(arn); !ok {
				v.add(itemPath(key+".providerArns", i), "%q is not a user pool ARN (arn:aws:cognito-idp:REGION:ACCOUNT:userpool/POOL_ID)", arn)
			}
		}
		if a.IssuerURL != "" {
			if reason := checkURL(a.IssuerURL); reason != "" {
				v.add(key+".issuerUrl", "%s", reason)
			}
		}
	}
}

// authorizationTypes maps each authorizationType to the authorizer
// types it may name ("" for none).
var authorizationTypes = map[string][]string{
	AuthNone:    nil,
	AuthCustom:  {AuthorizerRequest, AuthorizerToken},
	AuthJWT:     {AuthorizerJWT},
	AuthCognito: {AuthorizerCognito},
	AuthIAM:     nil,
}

// routeAuth checks a route's authorizationType, authorizer and scopes.
func (v *validator) routeAuth(key, rk string, r Route, a *API) {
	wants, known := authorizationTypes[r.AuthorizationType]
	if !known {
		v.add(key+".authorizationType", "unknown authorization type %q (want NONE, CUSTOM, JWT, COGNITO_USER_POOLS or AWS_IAM)", r.AuthorizationType)
		return
	}
	if rk != routeConnect {
		switch {
		case r.AuthorizationType != AuthNone:
			v.add(key+".authorizationType", "only $connect may have an authorizer in a WebSocket API (AWS's rule); the connection's later messages are covered by it")
		case r.Authorizer != "":
			v.add(key+".authorizer", "only $connect may have an authorizer in a WebSocket API (AWS's rule)")
		case len(r.AuthorizationScopes) > 0:
			v.add(key+".authorizationScopes", "only $connect may have authorization scopes in a WebSocket API")
		}
		return
	}
	v.routeAuthorizer(key, r, a, wants)
}

func authorizerNames(a *API) string {
	if len(a.Authorizers) == 0 {
		return "none"
	}
	names := make([]string, 0, len(a.Authorizers))
	for n := range a.Authorizers {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// Problem is a problem with key found after loading (by the code that
// builds the gateway): it carries the file and the line of key like
// every problem of Validate, and wraps ErrInvalid.
func (f *File) Problem(key, format string, args ...any) error {
	v := &validator{f: f}
	v.add(key, format, args...)
	return v.probs[0]
}
