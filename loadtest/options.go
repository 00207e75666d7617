package loadtest

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"
)

// Options configure a run. Every run is bounded by Connections and
// Duration (or Hold) and targets loopback addresses only.
type Options struct {
	Scenario    string        // connect, echo, post, http-integration
	URL         string        // WebSocket URL, e.g. ws://127.0.0.1:8080/dev
	Management  string        // @connections stage URL, e.g. http://127.0.0.1:9090/dev (post)
	Sources     []net.IP      // loopback source addresses, used round-robin
	Connections int           // connections to open
	Rate        int           // connects per second (0: as fast as possible)
	Concurrency int           // handshakes in flight (0: 256)
	Hold        time.Duration // connect: how long to hold the connections idle
	Duration    time.Duration // echo, post, http-integration: how long to send
	Depth       int           // echo: messages in flight per connection (0: 1), closed loop
	MsgRate     int           // echo: open loop instead: this many messages per second in all, spread over the connections
	Clients     int           // post: concurrent HTTP clients (0: 64)
	Action      string        // echo: route action (0: "echo")
	Expect      string        // echo: "data" (the reply is the data field) or "raw" (the whole message)
	Whoami      string        // post: action answering {"connectionId":...} (0: "whoami")
	Loops       int           // event loops (0: GOMAXPROCS)
	GatewayPIDs []int         // processes whose RSS and CPU are reported
	BackendURL  string        // http-integration: the backend the gateway calls, to time it directly
}

// Summary is a run's result, printed as JSON.
type Summary struct {
	Scenario    string         `json:"scenario"`
	Date        string         `json:"date"`
	Machine     MachineInfo    `json:"machine"`
	Args        []string       `json:"args,omitempty"`
	Connections int            `json:"connections"`
	Connected   int            `json:"connected"`
	Failures    map[string]int `json:"failures"`
	ConnectRate float64        `json:"connectsPerSecond"`
	Handshake   Latency        `json:"handshakeLatency"`
	Messages    int64          `json:"messages,omitempty"`
	PerSecond   float64        `json:"messagesPerSecond,omitempty"`
	RoundTrip   *Latency       `json:"roundTrip,omitempty"`
	PostHTTP    *Latency       `json:"postHTTPLatency,omitempty"`
	Delivery    *Latency       `json:"deliveryLatency,omitempty"`
	Direct      *Latency       `json:"directBackendRoundTrip,omitempty"`
	Statuses    map[string]int `json:"httpStatuses,omitempty"`
	Dropped     int64          `json:"droppedByServer"`
	Before      *ProcStats     `json:"gatewayBefore,omitempty"`
	After       *ProcStats     `json:"gatewayAfter,omitempty"`
	BytesPerCon float64        `json:"gatewayBytesPerConnection,omitempty"`
	CPUSeconds  float64        `json:"gatewayCPUSeconds,omitempty"`
	Errors      int            `json:"errors"`
}

// Latency holds percentiles in milliseconds.
type Latency struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50ms"`
	P90   float64 `json:"p90ms"`
	P99   float64 `json:"p99ms"`
	P999  float64 `json:"p999ms"`
	Max   float64 `json:"maxms"`
}

// Validate refuses anything but a bounded run against loopback.
func (o *Options) Validate() error {
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") {
		return fmt.Errorf("--url %q: want ws://127.0.0.1:PORT/STAGE", o.URL)
	}
	if err := loopback(u.Hostname()); err != nil {
		return fmt.Errorf("--url: %w", err)
	}
	for _, s := range o.Sources {
		if !s.IsLoopback() {
			return fmt.Errorf("--sources: %s is not a loopback address", s)
		}
	}
	if o.Management != "" {
		m, err := url.Parse(o.Management)
		if err != nil {
			return fmt.Errorf("--management: %w", err)
		}
		if err := loopback(m.Hostname()); err != nil {
			return fmt.Errorf("--management: %w", err)
		}
	}
	if o.Connections <= 0 || o.Connections > 1_000_000 {
		return errors.New("--connections: want 1 to 1000000")
	}
	limit := 10 * time.Minute
	if o.Hold > limit || o.Duration > limit {
		return fmt.Errorf("--hold and --duration are capped at %v", limit)
	}
	return nil
}

func loopback(host string) error {
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%q is not a loopback address: load tests target this machine only", host)
	}
	return nil
}
