package config

import (
	"strings"
	"testing"
)

// withAuth is base with authorizers (API-level YAML) and a $connect route
// (route-level YAML) added.
func withAuth(authorizers, connect string) string {
	y := base
	if authorizers != "" {
		y = beforeStages("    authorizers:\n" + authorizers)
	}
	if connect != "" {
		y = strings.Replace(y, "    routes:\n", "    routes:\n      $connect:\n"+connect, 1)
	}
	return y
}

const goodRequest = "      tokens:\n        type: request\n        uri: http://127.0.0.1:1/authorize\n        identitySource: [route.request.header.Authorization]\n"

func TestAuthorizerErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown authorizer name", withAuth(goodRequest, "        authorizationType: CUSTOM\n        authorizer: nope\n"),
			`apis[0].routes.$connect.authorizer: unknown authorizer "nope" (the API's authorizers: tokens)`},
		{"jwt without issuer", withAuth("      oidc:\n        type: jwt\n        audience: [x]\n", ""),
			`bad.yaml:4: apis[0].authorizers.oidc.issuer: a jwt authorizer needs an issuer`},
		{"jwt without audience", withAuth("      oidc:\n        type: jwt\n        issuer: https://id.example.com/\n", ""),
			`apis[0].authorizers.oidc.audience: a jwt authorizer needs at least one audience`},
		{"CUSTOM naming a jwt authorizer", withAuth("      oidc:\n        type: jwt\n        issuer: https://id.example.com/\n        audience: [x]\n",
			"        authorizationType: CUSTOM\n        authorizer: oidc\n"),
			`apis[0].routes.$connect.authorizer: authorizationType CUSTOM needs a request or token authorizer, but "oidc" is a jwt authorizer`},
		{"bad regex", withAuth("      b:\n        type: token\n        uri: http://127.0.0.1:1/\n        identityValidationExpression: \"^(Bearer\"\n", ""),
			`bad.yaml:7: apis[0].authorizers.b.identityValidationExpression: not a regular expression`},
		{"bad identity source", withAuth("      tokens:\n        type: request\n        uri: http://127.0.0.1:1/\n        identitySource: [request.header.Authorization]\n", ""),
			`bad.yaml:7: apis[0].authorizers.tokens.identitySource[0]: bad identity source: "request.header.Authorization"`},
		{"request without identity source", withAuth("      tokens:\n        type: request\n        uri: http://127.0.0.1:1/\n", ""),
			`apis[0].authorizers.tokens.identitySource: a request authorizer needs at least one identity source`},
		{"authorizer on a message route", strings.Replace(withAuth(goodRequest, ""), "      $default:\n", "      $default:\n        authorizationType: CUSTOM\n        authorizer: tokens\n", 1),
			`apis[0].routes.$default.authorizationType: only $connect may have an authorizer in a WebSocket API`},
		{"unknown authorization type", withAuth(goodRequest, "        authorizationType: LAMBDA\n"),
			`apis[0].routes.$connect.authorizationType: unknown authorization type "LAMBDA"`},
		{"scopes on CUSTOM", withAuth(goodRequest, "        authorizationType: CUSTOM\n        authorizer: tokens\n        authorizationScopes: [a]\n"),
			`apis[0].routes.$connect.authorizationScopes: only JWT and COGNITO_USER_POOLS routes check scopes`},
		{"CUSTOM without authorizer", withAuth(goodRequest, "        authorizationType: CUSTOM\n"),
			`apis[0].routes.$connect.authorizer: authorizationType CUSTOM needs the name`},
		{"unknown type", withAuth("      x:\n        type: lambda\n", ""),
			`bad.yaml:5: apis[0].authorizers.x.type: unknown authorizer type "lambda"`},
		{"bad pool ARN", withAuth("      pool:\n        type: cognito\n        providerArns: [us-east-1_Example]\n", ""),
			`apis[0].authorizers.pool.providerArns[0]: "us-east-1_Example" is not a user pool ARN`},
		{"literal secret", withAuth("      oidc:\n        type: jwt\n        issuer: https://id.example.com/\n        audience: [x]\n        secret: hunter2\n", ""),
			`apis[0].authorizers.oidc.secret: want ${ENV_NAME} or file:PATH`},
		{"unset secret variable", withAuth("      oidc:\n        type: jwt\n        issuer: https://id.example.com/\n        audience: [x]\n        secret: ${PORTICO_TEST_UNSET_SECRET}\n", ""),
			`apis[0].authorizers.oidc.secret: the environment variable PORTICO_TEST_UNSET_SECRET is not set or empty`},
		{"uri on jwt", withAuth("      oidc:\n        type: jwt\n        issuer: https://id.example.com/\n        audience: [x]\n        uri: http://x/\n", ""),
			`apis[0].authorizers.oidc.uri: only request and token authorizers have uri`},
		{"two identity sources on token", withAuth("      b:\n        type: token\n        uri: http://127.0.0.1:1/\n        identitySource: [method.request.header.A, method.request.header.B]\n", ""),
			`apis[0].authorizers.b.identitySource: a token authorizer takes exactly one identity source, got 2`},
		{"resultTtl over 1h", withAuth("      tokens:\n        type: request\n        uri: http://127.0.0.1:1/\n        identitySource: [route.request.querystring.t]\n        resultTtl: 2h\n", ""),
			`apis[0].authorizers.tokens.resultTtl: want 0s (no cache) to 1h, got 2h0m0s`},
		{"tokenCacheTtl over 1h", withAuth("      oidc:\n        type: jwt\n        issuer: https://id.example.com/\n        audience: [x]\n        tokenCacheTtl: 2h\n", ""),
			`apis[0].authorizers.oidc.tokenCacheTtl: want 0s (no cache) to 1h, got 2h0m0s`},
		{"tokenCacheSize on request", withAuth("      tokens:\n        type: request\n        uri: http://127.0.0.1:1/\n        identitySource: [route.request.querystring.t]\n        tokenCacheSize: 5\n", ""),
			`apis[0].authorizers.tokens.tokenCacheSize: only jwt and cognito authorizers have tokenCacheSize`},
		{"bad region", beforeStages("    region: mars"), `bad.yaml:3: apis[0].region: "mars" is not an AWS region name`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("bad.yaml", []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v\nwant %s", err, tc.want)
			}
		})
	}
}

func TestAuthorizerDefaults(t *testing.T) {
	f, err := Parse("ok.yaml", []byte(withAuth(goodRequest+"      b:\n        type: token\n        uri: http://127.0.0.1:1/\n",
		"        authorizationType: CUSTOM\n        authorizer: tokens\n")))
	if err != nil {
		t.Fatal(err)
	}
	a := f.APIs[0]
	tok, b := a.Authorizers["tokens"], a.Authorizers["b"]
	if tok.ResultTTL == nil || tok.ResultTTL.D().Seconds() != 300 || tok.Timeout.D().Seconds() != 10 {
		t.Errorf("request defaults: %+v", tok)
	}
	if len(b.IdentitySource) != 1 || b.IdentitySource[0] != "method.request.header.Authorization" {
		t.Errorf("token identity source default: %v", b.IdentitySource)
	}
	if a.Region != "us-east-1" || a.AccountID != "123456789012" || a.Routes["$default"].AuthorizationType != AuthNone {
		t.Errorf("API defaults: %q %q %q", a.Region, a.AccountID, a.Routes["$default"].AuthorizationType)
	}
	j, err := Parse("jwt.yaml", []byte(withAuth("      oidc:\n        type: jwt\n        issuer: https://id.example.com/\n        audience: [x]\n", "")))
	if err != nil {
		t.Fatal(err)
	}
	if o := j.APIs[0].Authorizers["oidc"]; o.TokenCacheTTL == nil || o.TokenCacheTTL.D().Seconds() != 300 || o.TokenCacheSize != 10000 {
		t.Errorf("jwt token cache defaults: %+v", o)
	}
	zero := withAuth("      tokens:\n        type: request\n        uri: http://127.0.0.1:1/\n        identitySource: [route.request.querystring.t]\n        resultTtl: 0s\n", "")
	f, err = Parse("zero.yaml", []byte(zero))
	if err != nil || f.APIs[0].Authorizers["tokens"].ResultTTL.D() != 0 {
		t.Errorf("resultTtl 0s must stay 0 (no cache): %v", err)
	}
}

func TestSecretFromEnvironment(t *testing.T) {
	t.Setenv("PORTICO_TEST_JWT_SECRET", "s3cret")
	a := Authorizer{Secret: "${PORTICO_TEST_JWT_SECRET}"}
	if v, err := a.SecretValue(); err != nil || string(v) != "s3cret" {
		t.Errorf("SecretValue = %q, %v", v, err)
	}
}

func TestProblemNamesTheLine(t *testing.T) {
	f, err := Parse("iam.yaml", []byte("management:\n  credentials: [{accessKeyId: AKIDX, secretAccessKey: s}]\n"+withAuth("", "        authorizationType: AWS_IAM\n")))
	if err != nil {
		t.Fatal(err)
	}
	got := f.Problem("apis[0].routes.$connect.authorizationType", "no IAM authorizer").Error()
	if got != "iam.yaml:10: apis[0].routes.$connect.authorizationType: no IAM authorizer" {
		t.Errorf("got %q", got)
	}
}

// AWS_IAM needs keys to check signatures against.
func TestIAMNeedsCredentials(t *testing.T) {
	_, err := Parse("iam.yaml", []byte(withAuth("", "        authorizationType: AWS_IAM\n")))
	if err == nil || !strings.Contains(err.Error(), "iam.yaml:8: apis[0].routes.$connect.authorizationType: AWS_IAM checks SigV4 signatures") {
		t.Errorf("got %v", err)
	}
}
