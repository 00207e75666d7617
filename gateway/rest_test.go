package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/portico-gateway/portico/config"
)

// httpAPI is the YAML of one API of protocol proto with extra API-level
// keys, its stages and routes (indented as under apis[0]).
func httpAPI(proto, extra, stages, routes string) string {
	return "apis:\n  - name: pets\n    protocol: " + proto + "\n" + indentYAML(extra, "    ") +
		"    stages:\n" + indentYAML(stages, "      ") + "    routes:\n" + indentYAML(routes, "      ")
}

func indentYAML(s, by string) string {
	if s == "" {
		return ""
	}
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = by + l
	}
	return strings.Join(lines, "\n") + "\n"
}

// call makes one request and returns the answer with its body read.
func call(t *testing.T, method, url string, body string, h http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func apiURL(g *Gateway) string { return "http://" + g.APIAddr("pets") }

// Route matching through the gateway: parameters, greedy, ANY,
// precedence, $default, the stage prefix and the $default stage.
func TestHTTPAPIRouting(t *testing.T) {
	mock := func(body string) string {
		return "  integration: {type: mock, response: {body: '" + body + "'}}\n"
	}
	routes := "GET /pets/dog/1:\n" + mock("exact") +
		"GET /pets/dog/{id}:\n" + mock("param ${request.path.id} ${context.routeKey}") +
		"GET /pets/{proxy+}:\n" + mock("greedy ${request.path.proxy}") +
		"ANY /{proxy+}:\n" + mock("any ${context.httpMethod}") +
		"$default:\n" + mock("default ${context.stage}")
	g := startGateway(t, httpAPI("http", "", "- name: prod\n- name: $default\n", routes))
	base := apiURL(g)
	for _, c := range []struct{ method, path, want string }{
		{"GET", "/prod/pets/dog/1", "exact"},
		{"GET", "/prod/pets/dog/2", "param 2 GET /pets/dog/{id}"},
		{"GET", "/prod/pets/cat/1", "greedy cat/1"},
		{"POST", "/prod/pets/cat/1", "any POST"},
		{"GET", "/prod", "default prod"},
		{"GET", "/pets/dog/1", "exact"}, // the $default stage, at the root
		{"GET", "/", "default $default"},
	} {
		resp, body := call(t, c.method, base+c.path, "", nil)
		if resp.StatusCode != 200 || body != c.want {
			t.Errorf("%s %s: %d %q, want %q", c.method, c.path, resp.StatusCode, body, c.want)
		}
		if id := resp.Header.Get("apigw-requestid"); len(id) != 16 {
			t.Errorf("%s %s: apigw-requestid %q", c.method, c.path, id)
		}
	}

	// Without $default: AWS's 404 (HTTP) and 403 (REST).
	g = startGateway(t, httpAPI("http", "", "- name: prod\n", "GET /a:\n"+mock("a")))
	for _, p := range []string{"/prod/b", "/other/a", "/a"} {
		resp, body := call(t, "GET", apiURL(g)+p, "", nil)
		if resp.StatusCode != 404 || body != `{"message":"Not Found"}` {
			t.Errorf("HTTP API, GET %s: %d %q", p, resp.StatusCode, body)
		}
	}
	g = startGateway(t, httpAPI("rest", "", "- name: prod\n", "GET /a:\n"+mock("a")))
	resp, body := call(t, "POST", apiURL(g)+"/prod/a", "", nil)
	if resp.StatusCode != 403 || body != `{"message":"Missing Authentication Token"}` ||
		resp.Header.Get("x-amzn-ErrorType") != "MissingAuthenticationTokenException" || len(resp.Header.Get("x-amzn-RequestId")) != 36 {
		t.Errorf("REST API, no route: %d %q %v", resp.StatusCode, body, resp.Header)
	}
}

// lambdaBackend is an httptest backend standing for a Lambda function:
// it decodes each event with aws-lambda-go's types and answers what
// answer returns.
type lambdaBackend struct {
	*httptest.Server
	mu     sync.Mutex
	raw    [][]byte
	answer func(raw []byte) string
}

func newLambdaBackend(t *testing.T, answer func(raw []byte) string) *lambdaBackend {
	b := &lambdaBackend{answer: answer}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		b.mu.Lock()
		b.raw = append(b.raw, raw)
		b.mu.Unlock()
		_, _ = io.WriteString(w, b.answer(raw))
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *lambdaBackend) last(t *testing.T) []byte {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.raw) == 0 {
		t.Fatal("the backend got no event")
	}
	return b.raw[len(b.raw)-1]
}

// Payload format 2.0 and 1.0 events, decoded by aws-lambda-go as a Go
// Lambda would, and the results AWS allows back.
func TestHTTPAPIPayloads(t *testing.T) {
	be := newLambdaBackend(t, func(raw []byte) string {
		var ev events.APIGatewayV2HTTPRequest
		_ = json.Unmarshal(raw, &ev)
		switch ev.RawPath {
		case "/dev/bare":
			return `{"hello":"world"}`
		case "/dev/string":
			return `"just text"`
		case "/dev/garbage":
			return `<html>oops</html>`
		case "/dev/b64":
			return `{"statusCode":200,"body":"aGk=","isBase64Encoded":true}`
		}
		if ev.Version == "2.0" {
			return `{"statusCode":201,"headers":{"content-type":"application/json","x-one":"1"},"cookies":["a=1; Path=/","b=2"],"body":"{\"ok\":true}"}`
		}
		return `{"statusCode":202,"headers":{"X-One":"1"},"multiValueHeaders":{"Set-Cookie":["c=3","d=4"]},"body":"v1"}`
	})
	var logs bytes.Buffer
	routes := `GET /pets/{id}:
  integration: {type: http, uri: "${stageVariables.backend}/v2"}
POST /v1/{proxy+}:
  integration: {type: http, uri: "${stageVariables.backend}/v1", payloadFormatVersion: "1.0"}
$default:
  integration: {type: http, uri: "${stageVariables.backend}/default"}
`
	g := startGateway(t, httpAPI("http", "accountId: \"111122223333\"\n", "- name: dev\n  variables: {backend: "+be.URL+", env: dev}\n", routes),
		WithLogger(slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil))))
	base := apiURL(g)

	resp, body := call(t, "GET", base+"/dev/pets/7?a=1&a=2&b=x", "", http.Header{
		"Cookie": {"sid=abc; theme=dark"}, "X-Multi": {"v1", "v2"}, "User-Agent": {"curl/8.5.0"}})
	if resp.StatusCode != 201 || body != `{"ok":true}` || resp.Header.Get("X-One") != "1" ||
		strings.Join(resp.Header.Values("Set-Cookie"), "|") != "a=1; Path=/|b=2" {
		t.Errorf("2.0 result: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	var ev events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(be.last(t), &ev); err != nil {
		t.Fatal(err)
	}
	rc := ev.RequestContext
	for name, c := range map[string][2]any{
		"version":             {ev.Version, "2.0"},
		"routeKey":            {ev.RouteKey, "GET /pets/{id}"},
		"rawPath":             {ev.RawPath, "/dev/pets/7"},
		"rawQueryString":      {ev.RawQueryString, "a=1&a=2&b=x"},
		"cookies":             {strings.Join(ev.Cookies, "|"), "sid=abc|theme=dark"},
		"headers.x-multi":     {ev.Headers["x-multi"], "v1,v2"},
		"headers.cookie":      {ev.Headers["cookie"], ""},
		"headers.host":        {ev.Headers["host"], g.APIAddr("pets")},
		"x-forwarded-for":     {ev.Headers["x-forwarded-for"], "127.0.0.1"},
		"query a":             {ev.QueryStringParameters["a"], "1,2"},
		"pathParameters.id":   {ev.PathParameters["id"], "7"},
		"stageVariables.env":  {ev.StageVariables["env"], "dev"},
		"rc.routeKey":         {rc.RouteKey, "GET /pets/{id}"},
		"rc.stage":            {rc.Stage, "dev"},
		"rc.accountId":        {rc.AccountID, "111122223333"},
		"rc.http.method":      {rc.HTTP.Method, "GET"},
		"rc.http.path":        {rc.HTTP.Path, "/dev/pets/7"},
		"rc.http.protocol":    {rc.HTTP.Protocol, "HTTP/1.1"},
		"rc.http.sourceIp":    {rc.HTTP.SourceIP, "127.0.0.1"},
		"rc.http.userAgent":   {rc.HTTP.UserAgent, "curl/8.5.0"},
		"rc.requestId":        {rc.RequestID, resp.Header.Get("apigw-requestid")},
		"rc.domainName":       {rc.DomainName, g.APIAddr("pets")},
		"rc.domainPrefix":     {rc.DomainPrefix, "127"},
		"isBase64Encoded":     {ev.IsBase64Encoded, false},
		"rc.timeEpoch recent": {time.Since(time.UnixMilli(rc.TimeEpoch)) < time.Minute, true},
	} {
		if c[0] != c[1] {
			t.Errorf("2.0 event %s = %v, want %v", name, c[0], c[1])
		}
	}
	if _, err := time.Parse("02/Jan/2006:15:04:05 -0700", rc.Time); err != nil {
		t.Errorf("requestContext.time %q: %v", rc.Time, err)
	}

	resp, body = call(t, "POST", base+"/dev/v1/a/b?x=1&x=2", "payload", http.Header{"X-Multi": {"v1", "v2"}})
	if resp.StatusCode != 202 || body != "v1" || strings.Join(resp.Header.Values("Set-Cookie"), "|") != "c=3|d=4" {
		t.Errorf("1.0 result: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	var v1 events.APIGatewayProxyRequest
	if err := json.Unmarshal(be.last(t), &v1); err != nil {
		t.Fatal(err)
	}
	if v1.Resource != "/v1/{proxy+}" || v1.Path != "/v1/a/b" || v1.HTTPMethod != "POST" || v1.Body != "payload" ||
		v1.PathParameters["proxy"] != "a/b" || strings.Join(v1.MultiValueHeaders["X-Multi"], ",") != "v1,v2" ||
		v1.QueryStringParameters["x"] != "2" || strings.Join(v1.MultiValueQueryStringParameters["x"], ",") != "1,2" ||
		v1.RequestContext.Path != "/dev/v1/a/b" || v1.RequestContext.ResourcePath != "/v1/{proxy+}" ||
		v1.RequestContext.Identity.SourceIP != "127.0.0.1" || v1.RequestContext.Stage != "dev" || v1.StageVariables["env"] != "dev" {
		t.Errorf("1.0 event: %s", be.last(t))
	}
	if !bytes.Contains(be.last(t), []byte(`"version":"1.0"`)) {
		t.Errorf("an HTTP API's 1.0 event has no version: %s", be.last(t))
	}

	// AWS's shortcuts and failures of payload 2.0.
	for _, c := range []struct{ path, status, body, ctype string }{
		{"/dev/bare", "200", `{"hello":"world"}`, "application/json"},
		{"/dev/string", "200", `just text`, "application/json"},
		{"/dev/b64", "200", `hi`, ""},
		{"/dev/garbage", "502", `{"message":"Internal Server Error"}`, "application/json"},
	} {
		resp, body := call(t, "GET", base+c.path, "", nil)
		if fmt.Sprint(resp.StatusCode) != c.status || body != c.body || (c.ctype != "" && resp.Header.Get("Content-Type") != c.ctype) {
			t.Errorf("GET %s: %d %q %q", c.path, resp.StatusCode, body, resp.Header.Get("Content-Type"))
		}
	}
	if !strings.Contains(logs.String(), be.URL+"/default") {
		t.Errorf("no log line names the backend that answered garbage:\n%s", logs.String())
	}
}

// syncWriter makes a buffer safe for a logger shared by goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// The http_proxy integration: the request forwarded, the answer streamed.
func TestHTTPProxy(t *testing.T) {
	release := make(chan struct{})
	var got struct {
		sync.Mutex
		r    *http.Request
		body string
	}
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stream" {
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, "first\n")
			w.(http.Flusher).Flush()
			<-release // the client has read the first chunk
			_, _ = io.WriteString(w, "last\n")
			return
		}
		b, _ := io.ReadAll(r.Body)
		got.Lock()
		got.r, got.body = r, string(b)
		got.Unlock()
		w.Header().Set("X-Backend", "yes")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.WriteHeader(http.StatusTeapot)
		_, _ = io.WriteString(w, "brewed "+r.URL.String())
	}))
	t.Cleanup(be.Close)
	routes := `ANY /files/{proxy+}:
  integration: {type: http_proxy, uri: "${stageVariables.backend}/store/{proxy}?fixed=1", headers: {X-From-Gateway: "1"}}
GET /stream:
  integration: {type: http_proxy, uri: "${stageVariables.backend}/stream"}
$default:
  integration: {type: http_proxy, uri: "${stageVariables.backend}"}
`
	g := startGateway(t, httpAPI("http", "", "- name: $default\n  variables: {backend: "+be.URL+"}\n", routes))
	base := apiURL(g)
	resp, body := call(t, "PUT", base+"/files/a/b%20c?x=1&x=2", "the body", http.Header{
		"X-Custom": {"c"}, "Connection": {"X-Drop-Me"}, "X-Drop-Me": {"1"}, "X-Forwarded-For": {"10.0.0.1"}})
	if resp.StatusCode != http.StatusTeapot || body != "brewed /store/a/b%20c?fixed=1&x=1&x=2" || resp.Header.Get("X-Backend") != "yes" ||
		resp.Header.Get("Keep-Alive") != "" || len(resp.Header.Get("apigw-requestid")) != 16 {
		t.Errorf("proxied answer: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	got.Lock()
	r := got.r
	if r.Method != "PUT" || got.body != "the body" || r.Header.Get("X-Custom") != "c" || r.Header.Get("X-Drop-Me") != "" ||
		r.Header.Get("X-From-Gateway") != "1" || r.Header.Get("X-Forwarded-For") != "10.0.0.1, 127.0.0.1" ||
		r.Header.Get("X-Forwarded-Proto") != "http" || r.Header.Get("X-Forwarded-Port") == "" {
		t.Errorf("the backend got %s %s %q %v", r.Method, r.URL, got.body, r.Header)
	}
	got.Unlock()
	// $default appends the request's path.
	if _, body := call(t, "GET", base+"/some/where?q=1", "", nil); body != "brewed /some/where?q=1" {
		t.Errorf("$default proxied to %q", body)
	}

	// Streaming: the first chunk reaches the client before the backend
	// writes the last.
	sresp, err := http.Get(base + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer sresp.Body.Close()
	rd := bufio.NewReader(sresp.Body)
	first, err := rd.ReadString('\n')
	if err != nil || first != "first\n" {
		t.Fatalf("first chunk: %q %v", first, err)
	}
	close(release)
	rest, _ := io.ReadAll(rd)
	if string(rest) != "last\n" {
		t.Errorf("last chunk %q", rest)
	}
}

// Timeouts, a backend that is down, bodies over the limit, and a client
// that goes away.
func TestHTTPAPIFailures(t *testing.T) {
	canceled := make(chan struct{}, 4)
	arrived := make(chan struct{}, 4)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // net/http notices a client gone only once the body is read
		arrived <- struct{}{}
		<-r.Context().Done() // never answers: the gateway gives up or the client goes away
		canceled <- struct{}{}
	}))
	t.Cleanup(be.Close)
	down, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downURL := "http://" + down.Addr().String()
	down.Close()
	routes := `POST /slow:
  integration: {type: http, uri: "` + be.URL + `", timeout: 100ms}
GET /slowproxy:
  integration: {type: http_proxy, uri: "` + be.URL + `", timeout: 100ms}
GET /down:
  integration: {type: http, uri: "` + downURL + `"}
GET /downproxy:
  integration: {type: http_proxy, uri: "` + downURL + `"}
POST /echo:
  integration: {type: mock, response: {body: "ok"}}
POST /proxyecho:
  integration: {type: http_proxy, uri: "` + be.URL + `"}
`
	for _, proto := range []string{"http", "rest"} {
		g := startGateway(t, httpAPI(proto, "limits: {maxRequestBytes: 1000}\n", "- name: v1\n", routes))
		base := apiURL(g) + "/v1"
		// A timeout is 504 for both; the REST body spells it as AWS's REST APIs do.
		timeoutStatus, timeoutBody, errorBody := 504, `{"message":"Endpoint request timed out"}`, `{"message":"Internal Server Error"}`
		if proto == "rest" {
			timeoutStatus, timeoutBody, errorBody = 504, `{"message": "Endpoint request timed out"}`, `{"message": "Internal server error"}`
		}
		for _, p := range []string{"/slow", "/slowproxy"} {
			method := "GET"
			if p == "/slow" {
				method = "POST"
			}
			resp, body := call(t, method, base+p, "", nil)
			if resp.StatusCode != timeoutStatus || body != timeoutBody {
				t.Errorf("%s %s: %d %q, want %d", proto, p, resp.StatusCode, body, timeoutStatus)
			}
			<-arrived
			<-canceled
		}
		for _, p := range []string{"/down", "/downproxy"} {
			start := time.Now()
			resp, body := call(t, "GET", base+p, "", nil)
			if resp.StatusCode != 502 || body != errorBody || time.Since(start) > 5*time.Second {
				t.Errorf("%s %s: %d %q after %v, want a fast 502", proto, p, resp.StatusCode, body, time.Since(start))
			}
		}
		big := strings.Repeat("x", 1001)
		for _, p := range []string{"/echo", "/proxyecho"} {
			resp, _ := call(t, "POST", base+p, big, nil)
			if resp.StatusCode != 413 {
				t.Errorf("%s %s with 1001 bytes: %d, want 413", proto, p, resp.StatusCode)
			}
		}
		if resp, body := call(t, "POST", base+"/echo", strings.Repeat("x", 1000), nil); resp.StatusCode != 200 || body != "ok" {
			t.Errorf("%s 1000 bytes: %d %q", proto, resp.StatusCode, body)
		}
	}

	// A client that goes away cancels the backend call.
	g := startGateway(t, httpAPI("http", "", "- name: v1\n", strings.ReplaceAll(routes, "timeout: 100ms", "timeout: 29s")))
	for _, p := range []string{"/slow", "/slowproxy"} {
		ctx, cancel := context.WithCancel(context.Background())
		method := "GET"
		if p == "/slow" {
			method = "POST"
		}
		req, _ := http.NewRequestWithContext(ctx, method, apiURL(g)+"/v1"+p, nil)
		errc := make(chan error, 1)
		go func() {
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			errc <- err
		}()
		<-arrived
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Errorf("%s: client error %v", p, err)
		}
		select {
		case <-canceled:
		case <-time.After(testTimeout):
			t.Errorf("%s: the backend call was not cancelled when the client went away", p)
		}
	}
}

// CORS: preflights answered by the gateway, headers on actual answers,
// the backend's CORS headers replaced.
func TestHTTPAPICORS(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "https://evil.example")
		_, _ = io.WriteString(w, "data")
	}))
	t.Cleanup(be.Close)
	cors := `cors:
  allowOrigins: [https://app.example.com]
  allowMethods: [GET, POST]
  allowHeaders: [content-type, authorization]
  exposeHeaders: [x-request-id]
  maxAge: 600
  allowCredentials: true
`
	g := startGateway(t, httpAPI("http", cors, "- name: $default\n", "GET /data:\n  integration: {type: http_proxy, uri: \""+be.URL+"\"}\n"))
	resp, _ := call(t, "OPTIONS", apiURL(g)+"/data", "", http.Header{"Origin": {"https://app.example.com"}, "Access-Control-Request-Method": {"POST"}})
	h := resp.Header
	if resp.StatusCode != 204 || h.Get("Access-Control-Allow-Origin") != "https://app.example.com" || h.Get("Access-Control-Allow-Methods") != "GET,POST" ||
		h.Get("Access-Control-Allow-Headers") != "content-type,authorization" || h.Get("Access-Control-Max-Age") != "600" ||
		h.Get("Access-Control-Allow-Credentials") != "true" {
		t.Errorf("preflight: %d %v", resp.StatusCode, h)
	}
	resp, _ = call(t, "OPTIONS", apiURL(g)+"/data", "", http.Header{"Origin": {"https://other.example"}, "Access-Control-Request-Method": {"GET"}})
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight from another origin: %d %v", resp.StatusCode, resp.Header)
	}
	resp, body := call(t, "GET", apiURL(g)+"/data", "", http.Header{"Origin": {"https://app.example.com"}})
	if body != "data" || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		resp.Header.Get("Access-Control-Expose-Headers") != "x-request-id" || len(resp.Header.Values("Access-Control-Allow-Origin")) != 1 {
		t.Errorf("actual request: %q %v", body, resp.Header)
	}
	resp, _ = call(t, "GET", apiURL(g)+"/data", "", http.Header{"Origin": {"https://other.example"}})
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("another origin got CORS headers: %v", resp.Header)
	}
}

// JWT, REQUEST (payload 2.0 authorizer event) and IAM authorizers on
// HTTP API routes.
func TestHTTPAPIAuthorizers(t *testing.T) {
	t.Setenv("PORTICO_TEST_JWT_SECRET", "jwt-secret-for-tests")
	t.Setenv("PORTICO_TEST_IAM_SECRET", iamSecret)
	var authEvent []byte
	var mu sync.Mutex
	authz := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		authEvent = b
		mu.Unlock()
		var ev events.APIGatewayV2CustomAuthorizerV2Request
		_ = json.Unmarshal(b, &ev)
		_, _ = fmt.Fprintf(w, `{"isAuthorized":%v,"context":{"tenant":"t1","level":3}}`, ev.Headers["authorization"] == "let-me-in")
	}))
	t.Cleanup(authz.Close)
	be := newLambdaBackend(t, func([]byte) string { return `{"statusCode":200,"body":"in"}` })
	yml := strings.ReplaceAll(iamManagement, "api: t, stage: test", "api: pets") + httpAPI("http", `authorizers:
  jwt:
    type: jwt
    issuer: https://issuer.example/
    audience: [pets-app]
    secret: ${PORTICO_TEST_JWT_SECRET}
    identitySource: [$request.header.Authorization]
  lambda:
    type: request
    uri: `+authz.URL+`
    identitySource: [$request.header.Authorization]
    resultTtl: 0s
`, "- name: $default\n", `GET /jwt:
  authorizationType: JWT
  authorizer: jwt
  authorizationScopes: [pets/read]
  integration: {type: http, uri: "`+be.URL+`"}
GET /lambda/{id}:
  authorizationType: CUSTOM
  authorizer: lambda
  integration: {type: http, uri: "`+be.URL+`"}
POST /iam:
  authorizationType: AWS_IAM
  integration: {type: http, uri: "`+be.URL+`"}
`)
	g := startGateway(t, yml)
	base := apiURL(g)
	token := func(scope string) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": "https://issuer.example/", "aud": "pets-app", "sub": "u-1",
			"scope": scope, "exp": time.Now().Add(time.Hour).Unix()})
		s, err := tok.SignedString([]byte("jwt-secret-for-tests"))
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + s
	}
	for _, c := range []struct {
		name, auth string
		status     int
		body       string
	}{
		{"no token", "", 401, `{"message":"Unauthorized"}`},
		{"bad token", "Bearer x.y.z", 401, `{"message":"Unauthorized"}`},
		{"wrong scope", token("pets/write"), 403, `{"message":"Forbidden"}`},
		{"good", token("pets/read"), 200, "in"},
	} {
		h := http.Header{}
		if c.auth != "" {
			h.Set("Authorization", c.auth)
		}
		resp, body := call(t, "GET", base+"/jwt", "", h)
		if resp.StatusCode != c.status || body != c.body {
			t.Errorf("JWT %s: %d %q", c.name, resp.StatusCode, body)
		}
		// AWS's challenge on a JWT authorizer's 401, none otherwise.
		if wa := resp.Header.Get("Www-Authenticate"); (c.status == 401) != strings.HasPrefix(wa, `Bearer scope="" error="invalid_token" error_description="`) {
			t.Errorf("JWT %s: www-authenticate %q", c.name, wa)
		}
	}
	var ev events.APIGatewayV2HTTPRequest
	_ = json.Unmarshal(be.last(t), &ev)
	if a := ev.RequestContext.Authorizer; a == nil || a.JWT == nil || a.JWT.Claims["sub"] != "u-1" || strings.Join(a.JWT.Scopes, ",") != "pets/read" {
		t.Errorf("JWT authorizer in the event: %s", be.last(t))
	}

	resp, body := call(t, "GET", base+"/lambda/7", "", http.Header{"Authorization": {"nope"}})
	if resp.StatusCode != 403 || body != `{"message":"Forbidden"}` {
		t.Errorf("request authorizer, denied: %d %q", resp.StatusCode, body)
	}
	resp, body = call(t, "GET", base+"/lambda/7?q=1", "", http.Header{"Authorization": {"let-me-in"}})
	if resp.StatusCode != 200 || body != "in" {
		t.Errorf("request authorizer, allowed: %d %q", resp.StatusCode, body)
	}
	mu.Lock()
	var aev events.APIGatewayV2CustomAuthorizerV2Request
	if err := json.Unmarshal(authEvent, &aev); err != nil || aev.Version != "2.0" || aev.Type != "REQUEST" || aev.RouteKey != "GET /lambda/{id}" ||
		!strings.HasSuffix(aev.RouteArn, ":"+g.cfg.APIs[0].ID+"/$default/GET/lambda/7") || strings.Join(aev.IdentitySource, ",") != "let-me-in" ||
		aev.PathParameters["id"] != "7" || aev.RawQueryString != "q=1" || aev.RequestContext.HTTP.Method != "GET" {
		t.Errorf("authorizer event (%v): %s", err, authEvent)
	}
	mu.Unlock()
	_ = json.Unmarshal(be.last(t), &ev)
	if a := ev.RequestContext.Authorizer; a == nil || a.Lambda["tenant"] != "t1" || a.Lambda["level"] != float64(3) {
		t.Errorf("lambda authorizer context in the event: %s", be.last(t))
	}

	sign := func(secret string) *http.Request {
		req, _ := http.NewRequest("POST", base+"/iam", strings.NewReader("signed body"))
		sum := sha256.Sum256([]byte("signed body"))
		creds := aws.Credentials{AccessKeyID: "AKIDPORTICO", SecretAccessKey: secret}
		if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "execute-api", "us-east-1", time.Now()); err != nil {
			t.Fatal(err)
		}
		return req
	}
	for _, c := range []struct {
		req    *http.Request
		status int
	}{{sign(iamSecret), 200}, {sign("wrong"), 403}} {
		resp, err := http.DefaultClient.Do(c.req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("IAM: %d %s, want %d", resp.StatusCode, b, c.status)
		}
	}
	_ = json.Unmarshal(be.last(t), &ev)
	if a := ev.RequestContext.Authorizer; a == nil || a.IAM == nil || a.IAM.AccessKey != "AKIDPORTICO" || ev.Body != "signed body" {
		t.Errorf("IAM identity in the event: %s", be.last(t))
	}
	if resp, body := call(t, "POST", base+"/iam", "", nil); resp.StatusCode != 403 || body != `{"message":"Missing Authentication Token"}` {
		t.Errorf("IAM without a signature: %d %q", resp.StatusCode, body)
	}
}

// API keys and quotas on REST routes.
func TestRESTAPIKeys(t *testing.T) {
	t.Setenv("PORTICO_TEST_PARTNER_KEY", testKey)
	clk := newTestClock(time.Date(2026, 3, 10, 22, 0, 0, 0, time.UTC))
	be := newLambdaBackend(t, func([]byte) string { return `{"statusCode":200,"body":"ok"}` })
	yml := strings.ReplaceAll(planYAML, "api: t, stage: test", "api: pets, stage: prod") + httpAPI("rest", "", "- name: prod\n", `GET /items:
  apiKeyRequired: true
  integration: {type: http, uri: "`+be.URL+`"}
`)
	g := startGateway(t, yml, WithClock(clk.now))
	url := apiURL(g) + "/prod/items"
	for name, h := range map[string]http.Header{"missing": nil, "unknown": {"X-Api-Key": {"unknownKey0123456789abc"}}} {
		resp, body := call(t, "GET", url, "", h)
		if resp.StatusCode != 403 || body != `{"message":"Forbidden"}` || resp.Header.Get("x-amzn-ErrorType") != "ForbiddenException" {
			t.Errorf("%s key: %d %q", name, resp.StatusCode, body)
		}
	}
	for i := range 4 {
		resp, body := call(t, "GET", url, "", http.Header{"X-Api-Key": {testKey}})
		if resp.StatusCode != 200 || body != "ok" {
			t.Errorf("request %d with the key: %d %q", i, resp.StatusCode, body)
		}
	}
	var ev events.APIGatewayProxyRequest
	_ = json.Unmarshal(be.last(t), &ev)
	if ev.RequestContext.Identity.APIKey != testKey || ev.RequestContext.Identity.APIKeyID != "partner-a" {
		t.Errorf("identity.apiKey in the event: %s", be.last(t))
	}
	resp, body := call(t, "GET", url, "", http.Header{"X-Api-Key": {testKey}})
	if resp.StatusCode != 429 || body != `{"message":"Limit Exceeded"}` || resp.Header.Get("x-amzn-ErrorType") != "LimitExceededException" {
		t.Errorf("over the quota: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	clk.add(2 * time.Hour)
	if resp, _ := call(t, "GET", url, "", http.Header{"X-Api-Key": {testKey}}); resp.StatusCode != 200 {
		t.Errorf("the next day: %d", resp.StatusCode)
	}
}

// Shutdown waits for the requests in flight.
func TestHTTPAPIShutdownDrains(t *testing.T) {
	arrived, release := make(chan struct{}), make(chan struct{})
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-release
		_, _ = io.WriteString(w, `{"statusCode":200,"body":"done"}`)
	}))
	t.Cleanup(be.Close)
	cfg, err := config.Parse("drain.yaml", []byte(httpAPI("http", "", "- name: $default\n", "GET /x:\n  integration: {type: http, uri: \""+be.URL+"\"}\n")))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Management.Address, cfg.APIs[0].Listen = "127.0.0.1:0", "127.0.0.1:0"
	g, err := New(context.Background(), cfg, WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	type answer struct {
		status int
		body   string
	}
	got := make(chan answer, 1)
	go func() {
		resp, err := http.Get(apiURL(g) + "/x")
		if err != nil {
			got <- answer{0, err.Error()}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- answer{resp.StatusCode, string(b)}
	}()
	<-arrived
	done := make(chan error, 1)
	go func() { done <- g.Shutdown(context.Background()) }()
	close(release)
	if a := <-got; a.status != 200 || a.body != "done" {
		t.Errorf("the request in flight during shutdown: %d %q", a.status, a.body)
	}
	if err := <-done; err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

// Route and stage throttling on an HTTP API, and the request metrics by
// route key.
func TestHTTPAPIThrottleAndMetrics(t *testing.T) {
	clk := newTestClock(time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC))
	stages := `- name: prod
  defaultRouteSettings: {throttlingRateLimit: 1, throttlingBurstLimit: 2}
  routeSettings:
    GET /fast: {throttlingRateLimit: 100, throttlingBurstLimit: 100}
`
	routes := "GET /slow/{id}:\n  integration: {type: mock, response: {body: ok}}\nGET /fast:\n  integration: {type: mock, response: {body: ok}}\n"
	g := startGateway(t, httpAPI("http", "", stages, routes), WithClock(clk.now))
	base := apiURL(g) + "/prod"
	for i, want := range []int{200, 200, 429} {
		resp, body := call(t, "GET", base+"/slow/"+fmt.Sprint(i), "", nil)
		if resp.StatusCode != want || (want == 429 && body != `{"message":"Too Many Requests"}`) {
			t.Errorf("request %d to the default-throttled route: %d %q, want %d", i, resp.StatusCode, body, want)
		}
	}
	for i := range 5 {
		if resp, _ := call(t, "GET", base+"/fast", "", nil); resp.StatusCode != 200 {
			t.Errorf("request %d to the route with its own settings: %d", i, resp.StatusCode)
		}
	}
	clk.add(time.Second)
	if resp, _ := call(t, "GET", base+"/slow/9", "", nil); resp.StatusCode != 200 {
		t.Errorf("after a second: %d", resp.StatusCode)
	}
	call(t, "GET", base+"/nothing", "", nil)
	_, metrics := call(t, "GET", "http://"+g.ManagementAddr()+"/metrics", "", nil)
	for _, want := range []string{
		`portico_http_requests_total{api="pets",route="GET /slow/{id}",stage="prod",status_class="2xx"} 3`,
		`portico_http_requests_total{api="pets",route="GET /slow/{id}",stage="prod",status_class="4xx"} 1`,
		`portico_http_requests_total{api="pets",route="GET /fast",stage="prod",status_class="2xx"} 5`,
		`portico_http_requests_total{api="pets",route="-",stage="prod",status_class="4xx"} 1`,
		`portico_http_latency_seconds_count{api="pets",route="GET /fast",stage="prod"} 5`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(metrics, "/slow/0") {
		t.Error("a raw path is a metric label")
	}
}
