package accesslog

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

var when = time.Date(2026, 3, 10, 12, 30, 45, 123e6, time.FixedZone("", 0))

func sample() *Entry {
	return &Entry{
		RequestID: "req-1", ExtendedRequestID: "ext-1", APIID: "abc123", Stage: "prod",
		RouteKey: "sendmessage", EventType: "MESSAGE", ConnectionID: "conn-1=", MessageID: "msg-1",
		SourceIP: "192.0.2.7", UserAgent: "ua/1", PrincipalID: "alice",
		ErrorMessage: `say "hi" \ bye` + "\n", RequestTime: when, Status: 200, IntegrationStatus: 201,
		IntegrationLatency: 12 * time.Millisecond, ResponseLatency: 15 * time.Millisecond, ResponseLength: -1,
	}
}

const jsonFormat = `{"requestId":"$context.requestId","extendedRequestId":"$context.extendedRequestId","ip":"$context.identity.sourceIp",` +
	`"requestTime":"$context.requestTime","requestTimeEpoch":"$context.requestTimeEpoch","routeKey":"$context.routeKey",` +
	`"status":"$context.status","connectionId":"$context.connectionId","eventType":"$context.eventType",` +
	`"integrationLatency":"$context.integrationLatency","responseLatency":"$context.responseLatency",` +
	`"principalId":"$context.authorizer.principalId","error":"$context.error.message","stage":"$context.stage",` +
	`"apiId":"$context.apiId","messageId":"$context.messageId","integrationStatus":"$context.integrationStatus",` +
	`"length":"$context.responseLength","ua":"$context.identity.userAgent","path":"$context.path"}`

// A JSON format's line parses back, field by field, with values escaped.
func TestTemplateJSON(t *testing.T) {
	tpl, err := Compile(jsonFormat)
	if err != nil {
		t.Fatal(err)
	}
	line := tpl.Append(nil, sample())
	if !strings.HasSuffix(string(line), "}\n") || strings.Count(string(line), "\n") != 1 {
		t.Fatalf("line %q is not one line", line)
	}
	var got map[string]string
	if err := json.Unmarshal(line, &got); err != nil {
		t.Fatalf("%v: %s", err, line)
	}
	want := map[string]string{
		"requestId": "req-1", "extendedRequestId": "ext-1", "ip": "192.0.2.7",
		"requestTime": "10/Mar/2026:12:30:45 +0000", "requestTimeEpoch": strconv.FormatInt(when.UnixMilli(), 10),
		"routeKey": "sendmessage", "status": "200", "connectionId": "conn-1=", "eventType": "MESSAGE",
		"integrationLatency": "12", "responseLatency": "15", "principalId": "alice",
		"error": `say "hi" \ bye` + "\n", "stage": "prod", "apiId": "abc123", "messageId": "msg-1",
		"integrationStatus": "201", "length": "-", "ua": "ua/1", "path": "-",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d fields, want %d: %s", len(got), len(want), line)
	}
}

// A CLF-style format is a plain template: values in place, a trailing
// '.' is text, control characters never break the line.
func TestTemplateCLF(t *testing.T) {
	tpl, err := Compile(`$context.identity.sourceIp - - [$context.requestTime] "$context.eventType $context.routeKey" $context.status $context.requestId $context.error.message.`)
	if err != nil {
		t.Fatal(err)
	}
	e := sample()
	e.ErrorMessage = "bad\nthing"
	got := string(tpl.Append(nil, e))
	want := `192.0.2.7 - - [10/Mar/2026:12:30:45 +0000] "MESSAGE sendmessage" 200 req-1 bad thing.` + "\n"
	if got != want {
		t.Errorf("line\n%q, want\n%q", got, want)
	}
	got = string(tpl.Append(nil, &Entry{RequestID: "r"}))
	if want := `- - - [-] "- -" - r -.` + "\n"; got != want {
		t.Errorf("empty entry: %q, want %q", got, want)
	}
}

func TestCompileErrors(t *testing.T) {
	for _, f := range []string{"", "  ", "$context.status", "$context.requestId $context.nope", "$context.requestId\n$context.status"} {
		if _, err := Compile(f); !errors.Is(err, ErrFormat) {
			t.Errorf("Compile(%q) = %v, want ErrFormat", f, err)
		}
	}
	if len(Variables()) < 25 {
		t.Errorf("Variables() = %v", Variables())
	}
}

// stuck is a destination whose Write blocks until released.
type stuck struct {
	in      chan struct{} // a Write started
	release chan struct{}
	data    strings.Builder
}

func (s *stuck) Write(p []byte) (int, error) {
	select {
	case s.in <- struct{}{}:
	default:
	}
	<-s.release
	return s.data.Write(p)
}

// A destination that does not keep up: the buffer fills, further lines
// are dropped and counted, Log never blocks; Close writes what was
// accepted.
func TestWriterDropsWhenFull(t *testing.T) {
	out := &stuck{in: make(chan struct{}, 1), release: make(chan struct{})}
	lines := prometheus.NewCounter(prometheus.CounterOpts{Name: "l"})
	dropped := prometheus.NewCounter(prometheus.CounterOpts{Name: "d"})
	w, err := Open(Options{Destination: "test", Buffer: 2, Out: out, Lines: lines, Dropped: dropped})
	if err != nil {
		t.Fatal(err)
	}
	tpl, _ := Compile("$context.requestId")
	if !w.Log(tpl, &Entry{RequestID: "1"}) {
		t.Fatal("first line dropped")
	}
	<-out.in // the goroutine is stuck writing line 1
	for i, want := range []bool{true, true, false, false} {
		if got := w.Log(tpl, &Entry{RequestID: strconv.Itoa(i + 2)}); got != want {
			t.Errorf("line %d accepted = %v, want %v", i+2, got, want)
		}
	}
	if got := testutil.ToFloat64(dropped); got != 2 {
		t.Errorf("dropped = %v, want 2", got)
	}
	close(out.release)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := out.data.String(); got != "1\n2\n3\n" {
		t.Errorf("written %q, want lines 1 to 3", got)
	}
	if got := testutil.ToFloat64(lines); got != 3 {
		t.Errorf("lines = %v, want 3", got)
	}
	if w.Log(tpl, &Entry{RequestID: "late"}) {
		t.Error("a closed writer accepted a line")
	}
}

// Close flushes every accepted line to the file.
func TestCloseFlushes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	w, err := Open(Options{Destination: path})
	if err != nil {
		t.Fatal(err)
	}
	tpl, _ := Compile(`{"requestId":"$context.requestId"}`)
	l := NewLogger(tpl, w)
	for i := range 500 {
		l.Log(&Entry{RequestID: strconv.Itoa(i)})
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		var got struct{ RequestID string }
		if err := json.Unmarshal(sc.Bytes(), &got); err != nil || got.RequestID != strconv.Itoa(n) {
			t.Fatalf("line %d: %q (%v)", n, sc.Text(), err)
		}
		n++
	}
	if n != 500 {
		t.Errorf("%d lines, want 500", n)
	}
}

// Access logs off cost nothing: a nil Logger allocates nothing.
func TestNilLoggerIsFree(t *testing.T) {
	var l *Logger
	e := &Entry{}
	if n := testing.AllocsPerRun(100, func() { l.Log(e) }); n != 0 {
		t.Errorf("nil Logger: %v allocations", n)
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(Options{}); err == nil {
		t.Error("no destination accepted")
	}
	if _, err := Open(Options{Destination: filepath.Join(t.TempDir(), "missing", "x.log")}); err == nil {
		t.Error("a file in a missing directory accepted")
	}
}

// FuzzCompile: any format either fails with ErrFormat or gives lines of
// one line each; a JSON format made of quoted variables stays valid JSON
// whatever the values hold.
func FuzzCompile(f *testing.F) {
	f.Add(jsonFormat, "v")
	f.Add(`$context.requestId $context.status.`, "a\"b")
	f.Add(`$context.`, "")
	f.Add(`$context.requestId$context.requestId...$context.`, "\x00\xff")
	f.Fuzz(func(t *testing.T, format, value string) {
		tpl, err := Compile(format)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v is not ErrFormat", err)
			}
			return
		}
		e := sample()
		e.RequestID, e.ErrorMessage, e.RouteKey = value, value, value
		line := tpl.Append(nil, e)
		if strings.IndexByte(string(line), '\n') != len(line)-1 {
			t.Fatalf("line %q is not one line", line)
		}
		if tpl.json && json.Valid([]byte(format)) && !json.Valid(line) {
			t.Fatalf("JSON format %q gave invalid JSON %q", format, line)
		}
	})
}

// signalled is a destination that reports each Write on a channel.
type signalled struct {
	mu     sync.Mutex
	data   []byte
	writes chan int // the length of each Write
}

func (s *signalled) Write(p []byte) (int, error) {
	s.mu.Lock()
	s.data = append(s.data, p...)
	s.mu.Unlock()
	s.writes <- len(p)
	return len(p), nil
}

func (s *signalled) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.data)
}

// Lines wait for the interval: nothing is written before a tick, then
// the lines accepted so far in one write.
func TestWriterFlushesOnTick(t *testing.T) {
	out := &signalled{writes: make(chan int, 16)}
	tick := make(chan time.Time)
	lines := prometheus.NewCounter(prometheus.CounterOpts{Name: "l"})
	w, err := Open(Options{Destination: "test", Out: out, Tick: tick, Lines: lines})
	if err != nil {
		t.Fatal(err)
	}
	tpl, _ := Compile("$context.requestId")
	for i := range 3 {
		w.Log(tpl, &Entry{RequestID: strconv.Itoa(i)})
	}
	tick <- time.Time{} // the goroutine has taken the tick: a write follows
	if n := <-out.writes; n != len("0\n1\n2\n") {
		t.Errorf("first write %d bytes, want the 3 lines in one", n)
	}
	if got := out.String(); got != "0\n1\n2\n" {
		t.Errorf("written %q", got)
	}
	if got := testutil.ToFloat64(lines); got != 3 {
		t.Errorf("lines = %v, want 3", got)
	}
	w.Log(tpl, &Entry{RequestID: "3"})
	tick <- time.Time{}
	<-out.writes
	tick <- time.Time{} // nothing waiting: no write
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "0\n1\n2\n3\n" {
		t.Errorf("written %q", got)
	}
	if len(out.writes) != 0 {
		t.Errorf("%d writes of nothing", len(out.writes))
	}
}

// FlushSize of lines wakes the goroutine before the interval is up (the
// test's ticker never ticks).
func TestWriterFlushesAtSize(t *testing.T) {
	out := &signalled{writes: make(chan int, 16)}
	w, err := Open(Options{Destination: "test", Out: out, Tick: make(chan time.Time)})
	if err != nil {
		t.Fatal(err)
	}
	tpl, _ := Compile("$context.requestId")
	id := strings.Repeat("x", 99) // 100-byte lines
	n := FlushSize/100 + 1
	for range n {
		if !w.Log(tpl, &Entry{RequestID: id}) {
			t.Fatal("line dropped")
		}
	}
	if got := <-out.writes; got != n*100 {
		t.Errorf("wrote %d bytes, want the %d lines past FlushSize (%d bytes)", got, n, n*100)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if len(out.writes) != 0 {
		t.Errorf("Close wrote %d more times with nothing waiting", len(out.writes))
	}
}

// Past Buffer lines waiting, lines are dropped and counted; Close writes
// every line accepted, in order, and none of those dropped.
func TestWriterBoundAndClose(t *testing.T) {
	out := &signalled{writes: make(chan int, 16)}
	dropped := prometheus.NewCounter(prometheus.CounterOpts{Name: "d"})
	lines := prometheus.NewCounter(prometheus.CounterOpts{Name: "l"})
	w, err := Open(Options{Destination: "test", Out: out, Tick: make(chan time.Time), Buffer: 100,
		Dropped: dropped, Lines: lines})
	if err != nil {
		t.Fatal(err)
	}
	tpl, _ := Compile("$context.requestId")
	var want strings.Builder
	for i := range 150 {
		ok := w.Log(tpl, &Entry{RequestID: strconv.Itoa(i)})
		if ok != (i < 100) {
			t.Fatalf("line %d accepted = %v", i, ok)
		}
		if ok {
			want.WriteString(strconv.Itoa(i) + "\n")
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != want.String() {
		t.Errorf("written %q, want lines 0 to 99", got)
	}
	if d, l := testutil.ToFloat64(dropped), testutil.ToFloat64(lines); d != 50 || l != 100 {
		t.Errorf("dropped %v, lines %v; want 50 and 100", d, l)
	}
}

// Lines logged from many goroutines at once all arrive whole.
func TestWriterConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	w, err := Open(Options{Destination: path, Buffer: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	tpl, _ := Compile(`{"requestId":"$context.requestId","stage":"$context.stage"}`)
	var wg sync.WaitGroup
	const goroutines, each = 4, 5000
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				w.Log(tpl, &Entry{RequestID: strconv.Itoa(i), Stage: strconv.Itoa(g)})
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	next := make([]int, goroutines)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var got struct{ RequestID, Stage string }
		if err := json.Unmarshal(sc.Bytes(), &got); err != nil {
			t.Fatalf("%q: %v", sc.Text(), err)
		}
		g, _ := strconv.Atoi(got.Stage)
		if got.RequestID != strconv.Itoa(next[g]) {
			t.Fatalf("goroutine %d: line %s, want %d", g, got.RequestID, next[g])
		}
		next[g]++
	}
	for g, n := range next {
		if n != each {
			t.Errorf("goroutine %d: %d lines, want %d", g, n, each)
		}
	}
}

// errWriter fails every write after the first ok bytes.
type errWriter struct{ ok int }

func (e *errWriter) Write(p []byte) (int, error) {
	n := min(len(p), e.ok)
	e.ok -= n
	if n < len(p) {
		return n, errors.New("disk full")
	}
	return n, nil
}

// A failed write counts the lines it did not write as dropped, and Close
// reports the error.
func TestWriterWriteError(t *testing.T) {
	tick := make(chan time.Time)
	dropped := prometheus.NewCounter(prometheus.CounterOpts{Name: "d"})
	lines := prometheus.NewCounter(prometheus.CounterOpts{Name: "l"})
	w, err := Open(Options{Destination: "test", Out: &errWriter{ok: 5}, Tick: tick, Dropped: dropped, Lines: lines})
	if err != nil {
		t.Fatal(err)
	}
	tpl, _ := Compile("$context.requestId")
	for _, id := range []string{"a", "b", "c", "d"} { // "a\nb\nc" fits: 2 whole lines
		w.Log(tpl, &Entry{RequestID: id})
	}
	if err := w.Close(); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("Close = %v, want the write error", err)
	}
	if d, l := testutil.ToFloat64(dropped), testutil.ToFloat64(lines); d != 2 || l != 2 {
		t.Errorf("dropped %v, lines %v; want 2 and 2", d, l)
	}
}

// The cached requestTime of a second is that second's, in its location.
func TestRequestTimeCache(t *testing.T) {
	tpl, _ := Compile("$context.requestId [$context.requestTime]")
	paris := time.FixedZone("", 3600)
	for _, at := range []time.Time{when, when.Add(300 * time.Millisecond), when.Add(time.Second), when.In(paris),
		when.Add(time.Second).In(paris), when, time.Date(1999, 12, 31, 23, 59, 59, 0, time.UTC)} {
		got := string(tpl.Append(nil, &Entry{RequestID: "r", RequestTime: at}))
		if want := "r [" + at.Format("02/Jan/2006:15:04:05 -0700") + "]\n"; got != want {
			t.Errorf("%v: %q, want %q", at, got, want)
		}
	}
}
