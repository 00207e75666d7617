//go:build linux

package connections

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// The epoll server accepts a TCP listener's sockets as raw descriptors:
// accept4 gives them non-blocking and close-on-exec, TCP_NODELAY comes
// from the listener (Linux copies it to accepted sockets), and the
// request, usually there already (Listen sets TCP_DEFER_ACCEPT), is read
// with one read. Such a socket never enters the runtime's poller: no
// getsockname, no setsockopt, no poller registration to undo, no
// duplicate to take it back, no deadline timers. Only a request that is
// not all there at the first read, or that is refused, makes the socket
// a net.Conn for the ordinary path (handshakeConn), which reads the rest
// within the handshake timeout and answers as it always does.

// rawAccepted is a socket accepted by serveRaw.
type rawAccepted struct {
	fd int
	sa syscall.Sockaddr
}

func (r rawAccepted) Close() error { return unix.Close(r.fd) }

// serveRaw is Serve for a TCP listener.
func (s *EpollServer) serveRaw(ln *net.TCPListener) error {
	// A duplicate of the listener's descriptor, in the runtime's poller
	// (it is non-blocking like the original), to wait on for accept4:
	// a listener's own RawConn cannot Read.
	f, err := ln.File()
	if err != nil {
		return fmt.Errorf("connections: serve: %w", err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("connections: serve: %w", err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	}); err != nil || serr != nil {
		_ = f.Close()
		return fmt.Errorf("connections: serve: TCP_NODELAY on the listener: %w", errors.Join(err, serr))
	}
	var got rawAccepted
	var aerr error
	acceptOne := func(fd uintptr) bool {
		// syscall's accept4, not unix's: that one asks the socket's
		// protocol with a getsockopt on every call.
		got.fd, got.sa, aerr = syscall.Accept4(int(fd), syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
		return aerr != syscall.EAGAIN
	}
	accept := func() (rawAccepted, error) {
		for {
			if err := rc.Read(acceptOne); err != nil {
				// The duplicate is closed (no deadline is ever set on it).
				return rawAccepted{}, fmt.Errorf("connections: accept: %w (%v)", net.ErrClosed, err)
			}
			switch aerr {
			case nil:
				return got, nil
			case syscall.EINTR, syscall.ECONNABORTED:
				continue // a client gone before it was accepted, as net does
			}
			return rawAccepted{}, fmt.Errorf("connections: accept4: %w", aerr)
		}
	}
	err = acceptEach(&s.acceptor, ln, f, s.log, accept, nil, s.handshakeRaw)
	_ = f.Close()
	return err
}

// handshakeRaw is handshake for a raw accepted socket.
func (s *EpollServer) handshakeRaw(ctx context.Context, a rawAccepted) {
	defer s.handshakeDone()
	small := smallHeadBuffers.Get().(*[firstHeadBytes]byte)
	defer smallHeadBuffers.Put(small)
	n, err := unix.Read(a.fd, small[:])
	for err == unix.EINTR {
		n, err = unix.Read(a.fd, small[:])
	}
	if err == nil && n == 0 {
		_ = unix.Close(a.fd) // gone before it said anything
		return
	}
	n = max(n, 0)
	if end := headerEnd(small[:n], 0); end == n {
		// The whole head and nothing after it: the usual handshake.
		if req, key, ref := parseUpgrade(small[:end]); ref == nil {
			s.upgrade(ctx, rawSocket(a), req, key, headerNames(small[:end]))
			return
		}
	}
	// Not all there yet, more than a head, or refused: the ordinary path
	// reads on (within the handshake timeout) and answers.
	nc, cerr := fileConn(a.fd)
	if cerr != nil {
		s.log.Warn("handing an accepted socket to the runtime failed", "err", cerr)
		return
	}
	if !s.track(nc) {
		_ = nc.Close()
		return
	}
	s.handshakeConn(ctx, nc, small[:n])
}

// fileConn makes fd a net.Conn, and closes fd (the net.Conn holds a
// duplicate).
func fileConn(fd int) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), "")
	nc, err := net.FileConn(f)
	_ = f.Close()
	if err != nil {
		return nil, fmt.Errorf("connections: %w", err)
	}
	return nc, nil
}

// rawSocket is a handshakeSocket on a raw accepted socket.
type rawSocket rawAccepted

func (r rawSocket) remote() (ip, addr string) {
	var ap netip.AddrPort
	switch sa := r.sa.(type) {
	case *syscall.SockaddrInet4:
		ap = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *syscall.SockaddrInet6:
		a := netip.AddrFrom16(sa.Addr).Unmap() // as net.TCPAddr prints it
		if sa.ZoneId != 0 && a.Is6() {
			if ifi, err := net.InterfaceByIndex(int(sa.ZoneId)); err == nil {
				a = a.WithZone(ifi.Name)
			}
		}
		ap = netip.AddrPortFrom(a, uint16(sa.Port))
	default:
		return "", ""
	}
	return ap.Addr().WithZone("").String(), ap.String()
}

// refuse writes what the socket takes of the answer at once (a fresh
// socket's send buffer holds a refusal whole) and closes it.
func (r rawSocket) refuse(ref *refusal) {
	_ = r.write(appendRefusal(nil, ref))
	_ = unix.Close(r.fd)
}

func (r rawSocket) write(b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(r.fd, b)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return fmt.Errorf("connections: write: %w", err)
		case n == 0:
			return errors.New("connections: write: the socket took nothing")
		}
		b = b[n:]
	}
	return nil
}

func (r rawSocket) close()               { _ = unix.Close(r.fd) }
func (r rawSocket) takeFD() (int, error) { return r.fd, nil }
