//go:build !linux

package loadtest

import (
	"context"
	"errors"
)

// Run needs Linux: the generator holds its connections on epoll.
func Run(context.Context, Options) (*Summary, error) {
	return nil, errors.New("loadtest: the load generator runs on Linux only")
}

// RaiseFileLimit is a no-op off Linux.
func RaiseFileLimit() (uint64, error) { return 1 << 20, nil }
