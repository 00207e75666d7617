package throttle

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	goredis "github.com/redis/go-redis/v9"

	"github.com/portico-gateway/portico/metrics"
)

// ClusterOptions keep buckets and quotas in Redis, shared by every node.
type ClusterOptions struct {
	// Client is the registry's Redis client. Required.
	Client goredis.UniversalClient
	// Prefix starts every key (the registry's prefix; "throttle:" and the
	// bucket's name follow).
	Prefix string
	// Nodes counts the live nodes; while Redis is unreachable each node
	// applies 1/Nodes of every limit locally. nil: 1.
	Nodes func(ctx context.Context) (int, error)
	// Timeout bounds one Redis call. Default 250ms: long enough that a
	// busy Redis or machine is not taken for an outage (the fallback
	// divides every limit by the node count), short enough to bound a
	// message's wait when Redis is really gone.
	Timeout time.Duration
	// ProbeInterval is how often Run checks Redis and counts nodes.
	// Default 1s.
	ProbeInterval time.Duration
}

// clusterBackend decides with GCRA in Redis (one redis_rate call per
// bucket that applies, one pipeline per quota) and falls back to local
// buckets scaled by the live node count when Redis does not answer.
type clusterBackend struct {
	o     ClusterOptions
	rl    *redis_rate.Limiter
	down  atomic.Bool
	nodes atomic.Int64 // last known live nodes, at least 1
	m     *metrics.Set
	log   *slog.Logger
}

func newClusterBackend(o *ClusterOptions, m *metrics.Set, log *slog.Logger) (*clusterBackend, error) {
	if o.Client == nil {
		return nil, errors.New("throttle: cluster scope needs the registry's Redis client")
	}
	c := &clusterBackend{o: *o, rl: redis_rate.NewLimiter(o.Client), m: m, log: log}
	if c.o.Timeout <= 0 {
		c.o.Timeout = 250 * time.Millisecond
	}
	if c.o.ProbeInterval <= 0 {
		c.o.ProbeInterval = time.Second
	}
	c.o.Prefix += "throttle:"
	c.nodes.Store(1)
	m.ThrottleFallback.Set(0)
	return c, nil
}

// redisLimit is l in redis_rate's terms: a whole number of requests per
// period.
func redisLimit(l Limit) redis_rate.Limit {
	if l.Rate == math.Trunc(l.Rate) && l.Rate >= 1 && l.Rate < math.MaxInt32 {
		return redis_rate.Limit{Rate: int(l.Rate), Burst: l.Burst, Period: time.Second}
	}
	return redis_rate.Limit{Rate: max(1, int(math.Round(l.Rate*1000))), Burst: l.Burst, Period: 1000 * time.Second}
}

func (c *clusterBackend) allow(b *bucket, now int64) bool {
	if b.local.closed {
		return false
	}
	if !c.down.Load() {
		ctx, cancel := context.WithTimeout(context.Background(), c.o.Timeout)
		res, err := c.rl.Allow(ctx, c.o.Prefix+b.name, redisLimit(b.limit))
		cancel()
		if err == nil {
			return res.Allowed > 0
		}
		c.setDown(err)
	}
	return b.local.allow(now, c.nodes.Load())
}

func (c *clusterBackend) quotaKey(s *subscription, w int64) string {
	return c.o.Prefix + s.qname + ":" + strconv.FormatInt(w, 10)
}

// takeQuota counts a request in Redis (INCR, with an expiry of a little
// over the longest period); past the limit it is refused. Without Redis
// each node counts locally against limit/nodes.
func (c *clusterBackend) takeQuota(s *subscription, w, limit int64) bool {
	if !c.down.Load() {
		ctx, cancel := context.WithTimeout(context.Background(), c.o.Timeout)
		var incr *goredis.IntCmd
		_, err := c.o.Client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			k := c.quotaKey(s, w)
			incr = p.Incr(ctx, k)
			p.Expire(ctx, k, 32*24*time.Hour)
			return nil
		})
		cancel()
		if err == nil {
			return incr.Val() <= limit
		}
		c.setDown(err)
	}
	return s.quota.take(w, max(1, limit/c.nodes.Load()))
}

func (c *clusterBackend) quotaUsed(ctx context.Context, s *subscription, w int64) int64 {
	ctx, cancel := context.WithTimeout(ctx, c.o.Timeout*4)
	defer cancel()
	n, err := c.o.Client.Get(ctx, c.quotaKey(s, w)).Int64()
	if err != nil {
		return s.quota.used(w)
	}
	return n
}

// setDown switches to the local fallback, logging the transition once.
func (c *clusterBackend) setDown(err error) {
	if c.down.CompareAndSwap(false, true) {
		c.m.ThrottleFallback.Set(1)
		c.log.Warn("throttling: redis unreachable, applying local limits divided by the live node count",
			"nodes", c.nodes.Load(), "err", err)
	}
}

func (c *clusterBackend) setUp() {
	if c.down.CompareAndSwap(true, false) {
		c.m.ThrottleFallback.Set(0)
		c.log.Info("throttling: redis reachable again, limits are cluster-wide")
	}
}

// run probes Redis and counts live nodes every ProbeInterval.
func (c *clusterBackend) run(ctx context.Context) {
	t := time.NewTicker(c.o.ProbeInterval)
	defer t.Stop()
	for {
		c.probe(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *clusterBackend) probe(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, max(c.o.Timeout, 500*time.Millisecond))
	defer cancel()
	if err := c.o.Client.Ping(pctx).Err(); err != nil {
		if ctx.Err() == nil {
			c.setDown(err)
		}
		return
	}
	if c.o.Nodes != nil {
		if n, err := c.o.Nodes(pctx); err == nil && n > 0 {
			c.nodes.Store(int64(n))
		}
	}
	c.setUp()
}

// FallbackNodes is the live node count every limit is divided by while
// Redis is unreachable (the last count seen while it answered); 1 for
// local throttling.
func (g *Gateway) FallbackNodes() int {
	if g.cl == nil {
		return 1
	}
	return int(g.cl.nodes.Load())
}
