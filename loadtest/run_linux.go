//go:build linux

package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/portico-gateway/portico/loadtest/wsclient"
)

// Run executes one scenario and returns its summary. It stops by itself:
// every phase is bounded by the options, and the whole run by their sum.
// Problems the run met (failed connects, lost messages, non-200 posts)
// are listed in Summary.Problems; an error means the run could not be
// made at all.
func Run(ctx context.Context, o Options) (*Summary, error) {
	o = o.withDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	limit, err := RaiseFileLimit()
	if err != nil {
		return nil, fmt.Errorf("raising the open-files limit: %w", err)
	}
	if need := o.filesNeeded(); need > limit {
		return nil, fmt.Errorf("this run needs about %d open files (%d connections%s) but a process may hold %d here (hard RLIMIT_NOFILE): "+
			"lower --connections or spread the run over several generator processes (see loadtest/README.md)",
			need, o.Connections, o.filesNote(), limit)
	}
	for _, pid := range o.GatewayPIDs {
		if _, err := ReadProc([]int{pid}); err != nil {
			return nil, fmt.Errorf("--gateway-pid: %w", err)
		}
	}
	bound := o.RampTimeout + o.Duration + o.DirectAfter + 2*o.Drain + whoamiTimeout + time.Minute
	if o.Scenario == Broadcast {
		bound += 2 * subscribeTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()

	sum, err := runOnce(ctx, o)
	if err != nil || o.ComparePlain == "" || ctx.Err() != nil {
		return sum, err
	}
	o.logf("starting the plain echo server on %s for the same run", o.ComparePlain)
	child, err := StartPlainEchoProcess(o.ComparePlain, o.Connections+16, bound)
	if err != nil {
		sum.problem("--compare-plain: %v", err)
		return sum, nil
	}
	po := o
	po.URL, po.Expect, po.ComparePlain = "ws://"+o.ComparePlain+"/", "raw", ""
	po.GatewayPIDs = []int{child.Process.Pid}
	po.Args, po.Flags = nil, nil
	sum.PlainEcho, err = runOnce(ctx, po)
	_ = child.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = child.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = child.Process.Kill()
		<-done
	}
	return sum, err
}

// filesNeeded estimates the descriptors a run holds at once.
func (o *Options) filesNeeded() uint64 {
	n := o.Connections + 64 // connections, plus stdio, epoll, listeners
	switch o.Scenario {
	case Post:
		n += o.Clients
	case HTTPIntegration:
		n += o.DirectClients + min(o.Connections*o.Depth, 1024)
		if o.Backend == "" { // the gateway may open a connection per call in flight
			n += min(o.Connections*o.Depth, 1<<20)
		}
	}
	return uint64(n)
}

func (o *Options) filesNote() string {
	switch {
	case o.Scenario == Post:
		return fmt.Sprintf(" + %d HTTP clients", o.Clients)
	case o.Scenario == HTTPIntegration && o.Backend == "":
		return " + the gateway's connections to the in-process backend, up to one per message in flight" +
			" (or run `portico-load backend` separately and pass --backend)"
	}
	return ""
}

func (o *Options) logf(format string, args ...any) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, "portico-load: "+format+"\n", args...)
	}
}

// runner holds one run's state.
type runner struct {
	o    Options
	u    *url.URL
	sum  *Summary
	pool *wsclient.Pool
	// tls holds the wss:// connections; nil for ws://.
	tls *tlsConns
	// base is the origin of the timestamps put in messages: nanoseconds
	// on the monotonic clock since the run started.
	base time.Time
	// ident is what each handshake carries for an authorizer (nil: none).
	ident *identity
	// onMessage is the scenario's message handler.
	onMessage func(c *wsclient.Conn, payload []byte)
}

// stamp returns the current timestamp for a message.
func (r *runner) stamp() int64 { return int64(time.Since(r.base)) }

// since returns the time elapsed since a message's timestamp.
func (r *runner) since(stamp int64) time.Duration { return time.Since(r.base) - time.Duration(stamp) }

func runOnce(ctx context.Context, o Options) (*Summary, error) {
	u, _ := url.Parse(o.URL) // checked by Validate
	r := &runner{o: o, u: u, base: time.Now()}
	r.ident, _ = o.newIdentity(u) // checked by Validate
	r.sum = &Summary{
		Scenario: o.Scenario, Target: o.URL, Date: time.Now().UTC().Format(time.RFC3339),
		Machine: ReadMachine(), Args: o.Args, Flags: o.Flags, Problems: []string{},
		Connect: ConnectResult{Requested: o.Connections, Failures: map[string]int64{}, FirstErrors: map[string]string{}},
	}
	var gw *procWatch
	if len(o.GatewayPIDs) > 0 {
		var err error
		if gw, err = watchProc(o.GatewayPIDs); err != nil {
			return nil, fmt.Errorf("--gateway-pid: %w", err)
		}
	}
	gen, _ := watchProc([]int{os.Getpid()})

	// The scenario decides what messages mean; set up before connecting,
	// as a server may talk first.
	var phase func(context.Context) error
	switch o.Scenario {
	case Connect:
		phase = r.hold
	case Echo:
		e := r.newEcho()
		phase = e.run
	case Post:
		p := r.newPost()
		phase = p.run
	case Broadcast:
		b := r.newBroadcast()
		phase = b.run
	case HTTPIntegration:
		hi, err := r.newIntegration()
		if err != nil {
			return nil, err
		}
		defer hi.close()
		phase = hi.run
	}
	pool, err := wsclient.NewPool(wsclient.Config{
		Loops:    o.Loops,
		MaxConns: o.Connections,
		OnMessage: func(c *wsclient.Conn, _ byte, payload []byte) {
			if r.onMessage != nil {
				r.onMessage(c, payload)
			}
		},
	})
	if err != nil {
		return nil, err
	}
	r.pool = pool
	if u.Scheme == "wss" {
		if r.tls, err = newTLSConns(o); err != nil {
			pool.Shutdown(0)
			return nil, err
		}
	}
	r.connectAll(ctx)
	var phaseErr error
	if r.sum.Connect.Connected > 0 && ctx.Err() == nil {
		phaseErr = phase(ctx)
	}
	// Read the processes while the connections are still open.
	open := int(pool.Stats().Open)
	if r.tls != nil {
		open += r.tls.open()
	}
	r.sum.Gateway = gw.delta(open)
	if gw != nil && r.sum.Gateway == nil {
		r.sum.problem("could not read --gateway-pid %v at the end: did the process exit?", o.GatewayPIDs)
	}
	r.sum.Generator = gen.delta(open)
	during := pool.Stats()
	o.logf("closing %d connections", open)
	pool.Shutdown(o.Drain)
	if r.tls != nil {
		r.tls.closeAll()
	}
	r.sum.Connections = pool.Stats()
	r.finish(ctx, during)
	return r.sum, phaseErr
}

// finish lists the problems common to every scenario.
func (r *runner) finish(ctx context.Context, during wsclient.Stats) {
	s, c := r.sum, &r.sum.Connect
	if failed := c.Requested - c.Connected; failed > 0 {
		var kinds []string
		for _, k := range sortedKeys(c.Failures) {
			kinds = append(kinds, fmt.Sprintf("%s %d", k, c.Failures[k]))
		}
		s.problem("%d of %d connections failed to open (%s)", failed, c.Requested, strings.Join(kinds, ", "))
	}
	if n := during.ServerClosed; n > 0 {
		s.problem("the server closed %d connections during the run (codes %v)", n, during.CloseCodes)
	}
	if n := during.Dropped; n > 0 {
		s.problem("%d connections dropped without a close frame (%d protocol errors)", n, during.ProtocolErrors)
	}
	if n := s.Connections.ForcedClosed; n > 0 {
		s.problem("%d connections did not answer our close frame within %v", n, r.o.Drain)
	}
	if err := ctx.Err(); err != nil {
		s.problem("the run was cut short: %v", err)
	}
}

// connectAll opens the connections at the configured rate, with at most
// Concurrency handshakes in flight, from the source addresses in turn.
func (r *runner) connectAll(ctx context.Context) {
	o, c := r.o, &r.sum.Connect
	ctx, cancel := context.WithTimeout(ctx, o.RampTimeout)
	defer cancel()
	hs := NewHist()
	var mu sync.Mutex // guards c.Failures and c.FirstErrors
	var connected, failed atomic.Int64
	tickets := make(chan int)
	var wg sync.WaitGroup
	for range min(o.Concurrency, o.Connections) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range tickets {
				var src net.IP
				if len(o.Sources) > 0 {
					src = o.Sources[i%len(o.Sources)]
				}
				u, hdr := r.u, http.Header(nil)
				if r.ident != nil {
					u, hdr = r.ident.forConn(r.u, i)
				}
				t0 := time.Now()
				var err error
				if r.tls != nil {
					err = r.tls.dial(ctx, u, src, hdr, o.HandshakeTimeout)
				} else {
					_, err = r.pool.Dial(ctx, u, wsclient.DialOptions{Source: src, Timeout: o.HandshakeTimeout, Header: hdr})
				}
				if err == nil {
					hs.Record(time.Since(t0))
					connected.Add(1)
					continue
				}
				failed.Add(1)
				kind := failureKind(ctx, err)
				mu.Lock()
				c.Failures[kind]++
				if _, ok := c.FirstErrors[kind]; !ok {
					c.FirstErrors[kind] = err.Error()
				}
				mu.Unlock()
			}
		}()
	}
	start := time.Now()
	stop := r.progress(func() string {
		return fmt.Sprintf("connecting: %d of %d open, %d failed", connected.Load(), o.Connections, failed.Load())
	})
	timer := time.NewTimer(0)
	attempted := 0
send:
	for ; attempted < o.Connections; attempted++ {
		if o.Rate > 0 {
			due := start.Add(time.Duration(float64(attempted) / o.Rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				timer.Reset(d)
				select {
				case <-timer.C:
				case <-ctx.Done():
					break send
				}
			}
		}
		select {
		case tickets <- attempted:
		case <-ctx.Done():
			break send
		}
	}
	close(tickets)
	wg.Wait()
	stop()
	c.Seconds = time.Since(start).Seconds()
	c.Connected = int(connected.Load())
	c.PerSecond = float64(c.Connected) / c.Seconds
	c.Handshake = hs.Latency()
	if n := o.Connections - attempted; n > 0 {
		c.Failures["not-attempted"] += int64(n)
		c.FirstErrors["not-attempted"] = fmt.Sprintf("--ramp-timeout %v reached (or the run was interrupted)", o.RampTimeout)
	}
	r.o.logf("%d of %d connections open in %.2f s", c.Connected, o.Connections, c.Seconds)
}

// failureKind names why a connect failed.
func failureKind(ctx context.Context, err error) string {
	var se *wsclient.StatusError
	var ne net.Error
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("http-%d", se.Code)
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.EADDRNOTAVAIL), errors.Is(err, syscall.EADDRINUSE):
		return "no-free-port"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "too-many-open-files"
	case ctx.Err() != nil:
		return "canceled"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "reset"
	case errors.Is(err, wsclient.ErrProtocol):
		return "protocol"
	}
	return "other"
}

// hold is the connect scenario: keep the connections idle for Duration.
func (r *runner) hold(ctx context.Context) error {
	start := time.Now()
	stop := r.progress(func() string {
		open := int(r.pool.Stats().Open)
		if r.tls != nil {
			open += r.tls.open()
		}
		return fmt.Sprintf("holding %d connections (%.0fs of %v)", open, time.Since(start).Seconds(), r.o.Duration)
	})
	defer stop()
	sleep(ctx, r.o.Duration)
	r.sum.Seconds = time.Since(start).Seconds()
	return nil
}

// progress prints status() every second until the returned func is called.
func (r *runner) progress(status func() string) (stop func()) {
	if r.o.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		start := time.Now()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Fprintf(r.o.Progress, "portico-load: [%3.0fs] %s\n", time.Since(start).Seconds(), status())
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// conns returns the connections still open.
func (r *runner) conns() []*wsclient.Conn {
	n := r.pool.Len()
	out := make([]*wsclient.Conn, 0, n)
	for i := range n {
		if c := r.pool.Conn(i); c != nil && c.Open() {
			out = append(out, c)
		}
	}
	return out
}

// waitUntil polls done every 10 ms for at most d.
func waitUntil(ctx context.Context, d time.Duration, done func() bool) bool {
	deadline := time.Now().Add(d)
	for !done() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// waitTurn paces client k of clients sharing rate calls a second from
// start: its i-th call is due at (i*clients+k)/rate seconds, and a client
// that is behind goes at once.
func waitTurn(ctx context.Context, start time.Time, i, clients, k int, rate float64) {
	due := start.Add(time.Duration(float64(i*clients+k) / rate * float64(time.Second)))
	if d := time.Until(due); d > 0 {
		sleep(ctx, d)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
