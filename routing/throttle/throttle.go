// Package throttle decides whether a request may go on: the token
// buckets of Amazon API Gateway at each of its levels, API keys and the
// usage plans that meter them, and bounds on work in flight.
//
// # Levels
//
// A request meets these buckets, in this order, and the first one that is
// empty throttles it:
//
//  1. connection: the messages of one WebSocket connection
//     (apis[].limits.messageRateLimit; off by default; not an AWS level);
//  2. usageplan: the API key's bucket in the usage plan that covers the
//     stage (usagePlans[].throttle), for requests that carry a known key;
//  3. route or stage: the most specific configured level wins. A route
//     with routeSettings uses that bucket alone; any other route uses the
//     stage's defaultRouteSettings (each route its own bucket of that
//     size); a stage without defaultRouteSettings has no bucket here;
//  4. gateway: one bucket for every request to every API of the node
//     (AWS's account level; throttling.rateLimit/burstLimit, 10,000 a
//     second and a burst of 5,000 by default).
//
// Then the usage plan's quota counts the request (usagePlans[].quota).
// The $connect route's bucket bounds new connections a second; a
// message's route bucket bounds messages to that route.
//
// Buckets are GCRA (Bucket): one atomic number each, no lock; a decision
// with local buckets makes no allocation. With ClusterOptions the
// usage-plan, route, stage and gateway buckets and the quotas are kept in
// Redis (github.com/go-redis/redis_rate/v10) so that every node shares
// them; per-connection buckets stay local.
//
// API keys identify and meter callers. They do not authenticate: anyone
// holding a key is its owner. Protect APIs with authorizers.
package throttle

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portico-gateway/portico/metrics"
)

// Decisions other than "go on". Callers branch with errors.Is; the
// values are returned as they are (no wrapping, no allocation).
var (
	// ErrThrottled: a bucket is empty. HTTP 429 {"message":"Too Many
	// Requests"}, x-amzn-ErrorType TooManyRequestsException.
	ErrThrottled = errors.New("throttle: too many requests")
	// ErrQuotaExceeded: the API key's quota for the period is spent.
	// HTTP 429 {"message":"Limit Exceeded"}, LimitExceededException.
	ErrQuotaExceeded = errors.New("throttle: limit exceeded")
	// ErrForbidden: the route requires an API key and the request has
	// none, an unknown one, or one whose usage plans do not cover the
	// stage. HTTP 403 {"message":"Forbidden"}.
	ErrForbidden = errors.New("throttle: forbidden")
)

// Levels, as the level label of portico_throttled_total.
const (
	LevelGateway    = "gateway"
	LevelStage      = "stage"
	LevelRoute      = "route"
	LevelUsagePlan  = "usageplan"
	LevelConnection = "connection"
)

var levels = [...]string{LevelGateway, LevelStage, LevelRoute, LevelUsagePlan, LevelConnection}

const (
	lvGateway = iota
	lvStage
	lvRoute
	lvUsagePlan
	lvConnection
)

// Clock tells the time; tests inject one.
type Clock func() time.Time

// PlanStage names a stage of an API.
type PlanStage struct{ API, Stage string }

// Plan is a usage plan: the stages it covers, a bucket per API key and a
// quota per API key. A key's bucket and quota are shared by every stage
// of the plan, as in AWS.
type Plan struct {
	Name   string
	Stages []PlanStage
	// Throttle is each key's bucket; nil: none.
	Throttle *Limit
	// Quota is each key's quota; nil: none.
	Quota *Quota
}

// Key is an API key. Value is a secret: it is compared in constant time
// and never logged (Name is).
type Key struct {
	Name  string
	Value string
	Plans []string
}

// Options configure the gateway-wide part.
type Options struct {
	// Gateway is the bucket every request of every API meets; nil: none.
	Gateway *Limit
	// MaxInFlight bounds integration calls in flight on the node (see
	// InFlight); 0: no bound.
	MaxInFlight int
	Plans       []Plan
	Keys        []Key
	// Clock; nil: time.Now.
	Clock Clock
	// Metrics; nil: metrics.New(nil).
	Metrics *metrics.Set
	// Logger; nil: slog.Default().
	Logger *slog.Logger
	// Cluster keeps the buckets and quotas in Redis; nil: local.
	Cluster *ClusterOptions
}

// Gateway holds what every API of a node shares: the gateway bucket,
// usage plans and API keys, the in-flight bound and the backend (local
// or Redis).
type Gateway struct {
	now      Clock
	gw       *bucket
	plans    map[string]*plan
	keys     map[[sha256.Size]byte]*key
	inFlight *Gate
	m        *metrics.Set
	log      *slog.Logger
	cl       *clusterBackend // nil: local
}

type plan struct {
	name   string
	stages map[PlanStage]bool
	subs   map[string]*subscription // by key name
	quota  *Quota
	order  []string // key names, sorted
}

type key struct {
	name  string
	value []byte
	subs  map[PlanStage]*subscription
}

// subscription is one key in one plan.
type subscription struct {
	plan   *plan
	key    *key
	bucket *bucket // nil: the plan has no throttle
	quota  counter
	qname  string // Redis key prefix of the quota
}

// bucket is a Bucket with the name and limit the cluster backend needs.
type bucket struct {
	local Bucket
	limit Limit
	name  string // Redis key
}

func (g *Gateway) newBucket(l Limit, name string) *bucket {
	b := &bucket{limit: l, name: name}
	b.local.set(l)
	return b
}

// New builds the gateway-wide part. Options must be valid (config
// validates them); New reports what it cannot use.
func New(opts Options) (*Gateway, error) {
	g := &Gateway{now: opts.Clock, m: opts.Metrics, log: opts.Logger,
		plans: map[string]*plan{}, keys: map[[sha256.Size]byte]*key{}}
	if g.now == nil {
		g.now = time.Now
	}
	if g.m == nil {
		g.m = metrics.New(nil)
	}
	if g.log == nil {
		g.log = slog.Default()
	}
	if opts.Cluster != nil {
		cl, err := newClusterBackend(opts.Cluster, g.m, g.log)
		if err != nil {
			return nil, err
		}
		g.cl = cl
	}
	if opts.Gateway != nil {
		g.gw = g.newBucket(*opts.Gateway, "gateway")
	}
	if opts.MaxInFlight > 0 {
		g.inFlight = NewGate(opts.MaxInFlight)
	}
	for _, p := range opts.Plans {
		if _, dup := g.plans[p.Name]; dup {
			return nil, fmt.Errorf("throttle: usage plan %q is declared twice", p.Name)
		}
		pl := &plan{name: p.Name, stages: map[PlanStage]bool{}, subs: map[string]*subscription{}, quota: p.Quota}
		for _, ps := range p.Stages {
			pl.stages[ps] = true
		}
		g.plans[p.Name] = pl
	}
	limits := map[string]*Limit{}
	for _, p := range opts.Plans {
		limits[p.Name] = p.Throttle
	}
	for _, k := range opts.Keys {
		sum := sha256.Sum256([]byte(k.Value))
		if _, dup := g.keys[sum]; dup {
			return nil, fmt.Errorf("throttle: api key %q has the value of another key", k.Name)
		}
		kk := &key{name: k.Name, value: []byte(k.Value), subs: map[PlanStage]*subscription{}}
		for _, pn := range k.Plans {
			pl := g.plans[pn]
			if pl == nil {
				return nil, fmt.Errorf("throttle: api key %q: unknown usage plan %q", k.Name, pn)
			}
			s := &subscription{plan: pl, key: kk, qname: "quota:" + pl.name + ":" + k.Name}
			if l := limits[pn]; l != nil {
				s.bucket = g.newBucket(*l, "plan:"+pl.name+":"+k.Name)
			}
			for ps := range pl.stages {
				if other := kk.subs[ps]; other != nil {
					return nil, fmt.Errorf("throttle: api key %q is in usage plans %q and %q for api %q stage %q: a key may be in one plan per stage",
						k.Name, other.plan.name, pn, ps.API, ps.Stage)
				}
				kk.subs[ps] = s
			}
			pl.subs[k.Name] = s
			pl.order = append(pl.order, k.Name)
		}
		g.keys[sum] = kk
	}
	for _, pl := range g.plans {
		sort.Strings(pl.order)
	}
	return g, nil
}

// InFlight is the node's bound on integration calls in flight; nil
// (unbounded) when MaxInFlight is 0.
func (g *Gateway) InFlight() *Gate { return g.inFlight }

// lookup finds the key whose value is v: by its SHA-256 (which says
// nothing about v through timing), then confirmed in constant time.
func (g *Gateway) lookup(v string) *key {
	if v == "" {
		return nil
	}
	k := g.keys[sha256.Sum256([]byte(v))]
	if k == nil || subtle.ConstantTimeCompare(k.value, []byte(v)) != 1 {
		return nil
	}
	return k
}

// take takes a token from b.
func (g *Gateway) take(b *bucket, now time.Time) bool {
	if g.cl != nil {
		return g.cl.allow(b, now.UnixNano())
	}
	return b.local.Allow(now.UnixNano())
}

// takeQuota counts one request against s's quota.
func (g *Gateway) takeQuota(s *subscription, now time.Time) bool {
	q := s.plan.quota
	w := q.Period.window(now)
	if g.cl != nil {
		return g.cl.takeQuota(s, w, q.Limit)
	}
	return s.quota.take(w, q.Limit)
}

// APIOptions configure one API.
type APIOptions struct {
	Name string
	// KeySelection is the apiKeySelectionExpression; "": DefaultKeySelection.
	KeySelection string
	Stages       []StageOptions
	// KeyRequired lists the routes with apiKeyRequired.
	KeyRequired map[string]bool
	// Message is each connection's message bucket; nil: none.
	Message *Limit
}

// StageOptions are one stage's throttling settings.
type StageOptions struct {
	Name string
	// Default is defaultRouteSettings: every route without routeSettings
	// gets a bucket of this size; nil: none.
	Default *Limit
	// Routes are routeSettings by route key.
	Routes map[string]Limit
}

// API decides for one API. Routing holds it.
type API struct {
	g      *Gateway
	name   string
	src    keySource
	stages map[string]*stageOpts
	keyReq map[string]bool
	msg    *Limit
}

type stageOpts struct {
	o         StageOptions
	throttled [len(levels)]prometheus.Counter
}

// Route is the throttling of one route of one stage; routing resolves it
// once (API.Route) and passes it with every request.
type Route struct {
	api         *API
	st          *stageOpts
	ps          PlanStage
	b           *bucket // route or stage bucket; nil: none
	lv          int     // lvRoute or lvStage
	keyRequired bool
}

// NewAPI builds the throttling of one API.
func (g *Gateway) NewAPI(o APIOptions) (*API, error) {
	src, err := parseKeySource(o.KeySelection)
	if err != nil {
		return nil, err
	}
	a := &API{g: g, name: o.Name, src: src, stages: map[string]*stageOpts{}, keyReq: o.KeyRequired, msg: o.Message}
	for _, st := range o.Stages {
		so := &stageOpts{o: st}
		for i, lv := range levels {
			so.throttled[i] = g.m.Throttled.WithLabelValues(o.Name, st.Name, lv)
		}
		a.stages[st.Name] = so
	}
	return a, nil
}

// Route returns the throttling of route key on stage; nil for an
// unknown stage.
func (a *API) Route(stage, routeKey string) *Route {
	st := a.stages[stage]
	if st == nil {
		return nil
	}
	r := &Route{api: a, st: st, ps: PlanStage{API: a.name, Stage: stage}, keyRequired: a.keyReq[routeKey]}
	prefix := "route:" + a.name + ":" + stage + ":" + routeKey
	if l, ok := st.o.Routes[routeKey]; ok {
		r.b, r.lv = a.g.newBucket(l, prefix), lvRoute
	} else if st.o.Default != nil {
		r.b, r.lv = a.g.newBucket(*st.o.Default, prefix), lvStage
	}
	return r
}

// Conn is the throttling state of one WebSocket connection: the API key
// it connected with (its messages are metered with it) and its message
// bucket.
type Conn struct {
	sub    *subscription // nil: no key, or none covering the stage
	hasMsg bool
	msg    Bucket
}

// KeyName is the name of the API key the connection presented ("" for
// none): safe to log, unlike the key.
func (c *Conn) KeyName() string {
	if c == nil || c.sub == nil {
		return ""
	}
	return c.sub.key.name
}

// Connect decides on a $connect to rt's stage (rt is the $connect
// route). The API key is usageKey when an authorizer chose one
// (auth.Identity.UsageIdentifierKey), else what the key selection
// expression finds in h or q. It returns the connection's state, for
// Message (nil when the connection has neither a key nor a message
// bucket: most cost no Conn), and nil or one of the sentinel errors.
func (a *API) Connect(rt *Route, h http.Header, q url.Values, usageKey string) (*Conn, error) {
	var sub *subscription
	v := usageKey
	if v == "" {
		v = a.src.value(h, q)
	}
	if k := a.g.lookup(v); k != nil {
		sub = k.subs[rt.ps]
	}
	if a.msg == nil && sub == nil {
		// Nothing of its own to keep: most connections cost no Conn.
		return nil, a.decide(&noConn, rt, a.g.now())
	}
	c := &Conn{sub: sub}
	if a.msg != nil {
		c.hasMsg = true
		c.msg.set(*a.msg)
	}
	return c, a.decide(c, rt, a.g.now())
}

// noConn stands for a connection without a key or a message bucket; it
// is only read.
var noConn Conn

// Message decides on one message of c to route rt.
func (a *API) Message(c *Conn, rt *Route) error {
	if c == nil {
		c = &noConn
	}
	now := a.g.now()
	if c.hasMsg && !c.msg.Allow(now.UnixNano()) {
		rt.st.throttled[lvConnection].Inc()
		return ErrThrottled
	}
	return a.decide(c, rt, now)
}

func (a *API) decide(c *Conn, rt *Route, now time.Time) error {
	if rt.keyRequired && c.sub == nil {
		return ErrForbidden
	}
	g := a.g
	if s := c.sub; s != nil && s.bucket != nil && !g.take(s.bucket, now) {
		rt.st.throttled[lvUsagePlan].Inc()
		return ErrThrottled
	}
	if rt.b != nil && !g.take(rt.b, now) {
		rt.st.throttled[rt.lv].Inc()
		return ErrThrottled
	}
	if g.gw != nil && !g.take(g.gw, now) {
		rt.st.throttled[lvGateway].Inc()
		return ErrThrottled
	}
	if s := c.sub; s != nil && s.plan.quota != nil && !g.takeQuota(s, now) {
		return ErrQuotaExceeded
	}
	return nil
}

// Gate bounds work in flight with one atomic counter. A nil *Gate admits
// everything.
type Gate struct {
	max int64
	n   atomic.Int64
}

// NewGate admits up to max at once.
func NewGate(max int) *Gate { return &Gate{max: int64(max)} }

// Acquire admits one more unless max are in; a true answer must be
// followed by Release.
func (g *Gate) Acquire() bool {
	if g == nil {
		return true
	}
	if g.n.Add(1) > g.max {
		g.n.Add(-1)
		return false
	}
	return true
}

// Release ends one admitted piece of work.
func (g *Gate) Release() {
	if g != nil {
		g.n.Add(-1)
	}
}

// Run keeps the cluster backend's view current (Redis reachable, live
// node count) until ctx ends; it returns at once for local throttling.
// The gateway runs it in the background and waits for it at shutdown.
func (g *Gateway) Run(ctx context.Context) {
	if g.cl != nil {
		g.cl.run(ctx)
	}
}

// Limiter is what routing asks before it runs a route; *API implements
// it.
type Limiter interface {
	// Route resolves the throttling of a route once, at start.
	Route(stage, routeKey string) *Route
	// Connect decides on a handshake and returns the connection's state.
	Connect(rt *Route, h http.Header, q url.Values, usageKey string) (*Conn, error)
	// Message decides on one message of a connection.
	Message(c *Conn, rt *Route) error
	// Remote reports whether decisions call Redis (cluster scope), so
	// they must not run on a connection server's loop.
	Remote() bool
	// KeyInQuery reports whether Connect reads its query (the API key
	// selection expression names a query parameter); otherwise a caller
	// may pass nil rather than parse it.
	KeyInQuery() bool
}

// Remote reports whether decisions call Redis.
func (a *API) Remote() bool { return a.g.cl != nil }

var _ Limiter = (*API)(nil)

// KeyInQuery reports whether the API's apiKeySelectionExpression reads a
// query string parameter: only then does Connect read its query, which a
// caller may leave unparsed (nil) otherwise.
func (a *API) KeyInQuery() bool { return a.src.query != "" }
