package config

// Throttling is the gateway-wide bucket (AWS's account level), where
// buckets are kept, and the bound on integration calls in flight.
type Throttling struct {
	// RateLimit is the steady rate, in requests a second, of the bucket
	// every handshake and message of every API on this node meets.
	// Default 0 with BurstLimit 0: no gateway-wide bucket (AWS's account
	// level is 10000 a second with a burst of 5000: set both to have it).
	RateLimit float64 `yaml:"rateLimit"`
	// BurstLimit is that bucket's size. Default 0 (see RateLimit).
	BurstLimit int `yaml:"burstLimit"`
	// Scope is where buckets and quotas are kept: "local" (default: each
	// node its own, in memory) or "cluster" (in the Redis registry,
	// shared by every node; needs storage.type redis). With "cluster",
	// while Redis is unreachable each node applies its share of every
	// limit (the limit divided by the live node count) locally.
	Scope string `yaml:"scope"`
	// MaxInFlight bounds the integration calls of messages in flight on
	// the node; past it a message gets the "Too Many Requests" error
	// frame. Default 10000.
	MaxInFlight int `yaml:"maxInFlight"`
}

// RouteSettings are a stage's throttling settings for a route
// (routeSettings) or for every route (defaultRouteSettings). Rate 0 with
// burst 0 refuses every request.
type RouteSettings struct {
	// ThrottlingRateLimit is the steady rate, in requests a second.
	ThrottlingRateLimit float64 `yaml:"throttlingRateLimit"`
	// ThrottlingBurstLimit is the bucket's size.
	ThrottlingBurstLimit int `yaml:"throttlingBurstLimit"`
}

// UsagePlan meters API keys on some stages: a bucket and a quota per key.
type UsagePlan struct {
	// Name identifies the plan (in apiKeys[].usagePlans and the usage
	// endpoint). Required, unique.
	Name string `yaml:"name"`
	// APIStages are the stages the plan covers.
	APIStages []PlanStage `yaml:"apiStages"`
	// Throttle is each key's bucket, shared by the plan's stages.
	// Default: none.
	Throttle *PlanThrottle `yaml:"throttle"`
	// Quota is how many requests each key may make per period.
	// Default: none.
	Quota *PlanQuota `yaml:"quota"`
}

// PlanStage names a stage of an API.
type PlanStage struct {
	API   string `yaml:"api"`
	Stage string `yaml:"stage"`
}

// PlanThrottle is a usage plan's per-key bucket.
type PlanThrottle struct {
	RateLimit  float64 `yaml:"rateLimit"`
	BurstLimit int     `yaml:"burstLimit"`
}

// PlanQuota is a usage plan's per-key quota.
type PlanQuota struct {
	// Limit is the requests allowed per period: 1 to 2147483647.
	Limit int64 `yaml:"limit"`
	// Period is DAY (from 00:00 UTC), WEEK (from Monday 00:00 UTC) or
	// MONTH (from the 1st, 00:00 UTC).
	Period string `yaml:"period"`
}

// APIKey is a key clients present (in the header or query parameter
// apiKeySelectionExpression names) to be metered by usage plans. API
// keys identify callers; they do not authenticate them.
type APIKey struct {
	// Name identifies the key in logs and usage reports. Required, unique.
	Name string `yaml:"name"`
	// Value is the secret the client sends: 20 to 128 letters and digits
	// (AWS's rule). Write ${ENV_VAR} to take it from the environment.
	Value string `yaml:"value"`
	// UsagePlans the key belongs to; at most one per stage.
	UsagePlans []string `yaml:"usagePlans"`
}
