package gateway

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLayers keeps the layout's one-way data flow: no package of the data
// plane (connections, routing), of node presence (cluster), of storage or
// of metrics imports the admin plane (management, but for its client),
// the wiring (gateway, cmd) or the raw configuration (config).
func TestLayers(t *testing.T) {
	const mod = "github.com/portico-gateway/portico/"
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}",
		"../connections/...", "../channels/...", "../rest/...", "../routing/...", "../cluster/...", "../storage/...", "../metrics/...", "../internal/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		// Spans are made with OpenTelemetry's API; its SDK and exporters
		// are the gateway's (package tracing).
		if strings.HasPrefix(pkg, "go.opentelemetry.io/otel/sdk") || strings.HasPrefix(pkg, "go.opentelemetry.io/otel/exporters") ||
			pkg == mod+"tracing" {
			t.Errorf("%s is a dependency of the data plane, cluster or storage", pkg)
		}
		rel, ok := strings.CutPrefix(pkg, mod)
		if !ok {
			continue
		}
		for _, top := range []string{"management", "gateway", "config", "cmd"} {
			if (rel == top || strings.HasPrefix(rel, top+"/")) && !strings.HasPrefix(rel, "management/client") {
				t.Errorf("%s is a dependency of the data plane, cluster or storage", pkg)
			}
		}
	}
}
