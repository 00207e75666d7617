package connections

import (
	"context"
	"fmt"
	"net"
	"syscall"
	"time"
)

// Listen opens a TCP listener on addr. With reusePort, SO_REUSEPORT is set
// so that several gateway processes can listen on the same port: the
// kernel spreads new connections across them, and a process can be
// replaced without refusing connections (start the new one, then SIGTERM
// the old one). keepAlive > 0 turns on TCP keepalive probes on accepted
// connections at that period; otherwise they are off (Go's own default,
// 15 s, would cost a packet pair per idle connection every 15 s). On
// Linux the listener has TCP_DEFER_ACCEPT: a socket is accepted once its
// request has started to arrive (listen_linux.go).
func Listen(ctx context.Context, addr string, reusePort bool, keepAlive time.Duration) (net.Listener, error) {
	lc := net.ListenConfig{KeepAlive: -1}
	if keepAlive > 0 {
		lc.KeepAlive = keepAlive
	}
	if reusePort && !reusePortSupported {
		return nil, fmt.Errorf("connections: listen %s: reusePort is not supported on this system", addr)
	}
	lc.Control = func(network, address string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = setDeferAccept(fd)
			if serr == nil && reusePort {
				serr = setReusePort(fd)
			}
		}); err != nil {
			return err
		}
		return serr
	}
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connections: listen %s: %w", addr, err)
	}
	return ln, nil
}
