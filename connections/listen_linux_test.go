//go:build linux

package connections

import (
	"context"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Accepted connections have kernel keepalive off unless asked for.
func TestListenKeepAlive(t *testing.T) {
	for _, tc := range []struct {
		period   time.Duration
		on       int
		idleSecs int
	}{{0, 0, 0}, {45 * time.Second, 1, 45}} {
		ln, err := Listen(context.Background(), "127.0.0.1:0", false, tc.period)
		if err != nil {
			t.Fatal(err)
		}
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		raw, err := s.(*net.TCPConn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var on, idle int
		var serr error
		_ = raw.Control(func(fd uintptr) {
			on, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_KEEPALIVE)
			if serr == nil && on == 1 {
				idle, serr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_KEEPIDLE)
			}
		})
		if serr != nil {
			t.Fatal(serr)
		}
		if on != tc.on || (tc.on == 1 && idle != tc.idleSecs) {
			t.Errorf("keepAlive %v: SO_KEEPALIVE %d, TCP_KEEPIDLE %d; want %d, %d", tc.period, on, idle, tc.on, tc.idleSecs)
		}
		c.Close()
		s.Close()
		ln.Close()
	}
}

// detachFD relies on the duplicate sharing the original's O_NONBLOCK.
func TestDetachFDNonBlocking(t *testing.T) {
	ln, err := Listen(context.Background(), "127.0.0.1:0", false, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	fd, err := detachFD(s)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	if flags&unix.O_NONBLOCK == 0 {
		t.Fatal("the detached socket is blocking")
	}
	// And it reads without blocking: nothing has been sent.
	if _, err := unix.Read(fd, make([]byte, 1)); err != unix.EAGAIN {
		t.Fatalf("read on an empty socket: %v, want EAGAIN", err)
	}
}
