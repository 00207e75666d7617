// Package management serves the management listener: the @connections API
// that backends call (wire-compatible with Amazon API Gateway's
// ApiGatewayManagementApi), /healthz, /readyz and /metrics.
//
// Authentication is one hook, Options.Authorizer (in practice
// routing/auth/sigv4's IAM authorizer). With it, every @connections call
// must be signed and allowed (action post, get or delete on the stage's
// API and stage); /debug/pprof, and /metrics when Options.MetricsAuth is
// set, need the admin action. /healthz and /readyz stay open, and so does
// the node-to-node relay endpoint, which checks its own shared secret.
// Without an Authorizer nothing is checked, which the configuration
// allows only on a loopback address.
//
// With Options.Console it also serves the admin console under /console
// (console.go), which a browser reaches with the console token instead of
// a signature.
package management

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/portico-gateway/portico/channels"
	"github.com/portico-gateway/portico/cluster"
	"github.com/portico-gateway/portico/connections"
	"github.com/portico-gateway/portico/internal/http1"
	"github.com/portico-gateway/portico/metrics"
	"github.com/portico-gateway/portico/routing/auth"
)

// MaxPayload is the largest @connections POST body, as in AWS (128 KB).
const MaxPayload = 128 << 10

// Connections finds open connections by id; *connections.Hub implements it.
type Connections interface {
	Get(id string) (connections.Conn, bool)
}

// Options configure the management handler. The zero value of each
// optional field means the default noted beside it.
type Options struct {
	// Conns finds connections. Required.
	Conns Connections
	// Stages reports whether a stage name exists in any API. nil: every
	// stage exists.
	Stages func(name string) bool
	// Gatherer is served on /metrics. nil: prometheus.DefaultGatherer.
	Gatherer prometheus.Gatherer
	// Metrics records @connections calls. nil: not recorded.
	Metrics *metrics.Set
	// Ready reports readiness for /readyz; nil: always ready.
	Ready func() error
	// MaxPayload caps POST bodies. 0: MaxPayload (131072).
	MaxPayload int
	// Logger. nil: slog.Default().
	Logger *slog.Logger
	// Pprof serves net/http/pprof under /debug/pprof/. Default false.
	Pprof bool
	// Forward runs an operation on the node that holds the connection
	// when this node does not; ok false means no other node holds it.
	// nil: single node, a connection not held here is Gone.
	Forward func(ctx context.Context, o *cluster.Op) (res cluster.Result, ok bool)
	// Remote reports whether Forward may reach another node now (nil:
	// it may whenever Forward is set). The fast path (ServeFast) leaves
	// a post whose connection is not here to net/http when it may.
	Remote func() bool
	// Handlers serves extra exact paths (the node-to-node relay endpoint).
	// They do their own authentication.
	Handlers map[string]http.Handler
	// AdminHandlers serves extra exact paths behind the management
	// authentication, as the admin action (usage plans' usage).
	AdminHandlers map[string]http.Handler
	// Authorizer authenticates and authorizes callers (see the package
	// comment). nil: nothing is checked.
	Authorizer auth.Authorizer
	// MetricsAuth makes /metrics need the Authorizer (action admin).
	// Default false: /metrics is open.
	MetricsAuth bool
	// StageAPI names the API (and its apiId) that has a stage, for
	// policies that name APIs; "" when no API or several have it. nil:
	// always "".
	StageAPI func(stage string) (name, id string)
	// Reload serves POST /admin/reload (reload.go). nil: not served.
	Reload ReloadFunc
	// Channels serves the channel endpoints (channels.go) and adds a
	// connection's channels to GetConnection's answer. nil: no channels.
	Channels *channels.Registry
	// Console serves the admin console under /console (console.go).
	// nil: not served.
	Console *ConsoleOptions
}

// Handler serves the management endpoints.
type Handler struct {
	opts    Options
	metrics http.Handler
	log     *slog.Logger
	console *console // nil without Options.Console
	counts  *requestCounters
}

// NewHandler returns the management HTTP handler.
func NewHandler(opts Options) *Handler {
	if opts.MaxPayload <= 0 {
		opts.MaxPayload = MaxPayload
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.New(nil)
	}
	g := opts.Gatherer
	if g == nil {
		g = prometheus.DefaultGatherer
	}
	h := &Handler{opts: opts, metrics: promhttp.HandlerFor(g, promhttp.HandlerOpts{}), log: opts.Logger,
		counts: &requestCounters{vec: opts.Metrics.ManagementRequests}}
	if h.log == nil {
		h.log = slog.Default()
	}
	if opts.Console != nil {
		h.console = newConsole(h, opts.Console)
	}
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/healthz", "/readyz", "/metrics":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, r.URL.Path+" answers GET and HEAD only, not "+r.Method, http.StatusMethodNotAllowed)
			return
		}
	}
	switch r.URL.Path {
	case "/healthz":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
		return
	case "/readyz":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if h.opts.Ready != nil {
			if err := h.opts.Ready(); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = io.WriteString(w, "not ready: "+err.Error()+"\n")
				return
			}
		}
		_, _ = io.WriteString(w, "ok\n")
		return
	case "/metrics":
		if h.opts.MetricsAuth && !h.authenticate(w, r, nil, "", "", "admin") {
			return
		}
		h.metrics.ServeHTTP(w, r)
		return
	}
	if r.URL.Path == ReloadPath && h.opts.Reload != nil {
		h.serveReload(w, r)
		return
	}
	if h.console != nil && isConsolePath(r.URL.Path) {
		h.console.ServeHTTP(w, r)
		return
	}
	if x, ok := h.opts.Handlers[r.URL.Path]; ok {
		x.ServeHTTP(w, r)
		return
	}
	if x, ok := h.opts.AdminHandlers[r.URL.Path]; ok {
		if !h.authenticate(w, r, nil, "", "", "admin") {
			return
		}
		x.ServeHTTP(w, r)
		return
	}
	if h.opts.Pprof && strings.HasPrefix(r.URL.Path, "/debug/pprof/") {
		if !h.authenticate(w, r, nil, "", "", "admin") {
			return
		}
		servePprof(w, r)
		return
	}
	if h.serveExtension(w, r) {
		return
	}
	stage, id, ok := parseConnectionsPath(r.URL.Path)
	if !ok {
		writeError(w, http.StatusForbidden, cluster.ErrTypeForbidden, "Missing Authentication Token")
		return
	}
	var op string
	switch r.Method {
	case http.MethodPost:
		op = "post"
	case http.MethodGet:
		op = "get"
	case http.MethodDelete:
		op = "delete"
	default:
		writeError(w, http.StatusForbidden, cluster.ErrTypeForbidden, "Missing Authentication Token")
		return
	}
	rw := start(w)
	w = rw
	defer func() {
		h.counts.inc(op, rw.status)
	}()
	o := &cluster.Op{Kind: op, Stage: stage, ID: id}
	// The body is read first: the signature covers its hash.
	if op == "post" || h.opts.Authorizer != nil {
		data, ok := h.readBody(w, r)
		if !ok {
			return
		}
		if op == "post" {
			o.Data = data
		}
		if !h.authenticate(w, r, data, stage, "@connections", op) {
			return
		}
	}
	if h.opts.Stages != nil && !h.opts.Stages(stage) {
		writeError(w, http.StatusForbidden, cluster.ErrTypeForbidden, "Forbidden")
		return
	}
	writeResult(w, h.run(r.Context(), o))
}

// run runs o on this node, or on the node that holds the connection.
func (h *Handler) run(ctx context.Context, o *cluster.Op) cluster.Result {
	res := h.Local(o)
	if res.Status == http.StatusGone && h.opts.Forward != nil {
		if fwd, ok := h.opts.Forward(ctx, o); ok {
			res = fwd
			h.opts.Metrics.Relayed.WithLabelValues(o.Kind, statusLabel(res.Status)).Inc()
		}
	}
	return res
}

// authenticate is the listener's one authentication hook: it asks the
// Authorizer whether r (whose body the caller has read) may do action on
// stage, and answers the refusal itself: 403 with AWS's error type in
// x-amzn-ErrorType and its message. It reports whether to go on. Without
// an Authorizer every request goes on.
func (h *Handler) authenticate(w http.ResponseWriter, r *http.Request, body []byte, stage, routeKey, action string) bool {
	if h.opts.Authorizer == nil {
		return true
	}
	if res := h.authorize(r.Context(), auth.FromHTTP(r, body), stage, routeKey, action); res != nil {
		writeError(w, res.Status, res.ErrType, res.Message)
		return false
	}
	return true
}

// authorize asks the Authorizer whether ar may do action on stage: nil
// when it may, else the refusal to answer.
func (h *Handler) authorize(ctx context.Context, ar *auth.Request, stage, routeKey, action string) *cluster.Result {
	ar.Stage, ar.RouteKey, ar.Action = stage, routeKey, action
	if h.opts.StageAPI != nil && stage != "" {
		ar.API, ar.APIID = h.opts.StageAPI(stage)
	}
	_, err := h.opts.Authorizer.Authorize(ctx, ar)
	if err == nil {
		return nil
	}
	status, errType, msg := http.StatusForbidden, cluster.ErrTypeForbidden, "Forbidden"
	var ae *auth.Error
	if errors.As(err, &ae) {
		if ae.Type != "" {
			errType = ae.Type
		}
		if ae.Message != "" {
			msg = ae.Message
		}
		switch {
		case errors.Is(ae.Kind, auth.ErrUnauthorized):
			status = http.StatusUnauthorized
		case errors.Is(ae.Kind, auth.ErrAuthorizerFailure):
			status = http.StatusInternalServerError
		}
	}
	// The cause is safe to log: refusals never carry a secret.
	h.log.Debug("management: request refused", "path", ar.Path, "action", action, "error", err)
	return &cluster.Result{Status: status, ErrType: errType, Message: msg}
}

// Local runs o on this node's connections. A connection this node does
// not hold (or holds on another stage) is Gone.
func (h *Handler) Local(o *cluster.Op) cluster.Result {
	c, found := h.opts.Conns.Get(o.ID)
	if !found || c.Info().Stage != o.Stage {
		return cluster.Gone()
	}
	switch o.Kind {
	case "post":
		// Text unless the bytes are not UTF-8: a text frame with invalid
		// UTF-8 would make the client close the connection.
		err := c.Send(o.Data, !utf8.Valid(o.Data))
		switch {
		case errors.Is(err, connections.ErrTooLarge):
			return cluster.Result{Status: http.StatusRequestEntityTooLarge, ErrType: cluster.ErrTypePayloadTooLarge,
				Message: fmt.Sprintf("Request payload is over the connection's message limit (%d bytes)", len(o.Data))}
		case errors.Is(err, connections.ErrQueueFull):
			return cluster.Result{Status: http.StatusTooManyRequests, ErrType: cluster.ErrTypeLimitExceeded,
				Message: "The connection's send queue is full: the client is not reading fast enough"}
		case err != nil:
			return cluster.Gone()
		}
		if p, ok := c.State().(interface{ Pushed() }); ok {
			p.Pushed() // an outgoing message of the connection's API and stage
		}
		return cluster.Result{Status: http.StatusOK}
	case "get":
		body, _ := json.Marshal(h.describe(c))
		return cluster.Result{Status: http.StatusOK, Body: body}
	case "delete":
		if err := c.Close(connections.CloseNormal, connections.ReasonNormal); err != nil {
			return cluster.Gone()
		}
		return cluster.Result{Status: http.StatusNoContent}
	case cluster.OpSubscribe, cluster.OpUnsubscribe:
		return h.localMembership(c, o)
	}
	return cluster.Result{Status: http.StatusForbidden, ErrType: cluster.ErrTypeForbidden, Message: "Missing Authentication Token"}
}

// writeResult answers an operation.
func writeResult(w http.ResponseWriter, res cluster.Result) {
	switch {
	case res.ErrType != "":
		writeError(w, res.Status, res.ErrType, res.Message)
	case res.Body != nil:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(res.Status)
		_, _ = w.Write(res.Body)
	default:
		w.WriteHeader(res.Status)
	}
}

// parseConnectionsPath splits /{stage}/@connections/{id}. The server has
// already percent-decoded the path, so %40connections and %3D arrive
// decoded, as AWS accepts them.
func parseConnectionsPath(p string) (stage, id string, ok bool) {
	p = strings.TrimPrefix(p, "/")
	stage, rest, ok := strings.Cut(p, "/")
	if !ok {
		return "", "", false
	}
	id, ok = strings.CutPrefix(rest, "@connections/")
	if !ok || id == "" || strings.Contains(id, "/") {
		return "", "", false
	}
	return stage, id, true
}

// connectionJSON is GetConnection's answer. Channels is a Portico
// extension (the channels the connection is subscribed to), left out
// when there are none; AWS SDKs ignore fields they do not know.
type connectionJSON struct {
	ConnectedAt  string       `json:"connectedAt"`
	Identity     identityJSON `json:"identity"`
	LastActiveAt string       `json:"lastActiveAt"`
	// Authorizer is Portico's extension (AWS's GetConnection has no such
	// field; SDKs ignore it): who $connect's authorizer admitted the
	// connection as. Absent without an authorizer.
	Authorizer *authorizerJSON `json:"authorizer,omitempty"`
	// Channels is Portico's extension too: the channels the connection
	// is subscribed to on this node.
	Channels []string `json:"channels,omitempty"`
}

// describe is GetConnection's answer for c.
func (h *Handler) describe(c connections.Conn) connectionJSON {
	info := c.Info()
	out := connectionJSON{
		ConnectedAt:  info.ConnectedAt.UTC().Format(isoMillis),
		Identity:     identityJSON{SourceIP: info.SourceIP, UserAgent: info.UserAgent},
		LastActiveAt: c.LastActive().UTC().Format(isoMillis),
	}
	if s, ok := c.State().(cluster.AuthIdentified); ok {
		if id := s.AuthIdentity(); id != nil {
			out.Authorizer = &authorizerJSON{PrincipalID: id.PrincipalID, Type: id.Type, Context: id.Strings()}
		}
	}
	if h.opts.Channels != nil {
		out.Channels = h.opts.Channels.ChannelsOf(c)
	}
	return out
}

// authorizerJSON is the identity of an authorized connection: the
// authorizer's type, principalId, and its context and claims as strings
// (claims as "claims.NAME").
type authorizerJSON struct {
	Type        string            `json:"type"`
	PrincipalID string            `json:"principalId,omitempty"`
	Context     map[string]string `json:"context,omitempty"`
}

type identityJSON struct {
	SourceIP  string `json:"sourceIp"`
	UserAgent string `json:"userAgent,omitempty"`
}

// isoMillis is AWS's timestamp form, e.g. 2025-03-03T10:00:00.120Z.
const isoMillis = "2006-01-02T15:04:05.000Z"

// writeError answers in the form AWS SDKs parse: the error type in
// x-amzn-ErrorType and a JSON body with a message.
func writeError(w http.ResponseWriter, status int, errType, message string) {
	w.Header().Set("x-amzn-ErrorType", errType)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(errorBody(message))
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// Server serves h: @connections posts on internal/http1's epoll loops
// (ServeFast), everything else through an http.Server with sensible
// timeouts, which the fast path also takes its timeouts from.
func Server(h *Handler) *http1.Server {
	return &http1.Server{
		Fast: h,
		Fallback: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			IdleTimeout:       120 * time.Second,
		},
		MaxBody: h.opts.MaxPayload,
	}
}

// readBody reads a request body of at most MaxPayload bytes; past it, or
// when reading fails, it answers (413 PayloadTooLargeException, 400) and
// reports false.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	max := h.opts.MaxPayload
	var data []byte
	var err error
	if n := r.ContentLength; n >= 0 && n <= int64(max) {
		// The usual case: a known length within the limit, read into a
		// buffer of that size (one allocation); a body longer than it
		// said fails like a short one.
		data = make([]byte, n)
		if _, err = io.ReadFull(r.Body, data); err == nil {
			var one [1]byte
			if m, _ := r.Body.Read(one[:]); m > 0 {
				err = errors.New("the body is longer than its Content-Length")
			}
		}
	} else {
		data, err = io.ReadAll(io.LimitReader(r.Body, int64(max)+1))
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, cluster.ErrTypeBadRequest, "reading request body: "+err.Error())
		return nil, false
	}
	if len(data) > max {
		writeError(w, http.StatusRequestEntityTooLarge, cluster.ErrTypePayloadTooLarge,
			fmt.Sprintf("Request payload is over the limit of %d bytes", max))
		return nil, false
	}
	return data, true
}
