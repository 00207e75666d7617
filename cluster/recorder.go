package cluster

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/portico-gateway/portico/connections"
	"github.com/portico-gateway/portico/routing/auth"
	"github.com/portico-gateway/portico/storage"
)

// Recorder is a connections.Handler that wraps another (an API's router)
// and keeps the registry in step with it: a connection the wrapped handler
// accepts is recorded before the client sees the 101, so that any node
// can reach it from then on, and its record is deleted (in batches, by
// the Deleter) once it has closed.
//
// A record that cannot be written at connect time does not refuse the
// connection: it is served locally, and the failure is reported to
// PutFailed (the Keeper) so the record is written again later.
type Recorder struct {
	next      connections.Handler
	hub       *connections.Hub
	reg       storage.Registry
	deletes   *Deleter
	node, api string
	putFailed func(connectionID string)
	log       *slog.Logger
}

var _ connections.Handler = (*Recorder)(nil)

// RecorderOptions configure a Recorder. The zero value of each optional
// field means the default noted beside it.
type RecorderOptions struct {
	// Handler is the wrapped handler. Required.
	Handler connections.Handler
	// Hub is where the API's connection server registers its
	// connections; the Keeper finds them there. Required.
	Hub *connections.Hub
	// Registry records the connections. Required.
	Registry storage.Registry
	// Deleter deletes the records of closed connections. Required.
	Deleter *Deleter
	// Node is this node's id and API the API's name, recorded with each
	// connection. Required.
	Node, API string
	// PutFailed is told the id of each connection whose record could not
	// be written when it opened. nil: the failure is only logged.
	PutFailed func(connectionID string)
	// Logger. nil: slog.Default().
	Logger *slog.Logger
}

// NewRecorder returns a Recorder.
func NewRecorder(o RecorderOptions) (*Recorder, error) {
	if o.Handler == nil || o.Hub == nil || o.Registry == nil || o.Deleter == nil || o.Node == "" || o.API == "" {
		return nil, errors.New("cluster: Recorder needs Handler, Hub, Registry, Deleter, Node and API")
	}
	r := &Recorder{next: o.Handler, hub: o.Hub, reg: o.Registry, deletes: o.Deleter,
		node: o.Node, api: o.API, putFailed: o.PutFailed, log: o.Logger}
	if r.log == nil {
		r.log = slog.Default()
	}
	r.log = r.log.With("api", o.API)
	return r, nil
}

// Connect runs the wrapped handler's Connect and records the connection
// it accepts.
func (r *Recorder) Connect(ctx context.Context, req *connections.ConnectRequest) *connections.ConnectResult {
	res := r.next.Connect(ctx, req)
	if !res.Accepted() {
		return res
	}
	info := req.Info
	rec := r.record(info, res.Stage, info.ConnectedAt, res.State)
	if err := r.reg.Put(ctx, rec); err != nil {
		r.log.Warn("registry put failed; the record is written again later", "connectionId", info.ID, "err", err)
		if r.putFailed != nil {
			r.putFailed(info.ID)
		}
	}
	return res
}

// Opened passes the opening on, when the wrapped handler wants it.
func (r *Recorder) Opened(c connections.Conn) {
	if o, ok := r.next.(connections.Opener); ok {
		o.Opened(c)
	}
}

// Message passes the message on.
func (r *Recorder) Message(c connections.Conn, m connections.Message) { r.next.Message(c, m) }

// Disconnect passes the close on and queues the deletion of the record.
func (r *Recorder) Disconnect(c connections.Conn, code int, reason string) {
	r.next.Disconnect(c, code, reason)
	r.deletes.Delete(c.Info().ID)
}

// Record describes c, a connection of this Recorder's API, for the
// registry.
func (r *Recorder) Record(c connections.Conn) *storage.Record {
	info := c.Info()
	return r.record(info, info.Stage, c.LastActive(), c.State())
}

// AuthIdentified is implemented by a connection's state (the router's
// session) when an authorizer admitted it.
type AuthIdentified interface {
	AuthIdentity() *auth.Identity
}

func (r *Recorder) record(info *connections.Info, stage string, lastActive time.Time, state any) *storage.Record {
	rec := &storage.Record{
		ID: info.ID, Node: r.node, API: r.api, Stage: stage,
		ConnectedAt: time.UnixMilli(info.ConnectedAt.UnixMilli()), LastActiveAt: lastActive,
		SourceIP: info.SourceIP, UserAgent: info.UserAgent,
	}
	if s, ok := state.(AuthIdentified); ok {
		rec.Authorizer = s.AuthIdentity().Strings() // nil without an authorizer
	}
	return rec
}
