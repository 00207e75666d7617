package gateway

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/portico-gateway/portico/connections"
)

// testMode is the connection server mode the end-to-end tests run against.
var testMode string

// TestMain runs the whole end-to-end suite once per connection server
// mode, so both modes keep the same behaviour. PORTICO_TEST_MODES
// (comma-separated) narrows the list.
func TestMain(m *testing.M) {
	modes := []string{connections.ModeGoroutine}
	if connections.EpollSupported {
		modes = append([]string{connections.ModeEpoll}, modes...)
	}
	if env := os.Getenv("PORTICO_TEST_MODES"); env != "" {
		modes = strings.Split(env, ",")
	}
	code := 0
	for _, mode := range modes {
		testMode = mode
		fmt.Printf("=== connection server mode: %s\n", mode)
		if c := m.Run(); c != 0 {
			fmt.Printf("--- FAIL in connection server mode %s\n", mode)
			code = c
		}
	}
	os.Exit(code)
}
