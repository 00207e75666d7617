package client

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/smithy-go"
)

// recorded is one request as the server saw it.
type recorded struct {
	Method     string
	RequestURI string // path as sent on the wire
	Path       string // decoded path
	Host       string
	Header     http.Header
	Body       []byte
}

type fakeServer struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []recorded
}

func newFakeServer(t *testing.T, respond http.HandlerFunc) *fakeServer {
	t.Helper()
	f := &fakeServer{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.reqs = append(f.reqs, recorded{
			Method: r.Method, RequestURI: r.RequestURI, Path: r.URL.Path, Host: r.Host,
			Header: r.Header.Clone(), Body: body,
		})
		f.mu.Unlock()
		respond(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeServer) last(t *testing.T) recorded {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) == 0 {
		t.Fatal("server received no request")
	}
	return f.reqs[len(f.reqs)-1]
}

func status(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
}

// clearEnvCredentials makes New fall back to the placeholder credentials.
func clearEnvCredentials(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	t.Setenv("AWS_SESSION_TOKEN", "")
}

func newClient(t *testing.T, endpoint string, opts Options) *Client {
	t.Helper()
	c, err := New(endpoint, opts)
	if err != nil {
		t.Fatalf("New(%q): %v", endpoint, err)
	}
	return c
}

var placeholderCreds = aws.Credentials{AccessKeyID: "portico", SecretAccessKey: "portico"}

func TestPostToConnection(t *testing.T) {
	clearEnvCredentials(t)
	srv := newFakeServer(t, status(http.StatusOK))
	c := newClient(t, srv.URL+"/prod", Options{})

	if err := c.PostToConnection(context.Background(), "abc=", []byte("hello")); err != nil {
		t.Fatalf("PostToConnection: %v", err)
	}
	r := srv.last(t)
	if r.Method != http.MethodPost {
		t.Errorf("method = %s, want POST", r.Method)
	}
	if r.RequestURI != "/prod/@connections/abc%3D" {
		t.Errorf("wire path = %s, want /prod/@connections/abc%%3D", r.RequestURI)
	}
	if r.Path != "/prod/@connections/abc=" {
		t.Errorf("decoded path = %s", r.Path)
	}
	if got := r.Header.Get("Content-Type"); got != "application/octet-stream" {
		t.Errorf("Content-Type = %q", got)
	}
	if string(r.Body) != "hello" {
		t.Errorf("body = %q", r.Body)
	}
	auth := r.Header.Get("Authorization")
	if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=portico/") ||
		!strings.Contains(auth, "/us-east-1/execute-api/aws4_request") {
		t.Errorf("Authorization = %q", auth)
	}
	if r.Header.Get("X-Amz-Date") == "" {
		t.Error("X-Amz-Date not set")
	}
	if r.Header.Get("X-Amz-Security-Token") != "" {
		t.Error("X-Amz-Security-Token set without a session token")
	}
	verifySignature(t, r, placeholderCreds, "us-east-1")
}

func TestCredentialsAndRegion(t *testing.T) {
	t.Run("environment", func(t *testing.T) {
		t.Setenv("AWS_ACCESS_KEY_ID", "AKIDENVEXAMPLE")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "envsecret")
		t.Setenv("AWS_SESSION_TOKEN", "envtoken")
		srv := newFakeServer(t, status(http.StatusOK))
		c := newClient(t, srv.URL+"/prod", Options{})
		if err := c.PostToConnection(context.Background(), "id1", []byte("x")); err != nil {
			t.Fatal(err)
		}
		r := srv.last(t)
		if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential=AKIDENVEXAMPLE/") {
			t.Errorf("Authorization = %q", r.Header.Get("Authorization"))
		}
		if got := r.Header.Get("X-Amz-Security-Token"); got != "envtoken" {
			t.Errorf("X-Amz-Security-Token = %q", got)
		}
		verifySignature(t, r, aws.Credentials{AccessKeyID: "AKIDENVEXAMPLE", SecretAccessKey: "envsecret", SessionToken: "envtoken"}, "us-east-1")
	})
	t.Run("explicit", func(t *testing.T) {
		clearEnvCredentials(t)
		creds := aws.Credentials{AccessKeyID: "AKIDEXPLICIT", SecretAccessKey: "s3cr3t"}
		srv := newFakeServer(t, status(http.StatusOK))
		c := newClient(t, srv.URL+"/prod", Options{
			Region: "eu-west-1",
			Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
				return creds, nil
			}),
		})
		if _, err := c.GetConnection(context.Background(), "id1"); err != nil {
			t.Fatal(err)
		}
		r := srv.last(t)
		if !strings.Contains(r.Header.Get("Authorization"), "Credential=AKIDEXPLICIT/") ||
			!strings.Contains(r.Header.Get("Authorization"), "/eu-west-1/execute-api/aws4_request") {
			t.Errorf("Authorization = %q", r.Header.Get("Authorization"))
		}
		verifySignature(t, r, creds, "eu-west-1")
	})
	t.Run("provider error", func(t *testing.T) {
		boom := errors.New("no credentials here")
		c := newClient(t, "http://127.0.0.1:1/prod", Options{
			Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
				return aws.Credentials{}, boom
			}),
		})
		err := c.DeleteConnection(context.Background(), "id1")
		if !errors.Is(err, boom) {
			t.Fatalf("err = %v, want it to wrap %v", err, boom)
		}
	})
}

func TestEscaping(t *testing.T) {
	for _, tc := range []struct{ id, want string }{
		{"R0oXAdfD0kwCH6w=", "R0oXAdfD0kwCH6w%3D"},
		{"JC1dgf9yoAMCK-g=", "JC1dgf9yoAMCK-g%3D"},
		{"a.b_c~d-e", "a.b_c~d-e"},
		{"a/b c+d", "a%2Fb%20c%2Bd"},
		{"x@y%z", "x%40y%25z"},
		{"é", "%C3%A9"},
	} {
		if got := EscapeConnectionID(tc.id); got != tc.want {
			t.Errorf("EscapeConnectionID(%q) = %q, want %q", tc.id, got, tc.want)
		}
	}

	clearEnvCredentials(t)
	srv := newFakeServer(t, status(http.StatusOK))
	for _, tc := range []struct{ endpoint, id, wire, decoded string }{
		{srv.URL + "/prod", "a/b c+=", "/prod/@connections/a%2Fb%20c%2B%3D", "/prod/@connections/a/b c+="},
		{srv.URL + "/prod/", "HXT_RfBnPHcCIIg=", "/prod/@connections/HXT_RfBnPHcCIIg%3D", "/prod/@connections/HXT_RfBnPHcCIIg="},
		{srv.URL, "id%2F", "/@connections/id%252F", "/@connections/id%2F"},
		{srv.URL + "/", "id", "/@connections/id", "/@connections/id"},
		{srv.URL + "/base/dev", "id=", "/base/dev/@connections/id%3D", "/base/dev/@connections/id="},
	} {
		c := newClient(t, tc.endpoint, Options{})
		if err := c.PostToConnection(context.Background(), tc.id, []byte("x")); err != nil {
			t.Fatalf("%s %q: %v", tc.endpoint, tc.id, err)
		}
		r := srv.last(t)
		if r.RequestURI != tc.wire || r.Path != tc.decoded {
			t.Errorf("%s %q: wire %s decoded %s, want %s and %s", tc.endpoint, tc.id, r.RequestURI, r.Path, tc.wire, tc.decoded)
		}
		verifySignature(t, r, placeholderCreds, "us-east-1")
	}
}

func TestGetConnection(t *testing.T) {
	clearEnvCredentials(t)
	var body string
	srv := newFakeServer(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, body)
	})
	c := newClient(t, srv.URL+"/prod", Options{})

	body = `{"connectedAt":"2025-03-03T10:00:00.120Z","identity":{"sourceIp":"203.0.113.9","userAgent":"ExampleClient/1.0"},"lastActiveAt":"2025-03-03T10:04:12Z"}`
	conn, err := c.GetConnection(context.Background(), "Xa1bYq9LdGgCEkA=")
	if err != nil {
		t.Fatalf("GetConnection: %v", err)
	}
	r := srv.last(t)
	if r.Method != http.MethodGet || r.RequestURI != "/prod/@connections/Xa1bYq9LdGgCEkA%3D" {
		t.Errorf("request = %s %s", r.Method, r.RequestURI)
	}
	if len(r.Body) != 0 {
		t.Errorf("GET sent a body: %q", r.Body)
	}
	verifySignature(t, r, placeholderCreds, "us-east-1")
	want := Connection{
		ConnectedAt:  time.Date(2025, 3, 3, 10, 0, 0, 120e6, time.UTC),
		Identity:     Identity{SourceIP: "203.0.113.9", UserAgent: "ExampleClient/1.0"},
		LastActiveAt: time.Date(2025, 3, 3, 10, 4, 12, 0, time.UTC),
	}
	if !conn.ConnectedAt.Equal(want.ConnectedAt) || !conn.LastActiveAt.Equal(want.LastActiveAt) || conn.Identity != want.Identity {
		t.Errorf("connection = %+v, want %+v", *conn, want)
	}

	// Offsets, epoch seconds and a missing user agent.
	body = `{"connectedAt":"2025-03-03T11:00:00.5+01:00","identity":{"sourceIp":"::1"},"lastActiveAt":1740996000.25}`
	conn, err = c.GetConnection(context.Background(), "x")
	if err != nil {
		t.Fatal(err)
	}
	if !conn.ConnectedAt.Equal(time.Date(2025, 3, 3, 10, 0, 0, 5e8, time.UTC)) || conn.Identity.UserAgent != "" || conn.Identity.SourceIP != "::1" {
		t.Errorf("connection = %+v", *conn)
	}
	if d := conn.LastActiveAt.Sub(time.Date(2025, 3, 3, 10, 0, 0, 25e7, time.UTC)); d < -time.Millisecond || d > time.Millisecond {
		t.Errorf("lastActiveAt = %v", conn.LastActiveAt)
	}

	for _, bad := range []string{`not json`, `{"connectedAt":"yesterday"}`, `{"lastActiveAt":true}`} {
		body = bad
		if _, err := c.GetConnection(context.Background(), "x"); err == nil {
			t.Errorf("body %s: no error", bad)
		}
	}
}

func TestDeleteConnection(t *testing.T) {
	clearEnvCredentials(t)
	for _, code := range []int{http.StatusNoContent, http.StatusOK} {
		srv := newFakeServer(t, status(code))
		c := newClient(t, srv.URL+"/prod", Options{})
		if err := c.DeleteConnection(context.Background(), "abc="); err != nil {
			t.Fatalf("status %d: %v", code, err)
		}
		r := srv.last(t)
		if r.Method != http.MethodDelete || r.RequestURI != "/prod/@connections/abc%3D" {
			t.Errorf("request = %s %s", r.Method, r.RequestURI)
		}
		verifySignature(t, r, placeholderCreds, "us-east-1")
	}
}

func TestErrors(t *testing.T) {
	clearEnvCredentials(t)
	type want struct {
		code, msg string
		check     func(error) bool
	}
	isGone := func(err error) bool { var e *GoneException; return errors.As(err, &e) }
	isForbidden := func(err error) bool { var e *ForbiddenException; return errors.As(err, &e) }
	isTooLarge := func(err error) bool { var e *PayloadTooLargeException; return errors.As(err, &e) }
	isLimit := func(err error) bool { var e *LimitExceededException; return errors.As(err, &e) }
	isAPI := func(err error) bool { var e *APIError; return errors.As(err, &e) }

	for _, tc := range []struct {
		name        string
		status      int
		errorType   string
		contentType string
		body        string
		want        want
	}{
		{"gone empty body", 410, "GoneException", "", "", want{"GoneException", "", isGone}},
		{"gone json", 410, "GoneException:http://internal.example/", "application/json", `{"message":"Gone"}`, want{"GoneException", "Gone", isGone}},
		{"gone text body", 410, "", "text/plain", "Gone\n", want{"GoneException", "Gone", isGone}},
		{"forbidden capital Message", 403, "ForbiddenException", "application/json", `{"Message":"Forbidden"}`, want{"ForbiddenException", "Forbidden", isForbidden}},
		{"forbidden by status", 403, "", "text/html", "<html><body>Forbidden</body></html>", want{"ForbiddenException", "<html><body>Forbidden</body></html>", isForbidden}},
		{"payload too large", 413, "PayloadTooLargeException", "application/json", `{"message":"Message too long"}`, want{"PayloadTooLargeException", "Message too long", isTooLarge}},
		{"limit exceeded", 429, "LimitExceededException", "application/json", `{"message":"Limit Exceeded"}`, want{"LimitExceededException", "Limit Exceeded", isLimit}},
		{"429 other name", 429, "TooManyRequestsException", "application/json", `{"message":"Too Many Requests"}`, want{"LimitExceededException", "Too Many Requests", isLimit}},
		{"body code overrides header", 400, "BadRequestException", "application/json", `{"__type":"com.amazonaws.apigateway#GoneException","message":"no such connection"}`, want{"GoneException", "no such connection", isGone}},
		{"body code field", 400, "", "application/json", `{"code":"PayloadTooLargeException","message":"too big"}`, want{"PayloadTooLargeException", "too big", isTooLarge}},
		{"generic with header", 500, "InternalServerErrorException", "application/json", `{"message": "Internal server error"}`, want{"InternalServerErrorException", "Internal server error", isAPI}},
		{"generic non-json", 502, "", "text/html", "<html>Bad Gateway</html>", want{"", "<html>Bad Gateway</html>", isAPI}},
		{"generic bad json", 400, "BadRequestException", "application/json", `{"message":`, want{"BadRequestException", `{"message":`, isAPI}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newFakeServer(t, func(w http.ResponseWriter, _ *http.Request) {
				if tc.errorType != "" {
					w.Header().Set("x-amzn-ErrorType", tc.errorType)
				}
				if tc.contentType != "" {
					w.Header().Set("Content-Type", tc.contentType)
				}
				w.Header().Set("x-amzn-RequestId", "req-123")
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			})
			c := newClient(t, srv.URL+"/prod", Options{})
			ctx := context.Background()
			_, getErr := c.GetConnection(ctx, "abc=")
			for i, err := range []error{c.PostToConnection(ctx, "abc=", []byte("x")), getErr, c.DeleteConnection(ctx, "abc=")} {
				if err == nil {
					t.Fatalf("op %d: no error", i)
				}
				if !tc.want.check(err) {
					t.Fatalf("op %d: error %T %v is not the expected type", i, err, err)
				}
				var e Error
				if !errors.As(err, &e) {
					t.Fatalf("op %d: %T does not implement Error", i, err)
				}
				if e.ErrorCode() != tc.want.code || e.HTTPStatusCode() != tc.status {
					t.Errorf("op %d: code %q status %d, want %q %d", i, e.ErrorCode(), e.HTTPStatusCode(), tc.want.code, tc.status)
				}
				var se smithy.APIError
				if !errors.As(err, &se) {
					t.Fatalf("op %d: %T does not implement smithy.APIError", i, err)
				}
				if se.ErrorMessage() != tc.want.msg {
					t.Errorf("op %d: message %q, want %q", i, se.ErrorMessage(), tc.want.msg)
				}
				wantFault := smithy.FaultClient
				if tc.status >= 500 {
					wantFault = smithy.FaultServer
				}
				if se.ErrorFault() != wantFault {
					t.Errorf("op %d: fault %v", i, se.ErrorFault())
				}
				if !strings.Contains(err.Error(), "request id req-123") || !strings.Contains(err.Error(), fmt.Sprintf("HTTP %d", tc.status)) {
					t.Errorf("op %d: Error() = %q", i, err.Error())
				}
			}
		})
	}

	// Field access on the concrete types.
	srv := newFakeServer(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("x-amzn-ErrorType", "GoneException")
		w.Header().Set("x-amzn-RequestId", "req-9")
		w.WriteHeader(http.StatusGone)
	})
	err := newClient(t, srv.URL+"/prod", Options{}).PostToConnection(context.Background(), "abc=", nil)
	var gone *GoneException
	if !errors.As(err, &gone) || gone.StatusCode != 410 || gone.RequestID != "req-9" || gone.Message != "" {
		t.Fatalf("err = %#v", err)
	}
	if got, want := gone.Error(), "GoneException (HTTP 410, request id req-9)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestTransportErrors(t *testing.T) {
	clearEnvCredentials(t)
	srv := httptest.NewServer(http.NotFoundHandler())
	endpoint := srv.URL + "/prod"
	srv.Close()
	c := newClient(t, endpoint, Options{})
	err := c.PostToConnection(context.Background(), "abc=", []byte("x"))
	var uerr *url.Error
	if err == nil || !errors.As(err, &uerr) || !strings.Contains(err.Error(), "PostToConnection abc=") {
		t.Fatalf("err = %v", err)
	}
	var apiErr Error
	if errors.As(err, &apiErr) {
		t.Errorf("transport error reported as API error: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.GetConnection(ctx, "abc="); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: err = %v", err)
	}
	if err := c.DeleteConnection(context.Background(), ""); err == nil {
		t.Error("empty connection id accepted")
	}
}

func TestNewValidation(t *testing.T) {
	for _, bad := range []string{"", "127.0.0.1:9090/prod", "/prod", "ftp://h/prod", "http:///prod", "http://h/prod?x=1", "http://h/prod#f", "http://u:p@h/prod", "ws://h/prod"} {
		if _, err := New(bad, Options{}); err == nil {
			t.Errorf("New(%q) accepted", bad)
		}
	}
	c, err := New("https://abc123defg.execute-api.eu-west-1.amazonaws.com/prod", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c.region != DefaultRegion || c.httpClient == nil || c.httpClient.Timeout == 0 {
		t.Errorf("defaults not applied: region %q client %v", c.region, c.httpClient)
	}
}

func TestConcurrentUse(t *testing.T) {
	clearEnvCredentials(t)
	srv := newFakeServer(t, status(http.StatusOK))
	c := newClient(t, srv.URL+"/prod", Options{})
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.PostToConnection(context.Background(), fmt.Sprintf("id%d=", i), []byte("x")); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}

// verifySignature checks the request's Authorization header twice: by
// re-signing a reconstruction of the request with the SDK signer, and with
// an independent SigV4 computation over the wire path, which is what a
// verifying gateway does.
func verifySignature(t *testing.T, r recorded, creds aws.Credentials, region string) {
	t.Helper()
	auth := r.Header.Get("Authorization")
	const prefix = "AWS4-HMAC-SHA256 "
	if !strings.HasPrefix(auth, prefix) {
		t.Fatalf("Authorization = %q", auth)
	}
	parts := map[string]string{}
	for _, kv := range strings.Split(strings.TrimPrefix(auth, prefix), ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		parts[k] = v
	}
	signed := strings.Split(parts["SignedHeaders"], ";")
	amzDate := r.Header.Get("X-Amz-Date")
	signingTime, err := time.Parse("20060102T150405Z", amzDate)
	if err != nil {
		t.Fatalf("X-Amz-Date %q: %v", amzDate, err)
	}
	sum := sha256.Sum256(r.Body)
	payloadHash := hex.EncodeToString(sum[:])

	// 1. Re-sign with the SDK signer.
	req, err := http.NewRequest(r.Method, "http://"+r.Host+r.RequestURI, bytes.NewReader(r.Body))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range signed {
		if h == "host" || h == "content-length" {
			continue
		}
		req.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
	}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, payloadHash, "execute-api", region, signingTime); err != nil {
		t.Fatal(err)
	}
	if got := req.Header.Get("Authorization"); got != auth {
		t.Errorf("signature does not verify:\n got  %s\n want %s", auth, got)
	}

	// 2. Independent computation: canonical URI = each segment of the wire
	// path escaped again.
	wirePath, _, _ := strings.Cut(r.RequestURI, "?")
	segs := strings.Split(wirePath, "/")
	for i, s := range segs {
		segs[i] = EscapeConnectionID(s)
	}
	var canonHeaders strings.Builder
	sort.Strings(signed)
	for _, h := range signed {
		v := strings.Join(r.Header.Values(h), ",")
		if h == "host" {
			v = r.Host
		}
		canonHeaders.WriteString(h + ":" + strings.TrimSpace(v) + "\n")
	}
	canonical := strings.Join([]string{r.Method, strings.Join(segs, "/"), "", canonHeaders.String(), strings.Join(signed, ";"), payloadHash}, "\n")
	if !strings.Contains(canonical, "/%40connections/") {
		t.Errorf("canonical URI not double-escaped: %q", canonical)
	}
	day := amzDate[:8]
	scope := day + "/" + region + "/execute-api/aws4_request"
	if parts["Credential"] != creds.AccessKeyID+"/"+scope {
		t.Errorf("Credential = %q, want %q", parts["Credential"], creds.AccessKeyID+"/"+scope)
	}
	ch := sha256.Sum256([]byte(canonical))
	toSign := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(ch[:])
	key := []byte("AWS4" + creds.SecretAccessKey)
	for _, s := range []string{day, region, "execute-api", "aws4_request"} {
		key = hmacSHA256(key, s)
	}
	if want := hex.EncodeToString(hmacSHA256(key, toSign)); parts["Signature"] != want {
		t.Errorf("independent signature check failed:\ncanonical request:\n%s\n got %s want %s", canonical, parts["Signature"], want)
	}
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}
