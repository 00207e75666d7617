package loadtest

import (
	"fmt"
	"io"
	"sort"
	"text/tabwriter"
)

// PrintTable writes a human summary of s.
func PrintTable(w io.Writer, s *Summary) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "scenario\t%s\t(%d cores, %d MiB, %s)\n", s.Scenario, s.Machine.Cores, s.Machine.MemTotalKiB>>10, s.Date)
	fmt.Fprintf(tw, "connected\t%d of %d\t%.0f/s\n", s.Connected, s.Connections, s.ConnectRate)
	keys := make([]string, 0, len(s.Failures))
	for k := range s.Failures {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(tw, "failed (%s)\t%d\n", k, s.Failures[k])
	}
	lat := func(name string, l *Latency) {
		if l != nil && l.Count > 0 {
			fmt.Fprintf(tw, "%s\tp50 %.2f ms\tp90 %.2f\tp99 %.2f\tp99.9 %.2f\tmax %.2f\t(n=%d)\n", name, l.P50, l.P90, l.P99, l.P999, l.Max, l.Count)
		}
	}
	lat("handshake", &s.Handshake)
	if s.Messages > 0 {
		fmt.Fprintf(tw, "messages\t%d\t%.0f/s\n", s.Messages, s.PerSecond)
	}
	lat("round trip", s.RoundTrip)
	lat("post HTTP", s.PostHTTP)
	lat("delivery", s.Delivery)
	lat("direct backend", s.Direct)
	for code, n := range s.Statuses {
		fmt.Fprintf(tw, "HTTP %s\t%d\n", code, n)
	}
	if s.Before != nil && s.After != nil {
		fmt.Fprintf(tw, "gateway RSS\t%.1f MiB -> %.1f MiB\t%.0f bytes/connection\n",
			float64(s.Before.RSSBytes)/(1<<20), float64(s.After.RSSBytes)/(1<<20), s.BytesPerCon)
		fmt.Fprintf(tw, "gateway CPU\t%.2f s\n", s.CPUSeconds)
	}
	fmt.Fprintf(tw, "dropped by server\t%d\nerrors\t%d\n", s.Dropped, s.Errors)
	_ = tw.Flush()
}
