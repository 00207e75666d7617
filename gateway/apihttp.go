package gateway

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/portico-gateway/portico/cluster"
	"github.com/portico-gateway/portico/config"
	"github.com/portico-gateway/portico/management"
)

// apiHTTP serves the plain HTTP requests (not WebSocket handshakes) that
// reach one API's listener. @connections is served there at
// /{stage}/@connections/{connectionId}, as Amazon API Gateway serves it
// on the API's own host: many backends build the endpoint from an
// event's domainName and stage. There it always needs a SigV4 signature
// made with a key of management.credentials, whatever management.auth
// says: the listener faces clients. Any other request gets 426 naming
// what the listener accepts.
type apiHTTP struct {
	mh *management.Handler // set by New before anything listens
}

func (a *apiHTTP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, rest, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/"); ok &&
		(rest == "@connections" || strings.HasPrefix(rest, "@connections/")) {
		a.mh.ServeHTTP(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusUpgradeRequired)
	fmt.Fprintf(w, "this endpoint accepts WebSocket connections (GET with Upgrade: websocket) and signed @connections calls (/{stage}/@connections/{connectionId}), not %s %s\n", r.Method, r.URL.Path)
}

// apiManagement is the @connections handler of one API's listener: only
// that API's stages, always signed.
func (g *Gateway) apiManagement(api *config.API) *management.Handler {
	stages := map[string]bool{}
	for _, st := range api.Stages {
		stages[st.Name] = true
	}
	return management.NewHandler(management.Options{
		Conns:      g.conns(),
		Stages:     func(name string) bool { return stages[name] },
		StageAPI:   func(string) (string, string) { return api.Name, api.ID },
		Authorizer: g.sigv4,
		Metrics:    g.metrics,
		Logger:     g.log.With("api", api.Name),
		Forward: func(ctx context.Context, o *cluster.Op) (cluster.Result, bool) {
			if g.forward == nil {
				return cluster.Result{}, false
			}
			return g.forward.Forward(ctx, o)
		},
	})
}
