package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/portico-gateway/portico/loadtest"
)

// httpLoad runs the HTTP load generator against one target or, with
// several --target flags, compares them (loadtest.HTTPCompare).
func httpLoad(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("http-load", flag.ExitOnError)
	var targets targetFlag
	fs.Var(&targets, "target", "NAME=URL to call (loopback only); repeat to compare: the backend alone first, the reference second, the one whose half saturation sets the second phase's rate last")
	o := loadtest.HTTPLoadOptions{}
	fs.StringVar(&o.Method, "method", "GET", "request method")
	body := fs.String("body", "", "request body")
	fs.IntVar(&o.Clients, "clients", 64, "keep-alive clients, one request in flight each")
	fs.Float64Var(&o.Rate, "rate", 0, "requests a second in total (open loop); 0: closed loop (one target only)")
	fs.DurationVar(&o.Duration, "duration", 0, "required: how long each phase sends (max 10m)")
	fs.DurationVar(&o.Timeout, "timeout", 10*time.Second, "bound on one request")
	fs.IntVar(&o.HalfRounds, "half-rounds", 1, "comparison: repeat the half-rate phase this many times, targets interleaved; the added latency is the median over rounds")
	jsonPath := fs.String("json", "", "also write the JSON summary to this file")
	_ = fs.Parse(args)
	if len(targets) == 0 || o.Duration <= 0 {
		return errors.New("http-load: --target and --duration are required")
	}
	if o.HalfRounds < 1 || o.HalfRounds > 100 {
		return fmt.Errorf("http-load: --half-rounds %d: must be between 1 and 100", o.HalfRounds)
	}
	if *body != "" {
		o.Body = []byte(*body)
	}
	if _, err := loadtest.RaiseFileLimit(); err != nil {
		return err
	}
	var ts []loadtest.HTTPTarget
	for _, t := range targets {
		name, u, ok := strings.Cut(t, "=")
		if !ok {
			name, u = "target", t
		}
		ts = append(ts, loadtest.HTTPTarget{Name: name, URL: u})
	}
	logf := func(f string, a ...any) { fmt.Fprintf(os.Stderr, "http-load: "+f+"\n", a...) }
	var out any
	var err error
	if len(ts) == 1 {
		var r loadtest.HTTPRun
		r, err = loadtest.HTTPLoad(ctx, ts[0], o)
		out = r
		logf("%s: %.0f requests/s, p50 %.3f ms, p99 %.3f ms, status %v, %d errors", r.Target, r.PerSecond, r.Latency.P50, r.Latency.P99, r.Status, r.Errors)
		for code, l := range r.ByStatus {
			logf("  %s: p50 %.3f ms, p99 %.3f ms (n=%d)", code, l.P50, l.P99, l.Count)
		}
	} else {
		if o.Rate != 0 {
			return errors.New("http-load: --rate is for one target; a comparison picks its own (half of the last target's saturation)")
		}
		var c *loadtest.HTTPCompareResult
		c, err = loadtest.HTTPCompare(ctx, ts, o, logf)
		out = c
		if c != nil {
			for _, r := range c.Saturated {
				logf("saturated %-14s %8.0f requests/s  p50 %.3f ms  p99 %.3f ms  ratio %.3f", r.Target, r.PerSecond, r.Latency.P50, r.Latency.P99, c.Ratio[r.Target])
			}
			for _, r := range c.AtHalf {
				logf("at %.0f/s %-14s p50 %.3f ms  p99 %.3f ms", c.HalfRate, r.Target, r.Latency.P50, r.Latency.P99)
			}
			for _, t := range ts[1:] {
				logf("%-14s adds p99 %.3f ms, p50 %.3f ms (median of rounds %v)", t.Name, c.AddedP99[t.Name], c.AddedP50[t.Name], c.AddedP99Rounds[t.Name])
			}
		}
	}
	b, _ := json.MarshalIndent(out, "", "  ")
	fmt.Println(string(b))
	if *jsonPath != "" {
		if werr := os.WriteFile(*jsonPath, b, 0o644); werr != nil && err == nil {
			err = werr
		}
	}
	return err
}

// httpServer serves the proxy comparison's trivial backend
// (http-backend) or a bare httputil.ReverseProxy in front of a URL
// (reverse-proxy) until --duration passes.
func httpServer(ctx context.Context, name string, args []string) error {
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:18100", "loopback address to listen on")
	target := fs.String("target", "", "reverse-proxy: the backend URL")
	duration := fs.Duration("duration", 10*time.Minute, "stop after this long (max 1h)")
	_ = fs.Parse(args)
	if *duration <= 0 || *duration > time.Hour {
		return fmt.Errorf("%s: --duration must be between 1s and 1h (it stops by itself)", name)
	}
	if _, err := loadtest.RaiseFileLimit(); err != nil {
		return err
	}
	var h http.Handler = loadtest.TrivialBackend()
	sink := &loadtest.OTLPSink{}
	if name == "otlp-sink" {
		h = sink
	}
	if name == "reverse-proxy" {
		if *target == "" {
			return errors.New("reverse-proxy: --target is required")
		}
		var err error
		if h, err = loadtest.NewReverseProxy(*target); err != nil {
			return fmt.Errorf("reverse-proxy: %w", err)
		}
	}
	s, err := loadtest.StartServer(*listen, h)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	fmt.Fprintf(os.Stderr, "%s: %s (stops in %v)\n", name, s.URL, *duration)
	select {
	case <-ctx.Done():
	case <-time.After(*duration):
	}
	s.Close()
	if name == "otlp-sink" {
		fmt.Fprintf(os.Stderr, "otlp-sink: %d exports, %d bytes\n", sink.Exports(), sink.Bytes())
	}
	return nil
}

// targetFlag collects repeated --target NAME=URL flags.
type targetFlag []string

func (t *targetFlag) String() string     { return strings.Join(*t, " ") }
func (t *targetFlag) Set(v string) error { *t = append(*t, v); return nil }
