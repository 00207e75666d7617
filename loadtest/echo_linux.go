//go:build linux

package loadtest

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portico-gateway/portico/loadtest/wsclient"
)

// echo drives messages on a two-way route and times the replies. Every
// message carries its own send time,
//
//	{"action":"echo","data":"<seq>-<send time>"}
//
// so a reply needs no bookkeeping per connection: its round trip is read
// from the reply itself ("<seq>-<send time>" when the route answers the
// data field, the whole message when the server echoes it as is).
type echo struct {
	r      *runner
	prefix []byte // {"action":"<action>","data":"
	expect string // "data", "raw" or "auto"

	running    atomic.Bool // closed loop: answer each reply with a new message
	seq        atomic.Uint64
	sent       atomic.Int64
	received   atomic.Int64
	unexpected atomic.Int64
	sendErrs   atomic.Int64
	rt         *Hist
	lag        *Hist // open loop: how late each message was written against its due time
	firstOdd   atomic.Pointer[string]
}

func (r *runner) newEcho() *echo {
	e := &echo{r: r, expect: r.o.Expect, rt: NewHist(), lag: NewHist(),
		prefix: []byte(`{"action":"` + r.o.Action + `","data":"`)}
	r.onMessage = e.onMessage
	return e
}

// message appends the next message to dst.
func (e *echo) message(dst []byte, stamp int64) []byte {
	dst = append(dst, e.prefix...)
	dst = appendStamp(dst, e.seq.Add(1), stamp, e.r.o.MessageBytes)
	return append(dst, `"}`...)
}

// send sends the next message on c, stamped now.
func (e *echo) send(c *wsclient.Conn) bool { return e.sendStamped(c, e.r.stamp()) }

// sendStamped sends the next message on c with the given timestamp: the
// open loop stamps a message with the time it was due, so that a send
// the generator itself delayed counts its delay in the round trip (no
// coordinated omission).
func (e *echo) sendStamped(c *wsclient.Conn, stamp int64) bool {
	var buf [256]byte
	e.sent.Add(1) // before the reply can arrive
	if err := c.SendText(e.message(buf[:0], stamp)); err != nil {
		e.sent.Add(-1)
		e.sendErrs.Add(1)
		return false
	}
	return true
}

// match reads the send time from a reply.
func (e *echo) match(p []byte) (int64, bool) {
	whole := bytes.HasPrefix(p, e.prefix) && bytes.HasSuffix(p, []byte(`"}`))
	switch {
	case whole && e.expect != "data":
		p = p[len(e.prefix) : len(p)-2]
	case e.expect == "raw":
		return 0, false
	}
	seq, ns, ok := parseStamp(p)
	if !ok || seq == 0 || seq > e.seq.Load() || ns < 0 || time.Duration(ns) > time.Since(e.r.base) {
		return 0, false
	}
	return ns, true
}

// onMessage runs on an event loop for every reply.
func (e *echo) onMessage(c *wsclient.Conn, p []byte) {
	if ns, ok := e.match(p); ok {
		e.rt.Record(e.r.since(ns))
		e.received.Add(1)
	} else {
		e.unexpected.Add(1)
		if e.firstOdd.Load() == nil {
			s := clip(string(p), 200)
			e.firstOdd.CompareAndSwap(nil, &s)
		}
	}
	if e.running.Load() && e.r.o.MsgRate == 0 {
		e.send(c)
	}
}

// run sends for Duration, then waits up to Drain for the last replies.
func (e *echo) run(ctx context.Context) error {
	o := e.r.o
	conns := e.r.conns()
	// The server's CPU over the message window alone (the connects
	// before it are not messages).
	cpu0, cpuErr := ReadProc(o.GatewayPIDs)
	start := time.Now()
	e.running.Store(true)
	stop := e.r.progress(func() string {
		return fmt.Sprintf("echo: %d answered, %.0f/s, %d open", e.received.Load(),
			float64(e.received.Load())/time.Since(start).Seconds(), e.r.pool.Stats().Open)
	})
	var wg sync.WaitGroup
	if o.MsgRate > 0 {
		wg.Add(1)
		go func() { defer wg.Done(); e.openLoop(ctx, conns, start) }()
	} else {
		for _, c := range conns {
			for range o.Depth {
				if !e.send(c) {
					break
				}
			}
		}
	}
	sleep(ctx, o.Duration)
	e.running.Store(false)
	wg.Wait()
	elapsed := time.Since(start)
	inWindow := e.received.Load()
	cpu1, cpuErr1 := ReadProc(o.GatewayPIDs)
	stop()
	waitUntil(ctx, o.Drain, func() bool { return e.received.Load()+e.unexpected.Load() >= e.sent.Load() })

	m := &MessageResult{Mode: "closed-loop", Depth: o.Depth, Expect: o.Expect,
		Sent: e.sent.Load(), Received: e.received.Load(), Unexpected: e.unexpected.Load(),
		SendErrors: e.sendErrs.Load(), PerSecond: float64(inWindow) / elapsed.Seconds(), RoundTrip: e.rt.Latency()}
	if o.MsgRate > 0 {
		m.Mode, m.Depth, m.TargetRate = "open-loop", 0, o.MsgRate
		lag := e.lag.Latency()
		m.SendLag = &lag
	}
	if len(o.GatewayPIDs) > 0 && cpuErr == nil && cpuErr1 == nil {
		m.ServerCPUSeconds = cpu1.CPUSeconds - cpu0.CPUSeconds
		if inWindow > 0 {
			m.ServerCPUPerMessageUs = m.ServerCPUSeconds * 1e6 / float64(inWindow)
		}
	}
	m.Lost = max(m.Sent-m.Received-m.Unexpected, 0)
	if p := e.firstOdd.Load(); p != nil {
		m.FirstUnexpected = *p
	}
	s := e.r.sum
	s.Messages, s.Seconds = m, elapsed.Seconds()
	switch {
	case m.Received == 0 && m.Unexpected == 0:
		s.problem("no reply arrived: does route %q exist and answer (routeResponse: true)?", o.Action)
	case m.Unexpected > 0:
		s.problem("%d replies did not match a sent message (--expect %s?), first: %s", m.Unexpected, o.Expect, clip(m.FirstUnexpected, 100))
	}
	if m.Lost > 0 {
		s.problem("%d of %d messages were never answered", m.Lost, m.Sent)
	}
	if m.SendErrors > 0 {
		s.problem("%d messages could not be sent (connection closed or not reading)", m.SendErrors)
	}
	return nil
}

// openLoop sends MsgRate messages a second in total, to the connections
// in turn, whatever the replies do.
func (e *echo) openLoop(ctx context.Context, conns []*wsclient.Conn, start time.Time) {
	if len(conns) == 0 {
		return
	}
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	var sent int64
	next := 0
	origin := int64(start.Sub(e.r.base)) // start as a stamp
	for e.running.Load() {
		due := int64(time.Since(start).Seconds() * e.r.o.MsgRate)
		for ; sent < due && e.running.Load(); sent++ {
			// Message sent+1 was due at (sent+1)/MsgRate seconds. It is
			// stamped with the moment it is written: how late that is
			// is this loop's own pacing (a 1 ms tick, and when this
			// goroutine gets to run), reported apart as the send lag,
			// not added to the server's round trip.
			now := e.r.stamp()
			e.lag.Record(time.Duration(max(now-(origin+int64(float64(sent+1)/e.r.o.MsgRate*1e9)), 0)))
			e.sendStamped(conns[next], now)
			next = (next + 1) % len(conns)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// appendStamp appends "<seq>-<ns>", padded with "-xxx..." to at least
// size bytes.
func appendStamp(dst []byte, seq uint64, ns int64, size int) []byte {
	start := len(dst)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, '-')
	dst = strconv.AppendInt(dst, ns, 10)
	if n := size - (len(dst) - start); n > 1 {
		dst = append(dst, '-')
		for range n - 1 {
			dst = append(dst, 'x')
		}
	}
	return dst
}

// parseStamp reads what appendStamp wrote.
func parseStamp(p []byte) (seq uint64, ns int64, ok bool) {
	seq, p, ok = digits(p)
	if !ok || len(p) == 0 || p[0] != '-' {
		return 0, 0, false
	}
	n, p, ok := digits(p[1:])
	if !ok || n > 1<<62 {
		return 0, 0, false
	}
	if len(p) > 0 && (p[0] != '-' || len(bytes.Trim(p[1:], "x")) > 0) {
		return 0, 0, false
	}
	return seq, int64(n), true
}

// digits reads a decimal number of 1 to 19 digits at the start of p.
func digits(p []byte) (v uint64, rest []byte, ok bool) {
	i := 0
	for ; i < len(p) && i < 20 && p[i] >= '0' && p[i] <= '9'; i++ {
		v = v*10 + uint64(p[i]-'0')
	}
	return v, p[i:], i > 0 && i < 20
}
