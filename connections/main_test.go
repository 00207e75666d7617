package connections

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine a server starts (handshakes, read loops, send queue
// writers, shard loops, timers) must have ended once the tests' servers
// have shut down.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
