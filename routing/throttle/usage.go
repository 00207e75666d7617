package throttle

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound: no such usage plan, or no such key in it.
var ErrNotFound = errors.New("throttle: not found")

// KeyUsage is one API key's use of its quota in the current period.
type KeyUsage struct {
	// Key is the key's name (its id; never its value).
	Key             string
	Used, Remaining int64
}

// PlanUsage is a usage plan's quota use in the current period.
type PlanUsage struct {
	Plan string
	// Start is the period's first instant, End the next period's (UTC).
	Start, End time.Time
	Keys       []KeyUsage
}

// Usage reports the quota use of plan's keys (of keyName alone, when not
// "") in the current period. A plan without a quota reports no keys.
func (g *Gateway) Usage(ctx context.Context, planName, keyName string) (*PlanUsage, error) {
	pl := g.plans[planName]
	if pl == nil {
		return nil, ErrNotFound
	}
	if keyName != "" && pl.subs[keyName] == nil {
		return nil, ErrNotFound
	}
	out := &PlanUsage{Plan: pl.name}
	if pl.quota == nil {
		return out, nil
	}
	now := g.now()
	w := pl.quota.Period.window(now)
	out.Start, out.End = pl.quota.Period.bounds(w)
	for _, name := range pl.order {
		if keyName != "" && name != keyName {
			continue
		}
		s := pl.subs[name]
		var used int64
		if g.cl != nil {
			used = g.cl.quotaUsed(ctx, s, w)
		} else {
			used = s.quota.used(w)
		}
		used = min(used, pl.quota.Limit)
		out.Keys = append(out.Keys, KeyUsage{Key: name, Used: used, Remaining: pl.quota.Limit - used})
	}
	return out, nil
}
