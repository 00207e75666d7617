package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/portico-gateway/portico/connections"
	"github.com/portico-gateway/portico/metrics"
	"github.com/portico-gateway/portico/storage"
)

// Keeper keeps this node's entry in the registry alive and writes
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
type Keeper struct {
	reg      storage.Registry
	node     *storage.Node
	sources  []*Recorder // the APIs whose connections are recorded in reg
	nodeTTL  time.Duration
	touchInt time.Duration
	log      *slog.Logger
	up       prometheus.Gauge // portico_registry_up
	pendingG prometheus.Gauge // portico_registry_pending_records
	now      func() time.Time

	mu      sync.Mutex
	outage  error               // nil unless an outage is declared
	lastOK  time.Time           // the latest successful beat (or the start)
	pending map[string]struct{} // connections whose record must be written again
}

// KeeperOptions configure a Keeper. The zero value of each optional
// field means the default noted beside it.
type KeeperOptions struct {
	// Registry is where the node and its connections are recorded. Required.
	Registry storage.Registry
	// Node describes this node. Required; its Address may be set until Run.
	Node *storage.Node
	// NodeTTL is the registry's node TTL. 0: storage.DefaultNodeTTL.
	NodeTTL time.Duration
	// TouchInterval is how often lastActiveAt is written. 0:
	// DefaultTouchInterval.
	TouchInterval time.Duration
	// Metrics receives portico_registry_up and
	// portico_registry_pending_records. nil: not exported.
	Metrics *metrics.Set
	// Logger. nil: slog.Default().
	Logger *slog.Logger
	// Now is the clock. nil: time.Now (tests move a clock by hand).
	Now func() time.Time
}

// NewKeeper returns a keeper; Track the Recorders of the APIs whose
// connections it must write again, then Run it.
func NewKeeper(o KeeperOptions) *Keeper {
	k := &Keeper{reg: o.Registry, node: o.Node, nodeTTL: o.NodeTTL, touchInt: o.TouchInterval, log: o.Logger, now: o.Now}
	if k.nodeTTL <= 0 {
		k.nodeTTL = storage.DefaultNodeTTL
	}
	if k.touchInt <= 0 {
		k.touchInt = DefaultTouchInterval
	}
	if k.log == nil {
		k.log = slog.Default()
	}
	if k.now == nil {
		k.now = time.Now
	}
	m := o.Metrics
	if m == nil {
		m = metrics.New(nil)
	}
	k.up, k.pendingG = m.RegistryUp, m.RegistryPending
	return k
}

// Track makes the keeper write the records of r's connections again after
// an outage or a failed write, and their lastActiveAt. Call it before Run.
func (k *Keeper) Track(r *Recorder) { k.sources = append(k.sources, r) }

// Node returns the node the keeper keeps alive.
func (k *Keeper) Node() *storage.Node { return k.node }

// DefaultTouchInterval is how often the keeper writes lastActiveAt by
// default.
const DefaultTouchInterval = 10 * time.Second

// putsInFlight bounds the Puts the keeper has in flight.
const putsInFlight = 64

func (k *Keeper) clock() time.Time { return k.now() }

// beatInterval is the rhythm of heartbeats, retryInterval the wait
// after a failed one, outageAfter how long beats may fail before an
// outage is declared.
func (k *Keeper) beatInterval() time.Duration { return max(k.nodeTTL/3, 10*time.Millisecond) }
func (k *Keeper) retryInterval() time.Duration {
	return min(max(k.nodeTTL/10, 10*time.Millisecond), time.Second)
}
func (k *Keeper) outageAfter() time.Duration { return k.nodeTTL / 2 }

// Ready reports the registry outage, if any, for /readyz.
func (k *Keeper) Ready() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.outage != nil {
		return fmt.Errorf("connection registry unreachable: %w", k.outage)
	}
	return nil
}

// PutFailed notes a connection whose record could not be written.
func (k *Keeper) PutFailed(id string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.addPendingLocked(id)
}

func (k *Keeper) addPendingLocked(ids ...string) {
	if k.pending == nil {
		k.pending = map[string]struct{}{}
	}
	for _, id := range ids {
		k.pending[id] = struct{}{}
	}
	k.pendingG.Set(float64(len(k.pending)))
}

// Run heartbeats every beatInterval (retryInterval after a failed beat)
// and flushes touches every touchInt until ctx ends.
func (k *Keeper) Run(ctx context.Context) {
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
			if len(k.sources) > 0 {
				k.flushTouches(ctx, lastTouch, now)
			}
			lastTouch = now
		}
	}
}

// heartbeat beats once, declares or ends an outage, and writes what
// waits to be written. It reports whether the beat succeeded.
func (k *Keeper) heartbeat(ctx context.Context) bool {
	cctx, cancel := context.WithTimeout(ctx, max(k.nodeTTL/3, time.Second))
	err := k.reg.Heartbeat(cctx, k.node.ID)
	if errors.Is(err, storage.ErrLeaseRenewal) {
		// The node is live; its records keep their earlier lease, which
		// lasts many beats, and the next beat tries again.
		k.log.Warn("renewing connection record leases failed; retrying on the next heartbeat", "err", err)
		err = nil
	}
	lapsed := errors.Is(err, storage.ErrNotFound)
	if lapsed || (err == nil && k.Ready() != nil) {
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
func (k *Keeper) reregister(ctx context.Context) error {
	if err := k.reg.RegisterNode(ctx, k.node); err != nil {
		return err
	}
	var ids []string
	k.rangeConns(func(c connections.Conn) bool { ids = append(ids, c.Info().ID); return true })
	k.mu.Lock()
	k.addPendingLocked(ids...)
	k.mu.Unlock()
	return nil
}

// writePending writes the pending records of connections still open,
// for at most a beat interval. What fails or is not reached stays
// pending.
func (k *Keeper) writePending(ctx context.Context) {
	k.mu.Lock()
	ids := k.pending
	k.pending = nil
	k.mu.Unlock()
	if len(ids) == 0 || len(k.sources) == 0 {
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
		rec := k.record(id)
		if rec == nil {
			continue // closed since
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
func (k *Keeper) flushTouches(ctx context.Context, since, now time.Time) {
	var ids []string
	k.rangeConns(func(c connections.Conn) bool {
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

// rangeConns calls f for every open connection of the tracked APIs until
// f returns false.
func (k *Keeper) rangeConns(f func(connections.Conn) bool) {
	for _, r := range k.sources {
		more := true
		r.hub.Range(func(c connections.Conn) bool { more = f(c); return more })
		if !more {
			return
		}
	}
}

// record describes the open connection id for the registry; nil when no
// tracked API holds it (it closed).
func (k *Keeper) record(id string) *storage.Record {
	for _, r := range k.sources {
		if c, ok := r.hub.Get(id); ok {
			return r.Record(c)
		}
	}
	return nil
}
