package loadtest

import (
	"net"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkFanoutFloor measures the floor under any broadcast that
// writes each subscriber's frame with its own write(2), as Portico's
// epoll shards do: one goroutine writes a 100-byte frame to each of N
// loopback TCP sockets with raw syscalls, and one epoll loop in the same
// process reads them back, so the two cores carry the kernel's TCP work
// for both ends and nothing else (no WebSocket framing, no queues, no
// gateway). Its deliveries/s is what the machine can do at best; the
// broadcast benchmarks (bench.sh broadcast, broadcast100k) are judged
// against it. PORTICO_FANOUT_CONNS sets N (default 8,000: 16,000 open
// files, under the per-process limit).
//
//	go test -run '^$' -bench BenchmarkFanoutFloor -benchtime 50x ./loadtest/
func BenchmarkFanoutFloor(b *testing.B) {
	n := 8000
	if v, err := strconv.Atoi(os.Getenv("PORTICO_FANOUT_CONNS")); err == nil && v > 0 {
		n = v
	}
	if _, err := RaiseFileLimit(); err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	var writers, readers []int
	var keep []net.Conn // holds the *net.Conn so their fds stay open
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatalf("dial %d: %v", i, err)
		}
		s, err := ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		keep = append(keep, c, s)
		writers = append(writers, rawFD(b, s))
		readers = append(readers, rawFD(b, c))
	}
	defer func() {
		for _, c := range keep {
			c.Close()
		}
	}()
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(ep)
	for _, fd := range readers {
		if err := unix.SetNonblock(fd, true); err != nil {
			b.Fatal(err)
		}
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: int32(fd)}
		if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			b.Fatal(err)
		}
	}
	const frame = 100
	var got atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // the subscribers' side: read whatever is readable
		defer close(done)
		events := make([]unix.EpollEvent, 512)
		buf := make([]byte, 64<<10)
		for {
			select {
			case <-stop:
				return
			default:
			}
			k, err := unix.EpollWait(ep, events, 10)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return
			}
			for _, e := range events[:k] {
				for {
					m, err := unix.Read(int(e.Fd), buf)
					if m > 0 {
						got.Add(int64(m))
					}
					if err != nil || m < len(buf) {
						break
					}
				}
			}
		}
	}()
	msg := make([]byte, frame)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, fd := range writers {
			if _, err := unix.Write(fd, msg); err != nil {
				b.Fatalf("write: %v", err)
			}
		}
		want := int64(i+1) * int64(n) * frame
		for got.Load() < want { // the publish is done when the last subscriber has it
			runtime.Gosched()
		}
	}
	b.StopTimer()
	close(stop)
	<-done
	b.ReportMetric(float64(b.N)*float64(n)/b.Elapsed().Seconds(), "deliveries/s")
}

// rawFD is c's file descriptor, left in blocking mode for the writer (a
// 100-byte write to an idle loopback socket never blocks).
func rawFD(b *testing.B, c net.Conn) int {
	sc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		b.Fatal(err)
	}
	var fd int
	if err := sc.Control(func(f uintptr) { fd = int(f) }); err != nil {
		b.Fatal(err)
	}
	return fd
}
