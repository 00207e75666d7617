package throttle

import (
	"math"
	"sync/atomic"
	"time"
)

// Limit is a token bucket: Rate tokens a second refill it, up to Burst.
// A request takes one token; without one it is throttled. Rate 0 and
// Burst 0 throttles every request (a closed bucket).
type Limit struct {
	// Rate is the steady rate, in requests a second. Fractions are fine
	// (0.5: one request every two seconds).
	Rate float64
	// Burst is the bucket's size: how many requests may come at once
	// after a quiet spell.
	Burst int
}

// Bucket is a lock-free token bucket: the generic cell rate algorithm
// (GCRA), which keeps one number, the theoretical arrival time (TAT) of
// the next request, and moves it with CompareAndSwap. A request at time
// now is allowed when max(TAT, now) + interval - now <= Burst × interval,
// where interval = 1 s / Rate; TAT then becomes max(TAT, now) + interval.
// Burst requests may arrive at once, then one every interval. The zero
// value is not usable; build one with NewBucket. Safe for concurrent use;
// Allow makes no allocation.
type Bucket struct {
	tat      atomic.Int64 // Unix nanoseconds
	interval int64        // nanoseconds per token
	tau      int64        // Burst × interval: how far TAT may run ahead of now
	closed   bool         // Rate 0, Burst 0: nothing passes
}

// NewBucket returns a full bucket for l.
func NewBucket(l Limit) *Bucket {
	b := &Bucket{}
	b.set(l)
	return b
}

func (b *Bucket) set(l Limit) {
	if l.Rate <= 0 || l.Burst <= 0 {
		b.closed = true
		return
	}
	iv := float64(time.Second) / l.Rate
	if iv < 1 {
		iv = 1
	}
	if iv > math.MaxInt64/float64(l.Burst)/4 {
		iv = math.MaxInt64 / float64(l.Burst) / 4
	}
	b.interval = int64(iv)
	b.tau = b.interval * int64(l.Burst)
}

// Allow takes a token at now (Unix nanoseconds) and reports whether
// there was one.
func (b *Bucket) Allow(now int64) bool { return b.allow(now, 1) }

// allow is Allow for a bucket scaled down div times: its rate and its
// burst both divided by div (the fallback share of one of div nodes).
func (b *Bucket) allow(now, div int64) bool {
	if b.closed {
		return false
	}
	step := b.interval * div
	// A share smaller than one request still lets one through now and then.
	tau := max(b.tau, step)
	for {
		tat := b.tat.Load()
		next := max(tat, now) + step
		if next-now > tau {
			return false
		}
		if b.tat.CompareAndSwap(tat, next) {
			return true
		}
	}
}
