//go:build linux

package connections

import (
	"container/heap"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portico-gateway/portico/internal/epollwait"
	"golang.org/x/sys/unix"
)

// shard is one epoll instance and the goroutine that serves it.
//
// Ownership: the loop goroutine alone reads sockets, parses frames, runs
// timers and finishes connections. mu guards slots, free, timers and
// stopping; epConn.mu guards a connection's write side. Lock order:
// epConn.mu may be held while taking shard.mu (setDeadline), never the
// other way round.
type shard struct {
	srv    *EpollServer
	epfd   int
	wakefd int

	mu       sync.Mutex
	slots    []*epConn
	free     []int32
	timers   timerHeap
	stopping bool

	readBuf []byte // loop only
	// again holds the connections a turn left unread (maxReadPerEvent,
	// or reading stopped early): edge-triggered epoll reports a socket
	// again only when more arrives, so the next turn reads them without
	// waiting. next is again's spare backing array. Loop only.
	again, next []slotRef
	now         int64 // unix ns, taken once per loop turn after epoll_wait; loop only
}

const wakeSlot = -1

// slotRef names a connection of a shard as its epoll event does.
type slotRef struct{ slot, gen int32 }

// connEvents are the events a connection's socket is watched for:
// edge-triggered, so a socket that stays readable is not reported (and
// polled by the kernel) once more after each read that emptied it. A
// read that stops before the socket is empty puts the connection on the
// shard's again list instead.
const connEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET

// maxWait bounds one epoll_wait, so the loop looks at its timers at least
// this often even when nothing wakes it.
const maxWait = time.Second

func newShard(s *EpollServer) (*shard, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("connections: epoll_create1: %w", err)
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		_ = unix.Close(epfd)
		return nil, fmt.Errorf("connections: eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: wakeSlot}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &ev); err != nil {
		_ = unix.Close(epfd)
		_ = unix.Close(wakefd)
		return nil, fmt.Errorf("connections: epoll_ctl wake: %w", err)
	}
	return &shard{srv: s, epfd: epfd, wakefd: wakefd, readBuf: make([]byte, readChunk)}, nil
}

func (sh *shard) closeFDs() {
	_ = unix.Close(sh.epfd)
	_ = unix.Close(sh.wakefd)
}

// wake interrupts the loop's epoll_wait.
func (sh *shard) wake() {
	var one = [8]byte{1}
	_, _ = unix.Write(sh.wakefd, one[:])
}

// add registers a connection with the shard.
func (sh *shard) add(c *epConn) error {
	c.sh = sh
	sh.mu.Lock()
	if sh.stopping {
		sh.mu.Unlock()
		return errors.New("connections: shard stopped")
	}
	var slot int32
	if n := len(sh.free); n > 0 {
		slot = sh.free[n-1]
		sh.free = sh.free[:n-1]
		sh.slots[slot] = c
	} else {
		slot = int32(len(sh.slots))
		sh.slots = append(sh.slots, c)
	}
	c.slot = slot
	c.gen++
	now := time.Now().UnixNano()
	c.deadline = c.nextDeadline(now)
	heap.Push(&sh.timers, c)
	// The loop sleeps until the earliest deadline it knew of, and never
	// longer than maxWait: only a new earliest deadline sooner than that
	// needs to wake it. Most connections' first deadline (a ping, the
	// idle timeout) is seconds away, which saves two syscalls a connect.
	earliest := sh.timers[0] == c && c.deadline < now+int64(maxWait)
	sh.mu.Unlock()
	ev := unix.EpollEvent{Events: connEvents, Fd: slot, Pad: int32(c.gen)}
	if err := unix.EpollCtl(sh.epfd, unix.EPOLL_CTL_ADD, c.fd, &ev); err != nil {
		sh.remove(c)
		return fmt.Errorf("connections: epoll_ctl add: %w", err)
	}
	if earliest {
		sh.wake()
	}
	return nil
}

func (sh *shard) remove(c *epConn) {
	sh.mu.Lock()
	if c.slot >= 0 && int(c.slot) < len(sh.slots) && sh.slots[c.slot] == c {
		sh.slots[c.slot] = nil
		sh.free = append(sh.free, c.slot)
	}
	c.slot = -1
	if c.heapIdx >= 0 {
		heap.Remove(&sh.timers, c.heapIdx)
	}
	sh.mu.Unlock()
}

// setDeadline moves c's timer earlier (close grace) and wakes the loop.
func (sh *shard) setDeadline(c *epConn, at int64) {
	sh.mu.Lock()
	if c.heapIdx >= 0 && at < c.deadline {
		c.deadline = at
		heap.Fix(&sh.timers, c.heapIdx)
	}
	sh.mu.Unlock()
	sh.wake()
}

func (sh *shard) lookup(slot int32, gen int32) *epConn {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if slot < 0 || int(slot) >= len(sh.slots) {
		return nil
	}
	c := sh.slots[slot]
	if c == nil || int32(c.gen) != gen {
		return nil
	}
	return c
}

// closeAll starts closing every connection of the shard.
func (sh *shard) closeAll(code int, reason string) {
	sh.mu.Lock()
	conns := make([]*epConn, 0, len(sh.slots))
	for _, c := range sh.slots {
		if c != nil {
			conns = append(conns, c)
		}
	}
	sh.mu.Unlock()
	for _, c := range conns {
		_ = c.Close(code, reason)
	}
}

// stop ends the loop; connections must already be finished.
func (sh *shard) stop() {
	sh.mu.Lock()
	sh.stopping = true
	sh.mu.Unlock()
	sh.wake()
}

// waitMillis returns epoll_wait's timeout: until the earliest timer.
func (sh *shard) waitMillis(now int64) int {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	max := int(maxWait / time.Millisecond)
	if len(sh.timers) == 0 {
		return max
	}
	d := (sh.timers[0].deadline - now + int64(time.Millisecond) - 1) / int64(time.Millisecond)
	if d < 0 {
		return 0
	}
	return int(min(d, int64(max)))
}

func (sh *shard) loop() {
	defer sh.srv.wg.Done()
	defer sh.closeFDs()
	events := make([]unix.EpollEvent, 256)
	for {
		// A busy loop finds its next events without a blocking call;
		// an idle one waits without holding its P (see epollwait).
		n, err := epollwait.Poll(sh.epfd, events)
		if n == 0 && len(sh.again) == 0 {
			n, err = epollwait.Wait(sh.epfd, events, sh.waitMillis(time.Now().UnixNano()))
		}
		if err != nil && !errors.Is(err, unix.EINTR) {
			sh.srv.log.Error("epoll_wait failed", "err", err)
			return
		}
		sh.now = time.Now().UnixNano()
		if len(sh.again) > 0 {
			again := sh.again
			sh.again, sh.next = sh.next[:0], again
			for _, r := range again {
				if c := sh.lookup(r.slot, r.gen); c != nil {
					c.onReadable(sh.readBuf)
				}
			}
		}
		for i := 0; i < n; i++ {
			ev := &events[i]
			if ev.Fd == wakeSlot {
				var b [8]byte
				_, _ = unix.Read(sh.wakefd, b[:])
				continue
			}
			c := sh.lookup(ev.Fd, ev.Pad)
			if c == nil {
				continue
			}
			if ev.Events&unix.EPOLLOUT != 0 {
				c.flush()
			}
			if ev.Events&(unix.EPOLLIN|unix.EPOLLHUP|unix.EPOLLERR|unix.EPOLLRDHUP) != 0 {
				c.onReadable(sh.readBuf)
			}
		}
		sh.fireTimers(time.Now().UnixNano())
		sh.mu.Lock()
		stopping := sh.stopping
		sh.mu.Unlock()
		if stopping {
			return
		}
	}
}

// fireTimers handles every connection whose deadline has passed.
func (sh *shard) fireTimers(now int64) {
	var due []*epConn
	sh.mu.Lock()
	for len(sh.timers) > 0 && sh.timers[0].deadline <= now {
		c := heap.Pop(&sh.timers).(*epConn)
		due = append(due, c)
	}
	sh.mu.Unlock()
	for _, c := range due {
		c.onTimer(now)
		if c.finished.Load() {
			continue
		}
		sh.mu.Lock()
		if c.slot >= 0 && c.heapIdx < 0 {
			c.deadline = c.nextDeadline(now)
			heap.Push(&sh.timers, c)
		}
		sh.mu.Unlock()
	}
}

// timerHeap orders connections by deadline (container/heap).
type timerHeap []*epConn

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].deadline < h[j].deadline }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx = i
	h[j].heapIdx = j
}
func (h *timerHeap) Push(x any) {
	c := x.(*epConn)
	c.heapIdx = len(*h)
	*h = append(*h, c)
}
func (h *timerHeap) Pop() any {
	old := *h
	n := len(old)
	c := old[n-1]
	old[n-1] = nil
	*h = old[:n-1]
	c.heapIdx = -1
	return c
}

// epConn is one connection of an EpollServer.
type epConn struct {
	srv   *EpollServer
	sh    *shard
	fd    int
	slot  int32
	gen   uint32
	info  Info
	state any

	lastActive atomic.Int64
	finished   atomic.Bool

	// Loop only.
	parser   frameParser
	pending  []byte // bytes of an incomplete frame
	pingSent int64
	lastPing int64

	// Guarded by shard.mu.
	heapIdx  int
	deadline int64

	// Guarded by mu: the write side and the close state.
	mu            sync.Mutex
	wq            []byte  // bytes the socket has not taken yet
	wqBuf         *[]byte // wq's pooled buffer; nil while wq is empty (writequeue_linux.go)
	counted       int     // len(wq) as last added to the server's queued bytes (account)
	wantOut       bool    // EPOLLOUT registered
	batching      bool    // the loop is dispatching a read, or the socket is not registered yet: queue, flush once after
	registered    bool    // in its shard: the socket may be written and watched
	closeEarly    bool    // Close was called before the connection was registered
	fdClosed      bool
	closing       bool
	closeCode     int
	closeReason   string
	closeDeadline int64
}

func (c *epConn) Info() *Info           { return &c.info }
func (c *epConn) State() any            { return c.state }
func (c *epConn) LastActive() time.Time { return time.Unix(0, c.lastActive.Load()) }
func (c *epConn) touch()                { c.lastActive.Store(time.Now().UnixNano()) }

// touchLoop is touch on the loop, with the time of this loop turn: one
// clock read per epoll_wait instead of one per frame. A turn is short
// next to any idle timeout.
func (c *epConn) touchLoop() { c.lastActive.Store(c.sh.now) }

// Send frames data and writes it without blocking.
func (c *epConn) Send(data []byte, binary bool) error {
	if len(data) > c.srv.limits.MaxMessageBytes {
		return ErrTooLarge
	}
	op := byte(opText)
	if binary {
		op = opBinary
	}
	batched, err := c.writeFrame(op, data)
	if err != nil {
		return err
	}
	if !batched {
		// Queued while the loop dispatches a read of this connection,
		// the frame needs no clock: the read touched it (touchLoop).
		c.touch()
	}
	return nil
}

// SendPrepared writes the frames of ps, encoded once for every
// connection, with Send's contract: all of them or none.
func (c *epConn) SendPrepared(ps ...*Prepared) error {
	for _, p := range ps {
		if len(p.data) > c.srv.limits.MaxMessageBytes {
			return ErrTooLarge
		}
	}
	var frames []byte
	switch len(ps) {
	case 0:
		return nil
	case 1:
		frames = ps[0].frame // write copies what it queues
	default:
		for _, p := range ps {
			frames = append(frames, p.frame...)
		}
	}
	if err := c.write(frames, false); err != nil {
		return err
	}
	c.touch()
	return nil
}

// write hands frame to the socket or queues it. Control frames may pass
// a full queue and a closing connection (the close frame itself).
func (c *epConn) write(frame []byte, control bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fdClosed || (c.closing && !control) {
		return ErrClosed
	}
	if len(c.wq) == 0 && !c.batching {
		n, err := unix.Write(c.fd, frame) // any goroutine: see sockWrite
		if n > 0 {
			frame = frame[n:]
		}
		if len(frame) == 0 {
			return nil
		}
		if err != nil && !errors.Is(err, unix.EAGAIN) {
			// The loop sees the error on the socket and finishes it.
			return fmt.Errorf("%w: %v", ErrClosed, err)
		}
	}
	if !control && len(c.wq)+len(frame) > c.srv.limits.SendQueueBytes {
		return c.overflow()
	}
	if len(c.wq) == 0 && c.wqBuf == nil {
		c.wqBuf = queueBufs.Get().(*[]byte)
		c.wq = (*c.wqBuf)[:0]
	}
	c.wq = append(c.wq, frame...)
	if !c.batching {
		c.account()
		c.watchOut()
	}
	return nil
}

// flush writes queued bytes when the socket is writable again.
func (c *epConn) flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fdClosed {
		return
	}
	for len(c.wq) > 0 {
		n, err := sockWrite(c.fd, c.wq)
		if n > 0 {
			c.wq = c.wq[n:]
		}
		if err != nil {
			// EAGAIN: wait for EPOLLOUT; other errors: the read side finishes.
			if errors.Is(err, unix.EAGAIN) {
				c.watchOut()
			}
			c.account()
			return
		}
	}
	c.releaseQueue()
	if c.wantOut {
		c.wantOut = false
		ev := unix.EpollEvent{Events: connEvents, Fd: c.slot, Pad: int32(c.gen)}
		_ = unix.EpollCtl(c.sh.epfd, unix.EPOLL_CTL_MOD, c.fd, &ev)
	}
}

// Close sends a close frame; the loop finishes the connection when the
// peer answers or after closeGrace.
func (c *epConn) Close(code int, reason string) error {
	c.mu.Lock()
	if c.closing || c.fdClosed {
		c.mu.Unlock()
		return ErrClosed
	}
	c.closing, c.closeCode, c.closeReason = true, code, reason
	c.closeDeadline = time.Now().Add(closeGrace).UnixNano()
	if !c.registered {
		// Not in a shard yet (Opened, or a failed upgrade): the handshake
		// sends the close frame once the socket is registered.
		c.closeEarly = true
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()
	c.sendClose(code, reason)
	return nil
}

// sendClose takes a closing connection out of the hub, sends its close
// frame and arms the close grace.
func (c *epConn) sendClose(code int, reason string) {
	c.srv.hub.Remove(c) // a closing connection is gone for @connections
	_ = c.write(appendFrame(nil, opClose, closePayload(code, reason)), true)
	c.mu.Lock()
	deadline := c.closeDeadline
	c.mu.Unlock()
	c.sh.setDeadline(c, deadline)
}

// registeredNow marks c as in its shard: frames queued while it was not
// (from Opened) are flushed, and a Close that came meanwhile is sent.
func (c *epConn) registeredNow() {
	c.mu.Lock()
	c.registered = true
	c.batching = false
	early, code, reason := c.closeEarly, c.closeCode, c.closeReason
	c.mu.Unlock()
	if early {
		c.sendClose(code, reason)
	}
	c.flush()
}

// onReadable reads what the socket has, parses it and dispatches. Frames
// the handler sends back while it runs (route responses, pongs) are
// queued and written with one syscall at the end, so a client that
// pipelines messages costs one write per read, not one per message.
func (c *epConn) onReadable(buf []byte) {
	c.mu.Lock()
	c.batching = true
	c.mu.Unlock()
	drained := c.readAndDispatch(buf)
	c.mu.Lock()
	c.batching = false
	c.mu.Unlock()
	if c.finished.Load() {
		return
	}
	if !drained {
		c.sh.again = append(c.sh.again, slotRef{c.slot, int32(c.gen)})
	}
	c.flush()
}

// readAndDispatch reads and dispatches until the socket is empty (it
// returns true) or it stops first: maxReadPerEvent read, an interrupted
// read, reading stopped by a close (false).
func (c *epConn) readAndDispatch(buf []byte) (drained bool) {
	read := 0
	for read < c.srv.maxRead && !c.finished.Load() {
		var dst []byte
		if len(c.pending) > 0 {
			if cap(c.pending)-len(c.pending) < 4096 {
				grown := make([]byte, len(c.pending), 2*cap(c.pending)+4096)
				copy(grown, c.pending)
				c.pending = grown
			}
			dst = c.pending[len(c.pending):cap(c.pending)]
		} else {
			dst = buf
		}
		n, err := sockRead(c.fd, dst)
		if n <= 0 {
			if errors.Is(err, unix.EAGAIN) {
				return true
			}
			if errors.Is(err, unix.EINTR) {
				return false
			}
			c.finish(CloseAbnormal, "")
			return true
		}
		read += n
		var data []byte
		if len(c.pending) > 0 {
			c.pending = c.pending[:len(c.pending)+n]
			data = c.pending
		} else {
			data = buf[:n]
		}
		used, perr := c.parser.parse(data, c.onFrame)
		if c.finished.Load() {
			return true
		}
		if perr != nil {
			var ce *closeError
			if errors.As(perr, &ce) {
				_ = c.Close(ce.code, ce.reason)
				c.finish(ce.code, ce.reason)
			} else if !errors.Is(perr, errStopReading) {
				c.finish(CloseInternal, "")
			}
			return false
		}
		rest := data[used:]
		switch {
		case len(rest) == 0:
			c.pending = nil
		case len(c.pending) > 0:
			c.pending = append(c.pending[:0], rest...)
		default:
			c.pending = append(make([]byte, 0, len(rest)+4096), rest...)
		}
		if n < len(dst) {
			// A short read took all the socket had: what arrives later
			// is reported anew.
			return true
		}
	}
	return c.finished.Load()
}

// errStopReading ends parsing without an error close (the connection is
// already closing).
var errStopReading = errors.New("connections: stop reading")

// onFrame handles one message or control frame.
func (c *epConn) onFrame(f frameEvent) error {
	switch f.op {
	case opText, opBinary:
		c.touchLoop()
		if c.isClosing() {
			return nil // after our close frame, data is dropped
		}
		if f.op == opBinary && c.srv.limits.RejectBinary {
			_ = c.Close(CloseUnsupported, "Binary frames are not supported")
			return errStopReading
		}
		c.srv.opts.Handler.Message(c, Message{Data: f.payload, Binary: f.op == opBinary})
	case opPing:
		c.touchLoop()
		_ = c.write(appendFrame(nil, opPong, f.payload), true)
	case opPong:
		c.pingSent = 0
	case opClose:
		code, reason, err := parseClose(f.payload)
		if err != nil {
			return err
		}
		if !c.isClosing() {
			// Echo the close as RFC 6455 asks (its code, no reason; an
			// empty close frame for one without a code), then finish.
			c.mu.Lock()
			c.closing, c.closeCode, c.closeReason = true, code, reason
			c.mu.Unlock()
			_ = c.write(appendFrame(nil, opClose, closePayload(code, "")), true)
		}
		c.finish(code, reason)
		return errStopReading
	}
	return nil
}

func (c *epConn) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

// onTimer enforces idle timeout, maximum duration, pings and close grace.
func (c *epConn) onTimer(now int64) {
	c.mu.Lock()
	closing, closeDeadline, code, reason := c.closing, c.closeDeadline, c.closeCode, c.closeReason
	c.mu.Unlock()
	l := &c.srv.limits
	if closing {
		if now >= closeDeadline {
			c.finish(code, reason)
		}
		return
	}
	if now-c.info.ConnectedAt.UnixNano() >= int64(l.MaxDuration) || now-c.lastActive.Load() >= int64(l.IdleTimeout) {
		_ = c.Close(CloseGoingAway, ReasonGoingAway)
		return
	}
	if l.PingInterval > 0 {
		if c.pingSent != 0 {
			if now-c.pingSent >= int64(l.PongTimeout) {
				_ = c.Close(CloseGoingAway, ReasonGoingAway)
			}
		} else if now-c.lastPing >= int64(l.PingInterval) {
			c.lastPing, c.pingSent = now, now
			_ = c.write(appendFrame(nil, opPing, nil), true)
		}
	}
}

// nextDeadline is when onTimer next has something to do.
func (c *epConn) nextDeadline(now int64) int64 {
	l := &c.srv.limits
	c.mu.Lock()
	closing, closeDeadline := c.closing, c.closeDeadline
	c.mu.Unlock()
	if closing {
		return closeDeadline
	}
	next := c.info.ConnectedAt.UnixNano() + int64(l.MaxDuration)
	if t := c.lastActive.Load() + int64(l.IdleTimeout); t < next {
		next = t
	}
	if l.PingInterval > 0 {
		var t int64
		switch {
		case c.pingSent != 0:
			t = c.pingSent + int64(l.PongTimeout)
		case c.lastPing == 0:
			t = c.info.ConnectedAt.UnixNano() + int64(l.PingInterval)
		default:
			t = c.lastPing + int64(l.PingInterval)
		}
		if t < next {
			next = t
		}
	}
	if next <= now {
		next = now + int64(time.Millisecond)
	}
	return next
}

// finish closes the socket and reports the disconnect, once. Loop only.
func (c *epConn) finish(code int, reason string) {
	if !c.finished.CompareAndSwap(false, true) {
		return
	}
	c.mu.Lock()
	if c.closing {
		code, reason = c.closeCode, c.closeReason
	}
	c.closing = true
	// Best effort: push out what is queued (the close frame) before closing.
	if len(c.wq) > 0 {
		_, _ = sockWrite(c.fd, c.wq)
	}
	c.releaseQueue()
	// Closing the only descriptor of the socket also takes it out of the
	// epoll set: no EPOLL_CTL_DEL needed.
	_ = unix.Close(c.fd)
	c.fdClosed = true
	c.mu.Unlock()
	c.pending = nil
	c.parser.msg = nil
	c.sh.remove(c)
	c.srv.hub.Remove(c)
	c.srv.opts.Handler.Disconnect(c, code, reason)
	c.srv.open.Done()
}
