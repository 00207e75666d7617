package metrics

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// exported lists every series name the gateway's registry can export: the
// Set's collectors and the Go and process collectors the gateway adds,
// histograms with their _bucket, _sum and _count series.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	reg := prometheus.NewRegistry()
	New(reg)
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	ch := make(chan *prometheus.Desc, 1024)
	go func() {
		reg.Describe(ch) // a Desc names its metric, whether it has series yet or not
		close(ch)
	}()
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	names := map[string]bool{}
	for d := range ch {
		m := fq.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("no name in %s", d)
		}
		names[m[1]] = true
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	histograms := map[string]bool{} // and summaries: _bucket is never asked of them
	for _, mf := range mfs {
		if t := mf.GetType().String(); t == "HISTOGRAM" || t == "SUMMARY" {
			histograms[mf.GetName()] = true
		}
	}
	// Histogram vectors gather nothing until observed: name them here.
	s := New(nil)
	for _, h := range []*prometheus.HistogramVec{s.IntegrationLatency, s.HTTPLatency} {
		dch := make(chan *prometheus.Desc, 1)
		h.Describe(dch)
		histograms[fq.FindStringSubmatch((<-dch).String())[1]] = true
	}
	for h := range histograms {
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			names[h+suffix] = true
		}
	}
	return names
}

// metricNames finds the metric names of a PromQL expression: the
// identifiers with a prefix the gateway exports, outside quoted strings.
func metricNames(expr string) []string {
	unquoted := regexp.MustCompile(`"(?:[^"\\]|\\.)*"`).ReplaceAllString(expr, `""`)
	return regexp.MustCompile(`\b(?:portico|process|go)_[A-Za-z0-9_:]*`).FindAllString(unquoted, -1)
}

// Every query of the example Grafana dashboard names only metrics the
// gateway exports, and each names at least one.
func TestDashboardQueries(t *testing.T) {
	data, err := os.ReadFile("../examples/grafana/portico-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	names := exported(t)
	var exprs []string
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	for _, v := range d.Templating.List {
		if q, ok := v.Query.(map[string]any); ok {
			exprs = append(exprs, q["query"].(string))
		}
	}
	if len(exprs) < 20 {
		t.Fatalf("%d queries: the dashboard lost its panels", len(exprs))
	}
	used := map[string]bool{}
	for _, e := range exprs {
		found := metricNames(e)
		if len(found) == 0 {
			t.Errorf("query %q names no metric", e)
		}
		for _, n := range found {
			used[n] = true
			if !names[n] {
				t.Errorf("query %q names %s, which the gateway does not export", e, n)
			}
		}
	}
	// The AWS-named metrics are all on the dashboard.
	for _, n := range []string{"portico_connects_total", "portico_messages_total", "portico_integration_errors_total",
		"portico_client_errors_total", "portico_execution_errors_total", "portico_integration_duration_seconds_bucket",
		"portico_http_requests_total", "portico_http_latency_seconds_bucket", "portico_send_queue_bytes",
		"portico_send_queue_overflows_total", "portico_access_log_dropped_total"} {
		if !used[n] {
			t.Errorf("the dashboard does not show %s", n)
		}
	}
	if got := metricNames(`sum by (le) (rate(portico_x_bucket{api=~"portico_not_a_metric"}[5m]))`); strings.Join(got, ",") != "portico_x_bucket" {
		t.Errorf("metricNames = %v", got)
	}
}
