// Package cluster is what lets several gateway nodes act as one: node
// presence in the connection registry and the node bus between them.
//
//   - Recorder wraps an API's connections.Handler: it records each
//     connection the handler accepts and, through the Deleter, deletes the
//     record (in batches) once the connection has closed.
//   - Keeper keeps this node live in the registry (heartbeats), declares
//     and ends registry outages (readiness), writes records again after an
//     outage or a failed write, and writes lastActiveAt in batches. Its
//     clock is a seam: tests drive it by hand.
//   - Relay (Redis pub/sub) and HTTPRelay (between management listeners,
//     authenticated by a shared secret) carry an @connections operation
//     (Op) to the node that holds the connection and bring its answer
//     (Result) back. A registry whose backend can carry the bus says so by
//     implementing BusCarrier.
//   - ChannelBus carries channels (a Portico extension) between the nodes
//     sharing a Redis: per-channel pub/sub channels watched by the nodes
//     that have members, history and member lists in Redis. It is the
//     channels.Bus of those nodes.
//
// The package knows connections only through connections.Conn and the
// Hub, channels only through the channels package's bus types, and the
// registry only through storage.Registry; it knows nothing of routes,
// events or HTTP handlers of the management listener, which call it.
package cluster
