package gateway

import (
	"runtime/debug"
	"testing"
)

// TestGCTuning: with WithGCTuning the gateway sets the process's GC
// target to gcPercent at Start and says so in portico_gc_percent;
// without it, it leaves the GC alone.
func TestGCTuning(t *testing.T) {
	before := debug.SetGCPercent(100)
	defer debug.SetGCPercent(before)
	const yml = `gcPercent: 60
gcPercentMax: 240
apis:
  - name: echo
    stages: [{name: dev}]
    routes:
      $default: {integration: {type: mock}}
`
	plain := startGateway(t, yml)
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("a gateway without WithGCTuning set the GC target to %d", got)
	}
	if got := scrape(t, plain)["portico_gc_percent{}"]; got != 0 {
		t.Fatalf("portico_gc_percent = %v without WithGCTuning, want 0", got)
	}
	g := startGateway(t, yml, WithGCTuning())
	if got := debug.SetGCPercent(60); got != 60 {
		t.Fatalf("GC target %d after Start, want gcPercent 60", got)
	}
	if got := scrape(t, g)["portico_gc_percent{}"]; got != 60 {
		t.Fatalf("portico_gc_percent = %v, want 60", got)
	}
}
