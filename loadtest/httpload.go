package loadtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	integ "github.com/portico-gateway/portico/routing/integration"
)

// HTTPTarget is one URL the HTTP load generator calls, with a name for
// the summary ("backend", "reverse-proxy", "portico").
type HTTPTarget struct {
	Name string `json:"name"`
	URL  string `json:"url"`
}

// HTTPLoadOptions configure a series of HTTP requests to one URL.
type HTTPLoadOptions struct {
	// Method and Body of every request (default GET, no body).
	Method string
	Body   []byte
	// Clients are keep-alive clients, each with one request in flight.
	Clients int
	// Rate, when set, sends this many requests a second in total (open
	// loop: a request's latency counts from when it was due, so a
	// stalled target shows as latency, not as a lower rate); 0: each
	// client sends its next request as soon as the last is answered.
	Rate float64
	// Duration bounds the run (at most 10 minutes).
	Duration time.Duration
	// Timeout bounds one request (default 10 s).
	Timeout time.Duration
	// HalfRounds (HTTPCompare only) repeats the half-rate phase this many
	// times (default 1), every target once a round, each round starting
	// one target later; a target's added latency is taken against the
	// backend's in the same round and the median over rounds reported,
	// so a drift of the machine between phases hits both sides alike.
	HalfRounds int
}

// HTTPRun is the outcome of one series.
type HTTPRun struct {
	Target    string  `json:"target"`
	URL       string  `json:"url"`
	Clients   int     `json:"clients"`
	Rate      float64 `json:"rate,omitempty"` // the open-loop rate asked for
	Seconds   float64 `json:"seconds"`
	Requests  int64   `json:"requests"`
	PerSecond float64 `json:"perSecond"` // answered requests a second, any status
	Errors    int64   `json:"errors"`    // no answer (network error, timeout)
	// Status counts answers by status code.
	Status map[string]int64 `json:"status"`
	// Latency is every answered request; ByStatus the same per code. In
	// an open loop a request counts from when it was due if its client
	// was still busy then (the target's slowness shows, no coordinated
	// omission), else from when its client woke to send it: the timer's
	// lateness is the generator's (SendLag).
	Latency  Latency            `json:"latency"`
	ByStatus map[string]Latency `json:"byStatus"`
	// SendLag (open loop) is how late the clients that waited for a
	// request's due time woke to send it.
	SendLag *Latency `json:"sendLag,omitempty"`
}

// NewHTTPLoadTransport is the generator's client transport: keep-alive,
// one idle connection per client kept.
func NewHTTPLoadTransport(clients int) *http.Transport {
	return &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        max(clients, 100),
		MaxIdleConnsPerHost: max(clients, 100),
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
}

// HTTPLoad sends o's requests to t and summarises the answers.
func HTTPLoad(ctx context.Context, t HTTPTarget, o HTTPLoadOptions) (HTTPRun, error) {
	if err := checkLoopbackURL(t.URL); err != nil {
		return HTTPRun{}, err
	}
	if o.Clients <= 0 || o.Clients > 10000 {
		return HTTPRun{}, errors.New("http load: clients must be between 1 and 10000")
	}
	if o.Duration <= 0 || o.Duration > 10*time.Minute {
		return HTTPRun{}, errors.New("http load: the duration must be between 1ns and 10m")
	}
	if o.Rate < 0 {
		return HTTPRun{}, errors.New("http load: the rate must not be negative")
	}
	if o.Method == "" {
		o.Method = http.MethodGet
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	// An http:// target is called through one keepAlive per client
	// (one goroutine, no hand-offs); https:// through net/http.
	var plainHost, plainPath string
	if u, err := url.Parse(t.URL); err == nil && u.Scheme == "http" {
		plainHost, plainPath = u.Host, u.RequestURI()
		if u.Port() == "" {
			plainHost = net.JoinHostPort(u.Hostname(), "80")
		}
	}
	tr := NewHTTPLoadTransport(o.Clients)
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: o.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	all, lag := NewHist(), NewHist()
	var mu sync.Mutex
	byStatus := map[int]*Hist{}
	counts := map[int]int64{}
	var requests, errs atomic.Int64
	var due atomic.Int64 // open loop: the index of the next request to send
	start := time.Now()
	deadline := start.Add(o.Duration)
	ctx, cancel := context.WithDeadline(ctx, deadline.Add(o.Timeout))
	defer cancel()
	var wg sync.WaitGroup
	for range o.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ka *keepAlive
			if plainHost != "" {
				ka = newKeepAlive(plainHost, o.Timeout)
				defer ka.close()
			}
			for ctx.Err() == nil {
				t0 := time.Now()
				if o.Rate > 0 {
					i := due.Add(1) - 1
					t0 = start.Add(time.Duration(float64(i) / o.Rate * float64(time.Second)))
					if !t0.Before(deadline) {
						return
					}
					if d := time.Until(t0); d > 0 {
						select {
						case <-time.After(d):
						case <-ctx.Done():
							return
						}
						// Idle until due: from here on it is the target's time.
						woke := time.Now()
						lag.Record(woke.Sub(t0))
						t0 = woke
					}
				} else if !t0.Before(deadline) {
					return
				}
				status, err := 0, error(nil)
				if ka != nil {
					status, _, err = ka.do(o.Method, plainPath, o.Body, nil)
				} else {
					status, err = netHTTPCall(ctx, hc, o.Method, t.URL, o.Body)
				}
				requests.Add(1)
				if err != nil {
					if ctx.Err() == nil {
						errs.Add(1)
					}
					continue
				}
				d := time.Since(t0)
				all.Record(d)
				mu.Lock()
				h := byStatus[status]
				if h == nil {
					h = NewHist()
					byStatus[status] = h
				}
				counts[status]++
				mu.Unlock()
				h.Record(d)
			}
		}()
	}
	wg.Wait()
	secs := min(time.Since(start), o.Duration).Seconds()
	run := HTTPRun{Target: t.Name, URL: t.URL, Clients: o.Clients, Rate: o.Rate, Seconds: round3(secs),
		Requests: requests.Load(), Errors: errs.Load(), Latency: all.Latency(),
		Status: map[string]int64{}, ByStatus: map[string]Latency{}}
	run.PerSecond = round3(float64(run.Latency.Count) / secs)
	if o.Rate > 0 {
		l := lag.Latency()
		run.SendLag = &l
	}
	for code, n := range counts {
		run.Status[strconv.Itoa(code)] = n
		run.ByStatus[strconv.Itoa(code)] = byStatus[code].Latency()
	}
	return run, nil
}

// netHTTPCall is one request through net/http's client, the answer read
// to its end.
func netHTTPCall(ctx context.Context, hc *http.Client, method, target string, body []byte) (int, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, err
}

// checkLoopbackURL refuses a target that is not on a loopback address:
// load tests stay on this machine.
func checkLoopbackURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("http load: %q is not an http(s) URL", raw)
	}
	ip := net.ParseIP(u.Hostname())
	if u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("http load: %q is not a loopback address", raw)
	}
	return nil
}

// HTTPCompareResult is the same load against several targets in one
// run: each at saturation (closed loop), then each at half the rate the
// last target reached (open loop), HalfRounds times interleaved.
type HTTPCompareResult struct {
	Saturated []HTTPRun `json:"saturated"`
	HalfRate  float64   `json:"halfRate"`
	// AtHalf holds every half-rate run, round after round, in the order
	// they ran.
	AtHalf []HTTPRun `json:"atHalf"`
	// Ratio is each target's saturated requests/s over the second
	// target's (portico over reverse-proxy: goal >= 0.8).
	Ratio map[string]float64 `json:"ratioToSecond"`
	// AddedP99 is each target's p99 at half rate minus the first
	// target's (the backend called directly) in the same round, in ms,
	// the median over rounds: what the hop in front of the backend adds
	// (goal <= 1 ms for portico). AddedP99Rounds lists every round's.
	AddedP99       map[string]float64   `json:"addedP99MsAtHalf"`
	AddedP50       map[string]float64   `json:"addedP50MsAtHalf"`
	AddedP99Rounds map[string][]float64 `json:"addedP99MsAtHalfRounds"`
}

// HTTPCompare runs o against every target (the first is the backend
// alone, the second the reference, the last the one whose half
// saturation sets the rate of the second phase).
func HTTPCompare(ctx context.Context, targets []HTTPTarget, o HTTPLoadOptions, logf func(string, ...any)) (*HTTPCompareResult, error) {
	if len(targets) < 2 {
		return nil, errors.New("http compare: at least two targets (the backend, then what is in front of it)")
	}
	rounds := max(o.HalfRounds, 1)
	res := &HTTPCompareResult{Ratio: map[string]float64{}, AddedP99: map[string]float64{}, AddedP50: map[string]float64{},
		AddedP99Rounds: map[string][]float64{}}
	closed := o
	closed.Rate = 0
	for _, t := range targets {
		logf("saturating %s (%s): %d clients for %v", t.Name, t.URL, o.Clients, o.Duration)
		r, err := HTTPLoad(ctx, t, closed)
		if err != nil {
			return res, err
		}
		res.Saturated = append(res.Saturated, r)
	}
	ref := res.Saturated[1].PerSecond
	for _, r := range res.Saturated {
		if ref > 0 {
			res.Ratio[r.Target] = round3(r.PerSecond / ref)
		}
	}
	res.HalfRate = round3(res.Saturated[len(res.Saturated)-1].PerSecond / 2)
	if res.HalfRate <= 0 {
		return res, errors.New("http compare: the last target answered nothing")
	}
	half := o
	half.Rate = res.HalfRate
	added50 := map[string][]float64{}
	for round := range rounds {
		byTarget := make([]Latency, len(targets))
		for i := range targets {
			k := (round + i) % len(targets)
			t := targets[k]
			logf("round %d/%d: %s at %.0f requests/s for %v", round+1, rounds, t.Name, half.Rate, o.Duration)
			r, err := HTTPLoad(ctx, t, half)
			if err != nil {
				return res, err
			}
			res.AtHalf = append(res.AtHalf, r)
			byTarget[k] = r.Latency
		}
		for k, t := range targets[1:] {
			l := byTarget[k+1]
			res.AddedP99Rounds[t.Name] = append(res.AddedP99Rounds[t.Name], round3(l.P99-byTarget[0].P99))
			added50[t.Name] = append(added50[t.Name], round3(l.P50-byTarget[0].P50))
		}
	}
	for name, v := range res.AddedP99Rounds {
		res.AddedP99[name] = median(v)
		res.AddedP50[name] = median(added50[name])
	}
	return res, nil
}

// median of v (the mean of the middle two when len(v) is even).
func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return round3((s[n/2-1] + s[n/2]) / 2)
}

// TrivialBackend answers every request 200 with a short body: the
// backend of the proxy comparison.
func TrivialBackend() http.Handler {
	body := []byte(`{"ok":true}`)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
	})
}

// NewReverseProxy is the reference the http_proxy integration is
// compared with: net/http/httputil.ReverseProxy in front of target,
// with Portico's proxy transport (the http_proxy integration's NewProxyTransport: with
// net/http's default of 2 idle connections per host the reference would
// be its own bottleneck).
func NewReverseProxy(target string) (http.Handler, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = integ.NewProxyTransport()
	return rp, nil
}
