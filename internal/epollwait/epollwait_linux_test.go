//go:build linux

package epollwait

import (
	"errors"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Poll never waits; Wait waits up to its timeout for an event;
// both answer as unix.EpollWait does (the count, or -1 and an errno).
func TestPollWait(t *testing.T) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(epfd)
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(efd)
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, efd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(efd), Pad: 7}); err != nil {
		t.Fatal(err)
	}
	events := make([]unix.EpollEvent, 4)
	// retry repeats a wait the runtime's preemption signal cut short.
	retry := func(wait func() (int, error)) (int, error) {
		for {
			n, err := wait()
			if !errors.Is(err, unix.EINTR) {
				return n, err
			}
		}
	}
	if n, err := retry(func() (int, error) { return Poll(epfd, events) }); n != 0 || err != nil {
		t.Fatalf("poll of an empty set = %d, %v; want 0, nil", n, err)
	}
	start := time.Now()
	if n, err := retry(func() (int, error) { return Wait(epfd, events, 20) }); n != 0 || err != nil {
		t.Fatalf("20 ms wait on an empty set = %d, %v; want 0, nil", n, err)
	}
	if d := time.Since(start); d < 15*time.Millisecond {
		t.Fatalf("a 20 ms wait on an empty set returned after %v", d)
	}
	// An event that comes while the wait blocks ends it.
	go func() {
		time.Sleep(10 * time.Millisecond)
		_, _ = unix.Write(efd, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	}()
	n, err := retry(func() (int, error) { return Wait(epfd, events, 10_000) })
	if n != 1 || err != nil || events[0].Fd != int32(efd) || events[0].Pad != 7 {
		t.Fatalf("wait for an event = %d, %v, %+v; want 1 event for fd %d", n, err, events[0], efd)
	}
	if n, err := retry(func() (int, error) { return Poll(epfd, events) }); n != 1 || err != nil {
		t.Fatalf("poll of a ready set = %d, %v; want 1, nil", n, err)
	}
	if n, err := Poll(-1, events); n != -1 || !errors.Is(err, unix.EBADF) {
		t.Fatalf("poll of a bad descriptor = %d, %v; want -1, EBADF", n, err)
	}
	if n, err := Wait(-1, events, 10); n != -1 || !errors.Is(err, unix.EBADF) {
		t.Fatalf("wait on a bad descriptor = %d, %v; want -1, EBADF", n, err)
	}
}
