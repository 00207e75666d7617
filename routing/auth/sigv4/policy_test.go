package sigv4

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/portico-gateway/portico/routing/auth"
)

func TestAuthorizerPolicy(t *testing.T) {
	v := newVerifier(t,
		Key{AccessKeyID: testKey, SecretAccessKey: testSecret, Allow: []Grant{
			{API: "chat", Stage: "prod", Actions: []string{ActionPost, ActionGet}},
			{API: "chat", Stage: "dev", Actions: []string{ActionInvoke}, Routes: []string{"$connect"}},
		}},
		Key{AccessKeyID: "AKIDADMIN", SecretAccessKey: "admin-secret"},
	)
	var a auth.Authorizer = NewAuthorizer(v)
	try := func(key, secret, api, stage, route, action string) error {
		req := post("x")
		sign(t, req, "x", key, secret, testRegion, Service, t0)
		r := toAuth(t, req, "x")
		r.API, r.APIID, r.Stage, r.RouteKey, r.Action = api, "abcdefghij", stage, route, action
		id, err := a.Authorize(context.Background(), r)
		if err == nil && id.AccessKeyID != key {
			t.Errorf("identity %+v, want access key %s", id, key)
		}
		return err
	}
	for _, tc := range []struct {
		key, secret, api, stage, route, action string
		allowed                                bool
	}{
		{testKey, testSecret, "chat", "prod", "@connections", ActionPost, true},
		{testKey, testSecret, "chat", "prod", "@connections", ActionGet, true},
		{testKey, testSecret, "chat", "prod", "@connections", ActionDelete, false},
		{testKey, testSecret, "chat", "staging", "@connections", ActionPost, false},
		{testKey, testSecret, "other", "prod", "@connections", ActionPost, false},
		{testKey, testSecret, "", "prod", "@connections", ActionPost, false}, // API unknown: no grant naming one matches
		{testKey, testSecret, "chat", "dev", "$connect", "", true},
		{testKey, testSecret, "chat", "dev", "sendmessage", "", false},
		{testKey, testSecret, "", "", "/metrics", ActionAdmin, false},
		{"AKIDADMIN", "admin-secret", "any", "thing", "@connections", ActionDelete, true},
		{"AKIDADMIN", "admin-secret", "", "", "/metrics", ActionAdmin, true},
	} {
		err := try(tc.key, tc.secret, tc.api, tc.stage, tc.route, tc.action)
		if tc.allowed && err != nil {
			t.Errorf("%+v: %v, want allowed", tc, err)
		}
		if !tc.allowed {
			var ae *auth.Error
			if !errors.Is(err, ErrNotAllowed) || !errors.As(err, &ae) || ae.Type != TypeForbidden {
				t.Errorf("%+v: %v, want ForbiddenException (ErrNotAllowed)", tc, err)
			}
		}
	}
	// A bad signature is refused before the policy is looked at.
	if err := try(testKey, "wrong", "chat", "prod", "@connections", ActionPost); !errors.Is(err, ErrSignatureMismatch) {
		t.Errorf("wrong secret: %v", err)
	}
	// The refusal names the action and the resource as AWS does.
	err := try(testKey, testSecret, "chat", "prod", "@connections", ActionDelete)
	var ae *auth.Error
	errors.As(err, &ae)
	if want := "User: AKIDPORTICO is not authorized to perform: execute-api:ManageConnections on resource: arn:aws:execute-api:us-east-1:*:abcdefghij/prod/POST/@connections/R0oXAdfD0kwCH6w="; ae == nil || ae.Message != want {
		t.Errorf("message %q, want %q", ae.Message, want)
	}
}

func TestNewRefusesBadKeys(t *testing.T) {
	for _, keys := range [][]Key{
		{{AccessKeyID: "", SecretAccessKey: "s"}},
		{{AccessKeyID: "a/b", SecretAccessKey: "s"}},
		{{AccessKeyID: "a", SecretAccessKey: ""}},
		{{AccessKeyID: "a", SecretAccessKey: "s"}, {AccessKeyID: "a", SecretAccessKey: "t"}},
		{{AccessKeyID: "a", SecretAccessKey: "s", Allow: []Grant{{Actions: []string{"put"}}}}},
	} {
		if _, err := New(Options{Region: testRegion, Keys: keys}); err == nil {
			t.Errorf("New(%+v) succeeded", keys)
		}
	}
	if _, err := New(Options{Keys: []Key{{AccessKeyID: "a", SecretAccessKey: "s"}}}); err == nil {
		t.Error("New without a region succeeded")
	}
}

// A verifier without keys refuses everything: unsigned requests as
// missing authentication, signed ones as an unknown key.
func TestNoKeysRefusesEverything(t *testing.T) {
	v, err := New(Options{Region: testRegion})
	if err != nil {
		t.Fatal(err)
	}
	unsigned := &auth.Request{Method: "POST", Path: "/prod/@connections/x", Host: "gw", Header: http.Header{}}
	if _, err := v.Verify(context.Background(), unsigned); !errors.Is(err, ErrMissingAuthentication) {
		t.Errorf("unsigned: %v, want ErrMissingAuthentication", err)
	}
	now := time.Now().UTC()
	signed := *unsigned
	signed.Header = http.Header{"Authorization": {"AWS4-HMAC-SHA256 Credential=AKIDX/" + now.Format("20060102") + "/" + testRegion +
		"/execute-api/aws4_request, SignedHeaders=host;x-amz-date, Signature=" + strings.Repeat("0", 64)},
		"X-Amz-Date": {now.Format("20060102T150405Z")}}
	if _, err := v.Verify(context.Background(), &signed); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("signed with a key it does not have: %v, want ErrUnknownKey", err)
	}
}
