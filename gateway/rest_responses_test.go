package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// responseCase is one way to make a REST API answer with a gateway
// response, and AWS's default answer.
type responseCase struct {
	typ    string
	do     func(base string) (*http.Response, string)
	status int
	body   string
}

// restResponsesAPI starts a REST API able to give every gateway response
// the cases name, with gatewayResponses (YAML under the API) added.
func restResponsesAPI(t *testing.T, gatewayResponses string) (base string, cases []responseCase, orders *atomic.Int32) {
	t.Helper()
	t.Setenv("PORTICO_TEST_PARTNER_KEY", testKey)
	t.Setenv("PORTICO_TEST_IAM_SECRET", iamSecret)
	authz := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		switch {
		case strings.Contains(string(b), `"deny"`):
			_, _ = io.WriteString(w, `{"principalId":"u","policyDocument":{"Version":"2012-10-17","Statement":[{"Action":"execute-api:Invoke","Effect":"Deny","Resource":"*"}]}}`)
		default:
			_, _ = io.WriteString(w, `[1, 2]`) // neither a policy nor a simple answer
		}
	}))
	t.Cleanup(authz.Close)
	orders = &atomic.Int32{}
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // net/http notices a client gone only once the body is read
		switch r.URL.Path {
		case "/orders":
			orders.Add(1)
			_, _ = io.WriteString(w, `{"statusCode":201,"body":"created"}`)
		case "/slow":
			<-r.Context().Done()
		case "/garbage":
			_, _ = io.WriteString(w, `not a proxy result`)
		case "/badb64":
			_, _ = io.WriteString(w, `{"statusCode":200,"isBase64Encoded":true,"body":"!!not base64!!"}`)
		}
	}))
	t.Cleanup(be.Close)
	down, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downURL := "http://" + down.Addr().String()
	down.Close()

	extra := `limits: {maxRequestBytes: 1000}
authorizers:
  lambda: {type: request, uri: "` + authz.URL + `", identitySource: [method.request.header.Authorization], resultTtl: 0s}
  down: {type: request, uri: "` + downURL + `", identitySource: [method.request.header.Authorization], resultTtl: 0s}
models:
  Order:
    $schema: "http://json-schema.org/draft-04/schema#"
    type: object
    required: [item]
    properties:
      item: {type: string}
      quantity: {type: integer, minimum: 1}
requestValidators:
  all: {validateRequestBody: true, validateRequestParameters: true}
` + gatewayResponses
	stages := `- name: prod
  routeSettings:
    GET /throttled: {throttlingRateLimit: 1, throttlingBurstLimit: 1}
`
	routes := `POST /orders:
  requestValidator: all
  requestModels: {application/json: Order}
  requestParameters: {method.request.header.x-client-id: true, method.request.querystring.dryRun: false}
  integration: {type: http, uri: "` + be.URL + `/orders"}
GET /lambda:
  authorizationType: CUSTOM
  authorizer: lambda
  integration: {type: mock}
GET /authdown:
  authorizationType: CUSTOM
  authorizer: down
  integration: {type: mock}
GET /keyed:
  apiKeyRequired: true
  integration: {type: mock}
GET /throttled:
  integration: {type: mock}
GET /slow:
  integration: {type: http, uri: "` + be.URL + `/slow", timeout: 100ms}
GET /garbage:
  integration: {type: http, uri: "` + be.URL + `/garbage"}
GET /badb64:
  integration: {type: http, uri: "` + be.URL + `/badb64"}
POST /iam:
  authorizationType: AWS_IAM
  integration: {type: mock}
`
	yml := strings.ReplaceAll(iamManagement, "api: t, stage: test", "api: pets") +
		strings.ReplaceAll(planYAML, "api: t, stage: test", "api: pets, stage: prod") + httpAPI("rest", extra, stages, routes)
	clk := newTestClock(time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC))
	g := startGateway(t, yml, WithClock(clk.now))
	base = apiURL(g) + "/prod"

	get := func(path string, h http.Header) func(string) (*http.Response, string) {
		return func(base string) (*http.Response, string) { return call(t, "GET", base+path, "", h) }
	}
	order := func(body string, h http.Header) func(string) (*http.Response, string) {
		return func(base string) (*http.Response, string) {
			h = h.Clone()
			if h == nil {
				h = http.Header{}
			}
			h.Set("Content-Type", "application/json")
			return call(t, "POST", base+"/orders", body, h)
		}
	}
	sign := func(secret string) func(string) (*http.Response, string) {
		return func(base string) (*http.Response, string) {
			req, _ := http.NewRequest("POST", base+"/iam", strings.NewReader("x"))
			sum := sha256.Sum256([]byte("x"))
			creds := aws.Credentials{AccessKeyID: "AKIDPORTICO", SecretAccessKey: secret}
			if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "execute-api", "us-east-1", time.Now()); err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp, string(b)
		}
	}
	twice := func(path string, h http.Header, first int) func(string) (*http.Response, string) {
		return func(base string) (*http.Response, string) {
			for i := range first {
				if resp, body := call(t, "GET", base+path, "", h); resp.StatusCode != 200 {
					t.Fatalf("GET %s, call %d within the limits: %d %s", path, i, resp.StatusCode, body)
				}
			}
			return call(t, "GET", base+path, "", h)
		}
	}
	client := http.Header{"X-Client-Id": {"c-1"}}
	cases = []responseCase{
		{"MISSING_AUTHENTICATION_TOKEN", get("/nothing", nil), 403, `{"message":"Missing Authentication Token"}`},
		{"REQUEST_TOO_LARGE", order(strings.Repeat("x", 1001), client), 413, `{"message":"Request Too Long"}`},
		{"UNAUTHORIZED", get("/lambda", nil), 401, `{"message":"Unauthorized"}`},
		{"ACCESS_DENIED", get("/lambda", http.Header{"Authorization": {"deny"}}), 403, `{"Message":"User is not authorized to access this resource with an explicit deny"}`},
		{"AUTHORIZER_FAILURE", get("/lambda", http.Header{"Authorization": {"garbage"}}), 500, `{"message":null}`},
		{"AUTHORIZER_CONFIGURATION_ERROR", get("/authdown", http.Header{"Authorization": {"x"}}), 500, `{"message":null}`},
		{"INVALID_API_KEY", get("/keyed", nil), 403, `{"message":"Forbidden"}`},
		{"QUOTA_EXCEEDED", twice("/keyed", http.Header{"X-Api-Key": {testKey}}, 4), 429, `{"message":"Limit Exceeded"}`},
		{"THROTTLED", twice("/throttled", nil, 1), 429, `{"message":"Too Many Requests"}`},
		{"BAD_REQUEST_PARAMETERS", order(`{"item":"tea"}`, nil), 400, `{"message": "Missing required request parameters: [x-client-id]"}`},
		{"BAD_REQUEST_BODY", order(`{"item":"tea","quantity":0}`, client), 400, `{"message": "Invalid request body"}`},
		{"INTEGRATION_TIMEOUT", get("/slow", nil), 504, `{"message": "Endpoint request timed out"}`},
		{"INTEGRATION_FAILURE", get("/garbage", nil), 502, `{"message": "Internal server error"}`},
		{"API_CONFIGURATION_ERROR", get("/badb64", nil), 500, `{"message": "Internal server error"}`},
		{"MISSING_AUTHENTICATION_TOKEN", func(base string) (*http.Response, string) { return call(t, "POST", base+"/iam", "x", nil) }, 403, `{"message":"Missing Authentication Token"}`},
		{"INVALID_SIGNATURE", sign("wrong"), 403, `{"message":"` + iamMismatch + `"}`},
	}
	return base, cases, orders
}

// Every gateway response a REST API gives, with AWS's default status
// and body, none of them calling the backend; a valid request passes.
func TestRESTGatewayResponsesDefaults(t *testing.T) {
	base, cases, orders := restResponsesAPI(t, "")
	for _, c := range cases {
		resp, body := c.do(base)
		if resp.StatusCode != c.status || body != c.body || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: %d %q (%s), want %d %q", c.typ, resp.StatusCode, body, resp.Header.Get("Content-Type"), c.status, c.body)
		}
	}
	if n := orders.Load(); n != 0 {
		t.Errorf("the backend got %d refused orders", n)
	}
	resp, body := call(t, "POST", base+"/orders", `{"item":"tea","quantity":2}`, http.Header{"X-Client-Id": {"c-1"}, "Content-Type": {"application/json"}})
	if resp.StatusCode != 201 || body != "created" || orders.Load() != 1 {
		t.Errorf("a valid order: %d %q (backend calls %d)", resp.StatusCode, body, orders.Load())
	}
	// No Content-Type is application/json, as AWS takes it.
	resp, body = call(t, "POST", base+"/orders", `{"quantity":2}`, http.Header{"X-Client-Id": {"c-1"}})
	if resp.StatusCode != 400 || body != `{"message": "Invalid request body"}` {
		t.Errorf("an order without a Content-Type and without item: %d %q", resp.StatusCode, body)
	}
	resp, _ = call(t, "POST", base+"/orders", `not json`, http.Header{"X-Client-Id": {"c-1"}})
	if resp.StatusCode != 400 {
		t.Errorf("a body that is not JSON: %d", resp.StatusCode)
	}
	resp, body = call(t, "POST", base+"/orders", `{"item":"tea"}`, http.Header{"X-Client-Id": {"  "}})
	if resp.StatusCode != 400 || !strings.Contains(body, "[x-client-id]") {
		t.Errorf("a blank required header: %d %q", resp.StatusCode, body)
	}
}

// Every gateway response overridden: status, headers (static and from
// the request) and a body template with $context values.
func TestRESTGatewayResponsesOverridden(t *testing.T) {
	types := []string{"MISSING_AUTHENTICATION_TOKEN", "REQUEST_TOO_LARGE", "UNAUTHORIZED", "ACCESS_DENIED", "AUTHORIZER_FAILURE",
		"AUTHORIZER_CONFIGURATION_ERROR", "INVALID_API_KEY", "QUOTA_EXCEEDED", "THROTTLED", "BAD_REQUEST_PARAMETERS",
		"BAD_REQUEST_BODY", "INTEGRATION_TIMEOUT", "INTEGRATION_FAILURE", "API_CONFIGURATION_ERROR", "INVALID_SIGNATURE"}
	var gr strings.Builder
	gr.WriteString("gatewayResponses:\n")
	for _, typ := range types {
		status := ""
		if typ == "BAD_REQUEST_BODY" {
			status = "statusCode: 422, "
		}
		fmt.Fprintf(&gr, "  %s: {%sresponseParameters: {gatewayresponse.header.X-Type: \"'%s'\", gatewayresponse.header.X-Client: method.request.header.x-client-id}, "+
			"headers: {Cache-Control: no-store}, "+
			`responseTemplates: {application/json: '{"type":"$context.error.responseType","message":$context.error.messageString,"id":"$context.requestId","stage":"$context.stage","method":"$context.httpMethod","path":"$context.path","detail":"$context.error.validationErrorString"}'}}`+"\n", typ, status, typ)
	}
	base, cases, _ := restResponsesAPI(t, gr.String())
	for _, c := range cases {
		resp, body := c.do(base)
		want := c.status
		if c.typ == "BAD_REQUEST_BODY" {
			want = 422
		}
		var got struct{ Type, Message, ID, Stage, Method, Path, Detail string }
		err := json.Unmarshal([]byte(body), &got)
		if resp.StatusCode != want || err != nil || got.Type != c.typ || got.ID != resp.Header.Get("X-Amzn-Requestid") || got.Stage != "prod" ||
			got.Method != resp.Request.Method || got.Path != resp.Request.URL.Path || resp.Header.Get("X-Type") != c.typ ||
			resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: %d %s %v (%v)", c.typ, resp.StatusCode, body, resp.Header, err)
		}
		if c.typ == "BAD_REQUEST_BODY" && (got.Message != "Invalid request body" || !strings.Contains(got.Detail, "quantity") || resp.Header.Get("X-Client") != "c-1") {
			t.Errorf("BAD_REQUEST_BODY: message %q, detail %q, X-Client %q", got.Message, got.Detail, resp.Header.Get("X-Client"))
		}
		if c.typ == "BAD_REQUEST_PARAMETERS" && got.Message != "Missing required request parameters: [x-client-id]" {
			t.Errorf("BAD_REQUEST_PARAMETERS: message %q", got.Message)
		}
	}
}

// DEFAULT_4XX and DEFAULT_5XX stand for every type of their class without
// its own: their status replaces the type's, their body is used.
func TestRESTGatewayResponsesFallback(t *testing.T) {
	base, cases, _ := restResponsesAPI(t, `gatewayResponses:
  DEFAULT_4XX:
    responseParameters: {gatewayresponse.header.Access-Control-Allow-Origin: "'*'"}
    responseTemplates: {application/json: '{"class":"4xx","type":"$context.error.responseType"}'}
  DEFAULT_5XX:
    statusCode: 503
    responseTemplates: {application/json: '{"class":"5xx","type":"$context.error.responseType"}', text/plain: 'failed: $context.error.message'}
  UNAUTHORIZED:
    statusCode: 407
`)
	for _, c := range cases {
		resp, body := c.do(base)
		switch {
		case c.typ == "UNAUTHORIZED":
			if resp.StatusCode != 407 || body != c.body || resp.Header.Get("Access-Control-Allow-Origin") != "" {
				t.Errorf("UNAUTHORIZED, its own: %d %q %v", resp.StatusCode, body, resp.Header)
			}
		case c.status >= 500:
			if resp.StatusCode != 503 || body != `{"class":"5xx","type":"`+c.typ+`"}` {
				t.Errorf("%s through DEFAULT_5XX: %d %q", c.typ, resp.StatusCode, body)
			}
		default:
			if resp.StatusCode != c.status || body != `{"class":"4xx","type":"`+c.typ+`"}` || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
				t.Errorf("%s through DEFAULT_4XX: %d %q %v", c.typ, resp.StatusCode, body, resp.Header)
			}
		}
	}
	resp, body := call(t, "GET", base+"/garbage", "", http.Header{"Accept": {"text/plain"}})
	if resp.StatusCode != 503 || body != "failed: Internal server error" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Errorf("the template for Accept: %d %q %s", resp.StatusCode, body, resp.Header.Get("Content-Type"))
	}
}

// Binary bodies: a REST API base64-encodes a body whose Content-Type is
// one of binaryMediaTypes, an HTTP API every body that is not text; a
// result with isBase64Encoded reaches the client decoded.
func TestRESTBinaryMediaTypes(t *testing.T) {
	png := []byte("\x89PNG\r\n\x1a\n-bytes")
	be := newLambdaBackend(t, func([]byte) string {
		return `{"statusCode":200,"headers":{"Content-Type":"image/png"},"isBase64Encoded":true,"body":"` + b64(png) + `"}`
	})
	route := "POST /up:\n  integration: {type: http, uri: \"" + be.URL + "\"}\n"
	for _, c := range []struct {
		proto, extra, contentType, body string
		b64                             bool
	}{
		{"rest", "binaryMediaTypes: [image/png, application/octet-stream]\n", "image/png", "text-looking bytes", true},
		{"rest", "binaryMediaTypes: [image/*]\n", "image/gif", "gif", true},
		{"rest", "binaryMediaTypes: [image/png]\n", "application/json", `{"a":1}`, false},
		{"rest", "binaryMediaTypes: [\"*/*\"]\n", "application/json", `{"a":1}`, true},
		{"rest", "", "application/octet-stream", "plain", false},
		{"http", "", "application/octet-stream", "plain", true},
		{"http", "", "application/json; charset=utf-8", `{"a":1}`, false},
		{"http", "", "text/plain", "hello", false},
		{"http", "", "", "hello", false},
	} {
		g := startGateway(t, httpAPI(c.proto, c.extra, "- name: v1\n", route))
		h := http.Header{}
		if c.contentType != "" {
			h.Set("Content-Type", c.contentType)
		}
		resp, body := call(t, "POST", apiURL(g)+"/v1/up", c.body, h)
		if resp.StatusCode != 200 || body != string(png) || resp.Header.Get("Content-Type") != "image/png" {
			t.Errorf("%s %s: answer %d %q", c.proto, c.contentType, resp.StatusCode, body)
		}
		var ev struct {
			Body            string `json:"body"`
			IsBase64Encoded bool   `json:"isBase64Encoded"`
		}
		if err := json.Unmarshal(be.last(t), &ev); err != nil {
			t.Fatal(err)
		}
		want := c.body
		if c.b64 {
			want = b64([]byte(c.body))
		}
		if ev.IsBase64Encoded != c.b64 || ev.Body != want {
			t.Errorf("%s %s %s: event body %q isBase64Encoded %v", c.proto, c.extra, c.contentType, ev.Body, ev.IsBase64Encoded)
		}
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
