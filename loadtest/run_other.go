//go:build !linux

package loadtest

import (
	"context"
	"errors"
)

var errLinuxOnly = errors.New("loadtest: the load generator runs on Linux only (it holds its connections on epoll)")

// Run needs Linux.
func Run(context.Context, Options) (*Summary, error) { return nil, errLinuxOnly }

// RaiseFileLimit needs Linux.
func RaiseFileLimit() (uint64, error) { return 0, errLinuxOnly }

// FileLimit needs Linux.
func FileLimit() (uint64, error) { return 0, errLinuxOnly }
