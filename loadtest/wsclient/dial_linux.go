package wsclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// dialRaw connects to ap and runs the handshake on a raw non-blocking
// socket that one of the pool's event loops watches from the start: the
// socket never enters Go's poller, so there is no dup, no poller
// registration to undo and no runtime deadline per connection. The
// calling goroutine makes the system calls; the loop only tells it when
// the socket is ready (EPOLLONESHOT, keyed by fd with dialTag).
func (p *Pool) dialRaw(ctx context.Context, u *url.URL, ap netip.AddrPort, o DialOptions, deadline time.Time) (*Conn, error) {
	p.mu.Lock()
	if p.closing {
		p.mu.Unlock()
		return nil, ErrPoolClosed
	}
	p.dials.Add(1)
	p.mu.Unlock()
	defer p.dials.Done()
	family := unix.AF_INET
	if ap.Addr().Is6() && !ap.Addr().Is4In6() {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return nil, fmt.Errorf("wsclient: socket: %w", err)
	}
	handedOver := false
	defer func() {
		if !handedOver {
			_ = unix.Close(fd) // also takes it out of the loop's epoll set
		}
	}()
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	if o.Source != nil {
		// The port is chosen at connect, unique per (source, destination).
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
		src, ok := netip.AddrFromSlice(o.Source)
		if !ok {
			return nil, fmt.Errorf("wsclient: bad source address %v", o.Source)
		}
		if err := unix.Bind(fd, sockaddr(src.Unmap(), 0, family)); err != nil {
			return nil, fmt.Errorf("dial tcp %s from %s: bind: %w", ap, src, err)
		}
	}
	if err := unix.Connect(fd, sockaddr(ap.Addr().Unmap(), ap.Port(), family)); err != nil && !errors.Is(err, unix.EINPROGRESS) {
		return nil, fmt.Errorf("dial tcp %s: connect: %w", ap, err)
	}

	l := p.loops[int(p.dialNext.Add(1))%len(p.loops)]
	d := &dialing{ready: make(chan struct{}, 1)}
	l.dmu.Lock()
	l.dials[int32(fd)] = d
	l.dmu.Unlock()
	defer func() {
		l.dmu.Lock()
		if l.dials[int32(fd)] == d { // the fd may be another dial's by now
			delete(l.dials, int32(fd))
		}
		l.dmu.Unlock()
	}()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	registered := false
	// wait arms the socket for events once and waits for the loop's word.
	wait := func(events uint32) error {
		op := unix.EPOLL_CTL_MOD
		if !registered {
			op, registered = unix.EPOLL_CTL_ADD, true
		}
		ev := unix.EpollEvent{Events: events | unix.EPOLLONESHOT, Fd: int32(fd), Pad: dialTag}
		if err := unix.EpollCtl(l.epfd, op, fd, &ev); err != nil {
			return fmt.Errorf("wsclient: epoll_ctl: %w", err)
		}
		select {
		case <-d.ready:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-p.dialStop:
			return ErrPoolClosed
		case <-timer.C:
			return fmt.Errorf("dial tcp %s: handshake: %w", ap, os.ErrDeadlineExceeded)
		}
	}

	req, key := handshakeRequest(u, o.Header)
	for len(req) > 0 { // on loopback the connect is usually done already
		n, err := unix.Write(fd, req)
		switch {
		case n > 0:
			req = req[n:]
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.ENOTCONN):
			if err := wait(unix.EPOLLOUT); err != nil {
				return nil, err
			}
		case errors.Is(err, unix.EINTR):
		default:
			return nil, fmt.Errorf("dial tcp %s: %w", ap, soError(fd, err))
		}
	}
	bp := responseBuffers.Get().(*[maxResponseHead]byte)
	defer responseBuffers.Put(bp)
	n := 0
	for {
		if err := wait(unix.EPOLLIN | unix.EPOLLRDHUP); err != nil {
			return nil, err
		}
		m, err := unix.Read(fd, bp[n:])
		switch {
		case m > 0:
			n += m
		case m == 0 && err == nil:
			return nil, fmt.Errorf("reading the handshake response: %w", io.EOF)
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
			continue // woken early: wait again
		default:
			return nil, fmt.Errorf("reading the handshake response: %w", err)
		}
		if end := bytes.Index(bp[:n], []byte("\r\n\r\n")); end >= 0 {
			rest, err := checkResponse(bp[:n], end+4, key)
			if err != nil {
				return nil, err
			}
			handedOver = true // add closes it on failure
			return p.add(fd, rest, l)
		}
		if n == len(bp) {
			return nil, fmt.Errorf("%w: handshake response head over %d bytes", ErrProtocol, maxResponseHead)
		}
	}
}

var responseBuffers = sync.Pool{New: func() any { return new([maxResponseHead]byte) }}

// soError returns the socket's pending error (a refused or reset
// connect) when there is one, else err.
func soError(fd int, err error) error {
	if e, gerr := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR); gerr == nil && e != 0 {
		return unix.Errno(e)
	}
	return err
}

func sockaddr(a netip.Addr, port uint16, family int) unix.Sockaddr {
	if family == unix.AF_INET6 {
		return &unix.SockaddrInet6{Port: int(port), Addr: a.As16()}
	}
	return &unix.SockaddrInet4{Port: int(port), Addr: a.As4()}
}
