//go:build linux

package connections

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

// sockRead and sockWrite answer as unix.Read and unix.Write do: what was
// moved, or -1 and an errno that errors.Is finds (EAGAIN on an empty
// non-blocking socket, EBADF on a closed one), so the loop's checks of n
// and err hold for both.
func TestSockReadWrite(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	a, b := fds[0], fds[1]
	defer unix.Close(a)
	buf := make([]byte, 16)
	if n, err := sockRead(a, buf); n != -1 || !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("read of an empty socket = %d, %v; want -1, EAGAIN", n, err)
	}
	if n, err := sockWrite(b, []byte("hello")); n != 5 || err != nil {
		t.Fatalf("write = %d, %v; want 5, nil", n, err)
	}
	if n, err := sockRead(a, buf); n != 5 || err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("read = %d %q, %v; want 5 \"hello\"", n, buf[:max(n, 0)], err)
	}
	if n, err := sockWrite(b, nil); n != 0 || err != nil {
		t.Fatalf("empty write = %d, %v; want 0, nil", n, err)
	}
	unix.Close(b)
	if n, err := sockRead(a, buf); n != 0 || err != nil {
		t.Fatalf("read after the peer closed = %d, %v; want 0 (EOF), nil", n, err)
	}
	if n, err := sockWrite(b, []byte("x")); n != -1 || !errors.Is(err, unix.EBADF) {
		t.Fatalf("write to a closed descriptor = %d, %v; want -1, EBADF", n, err)
	}
}
