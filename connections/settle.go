package connections

import (
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// A burst of handshakes (hundreds dialled at once) needs, while it lasts,
// a goroutine, a stack and a request's parse for each one in flight. The
// Go runtime keeps that memory once the burst is over, for the next one:
// free heap spans and stacks it hands back to the OS only slowly, so a
// gateway that took its connections in bursts stayed hundreds of bytes
// per idle connection larger (RSS) than one that took them paced. Once a
// burst has settled (no handshake in flight for settleAfter), the
// acceptor gives it back (debug.FreeOSMemory), at most once per
// settleEvery.
const (
	// burstHandshakes in flight at once make a burst worth settling.
	burstHandshakes = 64
	settleAfter     = time.Second
	settleEvery     = 10 * time.Second
)

// settler is the acceptor's part that watches handshakes in flight.
type settler struct {
	inFlight atomic.Int32
	burst    atomic.Bool // inFlight reached burstHandshakes since the last settle

	smu     sync.Mutex // guards timer, last and stopped
	timer   *time.Timer
	last    time.Time
	stopped bool
	running sync.WaitGroup // a settle in progress; stop waits for it
	// release gives the memory back; nil: debug.FreeOSMemory (tests
	// watch it).
	release func()
}

// started counts one more handshake in flight.
func (s *settler) started() {
	if s.inFlight.Add(1) >= burstHandshakes {
		s.burst.Store(true)
	}
}

// finished counts a handshake done; the last one of a burst arms the
// settle.
func (s *settler) finished() {
	if s.inFlight.Add(-1) != 0 || !s.burst.Load() {
		return
	}
	s.smu.Lock()
	defer s.smu.Unlock()
	if s.stopped {
		return
	}
	wait := max(settleAfter, time.Until(s.last.Add(settleEvery)))
	if s.timer == nil {
		s.timer = time.AfterFunc(wait, s.settle)
	} else {
		s.timer.Reset(wait)
	}
}

// settle gives the burst's memory back if no handshake came since.
func (s *settler) settle() {
	s.smu.Lock()
	if s.stopped || s.inFlight.Load() != 0 {
		s.smu.Unlock()
		return // a new burst: its last handshake arms the settle again
	}
	s.running.Add(1)
	s.last = time.Now()
	s.burst.Store(false)
	s.smu.Unlock()
	defer s.running.Done()
	if s.release != nil {
		s.release()
		return
	}
	debug.FreeOSMemory()
}

// stop cancels a settle not yet started and waits for one in progress.
func (s *settler) stop() {
	s.smu.Lock()
	s.stopped = true
	if s.timer != nil {
		s.timer.Stop()
	}
	s.smu.Unlock()
	s.running.Wait()
}
