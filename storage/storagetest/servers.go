package storagetest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Environment variables that point the tests at servers already running
// instead of starting their own, and that turn a missing program from a
// skip into a failure (CI sets it so that no backend goes untested).
const (
	EnvRedisAddr        = "PORTICO_REDIS_ADDR"          // host:port of a Redis
	EnvRedisClusterAddr = "PORTICO_REDIS_CLUSTER_ADDRS" // comma-separated masters of a Redis Cluster
	EnvDynamoEndpoint   = "PORTICO_DYNAMODB_ENDPOINT"   // URL of a DynamoDB-compatible server
	EnvRequireDeps      = "PORTICO_REQUIRE_DEPS"
)

const startTimeout = 20 * time.Second

// RedisAddr returns the address of a Redis for tb: $PORTICO_REDIS_ADDR
// when set, else a redis-server started on a free loopback port, without
// persistence, and stopped when tb ends.
func RedisAddr(tb testing.TB) string {
	tb.Helper()
	if addr := os.Getenv(EnvRedisAddr); addr != "" {
		return strings.Split(addr, ",")[0]
	}
	bin := lookPath(tb, "redis-server", "Redis (apt-get install redis-server)")
	dir := tb.TempDir()
	for attempt := 0; ; attempt++ {
		port := freePort(tb, false)
		p := start(tb, bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", dir)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		err := p.waitFor(func() error { return redisPing(addr) })
		if err == nil {
			return addr
		}
		if !p.exited() || attempt == 2 { // an exit may be a lost race for the port
			tb.Fatalf("redis-server on %s: %v\n%s", addr, err, p.output())
		}
	}
}

// RedisCluster returns the master addresses of a Redis Cluster for tb:
// $PORTICO_REDIS_CLUSTER_ADDRS when set, else three redis-server masters
// started on free loopback ports (each also needs its port+10000 for the
// cluster bus), joined with redis-cli --cluster create, and stopped when
// tb ends. It returns once every master reports cluster_state:ok.
func RedisCluster(tb testing.TB) []string {
	tb.Helper()
	if addrs := os.Getenv(EnvRedisClusterAddr); addrs != "" {
		return strings.Split(addrs, ",")
	}
	server := lookPath(tb, "redis-server", "Redis (apt-get install redis-server)")
	cli := lookPath(tb, "redis-cli", "redis-cli (apt-get install redis-tools)")
	dir := tb.TempDir()
	var addrs []string
	for range 3 {
		var addr string
		for attempt := 0; ; attempt++ {
			port := freePort(tb, true)
			addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
			p := start(tb, server, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
				"--cluster-enabled", "yes",
				"--cluster-config-file", filepath.Join(dir, fmt.Sprintf("nodes-%d.conf", port)),
				"--save", "", "--appendonly", "no", "--dir", dir)
			err := p.waitFor(func() error { return redisPing(addr) })
			if err == nil {
				break
			}
			if !p.exited() || attempt == 2 {
				tb.Fatalf("redis-server (cluster) on %s: %v\n%s", addr, err, p.output())
			}
		}
		addrs = append(addrs, addr)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		tb.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(startTimeout)
	for _, addr := range addrs {
		for {
			info, err := redisCommand(addr, "CLUSTER INFO")
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				tb.Fatalf("cluster node %s not ok within %v: %v %q", addr, startTimeout, err, info)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return addrs
}

// DynamoEndpoint returns the URL of a DynamoDB-compatible server for tb:
// $PORTICO_DYNAMODB_ENDPOINT when set, else dynalite from the repository's
// node_modules (npm install at the repository root), started in memory on
// a free loopback port and stopped when tb ends.
func DynamoEndpoint(tb testing.TB) string {
	tb.Helper()
	return dynalite(tb, 0)
}

// DynamoEndpointSlowTables is DynamoEndpoint with tables that take
// createTableMs to become ACTIVE after CreateTable, as in DynamoDB itself.
func DynamoEndpointSlowTables(tb testing.TB, createTableMs int) string {
	tb.Helper()
	return dynalite(tb, createTableMs)
}

func dynalite(tb testing.TB, createTableMs int) string {
	tb.Helper()
	if url := os.Getenv(EnvDynamoEndpoint); url != "" {
		return url
	}
	node := lookPath(tb, "node", "Node.js")
	root, err := repoRoot()
	if err != nil {
		tb.Fatal(err)
	}
	script := filepath.Join(root, "node_modules", ".bin", "dynalite")
	if _, err := os.Stat(script); err != nil {
		missing(tb, fmt.Sprintf("dynalite (%s)", script), "the Node.js test dependencies (npm install at the repository root)")
	}
	for attempt := 0; ; attempt++ {
		port := freePort(tb, false)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		p := start(tb, node, script, "--host", "127.0.0.1", "--port", strconv.Itoa(port),
			"--createTableMs", strconv.Itoa(createTableMs), "--deleteTableMs", "0", "--updateTableMs", "0")
		err := p.waitFor(func() error {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
			}
			return err
		})
		if err == nil {
			return "http://" + addr
		}
		if !p.exited() || attempt == 2 {
			tb.Fatalf("dynalite on %s: %v\n%s", addr, err, p.output())
		}
	}
}

// missing skips tb, or fails it when $PORTICO_REQUIRE_DEPS is set.
func missing(tb testing.TB, what, install string) {
	tb.Helper()
	msg := fmt.Sprintf("%s not found: install %s", what, install)
	if os.Getenv(EnvRequireDeps) != "" {
		tb.Fatalf("%s (%s is set)", msg, EnvRequireDeps)
	}
	tb.Skip(msg)
}

func lookPath(tb testing.TB, name, install string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		missing(tb, name, install)
	}
	return p
}

// repoRoot walks up from the working directory to the directory holding
// go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("storagetest: no go.mod above the working directory")
		}
		dir = parent
	}
}

// freePort returns a loopback TCP port that was free a moment ago. With
// bus set, port+10000 (the Redis Cluster bus port) is free too.
func freePort(tb testing.TB, bus bool) int {
	tb.Helper()
	for range 100 {
		if !bus {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				tb.Fatal(err)
			}
			port := l.Addr().(*net.TCPAddr).Port
			l.Close()
			return port
		}
		port := 20000 + rand.IntN(25000)
		l1, err1 := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		l2, err2 := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+10000)))
		for _, l := range []net.Listener{l1, l2} {
			if l != nil {
				l.Close()
			}
		}
		if err1 == nil && err2 == nil {
			return port
		}
	}
	tb.Fatal("storagetest: no free port pair found")
	return 0
}

// process is a server started for one test. It is killed and waited for
// when the test ends; its output is logged if the test failed.
type process struct {
	name string
	out  *syncBuffer
	done chan struct{}
}

func start(tb testing.TB, bin string, args ...string) *process {
	tb.Helper()
	cmd := exec.Command(bin, args...)
	p := &process{name: filepath.Base(bin), out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	tb.Cleanup(func() {
		if !p.exited() {
			_ = cmd.Process.Kill()
			<-p.done
		}
		if tb.Failed() {
			tb.Logf("%s %s output:\n%s", p.name, strings.Join(args, " "), p.output())
		}
	})
	return p
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *process) output() string { return p.out.String() }

// waitFor polls ready until it succeeds, the process exits, or
// startTimeout passes.
func (p *process) waitFor(ready func() error) error {
	deadline := time.Now().Add(startTimeout)
	for {
		err := ready()
		if err == nil {
			return nil
		}
		if p.exited() {
			return fmt.Errorf("%s exited: %w", p.name, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within %v: %w", p.name, startTimeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func redisPing(addr string) error {
	reply, err := redisCommand(addr, "PING")
	if err == nil && reply != "PONG" {
		err = fmt.Errorf("PING answered %q", reply)
	}
	return err
}

// redisCommand sends one inline command and returns a simple-string or
// bulk-string reply; enough for readiness checks without a client.
func redisCommand(addr, cmd string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte(cmd + "\r\n")); err != nil {
		return "", err
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	switch {
	case strings.HasPrefix(line, "+"):
		return line[1:], nil
	case strings.HasPrefix(line, "-"):
		return "", errors.New(line[1:])
	case strings.HasPrefix(line, "$"):
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", fmt.Errorf("bad reply %q", line)
		}
		body := make([]byte, n+2)
		if _, err := io.ReadFull(r, body); err != nil {
			return "", err
		}
		return string(body[:n]), nil
	}
	return "", fmt.Errorf("unexpected reply %q", line)
}
