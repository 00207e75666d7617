package connections

import (
	"testing"
	"time"
)

func TestSettleAfterBurst(t *testing.T) {
	released := make(chan struct{}, 4)
	s := &settler{release: func() { released <- struct{}{} }}
	// A few handshakes at a time are no burst: nothing is armed.
	for range burstHandshakes - 1 {
		s.started()
	}
	for range burstHandshakes - 1 {
		s.finished()
	}
	if s.timer != nil {
		t.Fatal("a settle was armed without a burst")
	}
	// A burst: the memory is given back once it is over.
	for range burstHandshakes {
		s.started()
	}
	for range burstHandshakes {
		s.finished()
	}
	select {
	case <-released:
	case <-time.After(settleAfter + 10*time.Second):
		t.Fatal("the burst's memory was never given back")
	}
	// A settle finding a handshake in flight waits for the next end.
	s.burst.Store(true)
	s.started()
	s.settle()
	select {
	case <-released:
		t.Fatal("settled with a handshake in flight")
	default:
	}
	// Stopped: nothing more is given back, and stop does not wait for
	// the armed timer.
	s.finished()
	s.stop()
	s.settle()
	select {
	case <-released:
		t.Fatal("settled after stop")
	default:
	}
}
