package loadtest

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/portico-gateway/portico/loadtest/wsclient"
)

// Summary is the result of a run, printed as JSON on stdout.
type Summary struct {
	Scenario string            `json:"scenario"`
	Target   string            `json:"target"`
	Date     string            `json:"date"` // RFC 3339, UTC, when the run started
	Machine  Machine           `json:"machine"`
	Args     []string          `json:"args,omitempty"`  // the command line as given
	Flags    map[string]string `json:"flags,omitempty"` // every flag's effective value
	// Seconds is the measured window: the hold (connect) or the sending
	// time (the others).
	Seconds float64 `json:"seconds"`

	Connect     ConnectResult      `json:"connect"`
	Messages    *MessageResult     `json:"messages,omitempty"`    // echo, http-integration
	Post        *PostResult        `json:"post,omitempty"`        // post
	Integration *IntegrationResult `json:"integration,omitempty"` // http-integration
	Broadcast   *BroadcastResult   `json:"broadcast,omitempty"`   // broadcast
	// Connections says how the connections ended.
	Connections wsclient.Stats `json:"connections"`
	// Gateway is the memory and CPU of --gateway-pid, read before the
	// first connect and at the end of the window (connections still open).
	Gateway *ProcDelta `json:"gateway,omitempty"`
	// Generator is the same for this process.
	Generator *ProcDelta `json:"generator,omitempty"`
	// Problems lists everything --fail-on-errors fails on; empty when the
	// run was clean.
	Problems []string `json:"problems"`
	// PlainEcho is the same run against the plain echo server
	// (--compare-plain).
	PlainEcho *Summary `json:"plainEcho,omitempty"`
}

// ConnectResult describes opening the connections.
type ConnectResult struct {
	Requested int     `json:"requested"`
	Connected int     `json:"connected"`
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"perSecond"`
	// Failures counts failed connects by kind: refused, timeout,
	// http-<status>, reset, no-free-port, too-many-open-files, protocol,
	// canceled, other. FirstErrors keeps one message per kind.
	Failures    map[string]int64  `json:"failures"`
	FirstErrors map[string]string `json:"firstErrors,omitempty"`
	Handshake   Latency           `json:"handshake"`
}

// MessageResult describes echo traffic.
type MessageResult struct {
	Mode       string  `json:"mode"`                 // "closed-loop" or "open-loop"
	Depth      int     `json:"depth,omitempty"`      // closed loop: messages in flight per connection
	TargetRate float64 `json:"targetRate,omitempty"` // open loop: --msg-rate
	Expect     string  `json:"expect"`
	Sent       int64   `json:"sent"`
	Received   int64   `json:"received"`   // replies matching a sent message
	Unexpected int64   `json:"unexpected"` // replies that did not
	Lost       int64   `json:"lost"`       // sent, never answered
	SendErrors int64   `json:"sendErrors"`
	PerSecond  float64 `json:"perSecond"` // replies per second in the window
	// RoundTrip runs from the write of a message to the read of its
	// reply.
	RoundTrip Latency `json:"roundTrip"`
	// SendLag (open loop) is how late each message was written against
	// the moment the rate made it due: the generator's own pacing (a
	// 1 ms tick and its goroutine's turn on the CPU), kept out of
	// RoundTrip and shown here so that nothing is hidden.
	SendLag *Latency `json:"sendLag,omitempty"`
	// ServerCPUSeconds is the CPU time (user + system) of --gateway-pid
	// over the message window alone, without the connects before it;
	// ServerCPUPerMessageUs the same per reply in the window, in
	// microseconds. Both are absent without --gateway-pid.
	ServerCPUSeconds      float64 `json:"serverCpuSeconds,omitempty"`
	ServerCPUPerMessageUs float64 `json:"serverCpuPerMessageUs,omitempty"`
	// FirstUnexpected is the first reply that did not match (cut short).
	FirstUnexpected string `json:"firstUnexpected,omitempty"`
}

// PostResult describes @connections traffic.
type PostResult struct {
	Management string           `json:"management"`
	Clients    int              `json:"clients"`
	PostRate   float64          `json:"postRate,omitempty"` // the pace asked (0: closed loop)
	Signed     string           `json:"signed,omitempty"`   // "SigV4 REGION" when every POST was signed
	IDs        int              `json:"ids"`                // connections whose id was learnt
	MissingIDs int              `json:"missingIds"`         // connections that never said
	Posts      int64            `json:"posts"`
	PerSecond  float64          `json:"perSecond"`
	Statuses   map[string]int64 `json:"statuses"` // by HTTP status, or "error"
	HTTP       Latency          `json:"http"`
	Delivered  int64            `json:"delivered"` // messages received for 200 answers
	Reached    int              `json:"reached"`   // connections that received at least one post
	Lost       int64            `json:"lost"`      // 200 answers never received
	Unexpected int64            `json:"unexpected"`
	Delivery   Latency          `json:"delivery"` // POST sent -> frame read
	FirstError string           `json:"firstError,omitempty"`
}

// IntegrationResult compares the gateway with calling the backend directly.
type IntegrationResult struct {
	BackendURL string `json:"backendUrl"`
	// Outside is true when the backend is another process (--backend).
	Outside bool `json:"outsideBackend,omitempty"`
	// BackendCalls counts the calls the in-process backend served for
	// the gateway (direct calls not included; not counted when Outside).
	BackendCalls int64 `json:"backendCalls"`
	// Direct is the backend called straight from the generator, with the
	// gateway's HTTP client settings, while the gateway phase ran.
	Direct DirectRun `json:"direct"`
	// GatewayAdded is the echo round trip minus Direct, percentile by
	// percentile: what going through the gateway adds under this load.
	GatewayAdded Latency `json:"gatewayAdded"`
	// After is the backend called alone after the gateway phase
	// (--direct-after), at the gateway phase's concurrency.
	After *DirectRun `json:"directAfter,omitempty"`
	// Backend is the backend's own time per event the gateway sent
	// (arrival to answer written, timed by the backend), nil when the
	// backend does not report it (not portico-load's).
	Backend *BackendStats `json:"backend,omitempty"`
	// OverBackend is the echo round trip minus Backend, percentile by
	// percentile: everything but the backend's own work (the gateway,
	// the loopback hops, the generator's client).
	OverBackend *Latency `json:"gatewayAddedOverBackend,omitempty"`
}

// DirectRun is a series of direct backend calls.
type DirectRun struct {
	Clients  int     `json:"clients"`
	Rate     float64 `json:"rate,omitempty"` // the pace asked, calls/s (0: unpaced)
	Seconds  float64 `json:"seconds"`
	Requests int64   `json:"requests"`
	Errors   int64   `json:"errors"`
	Latency  Latency `json:"latency"`
}

// Failed reports whether the run had any problem.
func (s *Summary) Failed() bool {
	return len(s.Problems) > 0 || (s.PlainEcho != nil && s.PlainEcho.Failed())
}

func (s *Summary) problem(format string, args ...any) {
	s.Problems = append(s.Problems, fmt.Sprintf(format, args...))
}

// PrintTable writes a human-readable summary.
func PrintTable(w io.Writer, s *Summary) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	printTable(tw, s)
	_ = tw.Flush()
	if len(s.Problems) == 0 {
		fmt.Fprintln(w, "result: clean")
	}
	for _, p := range s.Problems {
		fmt.Fprintln(w, "PROBLEM:", p)
	}
	if s.PlainEcho != nil {
		fmt.Fprintf(w, "\nthe same run against the plain goroutine-per-connection echo server:\n")
		PrintTable(w, s.PlainEcho)
	}
}

func printTable(tw io.Writer, s *Summary) {
	mib := func(b int64) float64 { return float64(b) / (1 << 20) }
	fmt.Fprintf(tw, "%s\t%s\t%d cores, %.1f GiB, %s\n", s.Scenario, s.Target, s.Machine.Cores, mib(s.Machine.MemTotalBytes)/1024, s.Date)
	c := s.Connect
	fmt.Fprintf(tw, "connected\t%d of %d\tin %.2f s, %.0f/s\n", c.Connected, c.Requested, c.Seconds, c.PerSecond)
	for _, k := range sortedKeys(c.Failures) {
		fmt.Fprintf(tw, "  failed: %s\t%d\t%s\n", k, c.Failures[k], clip(c.FirstErrors[k], 70))
	}
	latency(tw, "handshake", c.Handshake)
	if m := s.Messages; m != nil {
		how := fmt.Sprintf("closed loop, %d in flight per connection", m.Depth)
		if m.TargetRate > 0 {
			how = fmt.Sprintf("open loop at %.0f/s", m.TargetRate)
		}
		fmt.Fprintf(tw, "messages\t%d sent, %d answered\t%.0f/s (%s)\n", m.Sent, m.Received, m.PerSecond, how)
		latency(tw, "round trip", m.RoundTrip)
		if m.SendLag != nil {
			latency(tw, "send lag", *m.SendLag)
		}
		if m.ServerCPUSeconds > 0 {
			fmt.Fprintf(tw, "  server CPU	%.2f s in the window	%.2f µs per message\n", m.ServerCPUSeconds, m.ServerCPUPerMessageUs)
		}
		if m.Unexpected+m.Lost+m.SendErrors > 0 {
			fmt.Fprintf(tw, "  not answered\t%d lost, %d unexpected, %d send errors\t%s\n", m.Lost, m.Unexpected, m.SendErrors, clip(m.FirstUnexpected, 60))
		}
	}
	if p := s.Post; p != nil {
		fmt.Fprintf(tw, "posts\t%d to %d connections\t%.0f/s from %d clients\n", p.Posts, p.IDs, p.PerSecond, p.Clients)
		fmt.Fprintf(tw, "  delivered\t%d, to %d distinct connections\t\n", p.Delivered, p.Reached)
		for _, k := range sortedKeys(p.Statuses) {
			fmt.Fprintf(tw, "  HTTP %s\t%d\t\n", k, p.Statuses[k])
		}
		latency(tw, "post HTTP", p.HTTP)
		latency(tw, "delivery", p.Delivery)
		if p.Lost+p.Unexpected+int64(p.MissingIDs) > 0 {
			fmt.Fprintf(tw, "  not delivered\t%d lost, %d unexpected, %d ids missing\n", p.Lost, p.Unexpected, p.MissingIDs)
		}
	}
	if b := s.Broadcast; b != nil {
		printBroadcast(tw, b)
	}
	if in := s.Integration; in != nil {
		if in.Outside {
			fmt.Fprintf(tw, "backend\t%s\t(another process: calls not counted)\n", in.BackendURL)
		} else {
			fmt.Fprintf(tw, "backend\t%s\t%d calls through the gateway\n", in.BackendURL, in.BackendCalls)
		}
		latency(tw, fmt.Sprintf("direct (%d clients)", in.Direct.Clients), in.Direct.Latency)
		g := in.GatewayAdded
		fmt.Fprintf(tw, "gateway adds\tp50 %.3f ms\tp90 %.3f  p99 %.3f  p99.9 %.3f\n", g.P50, g.P90, g.P99, g.P999)
		if a := in.After; a != nil {
			latency(tw, fmt.Sprintf("direct alone (%d)", a.Clients), a.Latency)
		}
		if b, o := in.Backend, in.OverBackend; b != nil && o != nil {
			latency(tw, "backend's own time", b.Latency)
			fmt.Fprintf(tw, "round trip - backend	p50 %.3f ms	p90 %.3f  p99 %.3f  p99.9 %.3f\n", o.P50, o.P90, o.P99, o.P999)
		}
	}
	proc := func(name string, d *ProcDelta) {
		if d == nil {
			return
		}
		fmt.Fprintf(tw, "%s RSS\t%.1f -> %.1f MiB\t%.0f bytes/connection\n", name, mib(d.Before.RSSBytes), mib(d.After.RSSBytes), d.BytesPerConnection)
		fmt.Fprintf(tw, "%s CPU\t%.2f s\t%.0f%% of a core, %d threads\n", name, d.CPUSeconds, d.CPUPercent, d.After.Threads)
	}
	proc("server", s.Gateway)
	proc("generator", s.Generator)
	st := s.Connections
	fmt.Fprintf(tw, "closed\t%d clean, %d forced\t%d by the server, %d dropped\n", st.CleanClosed, st.ForcedClosed, st.ServerClosed, st.Dropped)
}

func latency(tw io.Writer, name string, l Latency) {
	if l.Count == 0 {
		return
	}
	fmt.Fprintf(tw, "%s\tp50 %.3f ms\tp90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  (n=%d)\n", name, l.P50, l.P90, l.P99, l.P999, l.Max, l.Count)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func clip(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
