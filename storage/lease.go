package storage

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// LeaseSchedule decides when a backend whose records expire on their own
// (Redis, DynamoDB) renews the leases of a node's records, so that the
// heartbeat renews them only now and then instead of on every beat. The
// zero value is not usable: set Every.
type LeaseSchedule struct {
	// Every is the least time between two renewals of one node's leases.
	Every time.Duration
	// Budget bounds one renewal (see RenewalContext).
	Budget time.Duration

	mu      sync.Mutex
	renewed map[string]time.Time // node → start of its last renewal
}

// Registered notes that node's records written from now on carry a fresh
// lease (the node was just registered).
func (s *LeaseSchedule) Registered(node string, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.renewed == nil {
		s.renewed = make(map[string]time.Time)
	}
	s.renewed[node] = now
}

// Renew runs renew in a RenewalContext when node's leases are due (Every
// has passed since the last renewal, or there was none). A failed renewal
// is due again at the next call, and its error wraps ErrLeaseRenewal.
func (s *LeaseSchedule) Renew(ctx context.Context, node string, now time.Time, renew func(context.Context) error) error {
	s.mu.Lock()
	if s.renewed == nil {
		s.renewed = make(map[string]time.Time)
	}
	last, seen := s.renewed[node]
	due := !seen || now.Sub(last) >= s.Every
	if due {
		s.renewed[node] = now
	}
	s.mu.Unlock()
	if !due {
		return nil
	}
	rctx, cancel := RenewalContext(ctx, s.Budget)
	defer cancel()
	err := renew(rctx)
	if err == nil {
		return nil
	}
	s.mu.Lock()
	if seen {
		s.renewed[node] = last // due again on the next call
	} else {
		delete(s.renewed, node)
	}
	s.mu.Unlock()
	return fmt.Errorf("%w: %w", ErrLeaseRenewal, err)
}
