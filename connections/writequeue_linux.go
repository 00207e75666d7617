//go:build linux

package connections

import (
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// An epoll connection's write queue is a pooled buffer it holds only
// while bytes wait in it: a frame written at once is built in a pooled
// buffer and given back, the frames a read's messages answer are
// appended to the queue and written with one syscall at the end of the
// read (onReadable), and the emptied queue goes back to the pool. An
// idle connection holds no buffer, and the echo path allocates none.

// maxPooledQueue bounds the buffers kept in queueBufs, so a burst to one
// slow client is not kept for everyone.
const maxPooledQueue = 64 << 10

var queueBufs = sync.Pool{New: func() any {
	b := make([]byte, 0, 1024)
	return &b
}}

func putQueueBuf(bp *[]byte, b []byte) {
	if cap(b) > maxPooledQueue {
		return
	}
	*bp = b[:0]
	queueBufs.Put(bp)
}

// releaseQueue hands an emptied write queue back to the pool. c.mu held.
func (c *epConn) releaseQueue() {
	if c.wqBuf != nil {
		putQueueBuf(c.wqBuf, c.wq)
	}
	c.wqBuf, c.wq = nil, nil
	c.account()
}

// account brings the server's count of queued bytes (QueueStats) up to
// date with c's queue: one atomic add when the queue's length changed
// since the last call, none on the echo path (a frame queued during a
// read's dispatch and written at its end leaves the count unchanged).
// c.mu held.
func (c *epConn) account() {
	if d := len(c.wq) - c.counted; d != 0 {
		c.srv.stats.queued.Add(int64(d))
		c.counted = len(c.wq)
	}
}

// queueFrame appends one frame to the write queue, taking a pooled buffer
// when the queue is empty. c.mu held.
func (c *epConn) queueFrame(op byte, payload []byte) {
	if len(c.wq) == 0 && c.wqBuf == nil {
		c.wqBuf = queueBufs.Get().(*[]byte)
		c.wq = (*c.wqBuf)[:0]
	}
	c.wq = appendFrame(c.wq, op, payload)
}

// frameSize is the size of a server frame with n bytes of payload.
func frameSize(n int) int {
	switch {
	case n < 126:
		return n + 2
	case n <= 0xffff:
		return n + 4
	}
	return n + 10
}

// writeFrame frames payload and writes it, or queues it (during a read's
// dispatch, behind queued bytes, or what the socket does not take),
// without blocking and without allocating. It is write for a frame not
// built yet.
func (c *epConn) writeFrame(op byte, payload []byte) (batched bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fdClosed || c.closing {
		return false, ErrClosed
	}
	batched = c.batching
	limit := c.srv.limits.SendQueueBytes
	if len(c.wq) == 0 && !batched {
		bp := queueBufs.Get().(*[]byte)
		frame := appendFrame((*bp)[:0], op, payload)
		n, werr := unix.Write(c.fd, frame) // any goroutine: see sockWrite
		if n == len(frame) {
			putQueueBuf(bp, frame)
			return batched, nil
		}
		if werr != nil && !errors.Is(werr, unix.EAGAIN) {
			putQueueBuf(bp, frame)
			// The loop sees the error on the socket and finishes it.
			return batched, fmt.Errorf("%w: %v", ErrClosed, werr)
		}
		rest := frame
		if n > 0 {
			rest = frame[n:]
		}
		if len(rest) > limit {
			putQueueBuf(bp, frame)
			return batched, c.overflow()
		}
		// What the socket did not take is the queue, in the same buffer.
		c.wqBuf, c.wq = bp, rest
		c.account()
		c.watchOut()
		return batched, nil
	}
	if len(c.wq)+frameSize(len(payload)) > limit {
		return batched, c.overflow()
	}
	c.queueFrame(op, payload)
	if !batched {
		c.account()
		c.watchOut()
	}
	return batched, nil
}

// overflow is the answer to a Send past the queue's bound. c.mu held.
func (c *epConn) overflow() error {
	c.srv.stats.overflows.Add(1)
	if c.srv.limits.CloseOnOverflow {
		go func() { _ = c.Close(ClosePolicyViolation, "Send queue overflow") }()
	}
	return ErrQueueFull
}

// watchOut asks for EPOLLOUT, once, while bytes wait. c.mu held.
func (c *epConn) watchOut() {
	if c.wantOut {
		return
	}
	c.wantOut = true
	ev := unix.EpollEvent{Events: connEvents | unix.EPOLLOUT, Fd: c.slot, Pad: int32(c.gen)}
	_ = unix.EpollCtl(c.sh.epfd, unix.EPOLL_CTL_MOD, c.fd, &ev)
}
