// Package client calls the @connections management API of a Portico
// gateway (or of Amazon API Gateway) from a backend: push data to a
// connection, look a connection up, and close it.
//
// It speaks the same wire format as the ApiGatewayManagementApi clients in
// the AWS SDKs: the connection id is percent-encoded into the path, every
// request is signed with SigV4 for the service "execute-api", and errors
// come back as typed values (GoneException, ForbiddenException,
// PayloadTooLargeException, LimitExceededException, APIError) that callers
// match with errors.As:
//
//	c, err := client.New("http://127.0.0.1:9090/prod", client.Options{})
//	...
//	err = c.PostToConnection(ctx, id, []byte("hello"))
//	var gone *client.GoneException
//	if errors.As(err, &gone) {
//		// the connection is closed: forget the id
//	}
//
// Requests are not retried; callers decide whether an error is worth
// another attempt.
package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

const (
	// SigningName is the SigV4 service name of the @connections API.
	SigningName = "execute-api"
	// DefaultRegion is the signing region used when Options.Region is empty.
	DefaultRegion = "us-east-1"

	// placeholderKey is the access key id and secret used when no
	// credentials are configured anywhere.
	placeholderKey = "portico"

	userAgent = "portico-management-client"

	// Caps on how much of a response body is read.
	maxSuccessBody = 1 << 20
	maxErrorBody   = 64 << 10
)

// Options configure a Client. The zero value of each field means the
// default noted beside it.
type Options struct {
	// HTTPClient sends the requests. nil: a client with a 30 s overall
	// timeout and a keep-alive connection pool sized for many concurrent
	// calls to one gateway.
	HTTPClient *http.Client
	// Region is the SigV4 signing region. "": "us-east-1".
	Region string
	// Credentials sign the requests; any aws-sdk-go-v2 provider works, e.g.
	// credentials.NewStaticCredentialsProvider(accessKeyID, secret, "")
	// for a key of a gateway with management.auth: iam. nil: AWS_ACCESS_KEY_ID,
	// AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN from the environment
	// (read once, in New) when the first two are set, otherwise the static
	// placeholder "portico"/"portico". Providers that are not already an
	// *aws.CredentialsCache are wrapped in one, as the AWS SDKs do.
	Credentials aws.CredentialsProvider
}

// Client calls the @connections API of one stage. It is safe for
// concurrent use.
type Client struct {
	httpClient *http.Client
	region     string
	creds      aws.CredentialsProvider
	signer     *v4.Signer
	base       *url.URL
	basePath   string // base.Path without a trailing slash
	baseRaw    string // base.EscapedPath() without a trailing slash
}

// Connection describes an open connection, as returned by GetConnection.
type Connection struct {
	// ConnectedAt is when the WebSocket handshake completed.
	ConnectedAt time.Time
	// Identity describes the client.
	Identity Identity
	// LastActiveAt is when the connection last sent or received a message.
	LastActiveAt time.Time
}

// Identity describes the client behind a connection.
type Identity struct {
	// SourceIP is the client's IP address.
	SourceIP string
	// UserAgent is the client's User-Agent header, if it sent one.
	UserAgent string
}

// New returns a client for the stage URL endpoint, for example
// "http://127.0.0.1:9090/prod" or
// "https://abc123defg.execute-api.eu-west-1.amazonaws.com/prod". The
// endpoint must be an absolute http or https URL without query or fragment.
func New(endpoint string, opts Options) (*Client, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return nil, fmt.Errorf("client: invalid endpoint %q: %w", endpoint, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("client: invalid endpoint %q: scheme must be http or https", endpoint)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("client: invalid endpoint %q: missing host", endpoint)
	}
	if u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return nil, fmt.Errorf("client: invalid endpoint %q: must not contain user info, query or fragment", endpoint)
	}

	c := &Client{
		httpClient: opts.HTTPClient,
		region:     opts.Region,
		creds:      opts.Credentials,
		signer:     v4.NewSigner(),
		base:       u,
		basePath:   strings.TrimSuffix(u.Path, "/"),
		baseRaw:    strings.TrimSuffix(u.EscapedPath(), "/"),
	}
	if c.httpClient == nil {
		c.httpClient = defaultHTTPClient()
	}
	if c.region == "" {
		c.region = DefaultRegion
	}
	if c.creds == nil {
		c.creds = envOrPlaceholderCredentials()
	}
	if !aws.IsCredentialsProvider(c.creds, (*aws.CredentialsCache)(nil)) {
		c.creds = aws.NewCredentialsCache(c.creds)
	}
	return c, nil
}

// Endpoint returns the stage URL the client was created with.
func (c *Client) Endpoint() string { return c.base.String() }

// PostToConnection sends data to the connection as one WebSocket message.
func (c *Client) PostToConnection(ctx context.Context, connectionID string, data []byte) error {
	return c.call(ctx, "PostToConnection", http.MethodPost, connectionID, data)
}

// GetConnection returns information about the connection.
func (c *Client) GetConnection(ctx context.Context, connectionID string) (*Connection, error) {
	const op = "GetConnection"
	resp, err := c.do(ctx, op, http.MethodGet, connectionID, nil)
	if err != nil {
		return nil, err
	}
	defer closeBody(resp)
	if !success(resp.StatusCode) {
		return nil, decodeError(resp)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxSuccessBody))
	if err != nil {
		return nil, fmt.Errorf("client: %s %s: reading response: %w", op, connectionID, err)
	}
	conn, err := parseConnection(body)
	if err != nil {
		return nil, fmt.Errorf("client: %s %s: decoding response: %w", op, connectionID, err)
	}
	return conn, nil
}

// DeleteConnection closes the connection.
func (c *Client) DeleteConnection(ctx context.Context, connectionID string) error {
	return c.call(ctx, "DeleteConnection", http.MethodDelete, connectionID, nil)
}

// call runs an operation whose success has no body to read.
func (c *Client) call(ctx context.Context, op, method, connectionID string, data []byte) error {
	resp, err := c.do(ctx, op, method, connectionID, data)
	if err != nil {
		return err
	}
	defer closeBody(resp)
	if !success(resp.StatusCode) {
		return decodeError(resp)
	}
	return nil
}

// do builds, signs and sends one @connections request. The caller closes
// the response body.
func (c *Client) do(ctx context.Context, op, method, connectionID string, body []byte) (*http.Response, error) {
	if connectionID == "" {
		return nil, fmt.Errorf("client: %s: connection id is required", op)
	}
	contentType := ""
	if method == http.MethodPost {
		contentType = "application/octet-stream"
	}
	return c.send(ctx, op, connectionID, method, "/@connections/"+connectionID, "/@connections/"+EscapeConnectionID(connectionID), "", contentType, body)
}

// send builds, signs and sends one request to path below the stage URL
// (path decoded, rawPath as sent on the wire; query already encoded), with
// the Content-Type contentType ("": none). what names the target in errors.
// The caller closes the response body.
func (c *Client) send(ctx context.Context, op, what, method, path, rawPath, query, contentType string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base.String(), bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("client: %s %s: building request: %w", op, what, err)
	}
	// Path carries the decoded form, RawPath the form sent on the wire. The
	// signer reads EscapedPath(), which returns RawPath, so the signature
	// covers exactly the bytes sent.
	req.URL.Path = c.basePath + path
	req.URL.RawPath = c.baseRaw + rawPath
	req.URL.RawQuery = query
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("User-Agent", userAgent)

	creds, err := c.creds.Retrieve(ctx)
	if err != nil {
		return nil, fmt.Errorf("client: %s %s: retrieving credentials: %w", op, what, err)
	}
	sum := sha256.Sum256(body)
	if err := c.signer.SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), SigningName, c.region, time.Now()); err != nil {
		return nil, fmt.Errorf("client: %s %s: signing request: %w", op, what, err)
	}

	resp, err := c.httpClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("client: %s %s: %w", op, what, err)
	}
	return resp, nil
}

// EscapeConnectionID percent-encodes a connection id for use as one path
// segment, as the AWS SDKs do: every byte outside A-Z a-z 0-9 - _ . ~ becomes
// %XX with upper-case hex, so "R0oXAdfD0kwCH6w=" becomes "R0oXAdfD0kwCH6w%3D".
func EscapeConnectionID(id string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(id) + 4)
	for i := 0; i < len(id); i++ {
		ch := id[i]
		if unreserved(ch) {
			b.WriteByte(ch)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[ch>>4])
		b.WriteByte(hexDigits[ch&0x0f])
	}
	return b.String()
}

func unreserved(ch byte) bool {
	return 'A' <= ch && ch <= 'Z' || 'a' <= ch && ch <= 'z' || '0' <= ch && ch <= '9' ||
		ch == '-' || ch == '_' || ch == '.' || ch == '~'
}

func success(status int) bool { return status >= 200 && status < 300 }

// closeBody drains a little of the body so the connection can be reused,
// then closes it.
func closeBody(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	_ = resp.Body.Close()
}

func defaultHTTPClient() *http.Client {
	var tr *http.Transport
	if dt, ok := http.DefaultTransport.(*http.Transport); ok {
		tr = dt.Clone()
	} else {
		tr = &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			ForceAttemptHTTP2:     true,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
		}
	}
	tr.MaxIdleConns = 256
	tr.MaxIdleConnsPerHost = 128
	tr.IdleConnTimeout = 90 * time.Second
	tr.ResponseHeaderTimeout = 30 * time.Second
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func envOrPlaceholderCredentials() aws.CredentialsProvider {
	creds := aws.Credentials{
		AccessKeyID:     os.Getenv("AWS_ACCESS_KEY_ID"),
		SecretAccessKey: os.Getenv("AWS_SECRET_ACCESS_KEY"),
		SessionToken:    os.Getenv("AWS_SESSION_TOKEN"),
		Source:          "Environment",
	}
	if creds.AccessKeyID == "" || creds.SecretAccessKey == "" {
		creds = aws.Credentials{AccessKeyID: placeholderKey, SecretAccessKey: placeholderKey, Source: "PorticoPlaceholder"}
	}
	return aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return creds, nil })
}

// connectionJSON is the GetConnection response body.
type connectionJSON struct {
	ConnectedAt json.RawMessage `json:"connectedAt"`
	Identity    *struct {
		SourceIP  string `json:"sourceIp"`
		UserAgent string `json:"userAgent"`
	} `json:"identity"`
	LastActiveAt json.RawMessage `json:"lastActiveAt"`
}

func parseConnection(body []byte) (*Connection, error) {
	var cj connectionJSON
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &cj); err != nil {
			return nil, err
		}
	}
	conn := &Connection{}
	var err error
	if conn.ConnectedAt, err = parseTimestamp(cj.ConnectedAt); err != nil {
		return nil, fmt.Errorf("connectedAt: %w", err)
	}
	if conn.LastActiveAt, err = parseTimestamp(cj.LastActiveAt); err != nil {
		return nil, fmt.Errorf("lastActiveAt: %w", err)
	}
	if cj.Identity != nil {
		conn.Identity = Identity{SourceIP: cj.Identity.SourceIP, UserAgent: cj.Identity.UserAgent}
	}
	return conn, nil
}

// parseTimestamp reads an ISO-8601 string with or without fractional
// seconds. Epoch seconds (a JSON number) are accepted too. Absent or null
// gives the zero time.
func parseTimestamp(raw json.RawMessage) (time.Time, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return time.Time{}, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return time.Time{}, err
		}
		// RFC3339Nano parses both "…:00Z" and "…:00.120Z".
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return time.Time{}, err
		}
		return t.UTC(), nil
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		return time.Time{}, errors.New("timestamp is neither an ISO-8601 string nor a number")
	}
	sec := int64(f)
	nsec := int64((f - float64(sec)) * 1e9)
	return time.Unix(sec, nsec).UTC(), nil
}
