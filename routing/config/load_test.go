package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFullExample(t *testing.T) {
	f, err := Load("testdata/full.yaml")
	if err != nil {
		t.Fatalf("full.yaml: %v", err)
	}
	a := f.APIs[0]
	if a.Routes["ping"].Integration.Response.StatusCode != 200 || a.Routes["sendmessage"].Integration.Timeout.D() != 29*time.Second {
		t.Errorf("routes not defaulted: %+v", a.Routes)
	}
	if f.Path() != "testdata/full.yaml" || f.Connections.Mode != "epoll" {
		t.Errorf("path %q mode %q", f.Path(), f.Connections.Mode)
	}
}

func TestDefaults(t *testing.T) {
	f, err := Parse("min.yaml", []byte(`apis:
  - name: echo
    stages: [{name: dev}]
    routes:
      $default: {integration: {type: mock}}
`))
	if err != nil {
		t.Fatal(err)
	}
	a := f.APIs[0]
	for name, ok := range map[string]bool{
		"management.address":       f.Management.Address == "127.0.0.1:9090",
		"storage.type":             f.Storage.Type == "memory",
		"shutdownTimeout":          f.ShutdownTimeout.D() == 30*time.Second,
		"listen":                   a.Listen == ":8080",
		"id":                       len(a.ID) == 10 && a.ID == deriveID("echo"),
		"routeSelectionExpression": a.RouteSelectionExpression == "$request.body.action",
		"binaryFrames":             a.BinaryFrames == "accept",
		"maxMessageBytes":          a.Limits.MaxMessageBytes == 131072,
		"maxFrameBytes":            a.Limits.MaxFrameBytes == 32768,
		"idleTimeout":              a.Limits.IdleTimeout.D() == 10*time.Minute,
		"maxConnectionDuration":    a.Limits.MaxConnectionDuration.D() == 2*time.Hour,
		"pingInterval":             a.Limits.PingInterval == 0,
		"integration timeout":      a.Routes["$default"].Integration.Timeout.D() == 29*time.Second,
		"mock status":              a.Routes["$default"].Integration.Response.StatusCode == 200,
	} {
		if !ok {
			t.Errorf("default of %s not applied", name)
		}
	}
}

const base = `apis:
  - name: a
    stages:
      - name: dev
        variables: {backend: "http://127.0.0.1:1"}
    routes:
      $default:
        integration: {type: mock}
`

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"no apis", "management: {address: 127.0.0.1:1}\n", "bad.yaml:1: apis: at least one API is required"},
		{"unknown key", strings.Replace(base, "    stages:", "    limts: {}\n    stages:", 1), "bad.yaml:3: apis[0].limts: unknown key"},
		{"bad duration", strings.Replace(base, "    stages:", "    limits: {idleTimeout: soon}\n    stages:", 1), `bad.yaml:3: apis[0].limits.idleTimeout: want a duration such as "30s", got "soon"`},
		{"wrong type", strings.Replace(base, "    stages:", "    limits: {maxFrameBytes: big}\n    stages:", 1), "bad.yaml:3: apis[0].limits.maxFrameBytes: cannot unmarshal"},
		{"unknown integration type", strings.Replace(base, "type: mock", "type: mok", 1), `bad.yaml:8: apis[0].routes.$default.integration.type: unknown integration type "mok" (want "http" or "mock")`},
		{"http without uri", strings.Replace(base, "type: mock", "type: http", 1), "bad.yaml:8: apis[0].routes.$default.integration.uri: an http integration needs a uri"},
		{"missing stage variable", strings.Replace(base, "type: mock", `type: http, uri: "${stageVariables.nope}/x"`, 1), `apis[0].routes.$default.integration.uri: stage "dev" has no variable "nope"`},
		{"not a URL", strings.Replace(base, "type: mock", `type: http, uri: "ftp://x"`, 1), `want an http:// or https:// URL`},
		{"duplicate stage", strings.Replace(base, "    routes:", "      - name: dev\n    routes:", 1), `bad.yaml:6: apis[0].stages[1].name: stage "dev" is declared twice`},
		{"bad stage name", strings.Replace(base, "name: dev", "name: de v", 1), `bad.yaml:4: apis[0].stages[0].name: want 1 to 128 letters`},
		{"dollar custom key", strings.Replace(base, "$default:", "$custom:", 1), "bad.yaml:7: apis[0].routes.$custom: custom route keys must not start with '$'"},
		{"two apis without listen", base + strings.Replace(base, "apis:\n  - name: a", "  - name: b", 1), "apis[0].listen: with several APIs each needs its own listen address"},
		{"frame over message", strings.Replace(base, "    stages:", "    limits: {maxFrameBytes: 2048, maxMessageBytes: 1024}\n    stages:", 1), "bad.yaml:3: apis[0].limits.maxFrameBytes: 2048 is over maxMessageBytes (1024)"},
		{"timeout over 1h", strings.Replace(base, "type: mock", "type: mock, timeout: 2h", 1), "apis[0].routes.$default.integration.timeout: want between 50ms and 1h, got 2h0m0s"},
		{"route selection on header", strings.Replace(base, "    stages:", "    routeSelectionExpression: $request.header.x\n    stages:", 1), "apis[0].routeSelectionExpression: expression syntax error: route selection can only use $request.body variables"},
		{"unterminated expression", strings.Replace(base, "    stages:", "    routeSelectionExpression: ${request.body.x\n    stages:", 1), "unterminated ${"},
		{"bad mode", "connections: {mode: threads}\n" + base, `bad.yaml:1: connections.mode: unknown mode "threads"`},
		{"route without integration", strings.Replace(base, "      $default:\n        integration: {type: mock}\n", "      chat: {}\n", 1), `apis[0].routes.chat.integration: route "chat" needs an integration`},
		{"not yaml", "apis: [\n", "bad.yaml:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("bad.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error:\n%v\nwant it to contain:\n%s", err, tc.want)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not wrap ErrInvalid")
			}
		})
	}
}

func TestSeveralProblemsReportedTogether(t *testing.T) {
	_, err := Parse("bad.yaml", []byte(strings.Replace(strings.Replace(base, "type: mock", "type: mok", 1), "name: dev", "name: d v", 1)))
	if err == nil || strings.Count(err.Error(), "bad.yaml:") != 2 {
		t.Errorf("want two problems, got %v", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "nope.yaml") {
		t.Errorf("missing file: %v", err)
	}
}

func TestExamplesLoad(t *testing.T) {
	paths, _ := filepath.Glob("../../examples/*/portico.yaml")
	if len(paths) == 0 {
		t.Fatal("no example configurations found")
	}
	for _, p := range paths {
		if _, err := Load(p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}
