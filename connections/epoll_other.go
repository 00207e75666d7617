//go:build !linux

package connections

import "errors"

// EpollSupported reports whether this build has the epoll server.
const EpollSupported = false

// EpollServer is not available on this operating system.
type EpollServer struct{ GoroutineServer }

// NewEpollServer fails on this operating system: use the goroutine server.
func NewEpollServer(Options) (*EpollServer, error) {
	return nil, errors.New("connections: epoll mode needs Linux")
}
