//go:build linux

package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

func newHist() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, int64(60*time.Second/time.Microsecond), 3)
}

func latency(h *hdrhistogram.Histogram) Latency {
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Latency{Count: h.TotalCount(), P50: ms(h.ValueAtQuantile(50)), P90: ms(h.ValueAtQuantile(90)),
		P99: ms(h.ValueAtQuantile(99)), P999: ms(h.ValueAtQuantile(99.9)), Max: ms(h.Max())}
}

// syncHist is a histogram safe for concurrent recording.
type syncHist struct {
	mu sync.Mutex
	h  *hdrhistogram.Histogram
}

func (s *syncHist) record(d time.Duration) {
	us := d.Microseconds()
	if us < 1 {
		us = 1
	}
	s.mu.Lock()
	_ = s.h.RecordValue(us)
	s.mu.Unlock()
}

// latency reads the percentiles while recording may go on.
func (s *syncHist) latency() Latency {
	s.mu.Lock()
	defer s.mu.Unlock()
	return latency(s.h)
}

// Run executes a scenario.
func Run(ctx context.Context, o Options) (*Summary, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	sum := &Summary{Scenario: o.Scenario, Date: time.Now().UTC().Format(time.RFC3339), Machine: readMachine(runtime.NumCPU()),
		Connections: o.Connections, Failures: map[string]int{}}
	if o.Loops <= 0 {
		o.Loops = runtime.GOMAXPROCS(0)
	}
	var onMessage func(c *Conn, payload []byte)
	rt := &syncHist{h: newHist()}
	var received atomic.Int64
	switch o.Scenario {
	case "connect":
	case "echo", "http-integration":
		onMessage = func(c *Conn, payload []byte) {
			if ts, ok := stamp(payload); ok {
				rt.record(time.Since(time.Unix(0, ts)))
				received.Add(1)
			}
			if o.MsgRate == 0 {
				_ = c.Send(echoMessage(o.action()))
			}
		}
	case "post":
		onMessage = func(c *Conn, payload []byte) {
			if bytes.HasPrefix(payload, []byte(`{"connectionId":"`)) {
				var m struct{ ConnectionID string }
				if json.Unmarshal(payload, &m) == nil {
					c.SetData(m.ConnectionID)
				}
				return
			}
			if ts, ok := stamp(payload); ok {
				rt.record(time.Since(time.Unix(0, ts)))
				received.Add(1)
			}
		}
	default:
		return nil, fmt.Errorf("unknown scenario %q (want connect, echo, post or http-integration)", o.Scenario)
	}
	pool, err := NewPool(o.Loops, onMessage)
	if err != nil {
		return nil, err
	}
	defer pool.Close()

	if len(o.GatewayPIDs) > 0 {
		st, err := ReadProc(o.GatewayPIDs)
		if err != nil {
			return nil, err
		}
		sum.Before = &st
	}
	connectAll(ctx, pool, o, sum)
	conns := pool.Conns()

	switch o.Scenario {
	case "connect":
		select {
		case <-time.After(o.Hold):
		case <-ctx.Done():
		}
	case "echo", "http-integration":
		start := time.Now()
		if o.MsgRate > 0 {
			openLoop(ctx, conns, o)
		} else {
			depth := max(o.Depth, 1)
			for _, c := range conns {
				for i := 0; i < depth; i++ {
					_ = c.Send(echoMessage(o.action()))
				}
			}
			sleepCtx(ctx, o.Duration)
		}
		sum.Messages = received.Load()
		sum.PerSecond = float64(sum.Messages) / time.Since(start).Seconds()
		l := rt.latency()
		sum.RoundTrip = &l
		if o.Scenario == "http-integration" && o.BackendURL != "" {
			d := directBackend(ctx, o.BackendURL, 2*time.Second)
			sum.Direct = &d
		}
	case "post":
		runPost(ctx, o, conns, sum, &received)
		l := rt.latency()
		sum.Delivery = &l
	}
	sum.Dropped = pool.Closed.Load()
	if len(o.GatewayPIDs) > 0 {
		st, err := ReadProc(o.GatewayPIDs)
		if err == nil {
			sum.After = &st
			if sum.Connected > 0 {
				sum.BytesPerCon = float64(st.RSSBytes-sum.Before.RSSBytes) / float64(sum.Connected)
			}
			sum.CPUSeconds = st.CPUSeconds - sum.Before.CPUSeconds
		}
	}
	return sum, nil
}

// openLoop sends o.MsgRate messages per second for o.Duration, each
// connection in turn, whatever the replies do: latency is then measured
// at a fixed load rather than at saturation. Two senders share the work;
// each paces itself in 1 ms steps.
func openLoop(ctx context.Context, conns []*Conn, o Options) {
	if len(conns) == 0 {
		return
	}
	const senders = 2
	var wg sync.WaitGroup
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			perSender := float64(o.MsgRate) / senders
			start := time.Now()
			sent, next := 0, s
			for ctx.Err() == nil {
				elapsed := time.Since(start)
				if elapsed >= o.Duration {
					return
				}
				for due := int(perSender * elapsed.Seconds()); sent < due; sent++ {
					_ = conns[next%len(conns)].Send(echoMessage(o.action()))
					next += senders
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}
	wg.Wait()
	time.Sleep(100 * time.Millisecond) // the last replies
}

func (o *Options) action() string {
	if o.Action == "" {
		return "echo"
	}
	return o.Action
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
}

// echoMessage is {"action":A,"data":"<send time in ns>"}.
func echoMessage(action string) []byte {
	b := make([]byte, 0, 64)
	b = append(b, `{"action":"`...)
	b = append(b, action...)
	b = append(b, `","data":"`...)
	b = strconv.AppendInt(b, time.Now().UnixNano(), 10)
	return append(b, `"}`...)
}

// stamp finds the send time (the first run of 19 digits) in a reply.
func stamp(p []byte) (int64, bool) {
	for i := 0; i+19 <= len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			continue
		}
		j := i
		for j < len(p) && p[j] >= '0' && p[j] <= '9' {
			j++
		}
		if j-i == 19 {
			v, err := strconv.ParseInt(string(p[i:j]), 10, 64)
			return v, err == nil
		}
		i = j
	}
	return 0, false
}

// connectAll opens o.Connections at o.Rate from o.Sources.
func connectAll(ctx context.Context, pool *Pool, o Options, sum *Summary) {
	conc := o.Concurrency
	if conc <= 0 {
		conc = 256
	}
	hs := &syncHist{h: newHist()}
	var mu sync.Mutex
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	var interval time.Duration
	if o.Rate > 0 {
		interval = time.Second / time.Duration(o.Rate)
	}
	start := time.Now()
	for i := 0; i < o.Connections && ctx.Err() == nil; i++ {
		if interval > 0 {
			if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
				time.Sleep(d)
			}
		}
		var src net.IP
		if len(o.Sources) > 0 {
			src = o.Sources[i%len(o.Sources)]
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			_, took, err := pool.Dial(ctx, o.URL, Dialer{Source: src, Timeout: 10 * time.Second})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				sum.Failures[failureKind(err)]++
				return
			}
			sum.Connected++
			hs.record(took)
		}()
	}
	wg.Wait()
	sum.ConnectRate = float64(sum.Connected) / time.Since(start).Seconds()
	sum.Handshake = hs.latency()
}

func failureKind(err error) string {
	var se *StatusError
	var ne net.Error
	switch {
	case errors.As(err, &se):
		return "http-" + strconv.Itoa(se.Status)
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no-source-port"
	}
	return "other"
}

// runPost learns each connection's id, then posts for o.Duration from
// o.Clients keep-alive HTTP clients.
func runPost(ctx context.Context, o Options, conns []*Conn, sum *Summary, received *atomic.Int64) {
	who := o.Whoami
	if who == "" {
		who = "whoami"
	}
	for _, c := range conns {
		_ = c.Send([]byte(`{"action":"` + who + `"}`))
	}
	deadline := time.Now().Add(10 * time.Second)
	var ids []string
	for time.Now().Before(deadline) {
		ids = ids[:0]
		for _, c := range conns {
			if id := c.GetData(); id != "" {
				ids = append(ids, id)
			}
		}
		if len(ids) == len(conns) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(ids) == 0 {
		sum.Errors++
		return
	}
	clients := o.Clients
	if clients <= 0 {
		clients = 64
	}
	tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	hh := &syncHist{h: newHist()}
	var mu sync.Mutex
	statuses := map[string]int{}
	var posts atomic.Int64
	stop := time.Now().Add(o.Duration)
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) && ctx.Err() == nil {
				id := ids[rand.IntN(len(ids))]
				body := strconv.AppendInt(nil, time.Now().UnixNano(), 10)
				t0 := time.Now()
				resp, err := hc.Post(o.Management+"/@connections/"+url.PathEscape(id), "application/octet-stream", bytes.NewReader(body))
				key := "error"
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					key = strconv.Itoa(resp.StatusCode)
					hh.record(time.Since(t0))
				}
				posts.Add(1)
				mu.Lock()
				statuses[key]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	// Let the last frames arrive.
	time.Sleep(200 * time.Millisecond)
	sum.Messages = posts.Load()
	sum.PerSecond = float64(sum.Messages) / time.Since(start).Seconds()
	l := hh.latency()
	sum.PostHTTP = &l
	sum.Statuses = statuses
	if ok := statuses["200"]; int64(ok) != received.Load() {
		sum.Errors += abs(ok - int(received.Load()))
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// directBackend times POSTs of a MESSAGE-sized event straight to the backend.
func directBackend(ctx context.Context, backend string, d time.Duration) Latency {
	h := newHist()
	hc := &http.Client{Timeout: 5 * time.Second}
	stop := time.Now().Add(d)
	for time.Now().Before(stop) && ctx.Err() == nil {
		ev := []byte(`{"requestContext":{"routeKey":"echo","eventType":"MESSAGE","connectionId":"AAAAAAAAAAAAAAA="},"body":"{\"action\":\"echo\",\"data\":\"` +
			strconv.FormatInt(time.Now().UnixNano(), 10) + `\"}","isBase64Encoded":false}`)
		t0 := time.Now()
		resp, err := hc.Post(backend, "application/json", bytes.NewReader(ev))
		if err != nil {
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		_ = h.RecordValue(max(time.Since(t0).Microseconds(), 1))
	}
	return latency(h)
}
