// Command portico-load drives load against a Portico gateway on this
// machine and reports throughput, latency percentiles and the gateway's
// memory and CPU. Every run is bounded in connections and time and
// targets loopback addresses only.
//
//	portico-load connect --url ws://127.0.0.1:8080/dev --connections 15000 --rate 5000 --hold 30s --gateway-pid PID
//	portico-load echo    --url ws://127.0.0.1:8080/dev --connections 10000 --duration 10s
//	portico-load post    --url ws://127.0.0.1:8080/dev --management http://127.0.0.1:9090/dev --connections 1000 --clients 64 --duration 10s
//	portico-load http-integration --url ws://127.0.0.1:8080/dev --backend http://127.0.0.1:8000/ --duration 10s
//	portico-load plain-echo --listen 127.0.0.1:8090   # reference goroutine-per-connection gorilla echo server
//	portico-load backend    --listen 127.0.0.1:8000   # Lambda-proxy-style echo backend for http-integration
//
// See loadtest/README.md for the kernel settings a large run needs.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"github.com/tidwall/gjson"

	"github.com/portico-gateway/portico/loadtest"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch cmd := os.Args[1]; cmd {
	case "connect", "echo", "post", "http-integration":
		err = runScenario(cmd, os.Args[2:])
	case "plain-echo":
		err = plainEcho(os.Args[2:])
	case "backend":
		err = backend(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "portico-load:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: portico-load connect|echo|post|http-integration|plain-echo|backend [flags]  (-h for flags)")
	os.Exit(2)
}

func runScenario(name string, args []string) error {
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	var o loadtest.Options
	o.Scenario = name
	fs.StringVar(&o.URL, "url", "ws://127.0.0.1:8080/dev", "WebSocket URL of the gateway stage")
	fs.StringVar(&o.Management, "management", "http://127.0.0.1:9090/dev", "@connections stage URL (post)")
	sources := fs.String("sources", "", "loopback source addresses, e.g. 127.0.0.2-127.0.0.20,127.0.1.1 (default: kernel's choice)")
	fs.IntVar(&o.Connections, "connections", 100, "connections to open")
	fs.IntVar(&o.Rate, "rate", 0, "connects per second (0: as fast as the handshakes go)")
	fs.IntVar(&o.Concurrency, "concurrency", 256, "handshakes in flight")
	fs.DurationVar(&o.Hold, "hold", 10*time.Second, "connect: how long to hold the connections idle (max 10m)")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "echo/post/http-integration: how long to send (max 10m)")
	fs.IntVar(&o.Depth, "depth", 1, "echo: messages in flight per connection (closed loop)")
	fs.IntVar(&o.MsgRate, "msg-rate", 0, "echo: open loop at this many messages per second in all (0: closed loop)")
	fs.IntVar(&o.Clients, "clients", 64, "post: concurrent keep-alive HTTP clients")
	fs.StringVar(&o.Action, "action", "echo", "echo: the route's action")
	fs.StringVar(&o.Whoami, "whoami", "whoami", "post: the action answering {\"connectionId\":...}")
	fs.StringVar(&o.BackendURL, "backend", "", "http-integration: the backend URL, timed directly for comparison")
	fs.IntVar(&o.Loops, "loops", 0, "event loops (0: GOMAXPROCS)")
	pids := fs.String("gateway-pid", "", "gateway process ids (comma-separated) whose RSS and CPU to report")
	jsonOut := fs.String("json", "", "also write the JSON summary to this file")
	failOnErrors := fs.Bool("fail-on-errors", false, "exit 1 if any connection failed or any message was lost")
	_ = fs.Parse(args)

	var err error
	if o.Sources, err = parseSources(*sources); err != nil {
		return err
	}
	for _, p := range strings.Split(*pids, ",") {
		if p = strings.TrimSpace(p); p != "" {
			n, err := strconv.Atoi(p)
			if err != nil {
				return fmt.Errorf("--gateway-pid %q: %w", p, err)
			}
			o.GatewayPIDs = append(o.GatewayPIDs, n)
		}
	}
	limit, err := loadtest.RaiseFileLimit()
	if err != nil {
		return fmt.Errorf("raising the open-files limit: %w", err)
	}
	if uint64(o.Connections)+64 > limit {
		return fmt.Errorf("--connections %d needs more open files than this process may hold (%d): spread the run over several processes", o.Connections, limit)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sum, err := loadtest.Run(ctx, o)
	if err != nil {
		return err
	}
	sum.Args = append([]string{name}, args...)
	out, _ := json.MarshalIndent(sum, "", "  ")
	fmt.Println(string(out))
	if *jsonOut != "" {
		if err := os.WriteFile(*jsonOut, out, 0o644); err != nil {
			return err
		}
	}
	loadtest.PrintTable(os.Stderr, sum)
	if *failOnErrors && (len(sum.Failures) > 0 || sum.Errors > 0 || sum.Connected != o.Connections || sum.Dropped > 0) {
		return errors.New("the run had failures (see the summary)")
	}
	return nil
}

// parseSources reads "127.0.0.2-127.0.0.20,127.0.1.1".
func parseSources(s string) ([]net.IP, error) {
	var out []net.IP
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, b := net.ParseIP(lo).To4(), net.ParseIP(hi).To4()
		if !isRange {
			b = a
		}
		if a == nil || b == nil || a[0] != b[0] || a[1] != b[1] || a[2] != b[2] || a[3] > b[3] {
			return nil, fmt.Errorf("--sources %q: want addresses like 127.0.0.2-127.0.0.20 (ranges within one /24)", part)
		}
		for i := int(a[3]); i <= int(b[3]); i++ {
			out = append(out, net.IPv4(a[0], a[1], a[2], byte(i)))
		}
	}
	return out, nil
}

// plainEcho is the reference server: gorilla/websocket, one goroutine per
// connection, echoing every message as-is.
func plainEcho(args []string) error {
	fs := flag.NewFlagSet("plain-echo", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:8090", "address to listen on")
	_ = fs.Parse(args)
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			mt, data, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(mt, data); err != nil {
				return
			}
		}
	})
	return serve(*listen, h)
}

// backend answers Lambda-proxy events with the message's data field.
func backend(args []string) error {
	fs := flag.NewFlagSet("backend", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:8000", "address to listen on")
	_ = fs.Parse(args)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		data := gjson.Get(gjson.GetBytes(body, "body").String(), "data").String()
		out, _ := json.Marshal(map[string]any{"statusCode": 200, "body": data})
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(out)
	})
	return serve(*listen, h)
}

func serve(addr string, h http.Handler) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("--listen %s: load-test servers listen on loopback only", addr)
	}
	if _, err := loadtest.RaiseFileLimit(); err != nil {
		return err
	}
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { <-ctx.Done(); _ = srv.Close() }()
	fmt.Fprintf(os.Stderr, "listening on %s\n", addr)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
