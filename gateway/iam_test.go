package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/portico-gateway/portico/management/client"
)

// The keys of the IAM tests: an admin key that may do everything, and a
// reader that may only GET on stage test.
const (
	iamKey        = "AKIDPORTICO"
	iamSecret     = "portico-test-secret"
	readerKey     = "AKIDREADER"
	readerSecret  = "reader-secret"
	iamMismatch   = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
	iamManagement = `management:
  auth: iam
  credentials:
    - {accessKeyId: AKIDPORTICO, secretAccessKey: "${PORTICO_TEST_IAM_SECRET}"}
    - accessKeyId: AKIDREADER
      secretAccessKey: reader-secret
      allow: [{api: t, stage: test, actions: [get]}]
`
)

// startIAMGateway starts a gateway whose management listener needs SigV4.
func startIAMGateway(t *testing.T) *Gateway {
	t.Setenv("PORTICO_TEST_IAM_SECRET", iamSecret)
	return startGateway(t, iamManagement+yamlAPI("", whoamiRoutes))
}

// connect opens a connection and returns it and its id.
func connect(t *testing.T, g *Gateway) (conn interface{ Close() error }, id string) {
	c := dial(t, wsURL(g, "test"), nil)
	send(t, c, `{"action":"whoami"}`)
	return c, readText(t, c)
}

// signedRequest builds a request signed with the SDK's signer, as the AWS
// SDKs sign @connections calls.
func signedRequest(t *testing.T, method, url, body, key, secret string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(body))
	creds := aws.Credentials{AccessKeyID: key, SecretAccessKey: secret}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "execute-api", "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	return req
}

// refusal sends req and checks a 403 with AWS's error type and message.
func refusal(t *testing.T, req *http.Request, errType, message string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var m struct{ Message string }
	_ = json.Unmarshal(body, &m)
	if resp.StatusCode != 403 || resp.Header.Get("x-amzn-ErrorType") != errType || !strings.HasPrefix(m.Message, message) {
		t.Errorf("%s %s: %d %q %s, want 403 %s %q", req.Method, req.URL, resp.StatusCode, resp.Header.Get("x-amzn-ErrorType"), body, errType, message)
	}
}

func TestIAMGoClient(t *testing.T) {
	g := startIAMGateway(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c := dial(t, wsURL(g, "test"), nil)
	send(t, c, `{"action":"whoami"}`)
	id := readText(t, c)

	cl, err := client.New(mgmtURL(g, "test"), client.Options{Credentials: credentials.NewStaticCredentialsProvider(iamKey, iamSecret, "")})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.PostToConnection(ctx, id, []byte("signed")); err != nil {
		t.Fatalf("signed PostToConnection: %v", err)
	}
	if got := readText(t, c); got != "signed" {
		t.Errorf("client got %q", got)
	}
	if _, err := cl.GetConnection(ctx, id); err != nil {
		t.Fatalf("signed GetConnection: %v", err)
	}

	wrong, _ := client.New(mgmtURL(g, "test"), client.Options{Credentials: credentials.NewStaticCredentialsProvider(iamKey, "not-the-secret", "")})
	var forbidden *client.ForbiddenException
	if err := wrong.PostToConnection(ctx, id, []byte("x")); !errors.As(err, &forbidden) || forbidden.StatusCode != 403 || forbidden.Message != iamMismatch {
		t.Errorf("wrong secret: %v, want 403 with AWS's mismatch message", err)
	}
	unknown, _ := client.New(mgmtURL(g, "test"), client.Options{Credentials: credentials.NewStaticCredentialsProvider("AKIDNOBODY", iamSecret, "")})
	if err := unknown.PostToConnection(ctx, id, []byte("x")); !errors.As(err, &forbidden) || forbidden.Message != "The security token included in the request is invalid." {
		t.Errorf("unknown key: %v", err)
	}

	// The reader may GET on stage test, nothing else.
	reader, _ := client.New(mgmtURL(g, "test"), client.Options{Credentials: credentials.NewStaticCredentialsProvider(readerKey, readerSecret, "")})
	if _, err := reader.GetConnection(ctx, id); err != nil {
		t.Errorf("reader GetConnection: %v", err)
	}
	if err := reader.DeleteConnection(ctx, id); !errors.As(err, &forbidden) || !strings.Contains(forbidden.Message, "is not authorized to perform: execute-api:ManageConnections") {
		t.Errorf("reader DeleteConnection: %v, want ForbiddenException", err)
	}
	if err := cl.DeleteConnection(ctx, id); err != nil {
		t.Fatalf("signed DeleteConnection: %v", err)
	}
	if ce := readClose(t, c); ce.Code != 1000 {
		t.Errorf("close code %d", ce.Code)
	}
}

func TestIAMRawRequests(t *testing.T) {
	g := startIAMGateway(t)
	_, id := connect(t, g)
	url := mgmtURL(g, "test") + "/@connections/" + client.EscapeConnectionID(id)

	// No signature at all.
	req, _ := http.NewRequest("POST", url, strings.NewReader("x"))
	refusal(t, req, "MissingAuthenticationTokenException", "Missing Authentication Token")

	// Tampered body: signed for one body, sent with another.
	req = signedRequest(t, "POST", url, "signed body", iamKey, iamSecret)
	req.Body = io.NopCloser(strings.NewReader("other body!"))
	refusal(t, req, "InvalidSignatureException", iamMismatch)

	// Tampered path: signed for another connection.
	req = signedRequest(t, "POST", mgmtURL(g, "test")+"/@connections/AAAAAAAAAAAAAAA%3D", "x", iamKey, iamSecret)
	req.URL.RawPath = "/test/@connections/" + client.EscapeConnectionID(id)
	req.URL.Path = "/test/@connections/" + id
	refusal(t, req, "InvalidSignatureException", iamMismatch)

	// Wrong secret, unknown key, another region.
	refusal(t, signedRequest(t, "POST", url, "x", iamKey, "wrong"), "InvalidSignatureException", iamMismatch)
	refusal(t, signedRequest(t, "POST", url, "x", "AKIDNOBODY", iamSecret), "UnrecognizedClientException", "The security token included in the request is invalid.")
	req, _ = http.NewRequest("GET", url, nil)
	sum := sha256.Sum256(nil)
	_ = v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: iamKey, SecretAccessKey: iamSecret}, req, hex.EncodeToString(sum[:]), "execute-api", "eu-west-1", time.Now())
	refusal(t, req, "InvalidSignatureException", "Credential should be scoped to a valid region, not 'eu-west-1'. ")
	// A stale date.
	req, _ = http.NewRequest("GET", url, nil)
	_ = v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: iamKey, SecretAccessKey: iamSecret}, req, hex.EncodeToString(sum[:]), "execute-api", "us-east-1", time.Now().Add(-10*time.Minute))
	refusal(t, req, "InvalidSignatureException", "Signature expired: ")

	// Signed right: it reaches the connection.
	resp, err := http.DefaultClient.Do(signedRequest(t, "GET", url, "", iamKey, iamSecret))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("signed GET: %d", resp.StatusCode)
	}

	// /healthz and /readyz stay open; /metrics follows auth (iam here).
	for _, p := range []string{"/healthz", "/readyz"} {
		if resp, _ := doHTTP(t, "GET", "http://"+g.ManagementAddr()+p, ""); resp.StatusCode != 200 {
			t.Errorf("%s: %d", p, resp.StatusCode)
		}
	}
	req, _ = http.NewRequest("GET", "http://"+g.ManagementAddr()+"/metrics", nil)
	refusal(t, req, "MissingAuthenticationTokenException", "Missing Authentication Token")
	refusal(t, signedRequest(t, "GET", "http://"+g.ManagementAddr()+"/metrics", "", readerKey, readerSecret), "ForbiddenException", "User: AKIDREADER is not authorized")
	resp, err = http.DefaultClient.Do(signedRequest(t, "GET", "http://"+g.ManagementAddr()+"/metrics", "", iamKey, iamSecret))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "portico_management_requests_total") {
		t.Errorf("signed /metrics: %d", resp.StatusCode)
	}
}

func TestIAMMetricsOpen(t *testing.T) {
	t.Setenv("PORTICO_TEST_IAM_SECRET", iamSecret)
	g := startGateway(t, strings.Replace(iamManagement, "  auth: iam\n", "  auth: iam\n  metricsAuth: none\n", 1)+yamlAPI("", whoamiRoutes))
	if resp, _ := doHTTP(t, "GET", "http://"+g.ManagementAddr()+"/metrics", ""); resp.StatusCode != 200 {
		t.Errorf("/metrics with metricsAuth none: %d", resp.StatusCode)
	}
	if resp, _ := doHTTP(t, "GET", mgmtURL(g, "test")+"/@connections/AAAAAAAAAAAAAAA=", ""); resp.StatusCode != 403 {
		t.Errorf("unsigned @connections: %d, want 403", resp.StatusCode)
	}
}

func TestIAMOfficialJSSDK(t *testing.T) {
	g := startIAMGateway(t)
	c := dial(t, wsURL(g, "test"), nil)
	send(t, c, `{"action":"whoami"}`)
	id := readText(t, c)
	res := runSDKAs(t, mgmtURL(g, "test"), map[string]string{"accessKeyId": iamKey, "secretAccessKey": iamSecret}, []map[string]string{
		{"op": "post", "id": id, "data": "signed by the JS SDK"},
		{"op": "get", "id": id},
	})
	for _, r := range res {
		if !r.OK {
			t.Errorf("%s: %s %d %s", r.Op, r.Name, r.Status, r.Message)
		}
	}
	if got := readText(t, c); got != "signed by the JS SDK" {
		t.Errorf("client got %q", got)
	}
	res = runSDKAs(t, mgmtURL(g, "test"), map[string]string{"accessKeyId": iamKey, "secretAccessKey": "wrong"}, []map[string]string{
		{"op": "post", "id": id, "data": "x"},
	})
	if r := res[0]; r.OK || r.Status != 403 || r.Name != "InvalidSignatureException" || r.Message != iamMismatch {
		t.Errorf("wrong secret through the JS SDK: %+v", r)
	}
	res = runSDKAs(t, mgmtURL(g, "test"), map[string]string{"accessKeyId": readerKey, "secretAccessKey": readerSecret}, []map[string]string{
		{"op": "post", "id": id, "data": "x"},
	})
	if r := res[0]; r.OK || r.Status != 403 || r.Name != "ForbiddenException" {
		t.Errorf("reader posting through the JS SDK: %+v", r)
	}
}

// TestIAMCurl signs with curl's --aws-sigv4, the README's example. curl 8
// URI-encodes the canonical path as AWS requires, so the call succeeds;
// curl 7 signs the path as sent ("/test/@connections/abc="), which AWS
// refuses for execute-api (it encodes each segment: "%40connections",
// "abc%3D") and so does Portico: that is checked too.
func TestIAMCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		missingDep(t, "curl is not installed")
	}
	ver, err := exec.Command(curl, "--version").Output()
	if err != nil {
		t.Fatalf("curl --version: %v", err)
	}
	var major int
	if _, err := fmt.Sscanf(string(ver), "curl %d.", &major); err != nil {
		t.Fatalf("curl --version: %q", ver)
	}
	g := startIAMGateway(t)
	c := dial(t, wsURL(g, "test"), nil)
	send(t, c, `{"action":"whoami"}`)
	id := readText(t, c)
	run := func(secret string) (code, errType string) {
		out, err := exec.Command(curl, "-s", "-o", "/dev/null", "-D", "-", "-w", "%{http_code}",
			"--aws-sigv4", "aws:amz:us-east-1:execute-api", "--user", iamKey+":"+secret,
			"-X", "POST", "--data", "pushed by curl",
			mgmtURL(g, "test")+"/@connections/"+id).Output()
		if err != nil {
			t.Fatalf("curl: %v", err)
		}
		s := string(out)
		if i := strings.Index(strings.ToLower(s), "x-amzn-errortype: "); i >= 0 {
			errType, _, _ = strings.Cut(s[i+len("x-amzn-errortype: "):], "\r")
		}
		return s[len(s)-3:], errType
	}
	code, errType := run(iamSecret)
	switch {
	case major >= 8:
		if code != "200" {
			t.Fatalf("curl %d --aws-sigv4: HTTP %s %s", major, code, errType)
		}
		if got := readText(t, c); got != "pushed by curl" {
			t.Errorf("client got %q", got)
		}
	case code != "403" || errType != "InvalidSignatureException":
		t.Errorf("curl %d (signs the path unencoded): HTTP %s %s, want 403 InvalidSignatureException as from AWS", major, code, errType)
	}
	if code, errType := run("wrong"); code != "403" || errType != "InvalidSignatureException" {
		t.Errorf("curl with a wrong secret: HTTP %s %s", code, errType)
	}
}

// With management.auth iam, the usage of a usage plan is read with a key
// allowed the admin action, as the other admin endpoints.
func TestUsageNeedsAdmin(t *testing.T) {
	t.Setenv("PORTICO_TEST_IAM_SECRET", iamSecret)
	t.Setenv("PORTICO_TEST_PARTNER_KEY", testKey)
	g := startGateway(t, iamManagement+planYAML+yamlAPI("", whoamiRoutes))
	url := "http://" + g.ManagementAddr() + "/usageplans/basic/usage?keyId=partner-a"
	if resp, body := doHTTP(t, "GET", url, ""); resp.StatusCode != http.StatusForbidden {
		t.Errorf("unsigned usage: %d %s, want 403", resp.StatusCode, body)
	}
	refusal(t, signedRequest(t, "GET", url, "", readerKey, readerSecret), "ForbiddenException", "User: AKIDREADER is not authorized")
	resp, err := http.DefaultClient.Do(signedRequest(t, "GET", url, "", iamKey, iamSecret))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("signed usage: %d, want 200", resp.StatusCode)
	}
}
