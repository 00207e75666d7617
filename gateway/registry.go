package gateway

import (
	"github.com/prometheus/client_golang/prometheus"

	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/portico-gateway/portico/connections"
	"github.com/portico-gateway/portico/config"
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
//
// # Missed beats and outages
//
// The keeper beats every nodeTTL/3. A beat that fails is tried again
// after retryInterval, and an outage (readiness 503, portico_registry_up
// 0) is declared only once no beat has succeeded for outageAfter
// (nodeTTL/2): until then the node's liveness still has more than half
// its TTL left, and a registry that missed a beat because it was busy
// (a million connections closing at once behind one Redis) is slow, not
// gone. Declaring every node out on one slow beat took the whole fleet
// out of the load balancer and, on recovery, had every node put all of
// its connections back into the registry that was already swamped. A
// node the registry has forgotten (ErrNotFound: it lapsed, or an empty
// Redis came back) registers again at once, and is out until it has.
//
// # Writing records again
//
// Records waiting to be written are kept in pending: the connections
// whose record the router could not write when they opened (putFailed),
// and every open connection after a declared outage or a lapse. After
// each good beat the keeper writes them, putsInFlight at a time (the
// Redis registry's Puts then share pipelines), for at most a beat
// interval; what is not written by then, or fails, waits for the next
// beat, and connections that closed meanwhile are dropped. Readiness
// does not wait for them; portico_registry_pending_records counts them.
// A write never resurrects a closed connection's record: its Delete
// leaves a tombstone that the late Put respects.
type registryKeeper struct {
	reg      storage.Registry
	hub      *connections.Hub
	node     *storage.Node
	records  func(connections.Conn) *storage.Record
	nodeTTL  time.Duration
	touchInt time.Duration
	log      *slog.Logger
	up       prometheus.Gauge // portico_registry_up
	pendingG prometheus.Gauge // portico_registry_pending_records; nil: not exported
	shared   bool             // connections are recorded in reg (not with the memory registry)
	now      func() time.Time // nil: time.Now (tests set a clock)

	mu      sync.Mutex
	outage  error               // nil unless an outage is declared
	lastOK  time.Time           // the latest successful beat (or the start)
	pending map[string]struct{} // connections whose record must be written again
}

// putsInFlight bounds the Puts the keeper has in flight.
const putsInFlight = 64

func (k *registryKeeper) clock() time.Time {
	if k.now != nil {
		return k.now()
	}
	return time.Now()
}

// beatInterval is the rhythm of heartbeats, retryInterval the wait
// after a failed one, outageAfter how long beats may fail before an
// outage is declared.
func (k *registryKeeper) beatInterval() time.Duration { return max(k.nodeTTL/3, 10*time.Millisecond) }
func (k *registryKeeper) retryInterval() time.Duration {
	return min(max(k.nodeTTL/10, 10*time.Millisecond), time.Second)
}
func (k *registryKeeper) outageAfter() time.Duration { return k.nodeTTL / 2 }

// ready reports the registry outage, if any, for /readyz.
func (k *registryKeeper) ready() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.outage != nil {
		return fmt.Errorf("connection registry unreachable: %w", k.outage)
	}
	return nil
}

// putFailed notes a connection whose record could not be written.
func (k *registryKeeper) putFailed(id string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.addPendingLocked(id)
}

func (k *registryKeeper) addPendingLocked(ids ...string) {
	if k.pending == nil {
		k.pending = map[string]struct{}{}
	}
	for _, id := range ids {
		k.pending[id] = struct{}{}
	}
	if k.pendingG != nil {
		k.pendingG.Set(float64(len(k.pending)))
	}
}

// run heartbeats every beatInterval (retryInterval after a failed beat)
// and flushes touches every touchInt until ctx ends.
func (k *registryKeeper) run(ctx context.Context) {
	k.mu.Lock()
	if k.lastOK.IsZero() {
		k.lastOK = k.clock() // the node registered just before
	}
	k.mu.Unlock()
	hb := time.NewTimer(k.beatInterval())
	defer hb.Stop()
	touch := time.NewTicker(k.touchInt)
	defer touch.Stop()
	lastTouch := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hb.C:
			if k.heartbeat(ctx) {
				hb.Reset(k.beatInterval())
			} else {
				hb.Reset(k.retryInterval())
			}
		case now := <-touch.C:
			if k.shared {
				k.flushTouches(ctx, lastTouch, now)
			}
			lastTouch = now
		}
	}
}

// heartbeat beats once, declares or ends an outage, and writes what
// waits to be written. It reports whether the beat succeeded.
func (k *registryKeeper) heartbeat(ctx context.Context) bool {
	cctx, cancel := context.WithTimeout(ctx, max(k.nodeTTL/3, time.Second))
	err := k.reg.Heartbeat(cctx, k.node.ID)
	if errors.Is(err, storage.ErrLeaseRenewal) {
		// The node is live; its records keep their earlier lease, which
		// lasts many beats, and the next beat tries again.
		k.log.Warn("renewing connection record leases failed; retrying on the next heartbeat", "err", err)
		err = nil
	}
	lapsed := errors.Is(err, storage.ErrNotFound)
	if lapsed || (err == nil && k.ready() != nil) {
		// The registry forgot this node (it lapsed, or the registry
		// restarted), or it was out long enough for anything to have
		// happened to it: register again and put every open connection
		// back.
		err = k.reregister(cctx)
	}
	cancel()
	now := k.clock()
	k.mu.Lock()
	if err == nil {
		k.lastOK = now
	}
	failingFor := now.Sub(k.lastOK)
	declare := err != nil && (lapsed || failingFor >= k.outageAfter())
	wasOut := k.outage != nil
	switch {
	case err == nil:
		k.outage = nil
	case declare:
		k.outage = err
	}
	k.mu.Unlock()
	switch {
	case err == nil && wasOut:
		k.up.Set(1)
		k.log.Info("connection registry reachable again; node registered, its connections are put back")
	case declare && !wasOut:
		k.up.Set(0)
		k.log.Error("connection registry unreachable; serving local connections only", "failingFor", failingFor, "err", err)
	case err != nil && !declare:
		k.log.Warn("registry heartbeat failed; retrying", "failingFor", failingFor, "outageAfter", k.outageAfter(), "err", err)
	}
	if err != nil {
		return false
	}
	k.writePending(ctx)
	return true
}

// reregister registers the node again and makes every open connection
// pending.
func (k *registryKeeper) reregister(ctx context.Context) error {
	if err := k.reg.RegisterNode(ctx, k.node); err != nil {
		return err
	}
	if !k.shared {
		return nil
	}
	var ids []string
	k.hub.Range(func(c connections.Conn) bool { ids = append(ids, c.Info().ID); return true })
	k.mu.Lock()
	k.addPendingLocked(ids...)
	k.mu.Unlock()
	return nil
}

// writePending writes the pending records of connections still open,
// for at most a beat interval. What fails or is not reached stays
// pending.
func (k *registryKeeper) writePending(ctx context.Context) {
	k.mu.Lock()
	ids := k.pending
	k.pending = nil
	k.mu.Unlock()
	if len(ids) == 0 || !k.shared {
		return
	}
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, k.beatInterval())
	defer cancel()
	var (
		mu       sync.Mutex
		written  int
		firstErr error
		failed   []string
	)
	g, gctx := errgroup.WithContext(wctx)
	g.SetLimit(putsInFlight)
	for id := range ids {
		c, ok := k.hub.Get(id)
		if !ok {
			continue // closed since
		}
		rec := k.records(c)
		if rec == nil {
			continue
		}
		g.Go(func() error {
			err := k.reg.Put(gctx, rec)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed = append(failed, id)
				if firstErr == nil {
					firstErr = err
				}
				return err // stops the rest: they fail alike
			}
			written++
			return nil
		})
	}
	_ = g.Wait()
	k.mu.Lock()
	k.addPendingLocked(failed...)
	left := len(k.pending)
	k.mu.Unlock()
	switch {
	case firstErr != nil:
		k.log.Warn("writing connection records again failed; retrying on the next heartbeat",
			"written", written, "left", left, "err", firstErr)
	case written > 0:
		k.log.Info("connection records written again", "connections", written, "duration", time.Since(start))
	}
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
