package management

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/portico-gateway/portico/config"
)

// ReloadPath is where the management listener reloads the configuration
// file (POST), when Options.Reload is set.
const ReloadPath = "/admin/reload"

// ReloadFunc re-reads the configuration file and applies it, returning
// what it did (encoded as the JSON answer). An error wrapping
// config.ErrInvalid is the file's fault (400); any other is 500.
type ReloadFunc func(ctx context.Context) (result any, err error)

// serveReload serves POST /admin/reload: with an Authorizer it needs a
// signature by a key with the admin action, as /debug/pprof does.
func (h *Handler) serveReload(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeError(w, http.StatusMethodNotAllowed, "MethodNotAllowedException", ReloadPath+" answers POST only, not "+r.Method)
		return
	}
	body, ok := h.readBody(w, r) // the signature covers its hash
	if !ok || !h.authenticate(w, r, body, "", "", "admin") {
		return
	}
	res, err := h.opts.Reload(r.Context())
	switch {
	case errors.Is(err, config.ErrInvalid):
		writeError(w, http.StatusBadRequest, "BadRequestException", err.Error())
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, "InternalServerErrorException", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(res)
}
