package connections

import "fmt"

// Server modes.
const (
	ModeEpoll     = "epoll"     // sharded epoll event loops (Linux)
	ModeGoroutine = "goroutine" // one goroutine per connection (portable)
)

// NewServer returns a server of the given mode. "" picks epoll where it is
// supported and goroutine elsewhere.
func NewServer(mode string, opts Options) (Server, error) {
	switch mode {
	case "":
		if EpollSupported {
			return NewEpollServer(opts)
		}
		return NewGoroutineServer(opts), nil
	case ModeEpoll:
		return NewEpollServer(opts)
	case ModeGoroutine:
		return NewGoroutineServer(opts), nil
	}
	return nil, fmt.Errorf("connections: unknown mode %q (want %q or %q)", mode, ModeEpoll, ModeGoroutine)
}
