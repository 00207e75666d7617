// Package gctune adapts the Go garbage collector's target (GOGC) to the
// gateway's load. Idle connections want a low target: the heap then holds
// little garbage beside them, and memory per connection stays small. Busy
// traffic wants a high one: each collection marks the whole live heap, so
// collecting half as often halves the collector's CPU. One fixed value
// cannot be both; a Tuner keeps the low one (config gcPercent) while the
// collector costs little, doubles it (up to gcPercentMax) while the
// collector takes more than a set share of the process's CPU, halves it
// back when the share falls, and returns to the low one — handing the
// garbage of the busy period back to the OS once — when collections stop.
//
// The signal is the runtime's own accounting (runtime/metrics
// /cpu/classes/...), which the runtime updates at the end of each
// collection: no collection in an interval means nothing allocated, which
// is what idle looks like.
package gctune

import (
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"
)

// Defaults.
const (
	// DefaultTarget is the collector's share of the process's CPU above
	// which the GC target doubles.
	DefaultTarget = 0.05
	// DefaultInterval is how often the share is read.
	DefaultInterval = time.Second
)

// Options configure a Tuner. The zero value of every field but
// MinPercent has a default.
type Options struct {
	// MinPercent is the GC target while idle (config gcPercent).
	MinPercent int
	// MaxPercent is the highest target a busy gateway gets (config
	// gcPercentMax). At or below MinPercent the target stays MinPercent.
	MaxPercent int
	// Target is the collector's share of the CPU the process uses above
	// which the target doubles; below a quarter of it the target halves.
	// Default DefaultTarget.
	Target float64
	// Interval is how often the share is read. Default DefaultInterval.
	Interval time.Duration
	// OnChange, when set, is told every target the Tuner sets, the first
	// (MinPercent) included: a metrics gauge.
	OnChange func(percent int)
	// Logger gets a debug line per change. Default slog.Default().
	Logger *slog.Logger

	// setPercent and release replace debug.SetGCPercent and
	// debug.FreeOSMemory in tests.
	setPercent func(int) int
	release    func()
}

// Sample is the runtime's CPU accounting at one moment, in CPU seconds.
type Sample struct {
	GC    float64 // /cpu/classes/gc/total
	Total float64 // /cpu/classes/total: GOMAXPROCS times wall time
	Idle  float64 // /cpu/classes/idle
}

// Used is the CPU the process's Go code and runtime used.
func (s Sample) Used() float64 { return s.Total - s.Idle }

// controller is the Tuner's decision, separate from time and the runtime
// so tests can drive it with samples.
type controller struct {
	min, max int
	target   float64
	minUsed  float64 // CPU seconds an interval must use before the share counts
	percent  int
	quiet    int // intervals in a row without a collection
}

// quietIntervals is how many intervals without a collection count as
// idle.
const quietIntervals = 2

// busyShare is the share of one core a process must use in an interval
// for its collector's share to raise the target.
const busyShare = 0.1

// step takes the accounting since the last step and returns the target
// to set (the current one when nothing changes) and whether to give the
// busy period's memory back to the OS now.
func (c *controller) step(prev, cur Sample) (percent int, release bool) {
	used := cur.Used() - prev.Used()
	gc := cur.GC - prev.GC
	if used <= 0 || gc <= 0 {
		// The runtime updates the accounting at the end of a collection:
		// none since the last step, so nothing allocated.
		c.quiet++
		if c.quiet >= quietIntervals && c.percent > c.min {
			c.percent = c.min
			return c.percent, true
		}
		return c.percent, false
	}
	c.quiet = 0
	switch share := gc / used; {
	case share > c.target && c.percent < c.max && used >= c.minUsed:
		// A collection in a nearly idle interval (the runtime's forced
		// one every two minutes) is a large share of little: only a
		// process doing real work raises the target.
		c.percent = min(c.max, 2*c.percent)
	case share < c.target/4 && c.percent > c.min:
		c.percent = max(c.min, c.percent/2)
	}
	return c.percent, false
}

// Tuner runs the controller until Stop.
type Tuner struct {
	o    Options
	c    controller
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// Start sets the GC target to o.MinPercent and, when o.MaxPercent is
// above it, starts adapting it. Stop ends the adapting and leaves the
// target where it is.
func Start(o Options) *Tuner {
	if o.Target <= 0 {
		o.Target = DefaultTarget
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.setPercent == nil {
		o.setPercent = debug.SetGCPercent
	}
	if o.release == nil {
		o.release = debug.FreeOSMemory
	}
	t := &Tuner{o: o, c: controller{min: o.MinPercent, max: o.MaxPercent, target: o.Target, percent: o.MinPercent,
		minUsed: busyShare * o.Interval.Seconds()},
		stop: make(chan struct{}), done: make(chan struct{})}
	t.set(o.MinPercent)
	if o.MaxPercent <= o.MinPercent {
		close(t.done)
		return t
	}
	go t.run()
	return t
}

// Stop ends the Tuner's goroutine and waits for it. It may be called
// more than once.
func (t *Tuner) Stop() {
	t.once.Do(func() { close(t.stop) })
	<-t.done
}

func (t *Tuner) set(p int) {
	t.o.setPercent(p)
	if t.o.OnChange != nil {
		t.o.OnChange(p)
	}
}

func (t *Tuner) run() {
	defer close(t.done)
	tick := time.NewTicker(t.o.Interval)
	defer tick.Stop()
	prev := readRuntime()
	for {
		select {
		case <-t.stop:
			return
		case <-tick.C:
		}
		cur := readRuntime()
		was := t.c.percent
		p, release := t.c.step(prev, cur)
		prev = cur
		if p != was {
			t.set(p)
			t.o.Logger.Debug("GC target changed", "gcPercent", p, "was", was)
		}
		if release {
			t.o.release()
			// The release's own collection is not load: measure from
			// after it.
			prev = readRuntime()
		}
	}
}

// readRuntime reads the runtime's CPU accounting.
func readRuntime() Sample {
	samples := []metrics.Sample{
		{Name: "/cpu/classes/gc/total:cpu-seconds"},
		{Name: "/cpu/classes/total:cpu-seconds"},
		{Name: "/cpu/classes/idle:cpu-seconds"},
	}
	metrics.Read(samples)
	return Sample{GC: value(samples[0]), Total: value(samples[1]), Idle: value(samples[2])}
}

func value(s metrics.Sample) float64 {
	if s.Value.Kind() != metrics.KindFloat64 {
		return 0
	}
	return s.Value.Float64()
}
