// Package loadtest is Portico's load generator: it opens and holds many
// WebSocket connections from loopback source addresses and drives four
// scenarios against a gateway on the same machine:
//
//   - connect: open N connections at a rate, hold them idle, report the
//     connect rate, handshake latency and the gateway's memory per
//     connection;
//   - echo: closed-loop (or fixed-rate) messages on a two-way route,
//     reporting messages per second and round-trip latency;
//   - post: @connections POSTs to random connections, reporting the HTTP
//     latency and the delivery latency measured at the receiving socket;
//   - http-integration: echo through a route whose integration is a
//     Lambda-proxy-style backend the generator serves itself, reporting
//     the latency the gateway adds over calling that backend directly;
//   - broadcast: every connection subscribes to one channel, the
//     generator publishes to it through the management API, reporting
//     per publish the time until the last subscriber has it, deliveries
//     per second and the gateway's memory per subscription.
//
// Each handshake may carry an identity for a $connect authorizer (a
// token in the query or in headers, shared or one a connection), and
// post may sign its calls with SigV4; AuthServer is the authorizer and
// JWT issuer such runs use (portico-load authorizer).
//
// The connections live in a wsclient.Pool: raw sockets on a few epoll
// event loops, no goroutine per connection, so one generator process can
// hold as many connections as one gateway process. cmd/portico-load is
// the command line; README.md explains how to run large tests.
package loadtest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Scenario names.
const (
	Connect         = "connect"
	Echo            = "echo"
	Post            = "post"
	HTTPIntegration = "http-integration"
	Broadcast       = "broadcast"
)

// MaxPublishes caps --publishes (the generator keeps counters per
// publish and subscriber shard).
const MaxPublishes = 100_000

// MaxMergeable is the most publishes whose times a broadcast summary
// lists one by one, for MergeBroadcast.
const MaxMergeable = 20_000

// MaxDuration caps every phase of a run but the ramp.
const MaxDuration = 10 * time.Minute

// MaxRamp caps --ramp-timeout: a million connections on two shared cores
// take more than ten minutes to open.
const MaxRamp = 30 * time.Minute

// Options configure a run. Run fills in defaults for zero fields; the
// run is bounded by Connections and Duration and targets loopback only.
type Options struct {
	Scenario string // Connect, Echo, Post, HTTPIntegration or Broadcast

	// URL is the WebSocket URL of the stage, e.g. ws://127.0.0.1:8080/dev,
	// or wss:// (scenario connect only) for a TLS listener.
	URL string
	// TLSCAFile is the PEM CA the wss:// server's certificate must chain
	// to; "": the certificate is not verified (loopback only anyway).
	TLSCAFile string
	// TLSCertFile and TLSKeyFile are the client certificate presented to
	// a listener with mutual TLS. Default: none.
	TLSCertFile, TLSKeyFile string
	// Sources are the loopback addresses connections come from, used in
	// turn (none: the kernel picks 127.0.0.1).
	Sources []net.IP
	// Connections is how many connections to open.
	Connections int
	// Rate is connects per second (0: as fast as Concurrency allows).
	Rate float64
	// Concurrency bounds handshakes in flight. Default 64.
	Concurrency int
	// HandshakeTimeout bounds one TCP connect plus handshake. Default 10s.
	HandshakeTimeout time.Duration
	// RampTimeout bounds opening all the connections. Default 2m.
	RampTimeout time.Duration
	// Duration is how long to hold the connections (connect) or to send
	// (the others). Required; at most MaxDuration.
	Duration time.Duration
	// Drain is how long to wait for replies still in flight once sending
	// stops, and for the server's answers to our close frames. Default 3s.
	Drain time.Duration
	// Loops is the number of event loops. Default GOMAXPROCS.
	Loops int

	// Action is the route of echo messages ({"action":Action,...}).
	// Default "echo".
	Action string
	// Expect says what a reply holds: "data" (the message's data field,
	// as the echo example's mock route answers), "raw" (the whole
	// message, as a plain echo server answers) or "auto" (either).
	// Default "auto".
	Expect string
	// Depth is the messages in flight per connection (closed loop).
	// Default 1.
	Depth int
	// MsgRate, when set, sends at this total rate instead (open loop),
	// spread over the connections in turn.
	MsgRate float64
	// MessageBytes pads each message's data to about this size.
	MessageBytes int

	// Management is the management listener, e.g. http://127.0.0.1:9090
	// (post). When it has no path, "/{stage}" is added.
	Management string
	// Stage for Management. Default: the first segment of URL's path.
	Stage string
	// Clients is the number of concurrent keep-alive HTTP clients (post).
	// Default 64.
	Clients int
	// PostRate, when set, paces the clients to this many posts a second
	// in total, to measure latency below saturation (post). 0: each client
	// posts as soon as its previous post is answered.
	PostRate float64
	// Whoami is the action answering {"connectionId":"..."} (post).
	// Default "whoami".
	Whoami string

	// Channel is the channel of broadcast. Default "bench".
	Channel string
	// Publishes is how many messages broadcast publishes (or, with
	// Publish off, expects). Default 100.
	Publishes int
	// PublishRate paces the publishes (per second; 0: each as soon as
	// the previous one is answered).
	PublishRate float64
	// Publish makes this process the publisher of broadcast; a process
	// without it only listens (several processes hold the subscribers).
	Publish bool
	// WaitMembers, when set, makes the publisher wait until the channel
	// has this many members (the other processes' subscribers too).
	WaitMembers int

	// BackendListen is where the in-process backend listens
	// (http-integration). Default 127.0.0.1:8000.
	BackendListen string
	// Backend, when set, is an already running backend to time directly
	// instead of starting one.
	Backend string
	// DirectClients call the backend directly while the gateway phase
	// runs, so both are timed under the same load. Default 2.
	DirectClients int
	// DirectRate paces those calls, in calls per second for all the
	// clients together. Default: a tenth of MsgRate in an open loop (the
	// backend is sampled under the gateway's load without saturating the
	// machine the fixed rate is meant to leave unsaturated), unpaced in a
	// closed loop; negative: unpaced in both.
	DirectRate float64
	// DirectAfter, when set, also calls the backend directly for this
	// long after the gateway phase, alone, with as many clients as there
	// were messages in flight (at most 1024).
	DirectAfter time.Duration

	// Token is sent by every handshake (see TokenQuery and Headers), for
	// a gateway whose $connect has an authorizer: one shared token, whose
	// authorizer answer a gateway caches ("cached").
	Token string
	// Tokens (--token-file) replace Token: connection i sends Tokens[0],
	// or with TokenPerConnection Tokens[i] (the file must hold one a
	// connection), e.g. JWTs minted by portico-load authorizer.
	Tokens []string
	// TokenPerConnection gives each connection its own token, so that an
	// authorizer's cache misses ("uncached"): Token + "-<i>", or line i
	// of the token file.
	TokenPerConnection bool
	// TokenQuery names the query parameter the token goes in
	// (?TokenQuery=<token>); "": none.
	TokenQuery string
	// Headers are added to every handshake, "Name: value"; "{token}" in a
	// value is replaced by the connection's token, e.g.
	// "Authorization: Bearer {token}".
	Headers []string

	// AccessKey and SecretKey, when set, sign every POST with AWS
	// Signature Version 4 for execute-api in Region (default us-east-1),
	// as the AWS SDKs sign @connections calls (post).
	AccessKey, SecretKey, Region string

	// GatewayPIDs are processes whose memory and CPU are read before and
	// after (summed).
	GatewayPIDs []int
	// ComparePlain, when set (connect and echo), repeats the run against
	// a plain goroutine-per-connection echo server started on this
	// address as a child process (see StartPlainEchoProcess).
	ComparePlain string

	// Log receives notices, such as the address of the backend the
	// gateway must call (nil: none).
	Log io.Writer
	// Progress receives a status line a second while the run goes (nil:
	// none).
	Progress io.Writer
	// Args and Flags are recorded in the summary as given.
	Args  []string
	Flags map[string]string
}

// withDefaults returns o with zero fields set to their defaults.
func (o Options) withDefaults() Options {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&o.HandshakeTimeout, 10*time.Second)
	def(&o.RampTimeout, 2*time.Minute)
	def(&o.Drain, 3*time.Second)
	if o.Concurrency == 0 {
		o.Concurrency = 64
	}
	if o.Action == "" && o.Scenario == Broadcast {
		o.Action = "subscribe"
	}
	if o.Action == "" {
		o.Action = "echo"
	}
	if o.Channel == "" {
		o.Channel = "bench"
	}
	if o.Publishes == 0 {
		o.Publishes = 100
	}
	if o.Expect == "" {
		o.Expect = "auto"
	}
	if o.Depth == 0 {
		o.Depth = 1
	}
	if o.Clients == 0 {
		o.Clients = 64
	}
	if o.Whoami == "" {
		o.Whoami = "whoami"
	}
	if o.BackendListen == "" {
		o.BackendListen = "127.0.0.1:8000"
	}
	if o.DirectClients == 0 {
		o.DirectClients = 2
	}
	if o.DirectRate == 0 && o.MsgRate > 0 {
		o.DirectRate = o.MsgRate / 10
	}
	if o.AccessKey != "" && o.Region == "" {
		o.Region = "us-east-1"
	}
	if o.Stage == "" {
		if u, err := url.Parse(o.URL); err == nil {
			o.Stage, _, _ = strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
		}
	}
	return o
}

// Validate refuses anything but a bounded run against loopback addresses.
func (o *Options) Validate() error {
	switch o.Scenario {
	case Connect, Echo, Post, HTTPIntegration, Broadcast:
	default:
		return fmt.Errorf("unknown scenario %q (want connect, echo, post, http-integration or broadcast)", o.Scenario)
	}
	u, err := url.Parse(o.URL)
	if err != nil || u.Host == "" {
		return fmt.Errorf("--url %q: want ws://127.0.0.1:PORT/STAGE", o.URL)
	}
	switch {
	case u.Scheme == "wss" && o.Scenario != Connect:
		return fmt.Errorf("--url %q: wss:// is for the connect scenario only (the other scenarios hold raw sockets)", o.URL)
	case u.Scheme != "ws" && u.Scheme != "wss":
		return fmt.Errorf("--url %q: want ws:// or wss://", o.URL)
	case (o.TLSCertFile == "") != (o.TLSKeyFile == ""):
		return errors.New("--tls-cert and --tls-key go together")
	}
	if err := CheckLoopbackHost(u.Hostname()); err != nil {
		return fmt.Errorf("--url: %w", err)
	}
	for _, s := range o.Sources {
		if !s.IsLoopback() {
			return fmt.Errorf("--sources: %s is not a loopback address: load tests stay on this machine", s)
		}
	}
	if o.Connections < 1 || o.Connections > 1_000_000 {
		return fmt.Errorf("--connections %d: want 1 to 1000000", o.Connections)
	}
	if o.Duration <= 0 {
		return errors.New("--duration is required (how long to hold or to send, e.g. 10s)")
	}
	if o.RampTimeout < 0 || o.RampTimeout > MaxRamp {
		return fmt.Errorf("--ramp-timeout %v: want at most %v", o.RampTimeout, MaxRamp)
	}
	for name, d := range map[string]time.Duration{"--duration": o.Duration,
		"--direct-after": o.DirectAfter, "--drain": o.Drain, "--handshake-timeout": o.HandshakeTimeout} {
		if d < 0 || d > MaxDuration {
			return fmt.Errorf("%s %v: want at most %v", name, d, MaxDuration)
		}
	}
	switch {
	case o.Rate < 0 || o.MsgRate < 0 || o.PostRate < 0:
		return errors.New("--rate, --msg-rate and --post-rate must not be negative")
	case o.Concurrency < 1 || o.Concurrency > 10000:
		return fmt.Errorf("--concurrency %d: want 1 to 10000", o.Concurrency)
	case o.Depth < 1 || o.Depth > 1024:
		return fmt.Errorf("--depth %d: want 1 to 1024", o.Depth)
	case o.Clients < 1 || o.Clients > 4096:
		return fmt.Errorf("--clients %d: want 1 to 4096", o.Clients)
	case o.DirectClients < 1 || o.DirectClients > 1024:
		return fmt.Errorf("--direct-clients %d: want 1 to 1024", o.DirectClients)
	case o.MessageBytes < 0 || o.MessageBytes > 1<<20:
		return fmt.Errorf("--message-bytes %d: want 0 to 1048576", o.MessageBytes)
	case o.Expect != "data" && o.Expect != "raw" && o.Expect != "auto":
		return fmt.Errorf("--expect %q: want data, raw or auto", o.Expect)
	case strings.ContainsAny(o.Action+o.Whoami+o.Channel, `"\`):
		return errors.New("--action, --whoami and --channel must not hold quotes or backslashes")
	case o.Publishes < 1 || o.Publishes > MaxPublishes:
		return fmt.Errorf("--publishes %d: want 1 to %d", o.Publishes, MaxPublishes)
	case o.PublishRate < 0 || o.WaitMembers < 0:
		return errors.New("--publish-rate and --wait-members must not be negative")
	}
	if o.Scenario == Post || o.Scenario == Broadcast {
		m, err := url.Parse(o.Management)
		if err != nil || m.Host == "" || m.Scheme != "http" {
			return fmt.Errorf("--management %q: want http://127.0.0.1:PORT", o.Management)
		}
		if err := CheckLoopbackHost(m.Hostname()); err != nil {
			return fmt.Errorf("--management: %w", err)
		}
		if (m.Path == "" || m.Path == "/") && o.Stage == "" {
			return errors.New("--stage is required when neither --url nor --management names one")
		}
	}
	if o.Scenario == HTTPIntegration {
		if o.Backend != "" {
			b, err := url.Parse(o.Backend)
			if err != nil || b.Scheme != "http" {
				return fmt.Errorf("--backend %q: want http://127.0.0.1:PORT/", o.Backend)
			}
			if err := CheckLoopbackHost(b.Hostname()); err != nil {
				return fmt.Errorf("--backend: %w", err)
			}
		} else if err := CheckLoopbackAddr(o.BackendListen); err != nil {
			return fmt.Errorf("--backend-listen: %w", err)
		}
	}
	if _, err := o.newIdentity(u); err != nil {
		return err
	}
	if o.AccessKey != "" || o.SecretKey != "" {
		if o.Scenario != Post {
			return errors.New("--access-key and --secret-key sign @connections calls: post only")
		}
		if o.AccessKey == "" || o.SecretKey == "" {
			return errors.New("SigV4 signing needs both --access-key and --secret-key (or AWS_SECRET_ACCESS_KEY)")
		}
	}
	if o.ComparePlain != "" {
		if o.Scenario != Connect && o.Scenario != Echo {
			return errors.New("--compare-plain applies to the connect and echo scenarios")
		}
		if err := CheckLoopbackAddr(o.ComparePlain); err != nil {
			return fmt.Errorf("--compare-plain: %w", err)
		}
	}
	return nil
}

// managementURL is the stage URL of @connections, without a trailing slash.
func (o *Options) managementURL() string {
	m := strings.TrimSuffix(o.Management, "/")
	if u, err := url.Parse(m); err == nil && u.Path == "" {
		return m + "/" + o.Stage
	}
	return m
}

// CheckLoopbackHost accepts a loopback IP address. Host names are
// refused rather than resolved, so that what is checked is what is
// dialled.
func CheckLoopbackHost(host string) error {
	ip := net.ParseIP(host)
	if ip == nil {
		return fmt.Errorf("%q: give a loopback IP address such as 127.0.0.1 (host names are not resolved)", host)
	}
	if !ip.IsLoopback() {
		return fmt.Errorf("%q is not a loopback address (127.0.0.0/8 or ::1): load tests stay on this machine", host)
	}
	return nil
}

// CheckLoopbackAddr accepts host:port with a loopback host.
func CheckLoopbackAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: want 127.0.0.1:PORT", addr)
	}
	return CheckLoopbackHost(host)
}

// ParseSources reads a list of loopback source addresses:
// "127.0.0.2-127.0.0.20,127.0.1.1,::1". A range runs over IPv4
// addresses in order and may cross /24 boundaries (at most 65,536).
func ParseSources(s string) ([]net.IP, error) {
	var out []net.IP
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a := net.ParseIP(strings.TrimSpace(lo))
		if a == nil {
			return nil, fmt.Errorf("--sources %q: %q is not an IP address", part, lo)
		}
		if !isRange {
			if !a.IsLoopback() {
				return nil, fmt.Errorf("--sources: %s is not a loopback address: load tests stay on this machine", a)
			}
			out = append(out, a)
			continue
		}
		b := net.ParseIP(strings.TrimSpace(hi))
		if a.To4() == nil || b == nil || b.To4() == nil {
			return nil, fmt.Errorf("--sources %q: want an IPv4 range such as 127.0.0.2-127.0.0.20", part)
		}
		from, to := binary.BigEndian.Uint32(a.To4()), binary.BigEndian.Uint32(b.To4())
		if from > to || to-from >= 1<<16 {
			return nil, fmt.Errorf("--sources %q: want a rising range of at most 65536 addresses", part)
		}
		for v := from; ; v++ {
			ip := make(net.IP, 4)
			binary.BigEndian.PutUint32(ip, v)
			if !ip.IsLoopback() {
				return nil, fmt.Errorf("--sources: %s is not a loopback address: load tests stay on this machine", ip)
			}
			out = append(out, ip)
			if v == to {
				break
			}
		}
	}
	return out, nil
}

// ParsePIDs reads "123,456".
func ParsePIDs(s string) ([]int, error) {
	var out []int
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("--gateway-pid %q: want process ids separated by commas", p)
		}
		out = append(out, n)
	}
	return out, nil
}
