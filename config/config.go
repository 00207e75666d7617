// Package config holds the schema of Portico's one YAML configuration file
// and its loader. Every field documents its default; the zero value of a
// field always means "use the default". Load reports problems as
// "file:line: key: reason" so a bad file fails at start with a clear message.
package config

import (
	"fmt"
	"time"

	"go.yaml.in/yaml/v3"
)

// File is the whole configuration document.
type File struct {
	// Management configures the listener that serves @connections,
	// /healthz, /readyz and /metrics.
	Management Management `yaml:"management"`

	// Storage selects the connection registry.
	Storage Storage `yaml:"storage"`

	// Listen tunes every API's WebSocket listener.
	Listen ListenOptions `yaml:"listen"`

	// Connections selects and tunes the connection servers.
	Connections Connections `yaml:"connections"`

	// Log configures structured logging.
	Log Log `yaml:"log"`

	// Tracing sends OpenTelemetry traces to a collector (off by default).
	Tracing Tracing `yaml:"tracing"`

	// ShutdownTimeout bounds a graceful shutdown (SIGTERM): closing every
	// connection with 1001 and running $disconnect for each.
	// Default 30s.
	ShutdownTimeout Duration `yaml:"shutdownTimeout"`

	// GCPercent is the Go garbage collector's target (GOGC): the heap may
	// grow this many percent over live memory before a collection. Lower
	// holds many idle connections in less memory for a little more CPU.
	// Default 50 (Go's own default is 100). The GOGC environment variable,
	// when set, wins.
	GCPercent int `yaml:"gcPercent"`

	// GCPercentMax is the highest GC target a busy gateway gets: while
	// the collector takes more than 5% of the process's CPU the target
	// doubles from GCPercent up to this, halves back when it costs
	// little, and returns to GCPercent (the busy period's garbage handed
	// back to the OS) once the gateway is idle. Equal to GCPercent: a
	// fixed target. Default 400, or GCPercent when that is higher. Not
	// used when GOGC is set.
	GCPercentMax int `yaml:"gcPercentMax"`

	// APIs are the APIs this gateway serves (WebSocket, HTTP and REST
	// APIs). At least one.
	APIs []API `yaml:"apis"`

	// Throttling is the gateway-wide bucket and where buckets are kept.
	Throttling Throttling `yaml:"throttling"`

	// UsagePlans meter API keys on some stages.
	UsagePlans []UsagePlan `yaml:"usagePlans"`

	// APIKeys are the keys usage plans meter.
	APIKeys []APIKey `yaml:"apiKeys"`

	// path is the file the configuration was read from ("" when built in code).
	path string
	// lines maps key paths (apis[0].routes.echo) to their line in the file.
	lines map[string]int
	// credFile holds management.credentialsFile's credentials, its path
	// and lines; nil without one.
	credFile *File
}

// Path returns the file the configuration was loaded from.
func (f *File) Path() string { return f.path }

// ListenOptions tune the WebSocket listeners.
type ListenOptions struct {
	// ReusePort sets SO_REUSEPORT on every API listener, so several
	// gateway processes can listen on the same port: the kernel spreads
	// new connections over them, and a node is restarted without refusing
	// connections (start the new process, then SIGTERM the old one).
	// Default false. Linux only.
	ReusePort bool `yaml:"reusePort"`
	// TCPKeepAlive turns on the kernel's TCP keepalive for accepted
	// connections: a probe after this long without traffic, then every
	// this long. Default 0s: off. Each probe is a packet pair per idle
	// connection (a million connections at Go's usual 15 s would be
	// 130,000 packets a second); idle clients are closed by idleTimeout
	// and, when set, pingInterval instead.
	TCPKeepAlive Duration `yaml:"tcpKeepAlive"`
}

// Management configures the management listener.
type Management struct {
	// Address is the host:port to listen on. Default "127.0.0.1:9090":
	// loopback only. Any other address needs Auth "iam".
	Address string `yaml:"address"`
	// Pprof serves Go's profiler under /debug/pprof/ on this listener.
	// Default false. With Auth "iam" it needs a signature by a key with
	// the admin action.
	Pprof bool `yaml:"pprof"`
	// Auth is how @connections callers are authenticated: "none" (default;
	// allowed only when Address is a loopback address) or "iam" (every
	// call is signed with SigV4 by one of Credentials, as AWS SDKs do).
	Auth string `yaml:"auth"`
	// Region is the SigV4 region signatures must be scoped to, as the
	// client's region. Default "us-east-1".
	Region string `yaml:"region"`
	// MetricsAuth is "none" (/metrics open to whoever reaches the
	// listener, for Prometheus scrapers) or "iam" (signed by a key with
	// the admin action). Default: the value of Auth.
	MetricsAuth string `yaml:"metricsAuth"`
	// Credentials are the access keys that may sign, each with what it
	// may do. "${NAME}" in accessKeyId, secretAccessKey and sessionToken
	// is replaced by the environment variable NAME when the file is
	// loaded; a variable that is not set is an error.
	Credentials []Credential `yaml:"credentials"`
	// CredentialsFile is a YAML (or JSON) file holding more credentials,
	// as {credentials: [...]} with the same fields, read at start;
	// relative to the configuration file's directory. Default "": none.
	CredentialsFile string `yaml:"credentialsFile"`
	// TLS serves the management listener over https. Default: none.
	TLS TLS `yaml:"tls"`
	// Console serves the admin console at /console (console.go).
	// Default: off.
	Console Console `yaml:"console"`
}

// Credential is one access key of the management listener.
type Credential struct {
	// AccessKeyID names the key, e.g. AKIDPORTICO. Required.
	AccessKeyID string `yaml:"accessKeyId"`
	// SecretAccessKey signs; write it as ${ENV_VAR} rather than in the
	// file. Required. Never logged or repeated in errors.
	SecretAccessKey Secret `yaml:"secretAccessKey"`
	// SessionToken, when set, must come with every request as
	// X-Amz-Security-Token. Default "".
	SessionToken Secret `yaml:"sessionToken"`
	// Allow lists what the key may do. Default (empty): everything.
	Allow []Grant `yaml:"allow"`
}

// Grant allows a key some actions; an empty field matches everything.
type Grant struct {
	// API is an API's name. Default "": every API.
	API string `yaml:"api"`
	// Stage is a stage's name. Default "": every stage.
	Stage string `yaml:"stage"`
	// Routes are the route keys "invoke" applies to (e.g. $connect).
	// Default (empty): every route.
	Routes []string `yaml:"routes"`
	// Actions: post, get, delete (@connections), invoke (routes), admin
	// (/metrics with metricsAuth iam, /debug/pprof, /admin/reload).
	// Default (empty): all.
	Actions []string `yaml:"actions"`
}

// Secret is a string that is never printed: fmt shows it as "[secret]".
type Secret string

// String hides the value.
func (Secret) String() string { return "[secret]" }

// GoString hides the value from %#v.
func (Secret) GoString() string { return "[secret]" }

// MarshalYAML hides the value.
func (Secret) MarshalYAML() (any, error) { return "[secret]", nil }

// Value returns the secret itself.
func (s Secret) Value() string { return string(s) }

// Storage selects the connection registry.
type Storage struct {
	// Type is the registry backend: "memory" (default; this node only,
	// nothing to install), "redis" or "dynamodb".
	Type string `yaml:"type"`
	// NodeTTL is how long this node's records stay visible to other nodes
	// after its last heartbeat (it heartbeats every NodeTTL/3, and
	// declares a registry outage after NodeTTL/2 without a successful
	// beat). Default 30s. Used by redis and dynamodb.
	NodeTTL Duration `yaml:"nodeTTL"`
	// TouchInterval is how often lastActiveAt of active connections is
	// written to the registry, in one batch. Default 10s.
	TouchInterval Duration `yaml:"touchInterval"`
	// RelaySecret authenticates node-to-node calls that carry @connections
	// operations to the node holding a connection, when the registry has
	// no message bus (dynamodb). Every node sets the same value. Default:
	// $PORTICO_RELAY_SECRET; empty: each node reaches only its own
	// connections.
	RelaySecret string `yaml:"relaySecret"`
	// Redis configures type redis.
	Redis RedisStorage `yaml:"redis"`
	// DynamoDB configures type dynamodb.
	DynamoDB DynamoDBStorage `yaml:"dynamodb"`
}

// RedisStorage configures the Redis registry. Empty fields fall back to
// the environment (PORTICO_REDIS_ADDR, PORTICO_REDIS_PASSWORD).
type RedisStorage struct {
	// Addrs are host:port of one Redis or of Redis Cluster nodes.
	Addrs []string `yaml:"addrs"`
	// Cluster uses Redis Cluster even with a single seed address.
	Cluster bool `yaml:"cluster"`
	// Password for AUTH.
	Password string `yaml:"password"`
	// DB number (single Redis only). Default 0.
	DB int `yaml:"db"`
	// TLS connects with TLS.
	TLS bool `yaml:"tls"`
	// Prefix of every key. Default "portico:".
	Prefix string `yaml:"prefix"`
}

// DynamoDBStorage configures the DynamoDB registry. Credentials come the
// standard AWS way (environment, shared config, role).
type DynamoDBStorage struct {
	// Table name. Default "portico_connections".
	Table string `yaml:"table"`
	// Region. Default: from the AWS configuration.
	Region string `yaml:"region"`
	// Endpoint overrides the service URL, for DynamoDB-compatible servers.
	Endpoint string `yaml:"endpoint"`
	// CreateTable creates the table (and its node index) at start if it
	// is missing. Default false.
	CreateTable bool `yaml:"createTable"`
}

// Log configures logging.
type Log struct {
	// Level is one of debug, info, warn, error. Default "info".
	Level string `yaml:"level"`
	// Format is "text" or "json". Default "text".
	Format string `yaml:"format"`
}

// API is one API: a listener, its stages and its routes.
type API struct {
	// Name identifies the API in logs and metrics. Required.
	Name string `yaml:"name"`

	// Protocol is the API's type, as AWS names them: "websocket"
	// (default), "http" (an HTTP API: routes such as "GET /pets/{id}",
	// payload format 1.0 or 2.0, CORS, a $default route and stage) or
	// "rest" (a REST API: the same routes without $default, the REST
	// proxy event, API keys).
	Protocol string `yaml:"protocol"`

	// CORS makes an HTTP API answer CORS preflight requests itself and
	// add CORS headers to its answers, as AWS's HTTP APIs do. Default:
	// none (no CORS headers; OPTIONS requests are routed like others).
	CORS *CORS `yaml:"cors"`

	// ID is the apiId put in events (requestContext.apiId). Default: ten
	// lowercase letters and digits derived from Name, stable across restarts.
	ID string `yaml:"id"`

	// Listen is the host:port the API's listener binds. Clients connect
	// to ws://Listen/{stage} (WebSocket APIs) or call
	// http://Listen/{stage}/path (HTTP and REST APIs; /path alone for an
	// HTTP API's $default stage). Default ":8080". Two APIs may not
	// share one.
	Listen string `yaml:"listen"`

	// TLS serves the listener over TLS: wss:// (WebSocket APIs) or
	// https:// (HTTP and REST APIs), with optional mutual TLS. Default:
	// none (plain TCP).
	TLS TLS `yaml:"tls"`

	// AllowOrigins (WebSocket APIs), when not empty, are the only Origin
	// header values a handshake may carry: "https://app.example.com",
	// "https://*.example.com" or "*". A foreign Origin gets 403 before
	// $connect runs; a handshake without Origin (not a browser) is
	// admitted. Default: every origin, as AWS.
	AllowOrigins []string `yaml:"allowOrigins"`

	// SourceIPPolicy admits and refuses clients by source address (AWS's
	// resource policies on aws:SourceIp). Default: every source.
	SourceIPPolicy SourceIPPolicy `yaml:"sourceIpPolicy"`

	// DomainName is put in events (requestContext.domainName) and in the
	// Host header of $disconnect events. Default: the Host header the client
	// sent when it connected.
	DomainName string `yaml:"domainName"`

	// RouteSelectionExpression picks the route key of each message, e.g.
	// "$request.body.action". Default "$request.body.action".
	RouteSelectionExpression string `yaml:"routeSelectionExpression"`

	// BinaryFrames says what happens to a binary frame from a client:
	// "accept" (default) passes it to the route as base64 with
	// isBase64Encoded true; "reject" closes the connection with 1003 as
	// Amazon API Gateway does.
	BinaryFrames string `yaml:"binaryFrames"`

	// APIKeySelectionExpression says where a request's API key is:
	// $request.header.<name> (case-insensitive), $request.querystring.<name>
	// or $context.authorizer.usageIdentifierKey. A WebSocket connection
	// presents it on $connect and keeps it for its messages. An
	// authorizer's usageIdentifierKey, when there is one, wins.
	// Default $request.header.x-api-key.
	APIKeySelectionExpression string `yaml:"apiKeySelectionExpression"`

	// Limits bound connections and messages; the defaults are AWS's.
	Limits Limits `yaml:"limits"`

	// Region and AccountID fill the methodArn of authorizer events
	// (arn:aws:execute-api:REGION:ACCOUNT:APIID/STAGE/$connect), and a
	// Cognito authorizer's default region comes from its ARN. Defaults
	// "us-east-1" and "123456789012".
	Region    string `yaml:"region"`
	AccountID string `yaml:"accountId"`

	// Authorizers are the API's authorizers by name; a route names one
	// in its authorizer key. See Authorizer.
	Authorizers map[string]Authorizer `yaml:"authorizers"`

	// Stages are the stages clients may connect to. At least one.
	Stages []Stage `yaml:"stages"`

	// Routes maps a route key ($connect, $disconnect, $default or a custom
	// key such as "sendmessage") to its route.
	Routes map[string]Route `yaml:"routes"`

	// Channels configure channels (a Portico extension) by name pattern:
	// presence events and history. The first matching pattern wins; a
	// channel no pattern matches has neither. Default: none.
	Channels []Channel `yaml:"channels"`

	// ChannelOverflow is what happens when a channel message finds a
	// subscriber's send queue full: "drop" (default) drops it for that
	// subscriber and sends a portico.gap frame before its next message;
	// "close" closes the subscriber with 1008.
	ChannelOverflow string `yaml:"channelOverflow"`

	// GatewayResponses (REST APIs) override AWS's default answers by
	// type (UNAUTHORIZED, THROTTLED, ...; DEFAULT_4XX and DEFAULT_5XX
	// cover every type of their class without its own). Default: AWS's.
	GatewayResponses map[string]GatewayResponse `yaml:"gatewayResponses"`
	// Models (REST APIs) are JSON Schemas (draft 4, as AWS's models) by
	// name, for routes' requestModels. Compiled at start. Default: none.
	Models map[string]any `yaml:"models"`
	// RequestValidators (REST APIs) by name, for routes'
	// requestValidator. Default: none.
	RequestValidators map[string]RequestValidator `yaml:"requestValidators"`
	// BinaryMediaTypes (REST APIs): a request body whose Content-Type is
	// one of these ("image/png", "image/*", "*/*") reaches an http
	// integration base64-encoded with isBase64Encoded true. Default:
	// none. (HTTP APIs base64 every body that is not text.)
	BinaryMediaTypes []string `yaml:"binaryMediaTypes"`
}

// CORS is an HTTP API's cross-origin resource sharing, as AWS's
// corsConfiguration. A request whose Origin is not allowed gets no CORS
// headers.
type CORS struct {
	// AllowOrigins are the origins allowed ("https://app.example.com"),
	// or "*" for any. Default: none.
	AllowOrigins []string `yaml:"allowOrigins"`
	// AllowMethods are the methods a preflight allows ("GET", ... or
	// "*"). Default: none.
	AllowMethods []string `yaml:"allowMethods"`
	// AllowHeaders are the request headers a preflight allows (or "*").
	// Default: none.
	AllowHeaders []string `yaml:"allowHeaders"`
	// ExposeHeaders are the response headers a browser may read.
	// Default: none.
	ExposeHeaders []string `yaml:"exposeHeaders"`
	// MaxAge is how many seconds a browser may cache a preflight's
	// answer: 0 to 86400. Default 0: not sent.
	MaxAge int `yaml:"maxAge"`
	// AllowCredentials sends Access-Control-Allow-Credentials: true (not
	// with the origin "*"). Default false.
	AllowCredentials bool `yaml:"allowCredentials"`
}

// Channel configures the channels whose name matches Pattern.
type Channel struct {
	// Pattern is a channel name in which '*' matches any run of
	// characters, e.g. "room:*". Required.
	Pattern string `yaml:"pattern"`
	// Presence sends portico.presence join and leave events to the
	// channel's members. Default false.
	Presence bool `yaml:"presence"`
	// History keeps recent messages so a client that reconnects can
	// recover what it missed. Default: none (size 0 and ttl 0s).
	History ChannelHistory `yaml:"history"`
}

// ChannelHistory is a channel's retention: the last Size messages,
// and/or those younger than TTL.
type ChannelHistory struct {
	// Size is how many messages are kept. Default 0: no count limit
	// (with ttl) or no history (without).
	Size int `yaml:"size"`
	// TTL is how long messages are kept. Default 0s: no age limit (with
	// size) or no history (without).
	TTL Duration `yaml:"ttl"`
}

// Limits bound connections and messages. A zero field takes its default.
type Limits struct {
	// MaxMessageBytes caps a reassembled message; over it the connection
	// is closed with 1009. Default 131072 (128 KB).
	MaxMessageBytes int `yaml:"maxMessageBytes"`
	// MaxFrameBytes caps one frame's payload; over it the connection is
	// closed with 1009. Default 32768 (32 KB).
	MaxFrameBytes int `yaml:"maxFrameBytes"`
	// IdleTimeout closes a connection with 1001 when no frame has crossed
	// it in either direction for this long. Default 10m.
	IdleTimeout Duration `yaml:"idleTimeout"`
	// MaxConnectionDuration closes a connection with 1001 this long after
	// it opened. Default 2h.
	MaxConnectionDuration Duration `yaml:"maxConnectionDuration"`
	// PingInterval makes the gateway send a ping this often; a peer that
	// does not answer within PongTimeout is closed with 1001. Default 0:
	// no server pings (Amazon API Gateway sends none). Client pings are
	// always answered.
	PingInterval Duration `yaml:"pingInterval"`
	// PongTimeout is how long to wait for a pong. Default 30s.
	PongTimeout Duration `yaml:"pongTimeout"`
	// HandshakeTimeout bounds reading the upgrade request. Default 10s.
	HandshakeTimeout Duration `yaml:"handshakeTimeout"`
	// WriteTimeout bounds handing one frame to a slow socket. Default 10s.
	WriteTimeout Duration `yaml:"writeTimeout"`
	// MessageRateLimit and MessageBurstLimit are a bucket per connection
	// for its messages (not an AWS setting); past it a message gets the
	// "Too Many Requests" error frame and the connection stays open.
	// Default 0 and 0: off.
	MessageRateLimit  float64 `yaml:"messageRateLimit"`
	MessageBurstLimit int     `yaml:"messageBurstLimit"`
	// MaxRequestBytes (HTTP and REST APIs) caps a request's body; over
	// it the client gets 413. Default 10485760 (10 MB, AWS's quota).
	MaxRequestBytes int `yaml:"maxRequestBytes"`
	// MaxInFlightPerConnection bounds one connection's integration calls
	// in flight (mock routes answer inline and do not count); past it a
	// message gets the "Too Many Requests" error frame. Default 64.
	MaxInFlightPerConnection int `yaml:"maxInFlightPerConnection"`
}

// Stage is a named deployment of the API with its variables.
type Stage struct {
	// Name appears in the URL path (/{name}) and in events. Letters,
	// digits, '-' and '_', at most 128. Required. An HTTP API may have a
	// stage named "$default", served at the root (no /{stage} prefix)
	// and taking every request whose first path segment names no other
	// stage.
	Name string `yaml:"name"`
	// Variables are stageVariables, usable as ${stageVariables.x} in
	// integration URIs and mock templates.
	Variables map[string]string `yaml:"variables"`
	// DefaultRouteSettings throttle each route of the stage that has no
	// routeSettings of its own (a bucket per route). Default: none (only
	// the gateway-wide bucket applies).
	DefaultRouteSettings *RouteSettings `yaml:"defaultRouteSettings"`
	// RouteSettings throttle single routes by route key; a route's
	// settings replace the stage's defaults. $connect's bound new
	// connections a second.
	RouteSettings map[string]RouteSettings `yaml:"routeSettings"`
	// AccessLogSettings write a line per WebSocket event or HTTP/REST
	// request of the stage (AWS's accessLogSettings: format and
	// destination). Default: none (no access log, no cost).
	AccessLogSettings *AccessLogSettings `yaml:"accessLogSettings"`
}

// Route is what happens to a message whose route key matches.
type Route struct {
	// Integration handles the event. Optional for $connect and
	// $disconnect (the connection is then simply accepted / closed).
	Integration *Integration `yaml:"integration"`
	// RouteResponse makes the route two-way: the integration's response
	// body is sent back to the client. Default false (one-way), as in AWS.
	// Ignored for $connect and $disconnect.
	RouteResponse bool `yaml:"routeResponse"`
	// AuthorizationType guards the route (only $connect, as AWS allows
	// for WebSocket APIs): NONE (default), CUSTOM (a request or token
	// authorizer), JWT (a jwt authorizer), COGNITO_USER_POOLS (a cognito
	// authorizer) or AWS_IAM (SigV4-signed handshakes).
	AuthorizationType string `yaml:"authorizationType"`
	// Authorizer names one of the API's authorizers (CUSTOM, JWT,
	// COGNITO_USER_POOLS).
	Authorizer string `yaml:"authorizer"`
	// AuthorizationScopes (JWT and COGNITO_USER_POOLS): the token's
	// scope or scp must hold at least one of them, else 403. Default none.
	AuthorizationScopes []string `yaml:"authorizationScopes"`
	// APIKeyRequired refuses requests without a valid API key whose usage
	// plan covers the stage: 403 on $connect, a "Forbidden" error frame on
	// a message route. Default false.
	APIKeyRequired bool `yaml:"apiKeyRequired"`
	// Subscribe lists channels the connection joins when the route runs
	// (on $connect: before the client has its 101). Each is a template:
	// "room:${request.body.room}", "user:${context.authorizer.principalId}".
	// A Portico extension. Default: none.
	Subscribe []string `yaml:"subscribe"`
	// Unsubscribe lists channels the connection leaves when the route
	// runs, in the same form. Default: none.
	Unsubscribe []string `yaml:"unsubscribe"`
	// RequestValidator (REST APIs) names one of the API's
	// requestValidators. Default "": no validation.
	RequestValidator string `yaml:"requestValidator"`
	// RequestModels (REST APIs) name the model a body must match, by
	// content type (application/json; $default for any other). A request
	// without a Content-Type is application/json. Default: none.
	RequestModels map[string]string `yaml:"requestModels"`
	// RequestParameters (REST APIs) declare the method's parameters,
	// method.request.querystring.NAME, method.request.header.NAME or
	// method.request.path.NAME; true makes one required. Default: none.
	RequestParameters map[string]bool `yaml:"requestParameters"`
}

// Integration is the backend of a route.
type Integration struct {
	// Type is "http" (POST the AWS Lambda-proxy event JSON to URI),
	// "http_proxy" (HTTP and REST APIs: forward the request itself to URI,
	// AWS's HTTP proxy integration) or "mock" (answer from Response
	// without a backend). Required.
	Type string `yaml:"type"`
	// URI is the backend URL for types http and http_proxy;
	// ${stageVariables.x} is substituted per stage. For http_proxy,
	// {name} is replaced by the route's path parameter name ({proxy} by
	// what a greedy {proxy+} matched), the query string is passed on,
	// and on the $default route the request's path is appended, as AWS
	// does.
	URI string `yaml:"uri"`
	// PayloadFormatVersion (HTTP APIs, type http) is the event sent and
	// the answer expected: "2.0" (default, as AWS's console) or "1.0"
	// (the REST proxy event). REST APIs always send 1.0; WebSocket APIs
	// have none.
	PayloadFormatVersion string `yaml:"payloadFormatVersion"`
	// Timeout bounds one call. Default 29s (AWS's fixed value); up to 1h.
	Timeout Duration `yaml:"timeout"`
	// Headers are added to every request of an http integration.
	Headers map[string]string `yaml:"headers"`
	// Response is the answer of a mock integration.
	Response *MockResponse `yaml:"response"`
}

// MockResponse is a static answer. Body is a template: $context.x,
// $request.body.path and $stageVariables.x (or the ${...} forms) are
// substituted; \$ is a literal dollar.
type MockResponse struct {
	// StatusCode of the answer. Default 200.
	StatusCode int `yaml:"statusCode"`
	// Body template; empty means no message is sent back.
	Body string `yaml:"body"`
}

// Duration is a time.Duration written in YAML as a Go duration string
// ("29s", "10m", "2h").
type Duration time.Duration

// UnmarshalYAML parses a duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	// Errors are TypeErrors carrying the line, so the loader reports them
	// with the file, line and key like every other problem.
	var s string
	if err := n.Decode(&s); err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: want a duration such as \"30s\"", n.Line)}}
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: want a duration such as \"30s\", got %q", n.Line, s)}}
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
