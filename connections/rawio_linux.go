//go:build linux

package connections

import "github.com/portico-gateway/portico/internal/rawio"

// sockRead and sockWrite are read(2) and write(2) on a connection's
// socket, which is always non-blocking, made without telling the runtime
// a system call has begun (unix.Read and unix.Write do: entersyscall and
// exitsyscall around each). The shard's loop reads and flushes with
// them (and so does a registration's first flush, on the handshake's
// goroutine): a call that cannot block needs neither, and a loopback write that
// does the peer's receive work can pass 20 µs on a loaded machine, after
// which the runtime's monitor takes the loop's P away and the loop must
// win one back (echo: +10% messages/s, -14% CPU per message).
//
// Writes from other goroutines (Send from an integration's worker or a
// management request) keep unix.Write: while many goroutines are
// runnable, a P held through a write whose thread the kernel has
// descheduled stalls them all, and the HTTP integration path ran 8%
// slower with sockWrite there.
//
// They return what unix.Read and unix.Write return: -1 and the errno on
// failure.
func sockRead(fd int, p []byte) (int, error)  { return rawio.Read(fd, p) }
func sockWrite(fd int, p []byte) (int, error) { return rawio.Write(fd, p) }
