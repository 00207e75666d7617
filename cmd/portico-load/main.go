// Command portico-load drives load against a Portico gateway on this
// machine and reports throughput, latency percentiles and the gateway's
// memory and CPU. Every run is bounded in connections and time, stops by
// itself and targets loopback addresses only.
//
//	portico-load connect --connections 15000 --rate 5000 --duration 30s --sources 127.0.0.2-127.0.0.9 --gateway-pid PID
//	portico-load echo --connections 1000 --depth 4 --duration 10s [--compare-plain 127.0.0.1:8090]
//	portico-load post --connections 1000 --clients 64 --duration 10s --management http://127.0.0.1:9090
//	portico-load http-integration --connections 200 --backend-listen 127.0.0.1:8000 --duration 10s
//	portico-load broadcast --connections 10000 --publishes 200 --publish-rate 20 --message-bytes 100 --duration 30s --management http://127.0.0.1:9090
//	portico-load broadcast-merge gen1.json gen2.json ...   # one run's listener and publisher summaries
//	portico-load plain-echo --listen 127.0.0.1:8090   # reference goroutine-per-connection echo server
//	portico-load backend --listen 127.0.0.1:8000      # the Lambda-proxy backend, as its own process
//	portico-load authorizer --listen 127.0.0.1:8500 --token-file tokens.txt --tokens 5000 --aud bench   # REQUEST/TOKEN authorizer and JWT issuer
//	portico-load connect --connections 5000 --token-file tokens.txt --token-per-connection --token-query token --duration 1s
//	portico-load post --access-key AKID --region us-east-1 --duration 10s   # SigV4, secret in AWS_SECRET_ACCESS_KEY
//	portico-load http-load --target backend=http://127.0.0.1:18100/ --target reverse-proxy=http://127.0.0.1:18101/ --target portico=http://127.0.0.1:18081/x --clients 64 --duration 10s
//	portico-load redis-echo --serve --redis 127.0.0.1:6379 & portico-load redis-echo --redis 127.0.0.1:6379 --rate 2000 --duration 5s
//
// A JSON summary goes to stdout (and to --json FILE), a table to stderr.
// The scenarios live in package loadtest; see loadtest/README.md for the
// kernel settings a large run needs.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/portico-gateway/portico/loadtest"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch cmd := os.Args[1]; cmd {
	case loadtest.Connect, loadtest.Echo, loadtest.Post, loadtest.HTTPIntegration, loadtest.Broadcast:
		err = scenario(ctx, cmd, os.Args[2:])
	case "broadcast-merge":
		err = broadcastMerge(os.Args[2:])
	case "plain-echo":
		err = plainEcho(ctx, os.Args[2:])
	case "backend":
		err = backend(ctx, os.Args[2:])
	case "redis-echo":
		err = redisEcho(ctx, os.Args[2:])
	case "authorizer":
		err = authorizer(ctx, os.Args[2:])
	case "http-load":
		err = httpLoad(ctx, os.Args[2:])
	case "http-backend", "reverse-proxy", "otlp-sink":
		err = httpServer(ctx, cmd, os.Args[2:])
	case "-h", "-help", "--help", "help":
		usage()
	default:
		fmt.Fprintf(os.Stderr, "portico-load: unknown command %q\n", cmd)
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "portico-load:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `usage: portico-load COMMAND [flags]   (portico-load COMMAND -h lists the flags)

scenarios (loopback targets only; every run bounded by --connections and --duration):
  connect           open connections at a rate, hold them idle, report handshake latency and memory
  echo              closed-loop (or --msg-rate) messages on a two-way route, report msgs/s and round trips
  post              @connections POSTs to random connections, report HTTP and delivery latency
  http-integration  echo through an HTTP integration served by the generator, report what the gateway adds
  broadcast         subscribe every connection to a channel, publish to it, report time to the last subscriber
  http-load         keep-alive HTTP clients against one URL (closed loop or --rate), or several compared (--target NAME=URL ...)

servers:
  plain-echo        the reference goroutine-per-connection gorilla/websocket echo server
  backend           the http-integration backend as its own process
  authorizer        a REQUEST/TOKEN authorizer (POST /allow) and a JWT issuer (/jwks, /token) for $connect
  http-backend      a trivial HTTP backend (200 {"ok":true}) for http-load
  reverse-proxy     a bare net/http/httputil.ReverseProxy in front of --target, the reference for http_proxy
  otlp-sink         an OTLP/HTTP collector that discards what it gets (POST /v1/traces), for tracing's cost

other:
  broadcast-merge   combine the summaries (--json) of the generator processes of one broadcast run
  redis-echo        the Redis relay's two hops alone: PUBLISH a request, another process (--serve) PUBLISHes it back
`)
	os.Exit(2)
}

func scenario(ctx context.Context, name string, args []string) error {
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	o := loadtest.Options{Scenario: name}
	fs.StringVar(&o.URL, "url", "ws://127.0.0.1:8080/dev", "WebSocket URL of the stage (loopback only); wss:// for a TLS listener (connect only)")
	fs.StringVar(&o.TLSCAFile, "tls-ca", "", "wss: PEM CA the server's certificate must chain to (default: not verified)")
	fs.StringVar(&o.TLSCertFile, "tls-cert", "", "wss: PEM client certificate, for mutual TLS")
	fs.StringVar(&o.TLSKeyFile, "tls-key", "", "wss: PEM key of --tls-cert")
	sources := fs.String("sources", "", "loopback source addresses, in turn: 127.0.0.2-127.0.0.20,127.0.1.1 (default: the kernel's choice)")
	fs.IntVar(&o.Connections, "connections", 100, "connections to open (at most the open-files limit)")
	fs.Float64Var(&o.Rate, "rate", 0, "connects per second (0: as fast as --concurrency allows)")
	fs.IntVar(&o.Concurrency, "concurrency", 64, "handshakes in flight")
	fs.DurationVar(&o.Duration, "duration", 0, "required: how long to hold the connections (connect) or to send (max 10m)")
	fs.DurationVar(&o.HandshakeTimeout, "handshake-timeout", 10*time.Second, "bound on one TCP connect plus handshake")
	fs.DurationVar(&o.RampTimeout, "ramp-timeout", 2*time.Minute, "bound on opening all the connections")
	fs.DurationVar(&o.Drain, "drain", 3*time.Second, "wait this long for replies in flight and for close answers at the end")
	fs.IntVar(&o.Loops, "loops", 0, "event loops holding the connections (0: GOMAXPROCS)")
	pids := fs.String("gateway-pid", "", "process ids whose RSS and CPU to read before and after, summed (comma-separated)")
	jsonPath := fs.String("json", "", "also write the JSON summary to this file")
	failOnErrors := fs.Bool("fail-on-errors", false, "exit 1 if the run had any problem (failed connect, lost or unexpected message, non-200 post)")
	quiet := fs.Bool("quiet", false, "no status line a second on stderr")
	cpuProfile := fs.String("cpuprofile", "", "write the generator's own CPU profile to this file (go tool pprof)")
	var headers multiFlag
	tokenFile := fs.String("token-file", "", "tokens, one a line (e.g. written by portico-load authorizer --token-file): every connection sends the first, or with --token-per-connection its own line")
	fs.StringVar(&o.Token, "token", "", "token every handshake sends (see --token-query and --header): one shared identity, which an authorizer cache keeps")
	fs.BoolVar(&o.TokenPerConnection, "token-per-connection", false, "a distinct token a connection (--token with \"-<i>\" added, or line i of --token-file), so an authorizer cache misses")
	fs.StringVar(&o.TokenQuery, "token-query", "", "send the token as this query parameter of the handshake URL (e.g. token: ?token=<token>)")
	fs.Var(&headers, "header", "add \"Name: value\" to every handshake; {token} in the value is the connection's token (repeatable), e.g. 'Authorization: Bearer {token}'")
	var secretFile string
	var hold time.Duration
	switch name {
	case loadtest.Connect:
		fs.DurationVar(&hold, "hold", 0, "same as --duration")
		fs.StringVar(&o.ComparePlain, "compare-plain", "", "then repeat the run against a plain echo server started on this address (e.g. 127.0.0.1:8090)")
	case loadtest.Echo, loadtest.HTTPIntegration:
		fs.StringVar(&o.Action, "action", "echo", "route of the messages: {\"action\":ACTION,\"data\":\"<seq>-<send time>\"}")
		fs.IntVar(&o.Depth, "depth", 1, "messages in flight per connection (closed loop)")
		fs.Float64Var(&o.MsgRate, "msg-rate", 0, "send this many messages a second in total instead (open loop)")
		fs.IntVar(&o.MessageBytes, "message-bytes", 0, "pad each message's data to about this many bytes")
		if name == loadtest.Echo {
			fs.StringVar(&o.Expect, "expect", "auto", "what a reply holds: data (the data field, as a mock route answers), raw (the whole message, as a plain echo server answers) or auto (either)")
			fs.StringVar(&o.ComparePlain, "compare-plain", "", "then repeat the run against a plain echo server started on this address (e.g. 127.0.0.1:8090)")
		} else {
			fs.StringVar(&o.BackendListen, "backend-listen", "127.0.0.1:8000", "where the generator serves the Lambda-proxy backend the route must call")
			fs.StringVar(&o.Backend, "backend", "", "use this already running backend (portico-load backend) instead of serving one")
			fs.IntVar(&o.DirectClients, "direct-clients", 2, "clients calling the backend directly during the run, the reference the gateway is compared with")
			fs.Float64Var(&o.DirectRate, "direct-rate", 0, "calls/s of the direct clients in all (0: a tenth of --msg-rate in an open loop, unpaced in a closed loop; -1: unpaced)")
			fs.DurationVar(&o.DirectAfter, "direct-after", 0, "also call the backend directly this long afterwards, alone, at the run's concurrency (0: no)")
		}
	case loadtest.Post:
		fs.StringVar(&o.Management, "management", "http://127.0.0.1:9090", "management listener; /STAGE is added unless the URL has a path")
		fs.StringVar(&o.Stage, "stage", "", "stage for --management (default: the first path segment of --url)")
		fs.IntVar(&o.Clients, "clients", 64, "concurrent keep-alive HTTP clients")
		fs.Float64Var(&o.PostRate, "post-rate", 0, "pace the clients to this many posts a second in total (0: as fast as answered)")
		fs.StringVar(&o.Whoami, "whoami", "whoami", "action whose reply is {\"connectionId\":\"...\"}")
		fs.IntVar(&o.MessageBytes, "message-bytes", 0, "pad each posted body to about this many bytes")
		fs.StringVar(&o.AccessKey, "access-key", "", "sign every POST with SigV4 (execute-api) with this access key id, as the AWS SDKs do (for management.auth: iam)")
		fs.StringVar(&o.SecretKey, "secret-key", "", "the key's secret (default: $AWS_SECRET_ACCESS_KEY; prefer the environment or --secret-key-file: a command line is visible to every user); never written to the summary")
		fs.StringVar(&secretFile, "secret-key-file", "", "read the key's secret from this file (its first line)")
		fs.StringVar(&o.Region, "region", "us-east-1", "SigV4 signing region: the gateway's management.region")
	case loadtest.Broadcast:
		fs.StringVar(&o.Management, "management", "http://127.0.0.1:9090", "management listener; /STAGE is added unless the URL has a path")
		fs.StringVar(&o.Stage, "stage", "", "stage for --management (default: the first path segment of --url)")
		fs.StringVar(&o.Action, "action", "subscribe", "route that subscribes: {\"action\":ACTION,\"channel\":CHANNEL}, answered by the route")
		fs.StringVar(&o.Channel, "channel", "bench", "channel to subscribe to and publish to")
		fs.IntVar(&o.Publishes, "publishes", 100, fmt.Sprintf("messages to publish (or, with --publish=false, to expect); at most %d", loadtest.MaxPublishes))
		fs.Float64Var(&o.PublishRate, "publish-rate", 0, "publishes a second (0: each as soon as the previous one is answered)")
		fs.BoolVar(&o.Publish, "publish", true, "publish (false: only listen, for the other generator processes of a run)")
		fs.IntVar(&o.WaitMembers, "wait-members", 0, "before publishing, wait until the channel has this many members (all processes' subscribers)")
		fs.IntVar(&o.MessageBytes, "message-bytes", 0, "pad each published body to about this many bytes")
	}
	_ = fs.Parse(args)
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (flags start with --)", fs.Arg(0))
	}
	if o.Duration == 0 {
		o.Duration = hold
	}
	var err error
	if o.Sources, err = loadtest.ParseSources(*sources); err != nil {
		return err
	}
	if o.GatewayPIDs, err = loadtest.ParsePIDs(*pids); err != nil {
		return err
	}
	o.Headers = headers
	if *tokenFile != "" {
		if o.Tokens, err = loadtest.ReadTokenFile(*tokenFile); err != nil {
			return err
		}
	}
	if o.AccessKey != "" && o.SecretKey == "" {
		if secretFile != "" {
			b, err := os.ReadFile(secretFile)
			if err != nil {
				return fmt.Errorf("--secret-key-file: %w", err)
			}
			o.SecretKey, _, _ = strings.Cut(strings.TrimSpace(string(b)), "\n")
		} else {
			o.SecretKey = os.Getenv("AWS_SECRET_ACCESS_KEY")
		}
	}
	if o.AccessKey == "" {
		o.Region = ""
	}
	o.Args = redactArgs(os.Args, "secret-key")
	o.Flags = map[string]string{}
	fs.VisitAll(func(f *flag.Flag) { o.Flags[f.Name] = f.Value.String() })
	if o.Flags["secret-key"] != "" {
		o.Flags["secret-key"] = redacted
	}
	o.Log = os.Stderr
	if !*quiet {
		o.Progress = os.Stderr
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	sum, err := loadtest.Run(ctx, o)
	if err != nil && sum == nil {
		return err
	}
	out, _ := json.MarshalIndent(sum, "", "  ")
	out = append(out, '\n')
	_, _ = os.Stdout.Write(out)
	if *jsonPath != "" {
		if werr := os.WriteFile(*jsonPath, out, 0o644); werr != nil {
			return werr
		}
	}
	loadtest.PrintTable(os.Stderr, sum)
	if err != nil {
		return err
	}
	if *failOnErrors && sum.Failed() {
		return errors.New("the run had problems (see \"problems\" in the summary)")
	}
	return nil
}

// broadcastMerge prints the combination of broadcast summaries.
func broadcastMerge(files []string) error {
	if len(files) == 0 {
		return errors.New("broadcast-merge: give the --json summaries of one run's generator processes")
	}
	var sums []*loadtest.Summary
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var s loadtest.Summary
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		sums = append(sums, &s)
	}
	m, err := loadtest.MergeBroadcast(sums)
	if err != nil {
		return err
	}
	out, _ := json.MarshalIndent(m, "", "  ")
	fmt.Println(string(out))
	return nil
}

// plainEcho serves the reference echo server until --duration passes.
func plainEcho(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("plain-echo", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:8090", "loopback address to listen on")
	maxConns := fs.Int("max-connections", 20000, "connections served at once (503 beyond)")
	duration := fs.Duration("duration", 10*time.Minute, "stop after this long (max 1h)")
	_ = fs.Parse(args)
	if _, err := loadtest.RaiseFileLimit(); err != nil {
		return err
	}
	return loadtest.ServePlainEcho(ctx, *listen, *maxConns, *duration, func(a net.Addr) {
		fmt.Fprintf(os.Stderr, "plain-echo: ws://%s/ (stops in %v)\n", a, *duration)
	})
}

// backend serves the http-integration backend until --duration passes.
func backend(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("backend", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:8000", "loopback address to listen on")
	duration := fs.Duration("duration", 10*time.Minute, "stop after this long (max 1h)")
	_ = fs.Parse(args)
	if *duration <= 0 || *duration > time.Hour {
		return errors.New("backend: --duration must be between 1s and 1h (it stops by itself)")
	}
	if _, err := loadtest.RaiseFileLimit(); err != nil {
		return err
	}
	b := &loadtest.Backend{}
	s, err := loadtest.StartServer(*listen, b)
	if err != nil {
		return fmt.Errorf("backend: %w", err)
	}
	fmt.Fprintf(os.Stderr, "backend: Lambda-proxy events on %s (stops in %v)\n", s.URL, *duration)
	select {
	case <-ctx.Done():
	case <-time.After(*duration):
	}
	s.Close()
	fmt.Fprintf(os.Stderr, "backend: served %d events\n", b.Calls())
	return nil
}

// redisEcho runs either side of the redis-echo pair (loadtest.RedisEcho).
func redisEcho(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("redis-echo", flag.ExitOnError)
	addr := fs.String("redis", "127.0.0.1:6379", "loopback address of the Redis server")
	prefix := fs.String("prefix", "portico-load:", "channel prefix")
	serve := fs.Bool("serve", false, "answer requests (the owner node's part) instead of sending them")
	rate := fs.Float64("rate", 2000, "requests a second, one in flight at a time")
	duration := fs.Duration("duration", 0, "required: how long to send (max 10m), or to serve (max 1h)")
	_ = fs.Parse(args)
	if *serve {
		return loadtest.ServeRedisEcho(ctx, *addr, *prefix, *duration, func() {
			fmt.Fprintf(os.Stderr, "redis-echo: answering on %s (stops in %v)\n", *addr, *duration)
		})
	}
	lat, err := loadtest.RedisEcho(ctx, *addr, *prefix, *rate, *duration)
	if lat.Count > 0 {
		out, _ := json.Marshal(map[string]any{"redisEcho": lat, "rate": *rate, "perSecond": float64(lat.Count) / duration.Seconds()})
		fmt.Println(string(out))
	}
	return err
}

// redacted stands for a secret in the summary.
const redacted = "(redacted)"

// redactArgs returns args with the value of the flag name replaced, in
// both forms "--name value" and "--name=value" (one or two dashes).
func redactArgs(args []string, name string) []string {
	out := append([]string(nil), args...)
	for i := 0; i < len(out); i++ {
		a := strings.TrimLeft(out[i], "-")
		if len(a) == len(out[i]) {
			continue
		}
		dashes := out[i][:len(out[i])-len(a)]
		switch {
		case a == name && i+1 < len(out):
			out[i+1] = redacted
			i++
		case strings.HasPrefix(a, name+"="):
			out[i] = dashes + name + "=" + redacted
		}
	}
	return out
}

// multiFlag is a flag that may be given several times.
type multiFlag []string

func (m *multiFlag) String() string { return strings.Join(*m, "; ") }

func (m *multiFlag) Set(v string) error {
	if _, _, err := loadtest.ParseHeader(v); err != nil {
		return err
	}
	*m = append(*m, v)
	return nil
}

// authorizer serves loadtest.AuthServer until --duration passes.
func authorizer(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("authorizer", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:8500", "loopback address to listen on; the issuer is http://ADDR")
	duration := fs.Duration("duration", 10*time.Minute, "stop after this long (max 1h)")
	tokenFile := fs.String("token-file", "", "once listening, write --tokens JWTs of the issuer here, one a line (for portico-load --token-file)")
	tokens := fs.Int("tokens", 1, "tokens to write to --token-file: 1 (sub --sub) or more (sub --sub-0, --sub-1, ...), at most 100000")
	sub := fs.String("sub", "portico-load", "sub of the tokens written to --token-file")
	aud := fs.String("aud", "", "aud of the tokens written to --token-file: the audience of the gateway's jwt authorizer")
	ttl := fs.Duration("token-ttl", time.Hour, "lifetime of minted tokens (max 24h)")
	_ = fs.Parse(args)
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (flags start with --)", fs.Arg(0))
	}
	a, err := loadtest.NewAuthServer(*ttl)
	if err != nil {
		return fmt.Errorf("authorizer: %w", err)
	}
	err = loadtest.ServeAuthorizer(ctx, a, *listen, *duration, *tokenFile, *sub, *aud, *tokens, func(issuer string) {
		fmt.Fprintf(os.Stderr, "authorizer: POST %s/allow (REQUEST and TOKEN), issuer %s (jwks %s/jwks, GET %s/token?sub=&aud=); stops in %v\n",
			issuer, issuer, issuer, issuer, *duration)
		if *tokenFile != "" {
			fmt.Fprintf(os.Stderr, "authorizer: %d tokens for aud %q in %s\n", *tokens, *aud, *tokenFile)
		}
	})
	c := a.Counts()
	fmt.Fprintf(os.Stderr, "authorizer: %d authorizer calls (%d allowed, %d refused), %d tokens minted, %d key sets served\n",
		c.Calls, c.Allowed, c.Refused, c.Minted, c.JWKS)
	return err
}
