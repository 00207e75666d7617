//go:build linux

// Package rawio is read(2) and write(2) for the event loops' non-blocking
// sockets, made without telling the runtime that a system call has
// begun: unix.Read and unix.Write do (entersyscall and exitsyscall around
// each), which a call that cannot block does not need, and a loopback
// write that does the peer's receive work can pass 20 µs on a loaded
// machine, after which the runtime's monitor takes the loop's P away.
// Only for descriptors that are non-blocking, on the goroutine of an
// event loop (connections' shards, internal/http1's loops).
package rawio

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Read is read(2) of p on fd: the count, or -1 and the errno.
func Read(fd int, p []byte) (int, error) { return rawIO(unix.SYS_READ, fd, p) }

// Write is write(2) of p on fd: the count, or -1 and the errno.
func Write(fd int, p []byte) (int, error) { return rawIO(unix.SYS_WRITE, fd, p) }

func rawIO(trap uintptr, fd int, p []byte) (int, error) {
	var ptr unsafe.Pointer
	if len(p) > 0 {
		ptr = unsafe.Pointer(&p[0])
	}
	r, _, e := unix.RawSyscall(trap, uintptr(fd), uintptr(ptr), uintptr(len(p)))
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}
