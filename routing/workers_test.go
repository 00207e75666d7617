package routing

import (
	"sync"
	"testing"
	"time"
)

// TestWorkersReuse: tasks one after another run on the one worker the
// first started.
func TestWorkersReuse(t *testing.T) {
	done := make(chan struct{})
	w := newWorkers(func(task) { done <- struct{}{} })
	defer func() { w.close(); w.wait() }()
	for range 100 {
		w.do(task{})
		<-done
		// The worker is idle again once it waits on tasks; a task sent
		// before that starts a second worker, which is allowed: at most
		// one extra a round.
	}
	if n := w.started.Load(); n > 2 {
		t.Errorf("100 tasks one at a time started %d workers, want at most 2", n)
	}
}

// TestWorkersNoQueueing: n tasks that block until all n run at once
// each get a worker (none waits behind another).
func TestWorkersNoQueueing(t *testing.T) {
	const n = 50
	var running sync.WaitGroup
	running.Add(n)
	release := make(chan struct{})
	w := newWorkers(func(task) { running.Done(); <-release })
	for range n {
		w.do(task{})
	}
	running.Wait() // hangs (test timeout) if a task waited behind another
	close(release)
	w.close()
	w.wait()
	if got := w.started.Load(); got != n {
		t.Errorf("started %d workers for %d blocked tasks", got, n)
	}
}

// TestWorkersIdleExit: a worker without a task for its idle time exits.
func TestWorkersIdleExit(t *testing.T) {
	w := newWorkers(func(task) {})
	w.idle = time.Millisecond
	w.do(task{})
	exited := make(chan struct{})
	go func() { w.wait(); close(exited) }()
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("an idle worker did not exit")
	}
}

// TestWorkersClose: close stops idle workers and a busy one once its
// task returns.
func TestWorkersClose(t *testing.T) {
	release := make(chan struct{})
	busy := make(chan struct{})
	w := newWorkers(func(tk task) {
		if tk.f != nil {
			tk.f()
		}
	})
	w.do(task{}) // becomes idle
	w.do(task{f: func() { close(busy); <-release }})
	<-busy
	w.close()
	exited := make(chan struct{})
	go func() { w.wait(); close(exited) }()
	select {
	case <-exited:
		t.Fatal("workers exited while a task was running")
	default:
	}
	close(release)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("workers did not exit after close")
	}
}
