package connections

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// acceptor is what both server modes share of accepting sockets: the
// listeners, the handshakes still reading their request, and the closing
// state. A server embeds it, so its fields and its lock are the server's.
type acceptor struct {
	// ctx is every handshake's context (Handler.Connect); stopAccepting
	// cancels it.
	ctx    context.Context
	cancel context.CancelFunc

	// mu guards closing, listeners, reading and what the embedding
	// server adds under it. It is never held while calling the Handler
	// or taking a shard's or a connection's lock.
	mu         sync.Mutex
	closing    bool
	listeners  []io.Closer           // the listeners, and what else must close for them to stop listening
	reading    map[net.Conn]struct{} // handshakes still reading their request
	handshakes sync.WaitGroup        // one per accepted socket until it is a connection or closed
	workers    sync.WaitGroup        // one per goroutine running handshakes (see acceptEach)
	// workersStarted, workersLive and workersIdle count those goroutines
	// started, running now and waiting for their next socket now (tests
	// watch them).
	workersStarted atomic.Int64
	workersLive    atomic.Int32
	workersIdle    atomic.Int32
	// idleFor overrides workerIdle when set (nanoseconds; tests).
	idleFor atomic.Int64
	settler // gives a burst's memory back once it is over (settle.go)
}

func (a *acceptor) initAcceptor() {
	a.ctx, a.cancel = context.WithCancel(context.Background())
	a.reading = make(map[net.Conn]struct{})
}

// acceptLoop accepts sockets on ln until stopAccepting, starting
// handshake on a goroutine of its own for each; it returns
// ErrServerClosed after stopAccepting. Accept errors other than a closed
// listener back off as net/http does.
func (a *acceptor) acceptLoop(ln net.Listener, log *slog.Logger, handshake func(ctx context.Context, nc net.Conn)) error {
	return acceptEach(a, ln, nil, log, ln.Accept, func(nc net.Conn) net.Conn { return nc }, handshake)
}

// workerIdle is how long a goroutine that ran a handshake waits for the
// next accepted socket before it exits. A handshake grows its
// goroutine's stack (the request's parse, the $connect route, an
// authorizer) to several kilobytes; a new goroutine per socket paid for
// that growth (copying the stack) on every connect, a tenth of the
// gateway's CPU in a connect storm behind a JWT authorizer. Shorter than
// settleAfter: a burst's goroutines are gone before its memory is given
// back.
const workerIdle = settleAfter / 4

// acceptEach is acceptLoop for any kind of accepted socket: accept
// returns the next one (a net.Conn, or a raw descriptor on Linux, see
// accept_linux.go), which goes to handshake on a goroutine of its own:
// one that finished a handshake less than workerIdle ago if one is
// waiting, else a new one. Shutdown waits for them (acceptor.workers).
// also, when not nil, is closed with ln by stopAccepting (a duplicate of
// ln's descriptor keeps the socket listening until it is closed too). A
// socket that conn makes a net.Conn of (conn may be nil) is tracked as
// reading until its handshake calls doneReading.
func acceptEach[T io.Closer](a *acceptor, ln net.Listener, also io.Closer, log *slog.Logger, accept func() (T, error), conn func(T) net.Conn, handshake func(ctx context.Context, sock T)) error {
	a.mu.Lock()
	if a.closing {
		a.mu.Unlock()
		return ErrServerClosed
	}
	a.listeners = append(a.listeners, ln)
	if also != nil {
		a.listeners = append(a.listeners, also)
	}
	a.mu.Unlock()
	// The listener's address, for X-Forwarded-Port (as net/http does).
	ctx := context.WithValue(a.ctx, http.LocalAddrContextKey, ln.Addr())
	next := make(chan T) // a worker waiting for its next socket receives here
	work := func(sock T) {
		defer a.workers.Done()
		defer a.workersLive.Add(-1)
		var idle *time.Timer
		for {
			handshake(ctx, sock) // calls handshakeDone once the socket is a connection or closed
			wait := workerIdle
			if d := a.idleFor.Load(); d > 0 {
				wait = time.Duration(d)
			}
			if idle == nil {
				idle = time.NewTimer(wait)
				defer idle.Stop()
			} else {
				idle.Reset(wait)
			}
			a.workersIdle.Add(1)
			more := false
			select {
			case sock = <-next:
				more = true
			case <-idle.C:
			case <-a.ctx.Done():
			}
			a.workersIdle.Add(-1)
			if !more {
				return
			}
		}
	}
	var delay time.Duration
	for {
		sock, err := accept()
		if err != nil {
			a.mu.Lock()
			closing := a.closing
			a.mu.Unlock()
			if closing {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of descriptors and the like: back off as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			log.Warn("accept failed; retrying", "err", err, "in", delay)
			select {
			case <-time.After(delay):
			case <-a.ctx.Done():
			}
			continue
		}
		delay = 0
		a.mu.Lock()
		if a.closing {
			a.mu.Unlock()
			_ = sock.Close()
			return ErrServerClosed
		}
		a.handshakes.Add(1)
		if conn != nil {
			a.reading[conn(sock)] = struct{}{}
		}
		a.started()
		// Under mu, so that no worker is added once Shutdown waits.
		handed := false
		select {
		case next <- sock:
			handed = true
		default:
			a.workers.Add(1)
			a.workersStarted.Add(1)
			a.workersLive.Add(1)
		}
		a.mu.Unlock()
		if !handed {
			go work(sock)
		}
	}
}

// track adds nc, a socket whose handshake is about to read its request,
// to the handshakes still reading, unless the server is closing: then
// it reports false and nc must be closed.
func (a *acceptor) track(nc net.Conn) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closing {
		return false
	}
	a.reading[nc] = struct{}{}
	return true
}

// handshakeDone ends one accepted socket's handshake: it is a
// connection now, or closed.
func (a *acceptor) handshakeDone() {
	a.handshakes.Done()
	a.finished()
}

// doneReading takes nc off the handshakes still reading and reports
// whether the server is closing.
func (a *acceptor) doneReading(nc net.Conn) (closing bool) {
	a.mu.Lock()
	delete(a.reading, nc)
	closing = a.closing
	a.mu.Unlock()
	return closing
}

// stopAccepting marks the server closing, drops the handshakes still
// reading their request, ends the Connect calls in progress and closes
// the listeners; it returns the first error closing one.
func (a *acceptor) stopAccepting() error {
	a.mu.Lock()
	a.closing = true
	lns := a.listeners
	a.listeners = nil
	for nc := range a.reading {
		_ = nc.Close() // a handshake still reading its request is dropped
	}
	a.mu.Unlock()
	a.cancel()
	a.settler.stop()
	var err error
	for _, ln := range lns {
		if cerr := ln.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) && err == nil {
			err = cerr
		}
	}
	return err
}
