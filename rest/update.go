package rest

import (
	"net/http"
	"sync/atomic"
)

// Handler serves one API. Its routes, stages, stage variables, CORS,
// payload limit and limiter are one table behind an atomic pointer:
// Update builds a new one and swaps it whole, without a lock on the
// path of a request. A request in flight finishes on the table it
// started with.
type Handler struct {
	cur atomic.Pointer[table]
}

// New builds the handler of o.API.
func New(o Options) (*Handler, error) {
	t, err := newTable(o)
	if err != nil {
		return nil, err
	}
	h := &Handler{}
	h.cur.Store(t)
	return h, nil
}

// Update replaces the API the handler serves with o.API, for every
// request from now on. On an error nothing changes.
func (h *Handler) Update(o Options) error {
	commit, err := h.Prepare(o)
	if err != nil {
		return err
	}
	commit()
	return nil
}

// Prepare builds the table of o.API without serving it; commit swaps it
// in. The gateway prepares every API before it commits any.
func (h *Handler) Prepare(o Options) (commit func(), err error) {
	t, err := newTable(o)
	if err != nil {
		return nil, err
	}
	return func() { h.cur.Store(t) }, nil
}

// ServeHTTP serves r on the current table.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.cur.Load().ServeHTTP(w, r)
}
