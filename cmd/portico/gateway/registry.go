package gateway

import (
	"github.com/prometheus/client_golang/prometheus"

	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/portico-gateway/portico/connections"
	"github.com/portico-gateway/portico/routing/config"
	"github.com/portico-gateway/portico/storage"
	"github.com/portico-gateway/portico/storage/dynamodb"
	"github.com/portico-gateway/portico/storage/memory"
	"github.com/portico-gateway/portico/storage/redis"
)

// openRegistry builds the configured connection registry.
func openRegistry(ctx context.Context, c config.Storage, log *slog.Logger) (storage.Registry, error) {
	switch c.Type {
	case "", "memory":
		return memory.New(), nil
	case "redis":
		r, err := redis.New(ctx, redis.Options{
			Addrs: c.Redis.Addrs, Cluster: c.Redis.Cluster, Password: c.Redis.Password,
			DB: c.Redis.DB, TLS: c.Redis.TLS, Prefix: c.Redis.Prefix, NodeTTL: c.NodeTTL.D(),
		})
		if err != nil {
			return nil, fmt.Errorf("gateway: redis registry: %w", err)
		}
		return r, nil
	case "dynamodb":
		r, err := dynamodb.New(ctx, dynamodb.Options{
			Table: c.DynamoDB.Table, Region: c.DynamoDB.Region, EndpointURL: c.DynamoDB.Endpoint,
			CreateTable: c.DynamoDB.CreateTable, NodeTTL: c.NodeTTL.D(), Logger: log,
		})
		if err != nil {
			return nil, fmt.Errorf("gateway: dynamodb registry: %w", err)
		}
		return r, nil
	}
	return nil, fmt.Errorf("gateway: storage type %q is not supported", c.Type)
}

// registryKeeper keeps this node's entry in the registry alive and writes
// lastActiveAt in batches. While the registry is unreachable the node
// keeps serving its own connections; readiness reports the outage, and
// when the registry answers again the node registers anew and puts its
// open connections back.
type registryKeeper struct {
	reg      storage.Registry
	hub      *connections.Hub
	node     *storage.Node
	records  func(connections.Conn) *storage.Record
	nodeTTL  time.Duration
	touchInt time.Duration
	log      *slog.Logger
	up       prometheus.Gauge // portico_registry_up
	shared   bool             // connections are recorded in reg (not with the memory registry)

	mu     sync.Mutex
	outage error // nil when the registry answered last time
}

// ready reports the registry outage, if any, for /readyz.
func (k *registryKeeper) ready() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.outage != nil {
		return fmt.Errorf("connection registry unreachable: %w", k.outage)
	}
	return nil
}

func (k *registryKeeper) setOutage(err error) (changed bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	changed = (k.outage == nil) != (err == nil)
	k.outage = err
	return changed
}

// run heartbeats every nodeTTL/3 and flushes touches every touchInt
// until ctx ends.
func (k *registryKeeper) run(ctx context.Context) {
	hb := time.NewTicker(max(k.nodeTTL/3, 10*time.Millisecond))
	defer hb.Stop()
	touch := time.NewTicker(k.touchInt)
	defer touch.Stop()
	lastTouch := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hb.C:
			k.heartbeat(ctx)
		case now := <-touch.C:
			if k.shared {
				k.flushTouches(ctx, lastTouch, now)
			}
			lastTouch = now
		}
	}
}

func (k *registryKeeper) heartbeat(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, max(k.nodeTTL/3, time.Second))
	defer cancel()
	err := k.reg.Heartbeat(cctx, k.node.ID)
	if errors.Is(err, storage.ErrLeaseRenewal) {
		// The node is live; its records keep their earlier lease, which
		// lasts many beats, and the next beat tries again.
		k.log.Warn("renewing connection record leases failed; retrying on the next heartbeat", "err", err)
		err = nil
	}
	if errors.Is(err, storage.ErrNotFound) || (err == nil && k.ready() != nil) {
		// The registry forgot this node (it lapsed, or the registry
		// restarted): register again and put every open connection back.
		err = k.reregister(cctx)
	}
	if k.setOutage(err) {
		if err != nil {
			k.up.Set(0)
			k.log.Error("connection registry unreachable; serving local connections only", "err", err)
		} else {
			k.up.Set(1)
			k.log.Info("connection registry reachable again; node and connections registered")
		}
	}
}

func (k *registryKeeper) reregister(ctx context.Context) error {
	if err := k.reg.RegisterNode(ctx, k.node); err != nil {
		return err
	}
	if !k.shared {
		return nil
	}
	var conns []connections.Conn
	k.hub.Range(func(c connections.Conn) bool { conns = append(conns, c); return true })
	for _, c := range conns {
		if rec := k.records(c); rec != nil {
			if err := k.reg.Put(ctx, rec); err != nil {
				return err
			}
		}
	}
	return nil
}

// flushTouches writes lastActiveAt of every connection active since the
// last flush, in one batch.
func (k *registryKeeper) flushTouches(ctx context.Context, since, now time.Time) {
	var ids []string
	k.hub.Range(func(c connections.Conn) bool {
		if c.LastActive().After(since) {
			ids = append(ids, c.Info().ID)
		}
		return true
	})
	if len(ids) == 0 {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, k.touchInt)
	defer cancel()
	if err := k.reg.TouchMany(cctx, ids, now); err != nil {
		k.log.Warn("writing lastActiveAt failed", "connections", len(ids), "err", err)
	}
}
