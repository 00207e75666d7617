package management

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"unsafe"

	"github.com/portico-gateway/portico/cluster"
	"github.com/portico-gateway/portico/internal/http1"
	"github.com/portico-gateway/portico/routing/auth"
)

// ServeFast serves POST /{stage}/@connections/{id}, the call a backend
// makes for every message it pushes, on the epoll loops of
// internal/http1, with the answers ServeHTTP gives. It leaves to
// ServeHTTP (returning false, having done nothing) whatever else comes,
// and every post it could not finish without waiting: under an
// Authorizer that is not auth.Immediate (the SigV4 check is), for a
// stage that is not served, and for a connection this node does not
// hold when another node may.
func (h *Handler) ServeFast(r *http1.Request, w *http1.Response) bool {
	if string(r.Method) != http.MethodPost || len(r.Body) > h.opts.MaxPayload {
		return false
	}
	if a := h.opts.Authorizer; a != nil {
		if _, ok := a.(auth.Immediate); !ok {
			return false
		}
	}
	// The path, and the stage and id cut from it, live in the read
	// buffer: they are looked up (Handlers, Stages, Local), never kept.
	path := unsafe.String(unsafe.SliceData(r.Path), len(r.Path))
	if _, ok := h.opts.Handlers[path]; ok {
		return false
	}
	if _, ok := h.opts.AdminHandlers[path]; ok {
		return false
	}
	// No console, reload, health or extension path has the shape
	// /{stage}/@connections/{id}: only the maps above could take it.
	stage, id, ok := parseConnectionsPath(path)
	if !ok || (h.opts.Stages != nil && !h.opts.Stages(stage)) {
		return false
	}
	var res cluster.Result
	if h.opts.Authorizer != nil {
		ar, ok := authRequest(r, path)
		if !ok {
			return false
		}
		if no := h.authorize(context.Background(), ar, stage, "@connections", "post"); no != nil {
			res = *no
		}
	}
	if res.Status == 0 {
		res = h.Local(&cluster.Op{Kind: "post", Stage: stage, ID: id, Data: r.Body})
		if res.Status == http.StatusGone && h.opts.Forward != nil && (h.opts.Remote == nil || h.opts.Remote()) {
			// Local found nothing and did nothing: ServeHTTP forwards it
			// (and checks the signature again).
			return false
		}
	}
	var uuid [36]byte
	fillUUID(&uuid)
	w.Field("x-amzn-RequestId", unsafe.String(&uuid[0], len(uuid)))
	w.Status(res.Status)
	if res.ErrType != "" {
		w.Field("Content-Type", "application/json")
		w.Field("x-amzn-ErrorType", res.ErrType)
		w.Body(errorBody(res.Message))
	}
	h.counts.inc("post", res.Status)
	return true
}

// authRequest is auth.FromHTTP for a request of the fast path: the
// fields under net/http's canonical names (Host apart, as net/http keeps
// it), the path decoded and as sent, the body. Strings are copies: an
// authorizer may keep what it is given.
func authRequest(r *http1.Request, path string) (*auth.Request, bool) {
	hd := make(http.Header, len(r.Fields))
	var host string
	for _, f := range r.Fields {
		k := textproto.CanonicalMIMEHeaderKey(string(f.Name))
		if k == "Host" {
			host = string(f.Value)
			continue
		}
		hd[k] = append(hd[k], string(f.Value))
	}
	ar := &auth.Request{Method: http.MethodPost, Path: strings.Clone(path), Host: host, Header: hd, Body: r.Body}
	if len(r.Target) != len(r.Path) {
		// Escapes: net/url decides whether the form sent is the one
		// SigV4 signs (RawPath), as FromHTTP sees it.
		u, err := url.ParseRequestURI(string(r.Target))
		if err != nil {
			return nil, false
		}
		if u.RawPath != u.Path {
			ar.RawPath = u.RawPath
		}
	}
	ar.SourceIP = r.RemoteAddr
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		ar.SourceIP = ip
	}
	return ar, true
}

// errorBody is AWS's error body, {"message": ...}.
func errorBody(message string) []byte {
	body, _ := json.Marshal(struct {
		Message string `json:"message"`
	}{message})
	return body
}

// compile-time check: the handler is a fast handler.
var _ http1.FastHandler = (*Handler)(nil)
