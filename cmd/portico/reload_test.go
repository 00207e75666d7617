package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// SIGHUP reloads the file: an open connection's next message meets the
// new route; a bad file is logged with file:line and changes nothing;
// the connection stays open throughout.
func TestSIGHUPReloads(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "portico")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ws, mgmt := freeAddr(t), freeAddr(t)
	path := filepath.Join(dir, "portico.yaml")
	write := func(body string) {
		t.Helper()
		yml := "management: {address: \"" + mgmt + "\"}\napis:\n  - name: hup\n    listen: \"" + ws + "\"\n    stages: [{name: test}]\n" +
			"    routes:\n      $default:\n        routeResponse: true\n        integration: {type: " + body + "}\n"
		if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(`mock, response: {body: "v1"}`)
	logPath := filepath.Join(dir, "portico.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", path)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("gateway log:\n%s", b)
		}
	})
	logs := func() string {
		b, _ := os.ReadFile(logPath)
		return string(b)
	}
	// waitLog waits (polling the log file: the process has no other
	// signal to give) until the log holds n lines containing s.
	waitLog := func(s string, n int) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for strings.Count(logs(), s) < n {
			select {
			case err := <-exited:
				t.Fatalf("the gateway exited: %v", err)
			case <-time.After(20 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %q in the log", s)
			}
		}
	}
	waitLog("management listening", 1)

	c, _, err := websocket.DefaultDialer.Dial("ws://"+ws+"/test", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ask := func() string {
		t.Helper()
		if err := c.WriteMessage(websocket.TextMessage, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, data, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		return string(data)
	}
	if got := ask(); got != "v1" {
		t.Fatalf("before SIGHUP: %q", got)
	}

	write(`mock, response: {body: "v2"}`)
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog("configuration reloaded", 1)
	if got := ask(); got != "v2" {
		t.Errorf("after SIGHUP: %q, want v2", got)
	}

	write(`mok, response: {body: "v3"}`)
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog("configuration reload rejected", 1)
	if want := path + ":9: apis[0].routes.$default.integration.type"; !strings.Contains(logs(), want) {
		t.Errorf("the refusal does not name %q:\n%s", want, logs())
	}
	if got := ask(); got != "v2" {
		t.Errorf("after a refused reload: %q, want v2", got)
	}
}
