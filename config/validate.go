package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/portico-gateway/portico/channels"
	"github.com/portico-gateway/portico/routing/expr"
)

var (
	apiIDRE     = regexp.MustCompile(`^[a-z0-9]{1,64}$`)
	stageNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)
)

// The route keys with a meaning of their own; custom keys may not start
// with '$' (Amazon API Gateway's rule).
const (
	routeConnect    = "$connect"
	routeDisconnect = "$disconnect"
	routeDefault    = "$default"
)

// Integration timeouts: AWS's minimum, and our maximum (AWS's is 29s).
const (
	minIntegrationTimeout = 50 * time.Millisecond
	maxIntegrationTimeout = time.Hour
)

// validator collects the problems of one file.
type validator struct {
	f     *File
	probs []*Problem
	// apis are the APIs grants may name, when f is a credentials file.
	apis []API
}

// add records a problem with key. A key missing from the file (its value
// came from a default) is reported on the line of its nearest parent that
// is in the file, or line 1.
func (v *validator) add(key, format string, args ...any) {
	line := 0
	if v.f.path != "" || len(v.f.lines) > 0 {
		line = 1
		for k := key; k != ""; k = parentPath(k) {
			if l, ok := v.f.lines[k]; ok {
				line = l
				break
			}
		}
	}
	v.probs = append(v.probs, &Problem{File: v.f.path, Line: line, Key: key, Reason: fmt.Sprintf(format, args...)})
}

// Validate checks a defaulted file (call ApplyDefaults first) and reports
// every problem found, sorted by line, joined with errors.Join. Every
// problem is a *Problem wrapping ErrInvalid.
func (f *File) Validate() error {
	v := &validator{f: f}

	if f.GCPercent < 10 || f.GCPercent > 1000 {
		v.add("gcPercent", "want 10 to 1000, got %d", f.GCPercent)
	}
	if f.GCPercentMax < f.GCPercent || f.GCPercentMax > 10000 {
		v.add("gcPercentMax", "want gcPercent (%d, a fixed target) to 10000, got %d", f.GCPercent, f.GCPercentMax)
	}
	if !slices.Contains([]string{"memory", "redis", "dynamodb"}, f.Storage.Type) {
		v.add("storage.type", "unknown storage type %q (supported: memory, redis, dynamodb)", f.Storage.Type)
	}
	if f.Storage.Type == "dynamodb" && !validTableName(f.Storage.DynamoDB.Table) {
		v.add("storage.dynamodb.table", "%q is not a DynamoDB table name (3 to 255 of a-z, A-Z, 0-9, _ . -)", f.Storage.DynamoDB.Table)
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, f.Log.Level) {
		v.add("log.level", "unknown level %q (want debug, info, warn or error)", f.Log.Level)
	}
	if f.Log.Format != "text" && f.Log.Format != "json" {
		v.add("log.format", "unknown format %q (want text or json)", f.Log.Format)
	}
	if !slices.Contains([]string{"", "epoll", "goroutine"}, f.Connections.Mode) {
		v.add("connections.mode", "unknown mode %q (want \"epoll\" or \"goroutine\")", f.Connections.Mode)
	}
	if f.Connections.Shards < 0 {
		v.add("connections.shards", "must not be negative, got %d", f.Connections.Shards)
	}
	if f.Connections.SendQueueBytes < 0 {
		v.add("connections.sendQueueBytes", "must not be negative, got %d", f.Connections.SendQueueBytes)
	}
	if f.ShutdownTimeout < 0 {
		v.add("shutdownTimeout", "must not be negative, got %s", f.ShutdownTimeout.D())
	}
	if f.Listen.TCPKeepAlive < 0 {
		v.add("listen.tcpKeepAlive", "must not be negative (0s turns it off), got %s", f.Listen.TCPKeepAlive.D())
	}
	listeners := &addresses{}
	if reason := checkAddress(f.Management.Address); reason != "" {
		v.add("management.address", "%s", reason)
	} else {
		listeners.use(f.Management.Address, "management.address")
	}

	if len(f.APIs) == 0 {
		v.add("apis", "at least one API is required")
	}
	names := map[string]string{} // API name -> key of the first API with it
	for i := range f.APIs {
		v.api(itemPath("apis", i), &f.APIs[i], len(f.APIs), names, listeners)
		v.apiThrottling(itemPath("apis", i), &f.APIs[i])
	}
	v.management()
	v.tls("management.tls", f.Management.TLS)
	v.console()
	v.throttling(f)
	v.tracing(&f.Tracing)
	return joinProblems(v.probs)
}

func (v *validator) api(key string, a *API, nAPIs int, names map[string]string, listeners *addresses) {
	switch first, dup := names[a.Name]; {
	case a.Name == "":
		v.add(key+".name", "an API needs a name")
	case dup:
		v.add(key+".name", "%s already has the name %q", first, a.Name)
	default:
		names[a.Name] = key
	}
	if a.ID != "" && !apiIDRE.MatchString(a.ID) {
		v.add(key+".id", "want 1 to 64 lowercase letters and digits, got %q", a.ID)
	}

	switch {
	case a.Listen == "" && nAPIs > 1:
		v.add(key+".listen", "required when there are several APIs: each needs its own host:port")
	case a.Listen == "":
		v.add(key+".listen", "want host:port, got \"\"")
	default:
		if reason := checkAddress(a.Listen); reason != "" {
			v.add(key+".listen", "%s", reason)
		} else if other := listeners.use(a.Listen, key+".listen"); other != "" {
			v.add(key+".listen", "%s is already used by %s", a.Listen, other)
		}
	}

	switch a.Protocol {
	case ProtocolWebSocket:
		if a.BinaryFrames != "accept" && a.BinaryFrames != "reject" {
			v.add(key+".binaryFrames", "want \"accept\" or \"reject\", got %q", a.BinaryFrames)
		}
		v.routeSelection(key+".routeSelectionExpression", a.RouteSelectionExpression)
		if a.CORS != nil {
			v.add(key+".cors", "only HTTP APIs (protocol: http) answer CORS requests themselves")
		}
		v.restOnly(key, a)
	case ProtocolHTTP, ProtocolREST:
		v.cors(key+".cors", a)
		v.restOnly(key, a)
	default:
		v.add(key+".protocol", "unknown protocol %q (want websocket, http or rest)", a.Protocol)
	}
	v.limits(key+".limits", &a.Limits)
	v.tls(key+".tls", a.TLS)
	v.access(key, a)

	if len(a.Stages) == 0 {
		v.add(key+".stages", "at least one stage is required")
	}
	seen := map[string]bool{}
	for i, st := range a.Stages {
		sk := itemPath(key+".stages", i) + ".name"
		switch {
		case st.Name == defaultStage && a.Protocol == ProtocolHTTP:
		case st.Name == defaultStage:
			v.add(sk, "only HTTP APIs (protocol: http) have a $default stage")
		case !stageNameRE.MatchString(st.Name):
			v.add(sk, "want 1 to 128 letters, digits, '-' or '_', got %q", st.Name)
		case seen[st.Name]:
			v.add(sk, "stage %q is declared twice", st.Name)
		}
		seen[st.Name] = true
		v.accessLog(itemPath(key+".stages", i)+".accessLogSettings", st.AccessLogSettings)
	}

	if len(a.Routes) == 0 {
		v.add(key+".routes", "at least one route is required")
	}
	routeKeys := make([]string, 0, len(a.Routes))
	for rk := range a.Routes {
		routeKeys = append(routeKeys, rk)
	}
	sort.Strings(routeKeys) // a stable order for problems on one line
	v.authorizers(key, a)
	for _, rk := range routeKeys {
		if a.Protocol != ProtocolWebSocket {
			v.restRoute(childPath(key+".routes", rk), rk, a.Routes[rk], a)
			v.restRouteValidation(childPath(key+".routes", rk), a.Routes[rk], a)
			continue
		}
		v.route(childPath(key+".routes", rk), rk, a.Routes[rk], a.Stages)
		v.routeAuth(childPath(key+".routes", rk), rk, a.Routes[rk], a)
	}
	if a.Protocol == ProtocolWebSocket {
		v.channels(key, a)
	} else {
		v.restPaths(key+".routes", a)
	}
}

// channels checks the channel section of an API and the routes'
// subscribe lists.
func (v *validator) channels(key string, a *API) {
	if a.ChannelOverflow != channels.OverflowDrop && a.ChannelOverflow != channels.OverflowClose {
		v.add(key+".channelOverflow", "want \"drop\" or \"close\", got %q", a.ChannelOverflow)
	}
	for i, c := range a.Channels {
		ck := itemPath(key+".channels", i)
		if err := channels.ValidName(strings.ReplaceAll(c.Pattern, "*", "x")); err != nil {
			v.add(ck+".pattern", "%q is not a channel name pattern: %v", c.Pattern, err)
		}
		if c.History.Size < 0 || c.History.Size > maxChannelHistory {
			v.add(ck+".history.size", "want 0 to %d, got %d", maxChannelHistory, c.History.Size)
		}
		if c.History.TTL < 0 {
			v.add(ck+".history.ttl", "must not be negative, got %s", c.History.TTL.D())
		}
	}
	for rk, r := range a.Routes {
		for field, list := range map[string][]string{"subscribe": r.Subscribe, "unsubscribe": r.Unsubscribe} {
			for i, src := range list {
				fk := itemPath(childPath(key+".routes", rk)+"."+field, i)
				t, err := expr.Compile(src)
				switch {
				case err != nil:
					v.add(fk, "%v", err)
				case t.IsStatic():
					if err := channels.ValidName(src); err != nil {
						v.add(fk, "%v", err)
					}
				}
			}
		}
	}
}

// maxChannelHistory bounds a channel's retained message count.
const maxChannelHistory = 100_000

// routeSelection checks a route selection expression: it must read the
// message body, as Amazon API Gateway requires.
func (v *validator) routeSelection(key, e string) {
	if strings.TrimSpace(e) == "" {
		v.add(key, "must not be empty (e.g. \"$request.body.action\")")
		return
	}
	t, err := expr.Compile(e)
	if err != nil {
		v.add(key, "%v", err)
		return
	}
	if err := expr.ValidateRouteSelection(t); err != nil {
		v.add(key, "%v", err)
	}
}

func (v *validator) limits(key string, l *Limits) {
	if l.MaxMessageBytes <= 0 {
		v.add(key+".maxMessageBytes", "must be positive, got %d", l.MaxMessageBytes)
	}
	if l.MaxFrameBytes <= 0 {
		v.add(key+".maxFrameBytes", "must be positive, got %d", l.MaxFrameBytes)
	} else if l.MaxMessageBytes > 0 && l.MaxFrameBytes > l.MaxMessageBytes {
		v.add(key+".maxFrameBytes", "%d is over maxMessageBytes (%d): a frame may not be larger than a message",
			l.MaxFrameBytes, l.MaxMessageBytes)
	}
	if l.MaxRequestBytes <= 0 {
		v.add(key+".maxRequestBytes", "must be positive, got %d", l.MaxRequestBytes)
	}
	for _, d := range []struct {
		name string
		d    Duration
	}{
		{"idleTimeout", l.IdleTimeout},
		{"maxConnectionDuration", l.MaxConnectionDuration},
		{"pingInterval", l.PingInterval},
		{"pongTimeout", l.PongTimeout},
		{"handshakeTimeout", l.HandshakeTimeout},
		{"writeTimeout", l.WriteTimeout},
	} {
		if d.d < 0 {
			v.add(key+"."+d.name, "must not be negative, got %s", d.d.D())
		}
	}
}

func (v *validator) route(key, rk string, r Route, stages []Stage) {
	reserved := rk == routeConnect || rk == routeDisconnect || rk == routeDefault
	switch {
	case strings.TrimSpace(rk) == "":
		v.add(key, "a route key must not be empty")
	case strings.HasPrefix(rk, "$") && !reserved:
		v.add(key, "custom route keys must not start with '$' (the reserved keys are $connect, $disconnect and $default)")
	}
	ic := r.Integration
	if ic == nil {
		if rk != routeConnect && rk != routeDisconnect {
			v.add(key+".integration", "route %q needs an integration (only $connect and $disconnect may go without)", rk)
		}
		return
	}
	v.integration(key+".integration", ic, stages, ProtocolWebSocket)
}

// integration checks a route's integration in an API of protocol.
func (v *validator) integration(ik string, ic *Integration, stages []Stage, protocol string) {
	if t := ic.Timeout.D(); t < minIntegrationTimeout || t > maxIntegrationTimeout {
		v.add(ik+".timeout", "want between %s and %s, got %s", minIntegrationTimeout, "1h", t)
	}
	if ic.PayloadFormatVersion != "" && (ic.Type != "http" || protocol == ProtocolWebSocket) {
		v.add(ik+".payloadFormatVersion", "only http integrations of HTTP and REST APIs have a payload format version")
	}
	switch ic.Type {
	case "http", "http_proxy":
		if ic.Type == "http_proxy" && protocol == ProtocolWebSocket {
			v.add(ik+".type", "http_proxy integrations are for HTTP and REST APIs (protocol: http or rest); use http")
		}
		v.httpURI(ik+".uri", ic.URI, stages)
		if ic.Response != nil {
			v.add(ik+".response", "only mock integrations have a response")
		}
		switch {
		case ic.Type != "http" || protocol == ProtocolWebSocket:
		case protocol == ProtocolREST && ic.PayloadFormatVersion != restPayload:
			v.add(ik+".payloadFormatVersion", "REST APIs send payload format 1.0 only, got %q", ic.PayloadFormatVersion)
		case ic.PayloadFormatVersion != "1.0" && ic.PayloadFormatVersion != "2.0":
			v.add(ik+".payloadFormatVersion", "want \"1.0\" or \"2.0\", got %q", ic.PayloadFormatVersion)
		}
	case "mock":
		if ic.URI != "" {
			v.add(ik+".uri", "a mock integration has no uri")
		}
		if ic.Response != nil {
			if c := ic.Response.StatusCode; c < 100 || c > 599 {
				v.add(ik+".response.statusCode", "want an HTTP status from 100 to 599, got %d", c)
			}
			if _, err := expr.Compile(ic.Response.Body); err != nil {
				v.add(ik+".response.body", "%v", err)
			}
		}
	case "":
		v.add(ik+".type", "required: \"http\" or \"mock\"")
	default:
		if protocol == ProtocolWebSocket {
			v.add(ik+".type", "unknown integration type %q (want \"http\" or \"mock\")", ic.Type)
		} else {
			v.add(ik+".type", "unknown integration type %q (want \"http\", \"http_proxy\" or \"mock\")", ic.Type)
		}
	}
}

// httpURI checks an http integration's URI: only stage variables may be
// used in it, each must be set in every stage, and in every stage the
// result must be an http:// or https:// URL with a host.
func (v *validator) httpURI(key, uri string, stages []Stage) {
	if uri == "" {
		v.add(key, "an http integration needs a uri")
		return
	}
	t, err := expr.Compile(uri)
	if err != nil {
		v.add(key, "%v", err)
		return
	}
	var used []string // stage variable names, each once, in order
	for _, name := range t.Vars() {
		sv, ok := strings.CutPrefix(name, "stageVariables.")
		if !ok || sv == "" {
			v.add(key, "only ${stageVariables.name} may be used in a uri, not $%s", name)
			return
		}
		if !slices.Contains(used, sv) {
			used = append(used, sv)
		}
	}
	missing := false
	for _, st := range stages {
		for _, name := range used {
			if _, ok := st.Variables[name]; !ok {
				v.add(key, "stage %q has no variable %q", st.Name, name)
				missing = true
			}
		}
	}
	if missing {
		return
	}
	if len(stages) == 0 {
		stages = []Stage{{}} // still check a uri that uses no variables
	}
	for _, st := range stages {
		vars := expr.Map{}
		for k, val := range st.Variables {
			vars["stageVariables."+k] = val
		}
		u := t.Eval(nil, vars)
		if reason := checkURL(u); reason != "" {
			if st.Name != "" && u != uri {
				reason = fmt.Sprintf("in stage %q the uri is %q: %s", st.Name, u, reason)
			}
			v.add(key, "%s", reason)
			return
		}
	}
}

func checkURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Sprintf("not a URL: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Sprintf("want an http:// or https:// URL, got %q", s)
	}
	if u.Host == "" {
		return fmt.Sprintf("the URL %q has no host", s)
	}
	return ""
}

// checkAddress checks a host:port to listen on; it returns why it is bad,
// or "".
func checkAddress(addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Sprintf("want host:port such as \"127.0.0.1:8080\" or \":8080\", got %q", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Sprintf("want a port number from 0 to 65535, got %q", port)
	}
	return ""
}

// addresses remembers the host:ports listened on, to refuse two
// listeners on one port. Port 0 (any free port) never collides; a
// wildcard host ("", 0.0.0.0, ::) collides with every host on its port.
type addresses struct {
	used []struct{ host, port, key string }
}

// use records addr for key and returns the key already using it, or "".
func (a *addresses) use(addr, key string) string {
	host, port, _ := net.SplitHostPort(addr)
	if port == "0" {
		return ""
	}
	wild := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	for _, u := range a.used {
		if u.port == port && (u.host == host || wild(u.host) || wild(host)) {
			return u.key
		}
	}
	a.used = append(a.used, struct{ host, port, key string }{host, port, key})
	return ""
}

// validTableName reports whether name is a valid DynamoDB table name.
func validTableName(name string) bool {
	if len(name) < 3 || len(name) > 255 {
		return false
	}
	for _, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-'
		if !ok {
			return false
		}
	}
	return true
}
