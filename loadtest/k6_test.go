package loadtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestK6ScriptsParse checks the syntax of the k6 scripts with node: k6
// cannot be installed everywhere, and its scripts are ES modules that
// node can at least parse (the k6/* imports are not resolved).
func TestK6ScriptsParse(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("PORTICO_REQUIRE_DEPS") != "" {
			t.Fatal("node is required to check the k6 scripts")
		}
		t.Skip("node is not installed")
	}
	scripts, _ := filepath.Glob("k6/*.js")
	if len(scripts) < 3 {
		t.Fatalf("k6 scripts: %v", scripts)
	}
	for _, s := range scripts {
		f, err := os.Open(s)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(node, "--check", "--input-type=module")
		cmd.Stdin = f
		out, err := cmd.CombinedOutput()
		f.Close()
		if err != nil {
			t.Errorf("%s: %v\n%s", s, err, strings.TrimSpace(string(out)))
		}
	}
}
