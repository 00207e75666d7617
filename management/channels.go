package management

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/portico-gateway/portico/channels"
	"github.com/portico-gateway/portico/cluster"
	"github.com/portico-gateway/portico/connections"
)

// The channel endpoints are a Portico extension (Amazon API Gateway has
// no channels and no way to list connections); they sit beside
// @connections, behind the same checks:
//
//	PUT    /{stage}/@connections/{id}/channels/{channel}[?recover=<epoch>:<offset>]  subscribe (204)
//	DELETE /{stage}/@connections/{id}/channels/{channel}                            unsubscribe (204; 404 if not subscribed)
//
// (both run on the node holding the connection: forwarded like other
// @connections calls when it is another)
//	POST   /{stage}/@channels/{channel}[?exclude={id}]       publish the body: {"delivered":n,"dropped":m,"nodes":k}
//	GET    /{stage}/@channels/{channel}[?limit=&cursor=]     members (on every live node with Redis), by connection id
//	GET    /{stage}/@connections[?limit=&cursor=]            this stage's connections on this node
//
// A channel name may contain '/': it is the rest of the path.

// Lister ranges over open connections; the gateway's hubs implement it.
// f must not call back into what is ranged over.
type Lister interface {
	Range(f func(connections.Conn) bool)
}

// Page sizes of the list endpoints.
const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

// serveExtension answers the channel endpoints and reports whether the
// path was one of them.
func (h *Handler) serveExtension(w http.ResponseWriter, r *http.Request) bool {
	op, stage, id, name, ok := parseExtensionPath(r.Method, r.URL.Path)
	if !ok {
		return false
	}
	rw := start(w)
	w = rw
	defer func() {
		h.opts.Metrics.ManagementRequests.WithLabelValues(op, statusLabel(rw.status)).Inc()
	}()
	reg := h.opts.Channels
	if (h.opts.Stages != nil && !h.opts.Stages(stage)) || (reg == nil && op != "list") {
		writeError(w, http.StatusForbidden, cluster.ErrTypeForbidden, "Forbidden")
		return true
	}
	if op != "list" {
		if err := channels.ValidName(name); err != nil {
			writeError(w, http.StatusBadRequest, cluster.ErrTypeBadRequest, err.Error())
			return true
		}
	}
	limit, cursor := defaultPageSize, r.URL.Query().Get("cursor")
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPageSize {
			writeError(w, http.StatusBadRequest, cluster.ErrTypeBadRequest, fmt.Sprintf("limit must be 1 to %d", maxPageSize))
			return true
		}
		limit = n
	}
	switch op {
	case "publish":
		h.publish(w, r, reg, stage, name)
	case "members":
		page, err := reg.Members(r.Context(), stage, name, cursor, limit)
		switch {
		case errors.Is(err, channels.ErrInvalidName):
			writeError(w, http.StatusBadRequest, cluster.ErrTypeBadRequest, err.Error())
			return true
		case err != nil:
			h.log.Warn("channel members could not be listed", "stage", stage, "err", err)
			writeError(w, http.StatusServiceUnavailable, cluster.ErrTypeServiceUnavailable, "The channel's members could not be read")
			return true
		}
		writeJSON(w, page)
	case "list":
		h.list(w, stage, cursor, limit)
	case "subscribe", "unsubscribe":
		h.membership(w, r, op, stage, id, name)
	}
	return true
}

// parseExtensionPath names the extension operation of a request: op is
// list, publish, members, subscribe or unsubscribe; ok is false for any
// other path or method (left to @connections).
func parseExtensionPath(method, path string) (op, stage, id, name string, ok bool) {
	stage, rest, found := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	if !found || stage == "" {
		return "", "", "", "", false
	}
	switch {
	case rest == "@connections" && method == http.MethodGet:
		return "list", stage, "", "", true
	case strings.HasPrefix(rest, "@channels/"):
		name = strings.TrimPrefix(rest, "@channels/")
		switch method {
		case http.MethodPost:
			return "publish", stage, "", name, true
		case http.MethodGet:
			return "members", stage, "", name, true
		}
	case strings.HasPrefix(rest, "@connections/"):
		id, name, found = strings.Cut(strings.TrimPrefix(rest, "@connections/"), "/channels/")
		if !found || id == "" || strings.Contains(id, "/") {
			return "", "", "", "", false
		}
		switch method {
		case http.MethodPut:
			return "subscribe", stage, id, name, true
		case http.MethodDelete:
			return "unsubscribe", stage, id, name, true
		}
	}
	return "", "", "", "", false
}

func (h *Handler) publish(w http.ResponseWriter, r *http.Request, reg *channels.Registry, stage, name string) {
	data, ok := h.readBody(w, r)
	if !ok {
		return
	}
	// Text unless the bytes are not UTF-8, as @connections POST; an
	// explicit application/octet-stream is always binary.
	binary := !utf8.Valid(data)
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err == nil && mt == "application/octet-stream" {
		binary = true
	}
	res, err := reg.Publish(r.Context(), stage, name, data, binary, r.URL.Query().Get("exclude"))
	switch {
	case errors.Is(err, channels.ErrInvalidName):
		writeError(w, http.StatusBadRequest, cluster.ErrTypeBadRequest, err.Error())
		return
	case err != nil && res == (channels.Result{}):
		// The bus (Redis) took none of it.
		h.log.Warn("channel publish failed", "stage", stage, "err", err)
		writeError(w, http.StatusServiceUnavailable, cluster.ErrTypeServiceUnavailable, "The channel bus is unavailable")
		return
	case err != nil:
		h.log.Warn("channel publish reached only part of the cluster", "stage", stage, "err", err)
	}
	writeJSON(w, res)
}

// membership subscribes or unsubscribes a connection, on the node that
// holds it: here, or forwarded to its owner like other @connections calls.
func (h *Handler) membership(w http.ResponseWriter, r *http.Request, op, stage, id, name string) {
	o := &cluster.Op{Kind: op, Stage: stage, ID: id, Channel: name}
	if op == cluster.OpSubscribe {
		if v := r.URL.Query().Get("recover"); v != "" {
			if _, err := channels.ParsePosition(v); err != nil {
				writeError(w, http.StatusBadRequest, cluster.ErrTypeBadRequest, err.Error())
				return
			}
			o.Recover = v
		}
	}
	res := h.Local(o)
	if res.Status == http.StatusGone && h.opts.Forward != nil {
		if fwd, ok := h.opts.Forward(r.Context(), o); ok {
			res = fwd
			h.opts.Metrics.Relayed.WithLabelValues(op, statusLabel(res.Status)).Inc()
		}
	}
	writeResult(w, res)
}

// localMembership runs a subscribe or unsubscribe of c, a connection of
// this node.
func (h *Handler) localMembership(c connections.Conn, o *cluster.Op) cluster.Result {
	reg := h.opts.Channels
	if reg == nil {
		return cluster.Result{Status: http.StatusForbidden, ErrType: cluster.ErrTypeForbidden, Message: "Forbidden"}
	}
	bad := func(err error) cluster.Result {
		return cluster.Result{Status: http.StatusBadRequest, ErrType: cluster.ErrTypeBadRequest, Message: err.Error()}
	}
	if o.Kind == cluster.OpUnsubscribe {
		ok, err := reg.Unsubscribe(c, o.Channel)
		switch {
		case errors.Is(err, channels.ErrClosed):
			return cluster.Gone()
		case err != nil:
			return bad(err)
		case !ok:
			return cluster.Result{Status: http.StatusNotFound, ErrType: cluster.ErrTypeNotFound,
				Message: "The connection is not subscribed to " + o.Channel}
		}
		return cluster.Result{Status: http.StatusNoContent}
	}
	var pos *channels.Position
	if o.Recover != "" {
		p, err := channels.ParsePosition(o.Recover)
		if err != nil {
			return bad(err)
		}
		pos = &p
	}
	switch err := reg.Subscribe(c, o.Channel, pos); {
	case errors.Is(err, channels.ErrClosed):
		return cluster.Gone()
	case err != nil:
		return bad(err)
	}
	return cluster.Result{Status: http.StatusNoContent}
}

// connectionPage is the answer of GET /{stage}/@connections.
type connectionPage struct {
	Connections []listedConnection `json:"connections"`
	Next        string             `json:"nextCursor,omitempty"`
}

type listedConnection struct {
	ConnectionID string `json:"connectionId"`
	connectionJSON
}

func (h *Handler) list(w http.ResponseWriter, stage, cursor string, limit int) {
	l, ok := h.opts.Conns.(Lister)
	if !ok {
		writeError(w, http.StatusForbidden, cluster.ErrTypeForbidden, "Missing Authentication Token")
		return
	}
	var conns []connections.Conn
	l.Range(func(c connections.Conn) bool {
		if c.Info().Stage == stage && c.Info().ID > cursor {
			conns = append(conns, c)
		}
		return true
	})
	sort.Slice(conns, func(i, j int) bool { return conns[i].Info().ID < conns[j].Info().ID })
	page := connectionPage{Connections: []listedConnection{}}
	if len(conns) > limit {
		conns = conns[:limit]
		page.Next = conns[limit-1].Info().ID
	}
	for _, c := range conns {
		page.Connections = append(page.Connections, listedConnection{ConnectionID: c.Info().ID, connectionJSON: h.describe(c)})
	}
	writeJSON(w, page)
}

func writeJSON(w http.ResponseWriter, v any) {
	body, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}
