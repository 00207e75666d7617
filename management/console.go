package management

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"io/fs"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/portico-gateway/portico/cluster"
	"github.com/portico-gateway/portico/connections"
	"github.com/portico-gateway/portico/storage"
)

// The admin console: a page under /console (HTML, JS and CSS embedded in
// the binary, no build step) and the JSON endpoints it reads:
//
//	GET    /console/api/session            whether the request's token is right
//	GET    /console/api/stats              counters now (the page derives rates)
//	GET    /console/api/routes             each API's route table
//	GET    /console/api/nodes              the nodes of the cluster
//	GET    /console/api/connections/{id}   a connection: info, channels, authorizer
//	POST   /console/api/connections/{id}   send the body to it
//	DELETE /console/api/connections/{id}   disconnect it
//
// A browser cannot sign with SigV4, so the console does not use the
// listener's Authorizer: every /console/api request carries the header
// X-Portico-Console-Token, compared in constant time with
// ConsoleOptions.Token. Without a token (allowed by the configuration on
// a loopback listener only) the header must still be present, which a
// cross-site form cannot send, and the Host must be a loopback address,
// which a DNS-rebinding page cannot fake.

//go:embed console
var consoleFiles embed.FS

// ConsoleTokenHeader carries the console token.
const ConsoleTokenHeader = "X-Portico-Console-Token"

// ConsoleOptions configure the admin console.
type ConsoleOptions struct {
	// Token is the console token. "": none (see above).
	Token string
	// APIs are the gateway's APIs, for the route tables and to find a
	// connection's API.
	APIs []ConsoleAPI
	// Node is this node's id.
	Node string
	// Started is when this node started. Zero: not shown.
	Started time.Time
	// Nodes lists the live nodes sharing the registry. nil: this node only.
	Nodes func(ctx context.Context) ([]*storage.Node, error)
	// Lookup finds a connection another node holds. nil: single node.
	Lookup func(ctx context.Context, id string) (*storage.Record, error)
	// Now is the clock of the stats' timestamps. nil: time.Now.
	Now func() time.Time
}

// ConsoleAPI is one API as the console shows it.
type ConsoleAPI struct {
	Name     string         `json:"name"`
	ID       string         `json:"id"`
	Protocol string         `json:"protocol"`
	Stages   []string       `json:"stages"`
	Routes   []ConsoleRoute `json:"routes"`
	// Conns finds this API's connections (WebSocket APIs). nil: none.
	Conns Connections `json:"-"`
}

// ConsoleRoute is one row of an API's route table.
type ConsoleRoute struct {
	Key string `json:"key"`
	// Integration is the integration type (http, http_proxy, mock); ""
	// for a route without one.
	Integration string `json:"integration,omitempty"`
	// URI is the backend, without user info.
	URI           string `json:"uri,omitempty"`
	Authorization string `json:"authorization,omitempty"`
	Authorizer    string `json:"authorizer,omitempty"`
	RouteResponse bool   `json:"routeResponse,omitempty"`
}

type console struct {
	h      *Handler
	opts   *ConsoleOptions
	token  [sha256.Size]byte
	files  http.Handler
	gather map[string]prometheus.Gatherer // one per collector read, by what it holds
}

func newConsole(h *Handler, o *ConsoleOptions) *console {
	sub, err := fs.Sub(consoleFiles, "console")
	if err != nil {
		panic(err) // the embedded directory is part of the build
	}
	c := &console{h: h, opts: o, token: sha256.Sum256([]byte(o.Token)),
		files: http.StripPrefix("/console/", http.FileServerFS(sub)), gather: map[string]prometheus.Gatherer{}}
	m := h.opts.Metrics
	// Each collector in a registry of its own: the console finds what it
	// reads by the Go field, whatever the metric's exported name.
	for name, col := range map[string]prometheus.Collector{
		"open": m.ConnectionsOpen, "connects": m.Connects, "disconnects": m.Disconnects,
		"messages": m.Messages, "errors": m.IntegrationErrors, "latency": m.IntegrationLatency,
		"http": m.HTTPRequests, "httpLatency": m.HTTPLatency, "throttled": m.Throttled,
	} {
		reg := prometheus.NewRegistry()
		reg.MustRegister(col)
		c.gather[name] = reg
	}
	return c
}

// isConsolePath reports whether the console serves p: /console and what
// is under it, but for a stage named console's @connections and
// @channels paths.
func isConsolePath(p string) bool {
	rest, ok := strings.CutPrefix(p, "/console")
	return ok && (rest == "" || strings.HasPrefix(rest, "/") && !strings.HasPrefix(rest, "/@"))
}

func (c *console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "no-referrer")
	if c.opts.Token == "" && !loopbackHost(r.Host) {
		consoleError(w, http.StatusForbidden, "Without a console token the console answers on a loopback address only (e.g. http://127.0.0.1:9090/console/)")
		return
	}
	api, ok := strings.CutPrefix(r.URL.Path, "/console/api/")
	if !ok {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			hd.Set("Allow", "GET, HEAD")
			consoleError(w, http.StatusMethodNotAllowed, "The console's pages answer GET and HEAD only")
			return
		}
		if r.URL.Path == "/console" {
			http.Redirect(w, r, "/console/", http.StatusMovedPermanently)
			return
		}
		c.files.ServeHTTP(w, r)
		return
	}
	hd.Set("Cache-Control", "no-store")
	if api == "session" && r.Method == http.MethodGet {
		// Whether the page's token is right, answered with 200 either way
		// so the page learns it without a failed request in its console.
		writeConsoleJSON(w, http.StatusOK, struct {
			Authorized    bool `json:"authorized"`
			TokenRequired bool `json:"tokenRequired"`
		}{c.allowed(r), c.opts.Token != ""})
		return
	}
	if !c.allowed(r) {
		c.h.log.Debug("management: console request refused", "path", r.URL.Path)
		consoleError(w, http.StatusUnauthorized, "Unauthorized: send the console token in "+ConsoleTokenHeader)
		return
	}
	if id, ok := strings.CutPrefix(api, "connections/"); ok && id != "" && !strings.Contains(id, "/") {
		c.connection(w, r, id)
		return
	}
	if r.Method != http.MethodGet {
		hd.Set("Allow", "GET")
		consoleError(w, http.StatusMethodNotAllowed, r.URL.Path+" answers GET only")
		return
	}
	switch api {
	case "stats":
		writeConsoleJSON(w, http.StatusOK, c.stats())
	case "routes":
		writeConsoleJSON(w, http.StatusOK, struct {
			APIs []ConsoleAPI `json:"apis"`
		}{c.opts.APIs})
	case "nodes":
		writeConsoleJSON(w, http.StatusOK, c.nodes(r.Context()))
	default:
		consoleError(w, http.StatusNotFound, "No console endpoint "+r.URL.Path)
	}
}

// allowed checks the console token (see the comment at the top).
func (c *console) allowed(r *http.Request) bool {
	got, ok := r.Header[http.CanonicalHeaderKey(ConsoleTokenHeader)]
	if !ok || len(got) != 1 {
		return false
	}
	if c.opts.Token == "" {
		return true // the header's presence is the cross-site guard; Host was checked
	}
	sum := sha256.Sum256([]byte(got[0]))
	return subtle.ConstantTimeCompare(sum[:], c.token[:]) == 1
}

// loopbackHost reports whether a Host header names a loopback address.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// consoleStats is /console/api/stats: totals since the start, which the
// page turns into rates between two reads.
type consoleStats struct {
	Time              int64         `json:"time"` // Unix milliseconds
	Node              string        `json:"node"`
	Connections       float64       `json:"connections"`
	Connects          float64       `json:"connects"`
	Disconnects       float64       `json:"disconnects"`
	MessagesIn        float64       `json:"messagesIn"`
	MessagesOut       float64       `json:"messagesOut"`
	HTTPRequests      float64       `json:"httpRequests"`
	IntegrationErrors float64       `json:"integrationErrors"`
	Throttled         float64       `json:"throttled"`
	Routes            []*routeStats `json:"routes"`
}

// routeStats are one route's totals. For a WebSocket route In and Out
// are messages, Errors failed integration calls and the latency the
// integration's; for an HTTP or REST route In is requests, Errors 5xx,
// ClientErrors 4xx and the latency the request's.
type routeStats struct {
	API          string  `json:"api"`
	Stage        string  `json:"stage"`
	Route        string  `json:"route"`
	Kind         string  `json:"kind"` // websocket or http
	In           float64 `json:"in"`
	Out          float64 `json:"out"`
	Errors       float64 `json:"errors"`
	ClientErrors float64 `json:"clientErrors"`
	LatencyCount float64 `json:"latencyCount"`
	LatencySum   float64 `json:"latencySeconds"`
}

func (c *console) stats() *consoleStats {
	now := time.Now
	if c.opts.Now != nil {
		now = c.opts.Now
	}
	st := &consoleStats{Time: now().UnixMilli(), Node: c.opts.Node}
	rows := map[[3]string]*routeStats{}
	row := func(m *dto.Metric, kind string) *routeStats {
		l := labels(m)
		k := [3]string{l["api"], l["stage"], l["route"]}
		r := rows[k]
		if r == nil {
			r = &routeStats{API: k[0], Stage: k[1], Route: k[2], Kind: kind}
			rows[k] = r
		}
		return r
	}
	c.each("open", func(m *dto.Metric) { st.Connections += m.GetGauge().GetValue() })
	c.each("connects", func(m *dto.Metric) {
		if labels(m)["result"] == "accepted" {
			st.Connects += m.GetCounter().GetValue()
		}
	})
	c.each("disconnects", func(m *dto.Metric) { st.Disconnects += m.GetCounter().GetValue() })
	c.each("throttled", func(m *dto.Metric) { st.Throttled += m.GetCounter().GetValue() })
	c.each("messages", func(m *dto.Metric) {
		v, r := m.GetCounter().GetValue(), row(m, "websocket")
		if labels(m)["direction"] == "in" {
			st.MessagesIn += v
			r.In += v
		} else {
			st.MessagesOut += v
			r.Out += v
		}
	})
	c.each("errors", func(m *dto.Metric) {
		v := m.GetCounter().GetValue()
		st.IntegrationErrors += v
		row(m, "websocket").Errors += v
	})
	c.each("latency", func(m *dto.Metric) {
		r := row(m, "websocket")
		r.LatencyCount += float64(m.GetHistogram().GetSampleCount())
		r.LatencySum += m.GetHistogram().GetSampleSum()
	})
	c.each("http", func(m *dto.Metric) {
		v, r := m.GetCounter().GetValue(), row(m, "http")
		st.HTTPRequests += v
		r.In += v
		switch labels(m)["status_class"] {
		case "4xx":
			r.ClientErrors += v
		case "5xx":
			r.Errors += v
		}
	})
	c.each("httpLatency", func(m *dto.Metric) {
		r := row(m, "http")
		r.LatencyCount += float64(m.GetHistogram().GetSampleCount())
		r.LatencySum += m.GetHistogram().GetSampleSum()
	})
	st.Routes = make([]*routeStats, 0, len(rows))
	for _, r := range rows {
		st.Routes = append(st.Routes, r)
	}
	sort.Slice(st.Routes, func(i, j int) bool {
		a, b := st.Routes[i], st.Routes[j]
		if a.API != b.API {
			return a.API < b.API
		}
		if a.Stage != b.Stage {
			return a.Stage < b.Stage
		}
		return a.Route < b.Route
	})
	return st
}

// each calls f for every series of the collector named name.
func (c *console) each(name string, f func(*dto.Metric)) {
	fams, err := c.gather[name].Gather()
	if err != nil {
		c.h.log.Debug("management: console: reading metrics", "collector", name, "error", err)
	}
	for _, fam := range fams {
		for _, m := range fam.GetMetric() {
			f(m)
		}
	}
}

func labels(m *dto.Metric) map[string]string {
	out := make(map[string]string, len(m.GetLabel()))
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// consoleNode is one node of /console/api/nodes.
type consoleNode struct {
	ID        string `json:"id"`
	Address   string `json:"address,omitempty"`
	StartedAt string `json:"startedAt,omitempty"`
	Self      bool   `json:"self"`
	// Status is "live" (heartbeating into the registry), or for this node
	// "not ready: ..." when /readyz would answer 503.
	Status string `json:"status"`
	// Connections are this node's open connections; other nodes' are not
	// counted (-1).
	Connections float64 `json:"connections"`
}

type consoleNodes struct {
	Nodes []consoleNode `json:"nodes"`
	// Registry is "ok", or why the node list could not be read.
	Registry string `json:"registry"`
}

func (c *console) nodes(ctx context.Context) consoleNodes {
	self := consoleNode{ID: c.opts.Node, Self: true, Status: "live", Connections: c.stats().Connections}
	if !c.opts.Started.IsZero() {
		self.StartedAt = c.opts.Started.UTC().Format(isoMillis)
	}
	if c.h.opts.Ready != nil {
		if err := c.h.opts.Ready(); err != nil {
			self.Status = "not ready: " + err.Error()
		}
	}
	out := consoleNodes{Registry: "ok"}
	if c.opts.Nodes == nil {
		out.Nodes = []consoleNode{self}
		return out
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	nodes, err := c.opts.Nodes(ctx)
	if err != nil {
		out.Registry = err.Error()
	}
	found := false
	for _, n := range nodes {
		cn := consoleNode{ID: n.ID, Address: n.Address, Status: "live", Connections: -1}
		if !n.StartedAt.IsZero() {
			cn.StartedAt = n.StartedAt.UTC().Format(isoMillis)
		}
		if n.ID == c.opts.Node {
			found = true
			self.Address = cn.Address
			if cn.StartedAt != "" {
				self.StartedAt = cn.StartedAt
			}
			cn = self
		}
		out.Nodes = append(out.Nodes, cn)
	}
	if !found {
		if self.Status == "live" {
			self.Status = "not in the registry"
		}
		out.Nodes = append([]consoleNode{self}, out.Nodes...)
	}
	return out
}

// consoleConnection is /console/api/connections/{id}'s answer.
type consoleConnection struct {
	ID    string `json:"id"`
	API   string `json:"api,omitempty"`
	Stage string `json:"stage"`
	Node  string `json:"node,omitempty"`
	Local bool   `json:"local"` // held by this node
	// Connection is GetConnection's answer (with channels and authorizer).
	Connection json.RawMessage `json:"connection"`
}

// connection serves lookup, send and disconnect of one connection.
func (c *console) connection(w http.ResponseWriter, r *http.Request, id string) {
	var kind string
	switch r.Method {
	case http.MethodGet:
		kind = "get"
	case http.MethodPost:
		kind = "post"
	case http.MethodDelete:
		kind = "delete"
	default:
		w.Header().Set("Allow", "GET, POST, DELETE")
		consoleError(w, http.StatusMethodNotAllowed, "A connection answers GET, POST and DELETE")
		return
	}
	o := &cluster.Op{Kind: kind, ID: id}
	if kind == "post" {
		data, ok := c.h.readBody(w, r)
		if !ok {
			return
		}
		o.Data = data
	}
	found := consoleConnection{ID: id}
	for _, a := range c.opts.APIs {
		if a.Conns == nil {
			continue
		}
		if conn, ok := a.Conns.Get(id); ok {
			found.API, found.Stage, found.Node, found.Local = a.Name, conn.Info().Stage, c.opts.Node, true
			break
		}
	}
	if !found.Local && c.opts.Lookup != nil {
		rec, err := c.opts.Lookup(r.Context(), id)
		switch {
		case errors.Is(err, storage.ErrNotFound):
		case err != nil:
			consoleError(w, http.StatusServiceUnavailable, "The connection registry did not answer: "+err.Error())
			return
		default:
			found.API, found.Stage, found.Node = rec.API, rec.Stage, rec.Node
		}
	}
	if found.Stage == "" {
		consoleError(w, http.StatusGone, "No open connection has the id "+id)
		return
	}
	o.Stage = found.Stage
	res := c.h.run(r.Context(), o)
	if kind != "get" || res.Status != http.StatusOK {
		writeResult(w, res)
		return
	}
	found.Connection = res.Body
	writeConsoleJSON(w, http.StatusOK, found)
}

func writeConsoleJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		consoleError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func consoleError(w http.ResponseWriter, status int, msg string) {
	writeConsoleJSON(w, status, struct {
		Message string `json:"message"`
	}{msg})
}

var _ Connections = (*connections.Hub)(nil)
