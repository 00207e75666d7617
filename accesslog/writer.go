package accesslog

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Stdout is the destination that writes to standard output.
const Stdout = "stdout"

// DefaultBuffer is the number of lines a Writer holds for its goroutine
// when Options.Buffer is 0.
const DefaultBuffer = 8192

// Options configure a Writer.
type Options struct {
	// Destination is a file path (opened for appending, created with mode
	// 0640) or "stdout".
	Destination string
	// Buffer is how many lines may wait for the writer's goroutine; past
	// it a line is dropped and counted. 0: DefaultBuffer.
	Buffer int
	// Lines and Dropped count the lines written and dropped; nil: not
	// counted.
	Lines, Dropped prometheus.Counter
	// Out replaces the destination (tests); nil: open Destination.
	Out io.Writer
}

// Writer writes the lines of one destination from its own goroutine.
// Log never blocks: a full buffer drops the line. Close stops the
// goroutine after it wrote every line already accepted.
type Writer struct {
	dest           string
	ch             chan *[]byte // lines, in buffers of pool
	pool           sync.Pool
	lines, dropped prometheus.Counter
	out            *bufio.Writer
	closer         io.Closer // nil for stdout and Options.Out

	mu     sync.RWMutex // Log holds it for reading; Close for writing
	closed bool
	done   chan struct{}
	err    error // the first write error, reported by Close
}

// Open starts the writer of o.Destination.
func Open(o Options) (*Writer, error) {
	w := &Writer{dest: o.Destination, lines: o.Lines, dropped: o.Dropped, done: make(chan struct{})}
	if o.Buffer <= 0 {
		o.Buffer = DefaultBuffer
	}
	var out io.Writer
	switch {
	case o.Out != nil:
		out = o.Out
	case o.Destination == Stdout:
		out = os.Stdout
	case o.Destination == "":
		return nil, errors.New("accesslog: no destination")
	default:
		f, err := os.OpenFile(o.Destination, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return nil, fmt.Errorf("accesslog: %w", err)
		}
		out, w.closer = f, f
	}
	w.out = bufio.NewWriterSize(out, 64<<10)
	w.ch = make(chan *[]byte, o.Buffer)
	w.pool.New = func() any { b := make([]byte, 0, 256); return &b }
	go w.run()
	return w, nil
}

// Destination is the configured destination.
func (w *Writer) Destination() string { return w.dest }

// Log formats e with t and queues the line; it reports false (and counts
// a drop) when the buffer is full or the writer is closed.
func (w *Writer) Log(t *Template, e *Entry) bool {
	bp := w.pool.Get().(*[]byte)
	*bp = t.Append((*bp)[:0], e)
	w.mu.RLock()
	ok := !w.closed
	if ok {
		select {
		case w.ch <- bp:
		default:
			ok = false
		}
	}
	w.mu.RUnlock()
	if !ok {
		w.pool.Put(bp)
		if w.dropped != nil {
			w.dropped.Inc()
		}
	}
	return ok
}

func (w *Writer) run() {
	defer close(w.done)
	for line := range w.ch {
		w.write(line)
		if len(w.ch) == 0 {
			w.flush()
		}
	}
	w.flush()
}

func (w *Writer) write(bp *[]byte) {
	if _, err := w.out.Write(*bp); err != nil {
		if w.err == nil {
			w.err = err
		}
		if w.dropped != nil {
			w.dropped.Inc()
		}
	} else if w.lines != nil {
		w.lines.Inc()
	}
	if cap(*bp) <= 4096 { // a rare long line does not stay in the pool
		*bp = (*bp)[:0]
		w.pool.Put(bp)
	}
}

func (w *Writer) flush() {
	if err := w.out.Flush(); err != nil && w.err == nil {
		w.err = err
	}
}

// Close stops accepting lines, writes and flushes every line accepted,
// closes the file and returns the first write error. Idempotent.
func (w *Writer) Close() error {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.ch)
	}
	w.mu.Unlock()
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
