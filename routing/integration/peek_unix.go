//go:build unix

package integration

import (
	"net"
	"syscall"
)

// peekIdle reports whether nothing is waiting to be read on nc and its
// peer has not closed it: a recv with MSG_PEEK|MSG_DONTWAIT that finds
// no data (EAGAIN). A Go read with a past deadline would not even try.
func peekIdle(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	idle := false
	var b [1]byte
	if err := rc.Read(func(fd uintptr) bool {
		_, _, rerr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		idle = rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK
		return true // never wait for readiness
	}); err != nil {
		return false
	}
	return idle
}
