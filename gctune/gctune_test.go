package gctune

import (
	"runtime"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// run feeds the controller intervals of (used, gc) CPU seconds and
// returns the target after each and whether it released.
func run(c *controller, steps [][2]float64) (percents []int, releases []bool) {
	var prev Sample
	for _, s := range steps {
		cur := Sample{GC: prev.GC + s[1], Total: prev.Total + s[0], Idle: prev.Idle}
		p, r := c.step(prev, cur)
		percents = append(percents, p)
		releases = append(releases, r)
		prev = cur
	}
	return percents, releases
}

func newController() *controller {
	return &controller{min: 50, max: 400, target: 0.05, minUsed: 0.1, percent: 50}
}

func TestBusyDoublesUpToMax(t *testing.T) {
	c := newController()
	got, rel := run(c, [][2]float64{{1, 0.2}, {1, 0.2}, {1, 0.2}, {1, 0.2}, {1, 0.2}})
	want := []int{100, 200, 400, 400, 400}
	for i := range want {
		if got[i] != want[i] || rel[i] {
			t.Fatalf("step %d: target %d release %v, want %d false (all: %v)", i, got[i], rel[i], want[i], got)
		}
	}
}

func TestCheapCollectorHalvesBack(t *testing.T) {
	c := newController()
	c.percent = 400
	// 3% is between a quarter of the target and the target: hold.
	got, _ := run(c, [][2]float64{{1, 0.03}, {1, 0.01}, {1, 0.01}, {1, 0.01}, {1, 0.01}})
	want := []int{400, 200, 100, 50, 50}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("targets %v, want %v", got, want)
		}
	}
}

func TestIdleReturnsToMinAndReleasesOnce(t *testing.T) {
	c := newController()
	c.percent = 400
	// No collection: the accounting does not move.
	got, rel := run(c, [][2]float64{{0, 0}, {0, 0}, {0, 0}, {0, 0}})
	if got[0] != 400 || rel[0] {
		t.Fatalf("one quiet interval changed the target: %v %v", got, rel)
	}
	if got[1] != 50 || !rel[1] {
		t.Fatalf("two quiet intervals: target %d release %v, want 50 true", got[1], rel[1])
	}
	if rel[2] || rel[3] || got[3] != 50 {
		t.Fatalf("released again while idle at the minimum: %v %v", got, rel)
	}
}

func TestIdleAtMinDoesNotRelease(t *testing.T) {
	c := newController()
	_, rel := run(c, [][2]float64{{0, 0}, {0, 0}, {0, 0}})
	for i, r := range rel {
		if r {
			t.Fatalf("step %d released with the target at its minimum", i)
		}
	}
}

func TestNearlyIdleCollectionDoesNotRaise(t *testing.T) {
	c := newController()
	// A forced collection in an interval that used 20 ms of CPU: a large
	// share of almost nothing.
	got, _ := run(c, [][2]float64{{0.02, 0.01}, {0.02, 0.01}})
	if got[0] != 50 || got[1] != 50 {
		t.Fatalf("targets %v, want 50 50", got)
	}
}

func TestStartStop(t *testing.T) {
	defer goleak.VerifyNone(t)
	var mu sync.Mutex
	var set, told []int
	tu := Start(Options{MinPercent: 50, MaxPercent: 400, Interval: time.Millisecond,
		setPercent: func(p int) int { mu.Lock(); set = append(set, p); mu.Unlock(); return 100 },
		OnChange:   func(p int) { mu.Lock(); told = append(told, p); mu.Unlock() },
		release:    func() {}})
	tu.Stop()
	tu.Stop()
	mu.Lock()
	defer mu.Unlock()
	if len(set) == 0 || set[0] != 50 || len(told) == 0 || told[0] != 50 {
		t.Fatalf("Start set %v and told %v, want 50 first", set, told)
	}
}

func TestFixedWhenMaxNotAboveMin(t *testing.T) {
	defer goleak.VerifyNone(t)
	var set []int
	tu := Start(Options{MinPercent: 80, MaxPercent: 80, setPercent: func(p int) int { set = append(set, p); return 100 }})
	tu.Stop()
	if len(set) != 1 || set[0] != 80 {
		t.Fatalf("set %v, want [80] and no goroutine", set)
	}
}

// TestRuntimeAccountingMoves checks the metric names against the running
// runtime: a forced collection moves the GC account.
func TestRuntimeAccountingMoves(t *testing.T) {
	before := readRuntime()
	buf := make([][]byte, 0, 1024)
	for i := 0; i < 1024; i++ {
		buf = append(buf, make([]byte, 4096))
	}
	_ = buf
	runtime.GC()
	after := readRuntime()
	if after.GC <= before.GC || after.Total <= before.Total {
		t.Fatalf("accounting did not move over a collection: before %+v after %+v", before, after)
	}
}
