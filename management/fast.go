package management

import (
	"encoding/json"
	"net/http"
	"unsafe"

	"github.com/portico-gateway/portico/cluster"
	"github.com/portico-gateway/portico/internal/http1"
)

// ServeFast serves POST /{stage}/@connections/{id}, the call a backend
// makes for every message it pushes, on the epoll loops of
// internal/http1, with the answers ServeHTTP gives. It leaves to
// ServeHTTP (returning false, having done nothing) whatever else comes,
// and every post it could not finish without waiting: under an
// Authorizer, for a stage that is not served, and for a connection this
// node does not hold when another node may.
func (h *Handler) ServeFast(r *http1.Request, w *http1.Response) bool {
	if h.opts.Authorizer != nil || string(r.Method) != http.MethodPost || len(r.Body) > h.opts.MaxPayload {
		return false
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
	stage, id, ok := parseConnectionsPath(path)
	if !ok || isConsolePath(path) || path == ReloadPath || (h.opts.Stages != nil && !h.opts.Stages(stage)) {
		return false
	}
	res := h.Local(&cluster.Op{Kind: "post", Stage: stage, ID: id, Data: r.Body})
	if res.Status == http.StatusGone && h.opts.Forward != nil && (h.opts.Remote == nil || h.opts.Remote()) {
		return false // Local found nothing and did nothing: ServeHTTP forwards it
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

// errorBody is AWS's error body, {"message": ...}.
func errorBody(message string) []byte {
	body, _ := json.Marshal(struct {
		Message string `json:"message"`
	}{message})
	return body
}

// compile-time check: the handler is a fast handler.
var _ http1.FastHandler = (*Handler)(nil)
