//go:build linux

package connections

import (
	"bytes"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkEpollHandshake is one connect to the epoll server: TCP
// connect, the upgrade request, the 101, and the close, from a client
// that makes the system calls itself (so that allocations per op are
// the server's). Its listener is Listen's, as the gateway's is.
func BenchmarkEpollHandshake(b *testing.B) {
	srv, err := NewEpollServer(Options{Handler: newEchoHandler()})
	if err != nil {
		b.Fatal(err)
	}
	ap := netip.MustParseAddrPort(serveListen(b, srv))
	sa := &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	req := []byte(upgradeRequest("GET", "13", goodKey, "User-Agent: bench\r\n"))
	buf := make([]byte, 1024)
	b.ReportAllocs()
	for b.Loop() {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			b.Fatal(err)
		}
		if err := unix.Connect(fd, sa); err != nil {
			b.Fatal(err)
		}
		if _, err := unix.Write(fd, req); err != nil {
			b.Fatal(err)
		}
		n := 0
		for !bytes.Contains(buf[:n], []byte("\r\n\r\n")) {
			m, err := unix.Read(fd, buf[n:])
			if err != nil || m == 0 {
				b.Fatalf("reading the answer: %d, %v", m, err)
			}
			n += m
		}
		if !bytes.HasPrefix(buf[:n], []byte("HTTP/1.1 101 ")) {
			b.Fatalf("answer %q", buf[:n])
		}
		_ = unix.Close(fd)
	}
}
