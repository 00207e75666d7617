// Package storage holds connection registries: where the gateway records
// which connections exist, on which node, and what is known about them.
// The Registry interface is implemented once per backend in its own
// package (storage/memory today; Redis and DynamoDB drop in beside it).
// Storage knows nothing of sockets: a Record is plain data.
package storage

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned by Get for an id the registry does not hold
// (never created, deleted, or expired).
var ErrNotFound = errors.New("storage: connection not found")

// Record is what the registry keeps about one connection.
type Record struct {
	ID           string
	Node         string // id of the gateway node that holds the socket
	API          string // API name
	Stage        string
	ConnectedAt  time.Time
	LastActiveAt time.Time
	SourceIP     string
	UserAgent    string
	// Authorizer is the authorizer context of the connection, values
	// stringified as in events; nil without an authorizer.
	Authorizer map[string]string
}

// Registry records connections. Implementations are safe for concurrent use.
type Registry interface {
	// Put creates or replaces the record of r.ID.
	Put(ctx context.Context, r *Record) error
	// Get returns a copy of the record of id, or ErrNotFound.
	Get(ctx context.Context, id string) (*Record, error)
	// Delete removes the record of id; deleting a missing id is not an error.
	Delete(ctx context.Context, id string) error
	// Touch raises LastActiveAt of id to at (never lowers it); a missing
	// id is not an error. Callers batch touches: the hot path must not
	// pay a round trip per message.
	Touch(ctx context.Context, id string, at time.Time) error
	// ListByNode returns the records held by node.
	ListByNode(ctx context.Context, node string) ([]*Record, error)
	// Close releases the registry's resources.
	Close() error
}
