package gateway

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/gorilla/websocket"

	"github.com/portico-gateway/portico/management/client"
)

// apiConnectionsURL is @connections on the API's own listener, as a
// backend builds it from an event's domainName and stage.
func apiConnectionsURL(g *Gateway, stage string) string {
	return "http://" + g.APIAddr("t") + "/" + stage
}

// @connections on the WebSocket listener needs a signature even when the
// management listener needs none, and works with one: the Go client and
// the official JS SDK pointed at the API's own host.
func TestConnectionsOnAPIListener(t *testing.T) {
	t.Setenv("PORTICO_TEST_IAM_SECRET", iamSecret)
	g := startGateway(t, `management:
  credentials:
    - {accessKeyId: AKIDPORTICO, secretAccessKey: "${PORTICO_TEST_IAM_SECRET}"}
`+yamlAPI("", whoamiRoutes))
	c := dial(t, wsURL(g, "test"), nil)
	send(t, c, `{"action":"whoami"}`)
	id := readText(t, c)

	// Unsigned: refused there, while the loopback management listener
	// (auth none) still takes it.
	req, _ := http.NewRequest("POST", apiConnectionsURL(g, "test")+"/@connections/"+url.PathEscape(id), strings.NewReader("x"))
	refusal(t, req, "MissingAuthenticationTokenException", "Missing Authentication Token")
	if resp, _ := doHTTP(t, "POST", mgmtURL(g, "test")+"/@connections/"+id, "unsigned via management"); resp.StatusCode != 200 {
		t.Fatalf("unsigned POST on the management listener with auth none: %d", resp.StatusCode)
	}
	if got := readText(t, c); got != "unsigned via management" {
		t.Fatalf("client got %q", got)
	}

	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	cl, err := client.New(apiConnectionsURL(g, "test"), client.Options{Credentials: credentials.NewStaticCredentialsProvider(iamKey, iamSecret, "")})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.PostToConnection(ctx, id, []byte("signed, on the API's host")); err != nil {
		t.Fatalf("signed PostToConnection on the API listener: %v", err)
	}
	if got := readText(t, c); got != "signed, on the API's host" {
		t.Errorf("client got %q", got)
	}
	wrong, _ := client.New(apiConnectionsURL(g, "test"), client.Options{Credentials: credentials.NewStaticCredentialsProvider(iamKey, "wrong", "")})
	var forbidden *client.ForbiddenException
	if err := wrong.PostToConnection(ctx, id, []byte("x")); !errors.As(err, &forbidden) || forbidden.Message != iamMismatch {
		t.Errorf("wrong secret on the API listener: %v", err)
	}
	res := runSDKAs(t, apiConnectionsURL(g, "test"), map[string]string{"accessKeyId": iamKey, "secretAccessKey": iamSecret}, []map[string]string{
		{"op": "post", "id": id, "data": "from the JS SDK"},
		{"op": "get", "id": id},
	})
	for _, r := range res {
		if !r.OK {
			t.Errorf("JS SDK %s on the API listener: %s %d %s", r.Op, r.Name, r.Status, r.Message)
		}
	}
	if got := readText(t, c); got != "from the JS SDK" {
		t.Errorf("client got %q", got)
	}

	// Anything else on the listener is answered 426, naming the request.
	resp, body := doHTTP(t, "POST", "http://"+g.APIAddr("t")+"/test/other", "x")
	if resp.StatusCode != http.StatusUpgradeRequired || !strings.Contains(body, "not POST /test/other") {
		t.Errorf("plain POST elsewhere: %d %q", resp.StatusCode, body)
	}
	// A stage of no API of this listener is Forbidden, signed or not.
	req = signedRequest(t, "POST", apiConnectionsURL(g, "other")+"/@connections/"+url.PathEscape(id), "x", iamKey, iamSecret)
	refusal(t, req, "ForbiddenException", "Forbidden")
}

// Without any credential configured, @connections on the API listener
// refuses everything.
func TestConnectionsOnAPIListenerWithoutCredentials(t *testing.T) {
	g := startGateway(t, yamlAPI("", whoamiRoutes))
	c := dial(t, wsURL(g, "test"), nil)
	send(t, c, `{"action":"whoami"}`)
	id := readText(t, c)
	req, _ := http.NewRequest("POST", apiConnectionsURL(g, "test")+"/@connections/"+url.PathEscape(id), strings.NewReader("x"))
	refusal(t, req, "MissingAuthenticationTokenException", "Missing Authentication Token")
	req = signedRequest(t, "POST", apiConnectionsURL(g, "test")+"/@connections/"+url.PathEscape(id), "x", iamKey, iamSecret)
	refusal(t, req, "UnrecognizedClientException", "The security token included in the request is invalid.")
}

// presign returns the WebSocket URL of stage signed as AWS users sign
// connect URLs: query-string SigV4 for execute-api, expiring after
// expires, as of signedAt.
func presign(t *testing.T, g *Gateway, stage, key, secret string, signedAt time.Time, expires time.Duration) string {
	t.Helper()
	u := "http://" + g.APIAddr("t") + "/" + stage + "?X-Amz-Expires=" + strconv.Itoa(int(expires.Seconds()))
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	signed, _, err := v4.NewSigner().PresignHTTP(context.Background(), aws.Credentials{AccessKeyID: key, SecretAccessKey: secret},
		req, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "execute-api", "us-east-1", signedAt)
	if err != nil {
		t.Fatal(err)
	}
	return "ws" + strings.TrimPrefix(signed, "http")
}

// AWS_IAM on $connect: a presigned connect URL made with a configured
// key connects; unsigned, signed with another secret or expired, the
// handshake is refused.
func TestIAMConnect(t *testing.T) {
	t.Setenv("PORTICO_TEST_IAM_SECRET", iamSecret)
	g := startGateway(t, `management:
  credentials:
    - {accessKeyId: AKIDPORTICO, secretAccessKey: "${PORTICO_TEST_IAM_SECRET}"}
`+yamlAPI("", "$connect:\n  authorizationType: AWS_IAM\n"+whoamiRoutes+"who:\n  routeResponse: true\n  integration: {type: mock, response: {body: \"$context.authorizer.principalId\"}}\n"))
	c, resp, err := websocket.DefaultDialer.Dial(presign(t, g, "test", iamKey, iamSecret, time.Now(), 5*time.Minute), nil)
	if err != nil {
		status := 0
		if resp != nil {
			b, _ := io.ReadAll(resp.Body)
			status = resp.StatusCode
			t.Logf("body %s", b)
		}
		t.Fatalf("presigned connect: %v (HTTP %d)", err, status)
	}
	defer c.Close()
	send(t, c, `{"action":"who"}`)
	if got := readText(t, c); got != iamKey {
		t.Errorf("$context.authorizer.principalId = %q, want the signing key %s", got, iamKey)
	}
	for name, u := range map[string]string{
		"unsigned":     "ws://" + g.APIAddr("t") + "/test",
		"wrong secret": presign(t, g, "test", iamKey, "wrong", time.Now(), 5*time.Minute),
		"unknown key":  presign(t, g, "test", "AKIDNOBODY", iamSecret, time.Now(), 5*time.Minute),
		"expired":      presign(t, g, "test", iamKey, iamSecret, time.Now().Add(-20*time.Minute), 5*time.Minute),
	} {
		_, resp, err := websocket.DefaultDialer.Dial(u, nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			status := 0
			if resp != nil {
				status = resp.StatusCode
			}
			t.Errorf("%s connect: %v (HTTP %d), want 403", name, err, status)
		}
	}
}
