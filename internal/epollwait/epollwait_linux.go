//go:build linux

// Package epollwait is epoll_wait(2) for a goroutine that runs an event
// loop of its own: Poll never blocks and tells the runtime nothing; Wait
// may block, and hands the goroutine's P to another thread for the wait,
// as the runtime does for its own blocking calls.
//
// unix.EpollWait keeps its P through the wait (entersyscall): an idle
// loop holds the P until the runtime's monitor takes it back, 20 µs to
// 10 ms later, and with one loop per P every P can sit in an idle loop's
// epoll_wait while other goroutines are runnable. A busy loop pays for
// entersyscall and exitsyscall on every turn instead, for a call that
// returns at once. A loop calls Poll first and Wait only when Poll found
// nothing.
package epollwait

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Poll is epoll_wait(2) with a zero timeout: the count of events put in
// events (not empty), or -1 and the errno.
func Poll(epfd int, events []unix.EpollEvent) (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// Wait is epoll_wait(2) waiting up to msec milliseconds (-1: no limit)
// without holding a P: the count of events put in events (not empty),
// or -1 and the errno (EINTR when a signal ended the wait).
func Wait(epfd int, events []unix.EpollEvent, msec int) (int, error) {
	r, _, e := blockingSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), uintptr(msec), 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// blockingSyscall6 is syscall.Syscall6 with entersyscallblock for
// entersyscall, as the runtime makes the calls it knows will block.
//
//go:nosplit
//go:norace
func blockingSyscall6(trap, a1, a2, a3, a4, a5, a6 uintptr) (r1, r2 uintptr, err syscall.Errno) {
	entersyscallblock()
	r1, r2, err = syscall.RawSyscall6(trap, a1, a2, a3, a4, a5, a6)
	exitsyscall()
	return
}

// The runtime's entry to a blocking system call and its exit from any.
// The runtime keeps both for linkname (go.dev/issue/67401: "do not
// remove or change the type signature").
//
//go:linkname entersyscallblock runtime.entersyscallblock
func entersyscallblock()

//go:linkname exitsyscall runtime.exitsyscall
func exitsyscall()
