// Package metrics defines Portico's Prometheus collectors. It is a leaf:
// the connection servers, routing and management record into one *Set, and
// the management listener serves it on /metrics. Labels are bounded: api,
// stage and route come from the configuration, never from a client (a
// route label is a configured route key, "$default" or "@connections").
package metrics

import "github.com/prometheus/client_golang/prometheus"

// Set is every collector of one gateway.
type Set struct {
	// ConnectionsOpen counts open connections. Labels: api, stage.
	ConnectionsOpen *prometheus.GaugeVec
	// Connects counts handshakes by result: accepted, rejected (the
	// $connect integration answered non-2xx, or the stage is unknown),
	// error (the integration failed or timed out), and, when an authorizer
	// guards $connect, unauthorized (401), forbidden (403) and
	// authorizer_error (500). Labels: api, stage, result.
	Connects *prometheus.CounterVec
	// AuthorizerRequests counts authorizations by result: allow, deny
	// (403), unauthorized (401, also without a call when the identity
	// source is missing), error (the authorizer failed: 500) and
	// cache_hit (answered from the result cache, no call). Labels: api,
	// authorizer (its configured name), result.
	AuthorizerRequests *prometheus.CounterVec
	// Disconnects counts closed connections. Labels: api, stage.
	Disconnects *prometheus.CounterVec
	// Messages counts messages by direction: in (client to gateway) and
	// out (route responses, error frames and @connections posts).
	// Labels: api, stage, route, direction.
	Messages *prometheus.CounterVec
	// IntegrationLatency observes integration calls in seconds, mock
	// integrations included. Labels: api, stage, route.
	IntegrationLatency *prometheus.HistogramVec
	// IntegrationErrors counts failed integration calls by kind: timeout,
	// error (no answer), and 4xx and 5xx (the integration answered that
	// status; AWS's IntegrationError). Labels: api, stage, route, kind.
	IntegrationErrors *prometheus.CounterVec
	// ManagementRequests counts @connections calls. Labels: op (post, get,
	// delete), code (HTTP status).
	ManagementRequests *prometheus.CounterVec
	// Relayed counts @connections calls this node passed to the node that
	// holds the connection, by the owner's answer (or the relay's own
	// 410/504 when the owner is gone or slow). Labels: op, code.
	Relayed *prometheus.CounterVec
	// RegistryUp is 1 while the connection registry answers this node's
	// heartbeats and 0 during an outage (the node then serves its own
	// connections only; /readyz answers 503).
	RegistryUp prometheus.Gauge
	// RegistryPending counts this node's open connections whose registry
	// record is waiting to be written again (after a failed write, or a
	// registry that came back empty); other nodes cannot reach them yet.
	RegistryPending prometheus.Gauge
	// Throttled counts requests refused by a token bucket, by the level
	// of the bucket: gateway, stage, route, usageplan or connection.
	// Labels: api, stage, level.
	Throttled *prometheus.CounterVec
	// ThrottleFallback is 1 while cluster-wide throttling cannot reach
	// Redis and each node applies its share of every limit locally.
	ThrottleFallback prometheus.Gauge
	// ChannelDeliveries counts messages handed to subscribers' send
	// queues by channel publishes (one per subscriber reached). Labels: api.
	ChannelDeliveries *prometheus.CounterVec
	// ChannelDropped counts channel deliveries dropped because the
	// subscriber's send queue was full, by the API's overflow policy
	// (drop: the gap is marked for recovery; close: the subscriber is
	// closed with 1008). Labels: api, policy.
	ChannelDropped *prometheus.CounterVec
	// HTTPRequests counts requests to HTTP and REST APIs by the class
	// of the status answered (2xx, 4xx, ...; AWS's Count, 4xx and 5xx).
	// Labels: api, stage, route (the route key, never the raw path; "-"
	// when no route matched), status_class.
	HTTPRequests *prometheus.CounterVec
	// HTTPLatency observes HTTP and REST requests in seconds, from the
	// request's arrival until its answer's headers went out (AWS's
	// Latency; for streamed http_proxy answers the headers, not the
	// whole body). Labels: api, stage, route.
	HTTPLatency *prometheus.HistogramVec
	// ClientErrors counts WebSocket requests refused with a 4xx before
	// an integration ran (AWS's ClientError). Labels: api, stage, reason
	// (no_route, throttled, forbidden, unauthorized, no_stage).
	ClientErrors *prometheus.CounterVec
	// ExecutionErrors counts WebSocket requests whose integration failed
	// or timed out (AWS's ExecutionError). Labels: api, stage.
	ExecutionErrors *prometheus.CounterVec
	// Queues reads each API's send queues at scrape time.
	Queues *Queues
	// AccessLogLines and AccessLogDropped count access log lines written
	// and dropped. Labels: destination (a configured file or stdout).
	AccessLogLines, AccessLogDropped *prometheus.CounterVec
	// ChannelBusUp is 1 while every Redis subscription connection of the
	// channel bus (storage.type redis) reads, and 0 while one fails: this
	// node then misses what other nodes publish.
	ChannelBusUp prometheus.Gauge
	// GCPercent is the Go GC target the gateway set last (gcPercent
	// when idle, up to gcPercentMax while busy; 0 when it does not
	// manage the GC, as when GOGC is set).
	GCPercent prometheus.Gauge
}

// New creates the collectors and registers them with reg (nil: not
// registered, useful in tests).
func New(reg prometheus.Registerer) *Set {
	s := &Set{
		ConnectionsOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "portico_connections_open", Help: "Open WebSocket connections.",
		}, []string{"api", "stage"}),
		Connects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portico_connects_total", Help: "WebSocket handshakes by result (accepted, rejected, error).",
		}, []string{"api", "stage", "result"}),
		AuthorizerRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portico_authorizer_requests_total", Help: "Authorizations by result (allow, deny, unauthorized, error, cache_hit).",
		}, []string{"api", "authorizer", "result"}),
		Disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portico_disconnects_total", Help: "Closed WebSocket connections.",
		}, []string{"api", "stage"}),
		Messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portico_messages_total", Help: "WebSocket messages by direction (in, out).",
		}, []string{"api", "stage", "route", "direction"}),
		IntegrationLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "portico_integration_duration_seconds",
			Help:    "Integration call latency.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"api", "stage", "route"}),
		IntegrationErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portico_integration_errors_total", Help: "Failed integration calls by kind (timeout, error).",
		}, []string{"api", "stage", "route", "kind"}),
		ManagementRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portico_management_requests_total", Help: "@connections calls by operation and HTTP status.",
		}, []string{"op", "code"}),
		Relayed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portico_relayed_requests_total", Help: "@connections calls answered by the node holding the connection, by operation and HTTP status.",
		}, []string{"op", "code"}),
		RegistryUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "portico_registry_up", Help: "1 while the connection registry answers, 0 during an outage.",
		}),
		RegistryPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "portico_registry_pending_records", Help: "Open connections whose registry record waits to be written again.",
		}),
		Throttled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portico_throttled_total", Help: "Requests refused by a token bucket, by level (gateway, stage, route, usageplan, connection).",
		}, []string{"api", "stage", "level"}),
		ThrottleFallback: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "portico_throttle_fallback", Help: "1 while cluster-wide throttling falls back to local limits divided by the live node count.",
		}),
	}
	s.ChannelDeliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portico_channel_deliveries_total", Help: "Channel messages handed to subscribers' send queues.",
	}, []string{"api"})
	s.ChannelDropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portico_channel_dropped_total", Help: "Channel deliveries dropped on a full send queue, by overflow policy (drop, close).",
	}, []string{"api", "policy"})
	s.HTTPRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portico_http_requests_total", Help: "HTTP and REST API requests by route key and status class.",
	}, []string{"api", "stage", "route", "status_class"})
	s.HTTPLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "portico_http_latency_seconds",
		Help:    "HTTP and REST API request latency, until the answer's headers.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
	}, []string{"api", "stage", "route"})
	s.GCPercent = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "portico_gc_percent", Help: "The Go GC target the gateway set last (gcPercent idle, up to gcPercentMax busy).",
	})
	s.RegistryUp.Set(1)
	aws := s.addAWS()
	if reg != nil {
		reg.MustRegister(aws...)
		reg.MustRegister(s.ConnectionsOpen, s.Connects, s.AuthorizerRequests, s.Disconnects, s.Messages,
			s.IntegrationLatency, s.IntegrationErrors, s.ManagementRequests, s.Relayed, s.RegistryUp, s.RegistryPending,
			s.Throttled, s.ThrottleFallback, s.ChannelDeliveries, s.ChannelDropped, s.HTTPRequests, s.HTTPLatency, s.GCPercent)
	}
	return s
}
