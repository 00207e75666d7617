package cluster

import (
	"context"

	goredis "github.com/redis/go-redis/v9"
)

// Forwarder carries an @connections operation to the node that holds the
// connection: *Relay over Redis pub/sub, *HTTPRelay between management
// listeners. ok is false when no other live node holds it (the caller
// answers Gone).
type Forwarder interface {
	Forward(ctx context.Context, o *Op) (res Result, ok bool)
}

// BusCarrier is implemented by registries whose backend can also carry
// the node bus (storage/redis): the gateway then relays over Redis
// pub/sub on the registry's own client. A registry without it (DynamoDB)
// relays over HTTP when a relay secret is configured.
type BusCarrier interface {
	BusClient() goredis.UniversalClient
}
