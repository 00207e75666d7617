package loadtest

import (
	"math"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Hist records latencies in microseconds, from 1 µs to 2 minutes with
// three significant digits (HdrHistogram: fixed memory, no sampling). It
// is safe for concurrent use.
type Hist struct {
	mu sync.Mutex
	h  *hdrhistogram.Histogram
}

// NewHist returns an empty histogram.
func NewHist() *Hist {
	return &Hist{h: hdrhistogram.New(1, int64(2*time.Minute/time.Microsecond), 3)}
}

// Record adds one latency; values outside the range are clamped.
func (h *Hist) Record(d time.Duration) {
	us := d.Microseconds()
	us = max(us, 1)
	us = min(us, h.h.HighestTrackableValue())
	h.mu.Lock()
	_ = h.h.RecordValue(us)
	h.mu.Unlock()
}

// Latency summarises a histogram in milliseconds.
type Latency struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"meanMs"`
	P50   float64 `json:"p50Ms"`
	P90   float64 `json:"p90Ms"`
	P99   float64 `json:"p99Ms"`
	P999  float64 `json:"p999Ms"`
	Max   float64 `json:"maxMs"`
}

// Latency reads the percentiles (recording may go on meanwhile).
func (h *Hist) Latency() Latency {
	h.mu.Lock()
	defer h.mu.Unlock()
	ms := func(us int64) float64 { return float64(us) / 1000 }
	if h.h.TotalCount() == 0 {
		return Latency{}
	}
	return Latency{
		Count: h.h.TotalCount(),
		Mean:  round3(h.h.Mean() / 1000),
		P50:   ms(h.h.ValueAtQuantile(50)),
		P90:   ms(h.h.ValueAtQuantile(90)),
		P99:   ms(h.h.ValueAtQuantile(99)),
		P999:  ms(h.h.ValueAtQuantile(99.9)),
		Max:   ms(h.h.Max()),
	}
}

// Minus is the difference of two latency summaries, percentile by
// percentile: what a hop adds on top of another (gateway minus direct).
func (l Latency) Minus(o Latency) Latency {
	return Latency{Count: l.Count, Mean: round3(l.Mean - o.Mean), P50: round3(l.P50 - o.P50), P90: round3(l.P90 - o.P90),
		P99: round3(l.P99 - o.P99), P999: round3(l.P999 - o.P999), Max: round3(l.Max - o.Max)}
}

// round3 rounds milliseconds to the microsecond.
func round3(ms float64) float64 { return math.Round(ms*1000) / 1000 }
