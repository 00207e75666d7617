package cluster

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/portico-gateway/portico/storage"
)

// RelayPath is where the node-to-node endpoint is served on the management
// listener.
const RelayPath = "/internal/relay"

// secretHeader carries the shared secret between nodes.
const secretHeader = "X-Portico-Relay-Secret"

// HTTPRelayOptions configure an HTTPRelay.
type HTTPRelayOptions struct {
	Node     string           // this node's id; required
	Secret   string           // shared by every node; required
	Registry storage.Registry // finds owners and their addresses; required
	// Local runs an operation on this node's connections; required.
	Local   func(*Op) Result
	Timeout time.Duration // 0: DefaultRelayTimeout
	Client  *http.Client  // nil: a keep-alive client
	Logger  *slog.Logger  // nil: slog.Default()
}

// HTTPRelay forwards operations to the owner node's management listener
// over HTTP, authenticated by a shared secret. It serves registries
// without a message bus (DynamoDB): each node's registry entry carries the
// address of its management listener.
type HTTPRelay struct {
	o      HTTPRelayOptions
	owners *owners

	mu    sync.Mutex
	addrs map[string]string // node id → management address
}

// NewHTTP returns an HTTP relay.
func NewHTTPRelay(o HTTPRelayOptions) (*HTTPRelay, error) {
	if o.Node == "" || o.Secret == "" || o.Registry == nil || o.Local == nil {
		return nil, errors.New("relay: Node, Secret, Registry and Local are required")
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultRelayTimeout
	}
	if o.Client == nil {
		o.Client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second}}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &HTTPRelay{o: o, owners: newOwners(o.Registry), addrs: map[string]string{}}, nil
}

// ServeHTTP runs an operation forwarded by another node.
func (r *HTTPRelay) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	got := req.Header.Get(secretHeader)
	if req.Method != http.MethodPost || subtle.ConstantTimeCompare([]byte(got), []byte(r.o.Secret)) != 1 {
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	var op Op
	if err := json.NewDecoder(io.LimitReader(req.Body, 1<<20)).Decode(&op); err != nil {
		http.Error(w, "bad operation: "+err.Error(), http.StatusBadRequest)
		return
	}
	res := r.o.Local(&op)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(res)
}

// address finds a node's management address, asking the registry when
// the node is not known yet.
func (r *HTTPRelay) address(ctx context.Context, node string) (string, error) {
	r.mu.Lock()
	addr, ok := r.addrs[node]
	r.mu.Unlock()
	if ok {
		return addr, nil
	}
	nodes, err := r.o.Registry.Nodes(ctx)
	if err != nil {
		return "", err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range nodes {
		r.addrs[n.ID] = n.Address
	}
	return r.addrs[node], nil
}

// Forward runs o on the node that holds the connection. ok is false when
// no other live node holds it.
func (r *HTTPRelay) Forward(ctx context.Context, o *Op) (Result, bool) {
	owner, res, ok := r.owners.elsewhere(ctx, o.ID, r.o.Node)
	if !ok {
		return res, res.Status != 0
	}
	addr, err := r.address(ctx, owner)
	if err != nil {
		return unavailable("connection registry unreachable: " + err.Error()), true
	}
	if addr == "" {
		return Result{}, false // the owner is not live: Gone
	}
	body, _ := json.Marshal(o)
	ctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+RelayPath, bytes.NewReader(body))
	if err != nil {
		return unavailable(err.Error()), true
	}
	req.Header.Set(secretHeader, r.o.Secret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.o.Client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return timedOut(r.o.Timeout), true
		}
		// Refused or reset: the owner is gone, and so is the connection.
		r.mu.Lock()
		delete(r.addrs, owner)
		r.mu.Unlock()
		r.owners.forget(o.ID)
		return Result{}, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return unavailable(fmt.Sprintf("the node holding the connection refused the relay: HTTP %d %s", resp.StatusCode, bytes.TrimSpace(msg))), true
	}
	var answer Result
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		return unavailable("malformed relay answer: " + err.Error()), true
	}
	return answer, true
}
