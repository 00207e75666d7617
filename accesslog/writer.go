package accesslog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Stdout is the destination that writes to standard output.
const Stdout = "stdout"

// DefaultBuffer is the number of lines a Writer holds for its goroutine
// when Options.Buffer is 0.
const DefaultBuffer = 8192

// DefaultFlushInterval is how long an accepted line may wait before the
// writer's goroutine writes it, when Options.FlushInterval is 0.
const DefaultFlushInterval = 100 * time.Millisecond

// FlushSize is how many bytes of lines wake the writer's goroutine before
// its interval is up: at a high rate it writes about this much at a time.
const FlushSize = 64 << 10

// batchCap is the capacity of the buffers Log appends to: FlushSize and
// the lines that come in while the goroutine wakes, so that they seldom
// grow.
const batchCap = 2 * FlushSize

// maxPending bounds the bytes of lines waiting, whatever their number:
// past it a line is dropped as past Options.Buffer.
const maxPending = 8 << 20

// Options configure a Writer.
type Options struct {
	// Destination is a file path (opened for appending, created with mode
	// 0640) or "stdout".
	Destination string
	// Buffer is how many lines may wait for the writer's goroutine; past
	// it (or past 8 MiB of them) a line is dropped and counted. 0:
	// DefaultBuffer.
	Buffer int
	// FlushInterval is how often the goroutine writes the lines waiting
	// (sooner once they reach FlushSize). 0: DefaultFlushInterval.
	FlushInterval time.Duration
	// Lines and Dropped count the lines written and dropped; nil: not
	// counted.
	Lines, Dropped prometheus.Counter
	// Out replaces the destination (tests); nil: open Destination.
	Out io.Writer
	// Tick replaces the FlushInterval ticker (tests): each value received
	// is one interval up. nil: a time.Ticker.
	Tick <-chan time.Time
}

// Writer writes the lines of one destination from its own goroutine.
// Log appends its line to a buffer shared by every caller; the goroutine
// takes the whole buffer (leaving it the one it wrote last) when it
// passes FlushSize or FlushInterval is up, and writes it at once: one
// write per batch, no wake-up per line. Log never blocks on the
// destination: a full buffer drops the line. Close stops the goroutine
// after it wrote every line already accepted.
type Writer struct {
	dest           string
	lines, dropped prometheus.Counter
	out            io.Writer
	closer         io.Closer // nil for stdout and Options.Out
	limit          int       // Options.Buffer
	tick           <-chan time.Time
	ticker         *time.Ticker // nil with Options.Tick

	mu     sync.Mutex
	buf    []byte // lines accepted and not yet taken by the goroutine
	n      int    // lines in buf
	woken  bool   // buf passed FlushSize and the goroutine was told
	closed bool

	wake chan struct{} // 1 slot: take buf now (FlushSize or Close)
	done chan struct{}
	err  error // the first write error, reported by Close
}

// Open starts the writer of o.Destination.
func Open(o Options) (*Writer, error) {
	w := &Writer{dest: o.Destination, lines: o.Lines, dropped: o.Dropped, limit: o.Buffer,
		wake: make(chan struct{}, 1), done: make(chan struct{})}
	if w.limit <= 0 {
		w.limit = DefaultBuffer
	}
	switch {
	case o.Out != nil:
		w.out = o.Out
	case o.Destination == Stdout:
		w.out = os.Stdout
	case o.Destination == "":
		return nil, errors.New("accesslog: no destination")
	default:
		f, err := os.OpenFile(o.Destination, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return nil, fmt.Errorf("accesslog: %w", err)
		}
		w.out, w.closer = f, f
	}
	w.tick = o.Tick
	if w.tick == nil {
		if o.FlushInterval <= 0 {
			o.FlushInterval = DefaultFlushInterval
		}
		w.ticker = time.NewTicker(o.FlushInterval)
		w.tick = w.ticker.C
	}
	w.buf = make([]byte, 0, batchCap)
	go w.run()
	return w, nil
}

// Destination is the configured destination.
func (w *Writer) Destination() string { return w.dest }

// Log formats e with t and queues the line; it reports false (and counts
// a drop) when the buffer is full or the writer is closed.
func (w *Writer) Log(t *Template, e *Entry) bool {
	w.mu.Lock()
	if w.closed || w.n >= w.limit || len(w.buf) >= maxPending {
		w.mu.Unlock()
		if w.dropped != nil {
			w.dropped.Inc()
		}
		return false
	}
	w.buf = t.Append(w.buf, e)
	w.n++
	wake := !w.woken && len(w.buf) >= FlushSize
	w.woken = w.woken || wake
	w.mu.Unlock()
	if wake {
		select {
		case w.wake <- struct{}{}:
		default: // already told
		}
	}
	return true
}

func (w *Writer) run() {
	defer close(w.done)
	if w.ticker != nil {
		defer w.ticker.Stop()
	}
	spare := make([]byte, 0, batchCap)
	for {
		select {
		case <-w.wake:
		case <-w.tick:
		}
		w.mu.Lock()
		batch, n, closed := w.buf, w.n, w.closed
		w.buf, w.n, w.woken = spare[:0], 0, false
		w.mu.Unlock()
		if n > 0 {
			w.write(batch, n)
		}
		spare = batch
		if cap(spare) > 16*FlushSize && len(batch) < FlushSize {
			spare = make([]byte, 0, batchCap) // a burst's buffer is not kept for ever
		}
		if closed {
			return
		}
	}
}

// write writes a batch of n lines, counting those written and those lost
// to a write error.
func (w *Writer) write(batch []byte, n int) {
	nw, err := w.out.Write(batch)
	written := n
	if err != nil {
		if w.err == nil {
			w.err = err
		}
		written = bytes.Count(batch[:max(0, min(nw, len(batch)))], []byte{'\n'})
		if w.dropped != nil {
			w.dropped.Add(float64(n - written))
		}
	}
	if w.lines != nil && written > 0 {
		w.lines.Add(float64(written))
	}
}

// Close stops accepting lines, writes every line accepted, closes the
// file and returns the first write error. Idempotent.
func (w *Writer) Close() error {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default: // the goroutine has a wake-up coming: it will see closed
	}
	<-w.done
	err := w.err
	if w.closer != nil {
		if cerr := w.closer.Close(); cerr != nil && err == nil && !errors.Is(cerr, os.ErrClosed) {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("accesslog: %s: %w", w.dest, err)
	}
	return nil
}

// Logger is one stage's access log: its format and its destination's
// Writer. A nil *Logger logs nothing, at the cost of a nil check.
type Logger struct {
	t *Template
	w *Writer
}

// NewLogger logs lines of t to w.
func NewLogger(t *Template, w *Writer) *Logger { return &Logger{t: t, w: w} }

// Log writes e's line (see Writer.Log).
func (l *Logger) Log(e *Entry) {
	if l == nil {
		return
	}
	l.w.Log(l.t, e)
}
