package config

import (
	"math"
	"regexp"
	"sort"
	"strings"

	"github.com/portico-gateway/portico/routing/throttle"
)

// apiKeyValueRE is AWS's rule for API key values: 20 to 128 letters and
// digits.
var apiKeyValueRE = regexp.MustCompile(`^[A-Za-z0-9]{20,128}$`)

// bucket checks a rate and burst pair under key (rateName and burstName
// are the two keys' names).
func (v *validator) bucket(key, rateName, burstName string, rate float64, burst int) {
	switch {
	case rate < 0 || math.IsNaN(rate) || math.IsInf(rate, 0):
		v.add(key+"."+rateName, "must be a number of requests a second, 0 or more, got %v", rate)
	case burst < 0:
		v.add(key+"."+burstName, "must not be negative, got %d", burst)
	case burst == 0 && rate > 0:
		v.add(key+"."+burstName, "is 0 with %s %v: no request could pass; set a burst of at least 1 (or both to 0 to refuse every request)", rateName, rate)
	case rate == 0 && burst > 0:
		v.add(key+"."+rateName, "is 0 with %s %d: the bucket would never refill; set a rate (or both to 0 to refuse every request)", burstName, burst)
	}
}

// throttling checks the throttling section, usage plans and API keys.
func (v *validator) throttling(f *File) {
	t := f.Throttling
	v.bucket("throttling", "rateLimit", "burstLimit", t.RateLimit, t.BurstLimit)
	switch t.Scope {
	case "local":
	case "cluster":
		if f.Storage.Type != "redis" {
			v.add("throttling.scope", "cluster needs storage.type redis (buckets are kept in the registry's Redis), got %q", f.Storage.Type)
		}
	default:
		v.add("throttling.scope", "want \"local\" or \"cluster\", got %q", t.Scope)
	}
	if t.MaxInFlight < 0 {
		v.add("throttling.maxInFlight", "must not be negative, got %d", t.MaxInFlight)
	}

	stages := map[throttle.PlanStage]bool{}
	for _, a := range f.APIs {
		for _, st := range a.Stages {
			stages[throttle.PlanStage{API: a.Name, Stage: st.Name}] = true
		}
	}
	plans := map[string]*UsagePlan{}
	for i := range f.UsagePlans {
		p := &f.UsagePlans[i]
		key := itemPath("usagePlans", i)
		switch {
		case p.Name == "":
			v.add(key+".name", "a usage plan needs a name")
		case plans[p.Name] != nil:
			v.add(key+".name", "usage plan %q is declared twice", p.Name)
		default:
			plans[p.Name] = p
		}
		for j, ps := range p.APIStages {
			sk := itemPath(key+".apiStages", j)
			if !stages[throttle.PlanStage{API: ps.API, Stage: ps.Stage}] {
				if !apiExists(f, ps.API) {
					v.add(sk+".api", "no api is named %q", ps.API)
				} else {
					v.add(sk+".stage", "api %q has no stage %q", ps.API, ps.Stage)
				}
			}
		}
		if p.Throttle != nil {
			v.bucket(key+".throttle", "rateLimit", "burstLimit", p.Throttle.RateLimit, p.Throttle.BurstLimit)
		}
		if q := p.Quota; q != nil {
			if q.Limit < 1 || q.Limit > math.MaxInt32 {
				v.add(key+".quota.limit", "want 1 to %d requests, got %d", math.MaxInt32, q.Limit)
			}
			if _, err := throttle.ParsePeriod(q.Period); err != nil {
				v.add(key+".quota.period", "unknown period %q (want DAY, WEEK or MONTH)", q.Period)
			}
		}
	}

	names := map[string]string{}
	values := map[string]string{}
	for i, k := range f.APIKeys {
		key := itemPath("apiKeys", i)
		switch first, dup := names[k.Name]; {
		case k.Name == "":
			v.add(key+".name", "an API key needs a name")
		case dup:
			v.add(key+".name", "%s already has the name %q", first, k.Name)
		default:
			names[k.Name] = key
		}
		// The value is a secret: problems describe it, never repeat it.
		switch first, dup := values[k.Value]; {
		case !apiKeyValueRE.MatchString(k.Value):
			v.add(key+".value", "want 20 to 128 letters and digits (AWS's rule), got %d characters%s", len(k.Value), nonAlnum(k.Value))
		case dup:
			v.add(key+".value", "the same value as %s: values identify keys, so each must be different", first)
		default:
			values[k.Value] = key
		}
		covered := map[throttle.PlanStage]string{}
		for j, pn := range k.UsagePlans {
			pk := itemPath(key+".usagePlans", j)
			p := plans[pn]
			if p == nil {
				v.add(pk, "unknown usage plan %q", pn)
				continue
			}
			for _, ps := range p.APIStages {
				s := throttle.PlanStage{API: ps.API, Stage: ps.Stage}
				if other, dup := covered[s]; dup && other != pn {
					v.add(pk, "usage plans %q and %q both cover api %q stage %q: a key may be in one plan per stage", other, pn, ps.API, ps.Stage)
				}
				covered[s] = pn
			}
		}
	}
}

func nonAlnum(s string) string {
	if strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}) >= 0 {
		return ", some of them not letters or digits"
	}
	return ""
}

func apiExists(f *File, name string) bool {
	for _, a := range f.APIs {
		if a.Name == name {
			return true
		}
	}
	return false
}

// apiThrottling checks one API's key selection, stage route settings and
// per-connection limits.
func (v *validator) apiThrottling(key string, a *API) {
	if err := throttle.ParseKeySelection(a.APIKeySelectionExpression); err != nil {
		v.add(key+".apiKeySelectionExpression", "want $request.header.<name>, $request.querystring.<name> or $context.authorizer.usageIdentifierKey, got %q", a.APIKeySelectionExpression)
	}
	l := a.Limits
	v.bucket(key+".limits", "messageRateLimit", "messageBurstLimit", l.MessageRateLimit, l.MessageBurstLimit)
	if l.MaxInFlightPerConnection < 0 {
		v.add(key+".limits.maxInFlightPerConnection", "must not be negative, got %d", l.MaxInFlightPerConnection)
	}
	for i, st := range a.Stages {
		sk := itemPath(key+".stages", i)
		if d := st.DefaultRouteSettings; d != nil {
			v.bucket(sk+".defaultRouteSettings", "throttlingRateLimit", "throttlingBurstLimit", d.ThrottlingRateLimit, d.ThrottlingBurstLimit)
		}
		rks := make([]string, 0, len(st.RouteSettings))
		for rk := range st.RouteSettings {
			rks = append(rks, rk)
		}
		sort.Strings(rks)
		for _, rk := range rks {
			rs := st.RouteSettings[rk]
			rsk := childPath(sk+".routeSettings", rk)
			if _, ok := a.Routes[rk]; !ok && rk != routeConnect {
				v.add(rsk, "the api has no route %q", rk)
				continue
			}
			v.bucket(rsk, "throttlingRateLimit", "throttlingBurstLimit", rs.ThrottlingRateLimit, rs.ThrottlingBurstLimit)
		}
	}
}

// expandSecrets expands ${NAME} in the API keys' values (expandEnv).
// Parse calls it before ApplyDefaults, with resolveCredentials.
func (f *File) expandSecrets() []*Problem {
	v := &validator{f: f}
	for i := range f.APIKeys {
		key := itemPath("apiKeys", i) + ".value"
		var missing []string
		f.APIKeys[i].Value, missing = expandEnv(f.APIKeys[i].Value)
		v.missingEnv(key, missing)
	}
	return v.probs
}
