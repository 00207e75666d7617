//go:build !linux

package http1

import (
	"context"
	"net"
)

// Serve is Fallback's Serve: the fast path needs epoll.
func (s *Server) Serve(ln net.Listener) error { return s.Fallback.Serve(ln) }

// Shutdown is Fallback's Shutdown.
func (s *Server) Shutdown(ctx context.Context) error { return s.Fallback.Shutdown(ctx) }

type loop struct{}
