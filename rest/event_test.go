package rest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/portico-gateway/portico/routing/auth"
	"github.com/portico-gateway/portico/routing/integration"
)

// capture is a backend standing for a Lambda function: it keeps the
// last event and answers a fixed result.
type capture struct {
	mu   sync.Mutex
	last []byte
}

func (c *capture) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	c.last = b
	c.mu.Unlock()
	_, _ = io.WriteString(w, `{"statusCode":200,"body":"ok"}`)
}

func (c *capture) event(t *testing.T) map[string]any {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	var m map[string]any
	if err := json.Unmarshal(c.last, &m); err != nil {
		t.Fatalf("event %s: %v", c.last, err)
	}
	return m
}

// serve starts a Handler for api behind an httptest server.
func serve(t *testing.T, api *API) string {
	t.Helper()
	h, err := New(Options{API: api})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// dataKeys are objects whose keys are data (header names, parameters,
// claims), not part of the shape.
var dataKeys = []string{"headers", "multiValueHeaders", "queryStringParameters", "multiValueQueryStringParameters",
	"pathParameters", "stageVariables", "claims", "authorizer"}

// sameShape compares got with AWS's want: the same keys (but for those
// listed in absent, which want has and Portico does not send, and extra,
// which Portico sends and want lacks), each of the same JSON type (null
// standing for a string AWS had nothing to say about).
func sameShape(t *testing.T, path string, got, want any, absent, extra []string) {
	t.Helper()
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			t.Errorf("%s: %T, want an object", path, got)
			return
		}
		data := slices.Contains(dataKeys, path[strings.LastIndexByte(path, '.')+1:])
		if data {
			return // the client's own names: compared in the end-to-end tests
		}
		for k, wv := range w {
			p := path + "." + k
			gv, ok := g[k]
			if !ok {
				if !slices.Contains(absent, p) {
					t.Errorf("%s: missing (AWS sends it)", p)
				}
				continue
			}
			sameShape(t, p, gv, wv, absent, extra)
		}
		for k := range g {
			if _, ok := w[k]; !ok && !slices.Contains(extra, path+"."+k) {
				t.Errorf("%s.%s: sent, but AWS's example has no such key", path, k)
			}
		}
	case []any:
		g, ok := got.([]any)
		if !ok {
			t.Errorf("%s: %T, want a list", path, got)
			return
		}
		if len(w) > 0 && len(g) > 0 {
			sameShape(t, path+"[0]", g[0], w[0], absent, extra)
		}
	case nil:
	default:
		if got == nil {
			if _, isString := want.(string); isString {
				return
			}
		}
		if fmt.Sprintf("%T", got) != fmt.Sprintf("%T", want) {
			t.Errorf("%s: %T %v, want a %T such as %v", path, got, got, want, want)
		}
	}
}

// TestAWSExampleEvents replays AWS's documented events: what Portico
// sends for the same request has the same keys and shapes (ids, times
// and the client's values differ).
func TestAWSExampleEvents(t *testing.T) {
	be := &capture{}
	backend := httptest.NewServer(be)
	t.Cleanup(backend.Close)
	j, err := auth.NewJWT(auth.JWTOptions{Name: "jwt", Type: auth.TypeJWT, Issuer: "https://issuer.example/", Audience: []string{"app"},
		Source: auth.Source{Kind: auth.FromHeader, Name: "Authorization", Expr: "$request.header.Authorization"}, Secret: []byte("s3cret")})
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": "https://issuer.example/", "aud": "app", "sub": "u-1",
		"exp": time.Now().Add(time.Hour).Unix(), "cognito:groups": []string{"admin", "users"}, "scope": "pets/read"}).SignedString([]byte("s3cret"))

	// Payload 2.0: the facts file's example (an HTTP API's JWT route).
	u := serve(t, &API{Name: "pets", ID: "q1w2e3r4t5", Protocol: ProtocolHTTP, AccountID: "111122223333",
		Stages: []Stage{{Name: "dev", Variables: map[string]string{"env": "dev"}}},
		Routes: map[string]Route{"GET /pets/{id}": {Authorizer: j.WithScopes([]string{"pets/read"}),
			Integration: &integration.Spec{Type: "http", URI: backend.URL, Timeout: time.Second}}}})
	req, _ := http.NewRequest("GET", u+"/dev/pets/7?a=1&a=2&b=x", nil)
	req.Header.Set("Cookie", "sid=abc; theme=dark")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET: %v %v", resp, err)
	}
	resp.Body.Close()
	var want map[string]any
	raw, err := os.ReadFile("testdata/aws-v2-example.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	got := be.event(t)
	sameShape(t, "$", got, want, nil, nil)
	if c := got["requestContext"].(map[string]any)["authorizer"].(map[string]any)["jwt"].(map[string]any)["claims"].(map[string]any); c["cognito:groups"] != "[admin users]" {
		t.Errorf("a list claim: %v, want AWS's \"[admin users]\"", c["cognito:groups"])
	}

	// Payload 1.0 (REST): aws-lambda-go's fixture of a real REST event.
	dir, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/aws/aws-lambda-go").Output()
	if err != nil {
		t.Fatalf("finding aws-lambda-go's fixtures: %v", err)
	}
	raw, err = os.ReadFile(filepath.Join(strings.TrimSpace(string(dir)), "events", "testdata", "apigw-request.json"))
	if err != nil {
		t.Fatal(err)
	}
	want = nil
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	u = serve(t, &API{Name: "hello", ID: "gy415nuibc", Protocol: ProtocolREST, AccountID: "123456789012",
		Stages: []Stage{{Name: "testStage", Variables: map[string]string{"stageVariableName": "stageVariableValue"}}},
		Routes: map[string]Route{"ANY /{proxy+}": {Authorizer: lambdaAuthorizer(t),
			Integration: &integration.Spec{Type: "http", URI: backend.URL, Timeout: time.Second}}}})
	req, _ = http.NewRequest("POST", u+"/testStage/hello/world?name=me", strings.NewReader(`{"a": 1}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST: %v %v", resp, err)
	}
	resp.Body.Close()
	got = be.event(t)
	// mTLS is not supported (clientCert); AWS's fixture predates
	// isBase64Encoded and principalOrgId in REST events.
	sameShape(t, "$", got, want, []string{"$.requestContext.identity.clientCert"},
		[]string{"$.isBase64Encoded", "$.requestContext.identity.principalOrgId"})
	rc := got["requestContext"].(map[string]any)
	if rc["resourcePath"] != "/{proxy+}" || rc["path"] != "/testStage/hello/world" || got["path"] != "/hello/world" ||
		got["pathParameters"].(map[string]any)["proxy"] != "hello/world" || rc["authorizer"].(map[string]any)["principalId"] != "admin" {
		t.Errorf("REST event: %v", got)
	}
	keys := make([]string, 0, len(rc["authorizer"].(map[string]any)))
	for k := range rc["authorizer"].(map[string]any) {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if strings.Join(keys, ",") != "clientId,integrationLatency,principalId" {
		t.Errorf("REST authorizer keys %v", keys)
	}
}

// lambdaAuthorizer is a REQUEST authorizer served over HTTP that allows
// everything as principal admin.
func lambdaAuthorizer(t *testing.T) auth.Authorizer {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev struct{ MethodArn string }
		_ = json.NewDecoder(r.Body).Decode(&ev)
		_, _ = fmt.Fprintf(w, `{"principalId":"admin","policyDocument":{"Version":"2012-10-17","Statement":[{"Action":"execute-api:Invoke","Effect":"Allow","Resource":%q}]},"context":{"clientId":1}}`, ev.MethodArn)
	}))
	t.Cleanup(srv.Close)
	src, _ := auth.ParseSource("context.requestId")
	l, err := auth.NewLambda(auth.LambdaOptions{Name: "lambda", Type: auth.TypeRequest, URI: srv.URL, Sources: []auth.Source{src}})
	if err != nil {
		t.Fatal(err)
	}
	return l
}
