package throttle

import (
	"fmt"
	"sync/atomic"
	"time"
)

// Period is a quota's window: a calendar day, week or month in UTC.
type Period string

// The quota periods of AWS usage plans.
const (
	Day   Period = "DAY"   // from 00:00 UTC
	Week  Period = "WEEK"  // from Monday 00:00 UTC (ISO 8601 weeks)
	Month Period = "MONTH" // from the 1st, 00:00 UTC
)

// ParsePeriod checks a period name (DAY, WEEK or MONTH).
func ParsePeriod(s string) (Period, error) {
	switch p := Period(s); p {
	case Day, Week, Month:
		return p, nil
	}
	return "", fmt.Errorf("throttle: unknown quota period %q (want DAY, WEEK or MONTH)", s)
}

// Quota is how many requests one API key may make in a period.
type Quota struct {
	Limit  int64
	Period Period
}

// mondayEpoch is a Monday (1970-01-05), so week numbers count from Mondays.
const mondayEpoch = 4 * 24 * 3600

// window numbers now's period: the day, week or month since 1970 (UTC).
func (p Period) window(now time.Time) int64 {
	switch p {
	case Week:
		return (now.Unix() - mondayEpoch) / (7 * 24 * 3600)
	case Month:
		y, m, _ := now.UTC().Date()
		return int64(y)*12 + int64(m) - 1
	}
	return now.Unix() / (24 * 3600)
}

// bounds are the first instant of window w and of the next one.
func (p Period) bounds(w int64) (start, end time.Time) {
	switch p {
	case Week:
		s := time.Unix(mondayEpoch+w*7*24*3600, 0).UTC()
		return s, s.AddDate(0, 0, 7)
	case Month:
		s := time.Date(int(w/12), time.Month(w%12+1), 1, 0, 0, 0, 0, time.UTC)
		return s, s.AddDate(0, 1, 0)
	}
	s := time.Unix(w*24*3600, 0).UTC()
	return s, s.AddDate(0, 0, 1)
}

// counter counts one key's requests in the current window: the window
// number in the high 32 bits, the count in the low 32, moved together
// with CompareAndSwap. A request in a later window starts the count again.
type counter struct{ v atomic.Uint64 }

const countBits = 32

// take counts one request in window w if fewer than limit were counted.
func (c *counter) take(w, limit int64) bool {
	for {
		old := c.v.Load()
		ow, n := int64(old>>countBits), int64(old&(1<<countBits-1))
		if ow != w&(1<<32-1) {
			n = 0
		}
		if n >= limit {
			return false
		}
		nv := uint64(w&(1<<32-1))<<countBits | uint64(n+1)
		if c.v.CompareAndSwap(old, nv) {
			return true
		}
	}
}

// used is the count in window w.
func (c *counter) used(w int64) int64 {
	old := c.v.Load()
	if int64(old>>countBits) != w&(1<<32-1) {
		return 0
	}
	return int64(old & (1<<countBits - 1))
}
