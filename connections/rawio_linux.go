//go:build linux

package connections

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// sockRead and sockWrite are read(2) and write(2) on a connection's
// socket, which is always non-blocking, made without telling the runtime
// a system call has begun (unix.Read and unix.Write do: entersyscall and
// exitsyscall around each, ~3% of an echo's CPU). A call that cannot
// block needs neither; and a write on loopback that does the peer's
// receive work can pass 20 µs on a loaded machine, after which the
// runtime's monitor takes the P away and the shard's goroutine must win
// one back. They return what unix.Read and unix.Write return: -1 and the
// errno on failure.
func sockRead(fd int, p []byte) (int, error) {
	var ptr unsafe.Pointer
	if len(p) > 0 {
		ptr = unsafe.Pointer(&p[0])
	}
	r, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(ptr), uintptr(len(p)))
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

func sockWrite(fd int, p []byte) (int, error) {
	var ptr unsafe.Pointer
	if len(p) > 0 {
		ptr = unsafe.Pointer(&p[0])
	}
	r, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(ptr), uintptr(len(p)))
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}
