package routing

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/portico-gateway/portico/connections"
)

// workerIdle is how long a worker waits for its next task before it
// exits.
const workerIdle = 10 * time.Second

// task is one message's work off the connection server's loop: f runs
// (nil f: the route's integration for call, on c), then the message's
// in-flight slots are released and its spans end.
type task struct {
	s    *session
	tr   *msgTrace
	f    func()
	c    connections.Conn
	st   *stage
	rt   *route
	call *wsCall
}

// workers runs the router's off-loop tasks (integration calls, shared
// subscriptions) on long-lived goroutines. A fresh goroutine per message
// starts with a small stack that grows inside net/http on every call; a
// worker keeps the stack it grew. A task goes to an idle worker, or
// starts a new one when none is idle, so a task never waits behind
// another: how many run at once stays bounded by the in-flight limits
// the router checks before it hands a task over. A worker idle for
// workerIdle exits; stop makes every worker exit once its task is done.
type workers struct {
	tasks chan task // unbuffered: a send succeeds only when a worker is idle
	stop  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup // running workers
	// started counts the workers ever started.
	started atomic.Int64
	run     func(task) // runs one task (the router's accounting around f)
	idle    time.Duration
}

func newWorkers(run func(task)) *workers {
	return &workers{tasks: make(chan task), stop: make(chan struct{}), run: run, idle: workerIdle}
}

// do hands t to an idle worker or starts one for it.
func (w *workers) do(t task) {
	select {
	case w.tasks <- t:
	default:
		w.wg.Add(1)
		w.started.Add(1)
		go w.loop(t)
	}
}

func (w *workers) loop(t task) {
	defer w.wg.Done()
	timer := time.NewTimer(w.idle)
	defer timer.Stop()
	for {
		w.run(t)
		timer.Reset(w.idle)
		select {
		case t = <-w.tasks:
		case <-timer.C:
			return
		case <-w.stop:
			return
		}
	}
}

// close makes every worker exit after its current task; wait waits for
// them.
func (w *workers) close() { w.once.Do(func() { close(w.stop) }) }

func (w *workers) wait() { w.wg.Wait() }
