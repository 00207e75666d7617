package metrics

import (
	"sort"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// The collectors below complete the set with what CloudWatch calls
// ClientError and ExecutionError for WebSocket APIs, and with what AWS
// cannot show: the bytes waiting in connections' send queues, their
// overflows, and the access log writer's lines and drops.

// QueueStats reads one API's send queues: the bytes queued across its
// connections now, and the sends refused on a full queue since start.
type QueueStats func() (queuedBytes, overflows int64)

// Queues exports every API's QueueStats as portico_send_queue_bytes and
// portico_send_queue_overflows_total, read at scrape time (nothing is
// recorded on the send path but the server's own atomic counters).
type Queues struct {
	mu    sync.Mutex
	stats map[string]QueueStats // by API name
	bytes *prometheus.Desc
	over  *prometheus.Desc
}

func newQueues() *Queues {
	return &Queues{
		stats: map[string]QueueStats{},
		bytes: prometheus.NewDesc("portico_send_queue_bytes",
			"Bytes queued for connections whose sockets do not take them yet.", []string{"api"}, nil),
		over: prometheus.NewDesc("portico_send_queue_overflows_total",
			"Sends refused because the connection's send queue was full.", []string{"api"}, nil),
	}
}

// Add exports the send queues of api; a second Add for the same api
// replaces the first.
func (q *Queues) Add(api string, f QueueStats) {
	q.mu.Lock()
	q.stats[api] = f
	q.mu.Unlock()
}

// Describe implements prometheus.Collector.
func (q *Queues) Describe(ch chan<- *prometheus.Desc) { ch <- q.bytes; ch <- q.over }

// Collect implements prometheus.Collector.
func (q *Queues) Collect(ch chan<- prometheus.Metric) {
	q.mu.Lock()
	names := make([]string, 0, len(q.stats))
	for n := range q.stats {
		names = append(names, n)
	}
	fs := make([]QueueStats, len(names))
	sort.Strings(names)
	for i, n := range names {
		fs[i] = q.stats[n]
	}
	q.mu.Unlock()
	for i, n := range names {
		b, o := fs[i]()
		ch <- prometheus.MustNewConstMetric(q.bytes, prometheus.GaugeValue, float64(b), n)
		ch <- prometheus.MustNewConstMetric(q.over, prometheus.CounterValue, float64(o), n)
	}
}

// addAWS creates the collectors of this file.
func (s *Set) addAWS() []prometheus.Collector {
	s.ClientErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portico_client_errors_total",
		Help: "WebSocket requests the gateway refused with a 4xx before any integration ran (AWS's ClientError), by reason.",
	}, []string{"api", "stage", "reason"})
	s.ExecutionErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portico_execution_errors_total",
		Help: "WebSocket requests whose integration call failed or timed out, or answered what the gateway could not use (AWS's ExecutionError).",
	}, []string{"api", "stage"})
	s.Queues = newQueues()
	s.AccessLogLines = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portico_access_log_lines_total", Help: "Access log lines written.",
	}, []string{"destination"})
	s.AccessLogDropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portico_access_log_dropped_total", Help: "Access log lines dropped because the writer's buffer was full or the destination failed.",
	}, []string{"destination"})
	s.ChannelBusUp = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "portico_channel_bus_up", Help: "1 while every Redis subscription connection of the channel bus reads, 0 while one fails.",
	})
	s.ChannelBusUp.Set(1)
	return []prometheus.Collector{s.ClientErrors, s.ExecutionErrors, s.Queues, s.AccessLogLines, s.AccessLogDropped, s.ChannelBusUp}
}

// Reasons of ClientErrors.
const (
	ReasonNoRoute      = "no_route"     // a message no route (and no $default) takes: "Forbidden"
	ReasonThrottled    = "throttled"    // a bucket, a quota or an in-flight bound refused it
	ReasonForbidden    = "forbidden"    // an API key or an authorizer refused it (403)
	ReasonUnauthorized = "unauthorized" // an authorizer found no or a bad identity (401)
	ReasonNoStage      = "no_stage"     // a handshake to a stage that does not exist
)
