//go:build linux

package connections

import "golang.org/x/sys/unix"

const reusePortSupported = true

func setReusePort(fd uintptr) error {
	return unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
}

// deferAcceptSeconds is the listener's TCP_DEFER_ACCEPT: accept returns
// a socket once its first bytes (the request) have arrived, so the
// handshake reads it at once instead of waiting for it. A client that
// connects and sends nothing is accepted all the same after about this
// long (the kernel then retransmits its SYN-ACK, and accepts on the
// answer), and the handshake timeout runs from there.
const deferAcceptSeconds = 1

func setDeferAccept(fd uintptr) error {
	return unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT, deferAcceptSeconds)
}
