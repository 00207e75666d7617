package config

import (
	"strings"
	"testing"
)

func TestTracingConfig(t *testing.T) {
	f, err := Parse("ok.yaml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if tr := f.Tracing; tr.Enabled() || tr.Ratio() != 1 || tr.ServiceName != "portico" {
		t.Errorf("defaults: %+v (ratio %v)", tr, tr.Ratio())
	}
	t.Setenv("PORTICO_TEST_OTLP_KEY", "s3cret")
	f, err = Parse("ok.yaml", []byte("tracing:\n  endpoint: http://127.0.0.1:4318\n  sampleRatio: 0\n  headers: {x-api-key: \"${PORTICO_TEST_OTLP_KEY}\"}\n"+base))
	if err != nil {
		t.Fatal(err)
	}
	if !f.Tracing.Enabled() || f.Tracing.Ratio() != 0 {
		t.Errorf("sampleRatio 0 is a ratio of its own: %v", f.Tracing.Ratio())
	}
	if h, err := f.Tracing.HeaderValues(); err != nil || h["x-api-key"] != "s3cret" {
		t.Errorf("headers %v, %v", h, err)
	}
}

func TestTracingConfigErrors(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"not http", "tracing:\n  endpoint: grpc://collector:4317\n",
			`bad.yaml:2: tracing.endpoint: want an http:// or https:// URL, got "grpc://collector:4317"`},
		{"no host", "tracing:\n  endpoint: http:///v1/traces\n", `bad.yaml:2: tracing.endpoint: the URL "http:///v1/traces" names no host`},
		{"ratio", "tracing:\n  endpoint: http://c:4318\n  sampleRatio: 1.5\n", `bad.yaml:3: tracing.sampleRatio: want 0 to 1, got 1.5`},
		{"header name", "tracing:\n  headers: {\"bad name\": x}\n", `tracing.headers["bad name"]: "bad name" is not an HTTP header name`},
		{"missing env", "tracing:\n  headers:\n    key: ${PORTICO_TEST_UNSET_VAR}\n",
			`bad.yaml:3: tracing.headers.key: the environment variable PORTICO_TEST_UNSET_VAR is not set`},
	} {
		_, err := Parse("bad.yaml", []byte(tc.yaml+base))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
}
