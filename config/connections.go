package config

// Connections selects and tunes the connection servers of every API.
type Connections struct {
	// Mode is "epoll" (sharded epoll event loops: no goroutine and no
	// buffer per idle connection; Linux only) or "goroutine" (one
	// goroutine per connection, portable). Default: "epoll" on Linux,
	// "goroutine" elsewhere. A WebSocket API with tls is always served
	// in goroutine mode (crypto/tls needs blocking reads).
	Mode string `yaml:"mode"`
	// Shards is the number of epoll event loops per API. Default 0:
	// GOMAXPROCS.
	Shards int `yaml:"shards"`
	// SendQueueBytes bounds the bytes waiting for a slow client's socket
	// (both modes). Past it, @connections POST answers 429
	// LimitExceededException. Default 1048576 (1 MiB).
	SendQueueBytes int `yaml:"sendQueueBytes"`
	// CloseOnOverflow closes a connection with 1008 when its send queue
	// overflows, instead of only refusing the message. Default false.
	CloseOnOverflow bool `yaml:"closeOnOverflow"`
}
