//go:build linux

package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/portico-gateway/portico/loadtest/wsclient"
)

// subscribeTimeout bounds the subscribing of every connection, and
// waiting for --wait-members.
const subscribeTimeout = 60 * time.Second

// broadcastShards spread the per-publish counters over cache lines: every
// subscriber of one publish updates them at the same moment.
const broadcastShards = 16

// broadcast subscribes every connection to one channel (through a route
// with a declarative subscribe: {"action":Action,"channel":Channel}),
// then publishes Publishes messages "<seq>-<Unix ns>" through POST
// /{stage}/@channels/{channel} at PublishRate, and times, per publish,
// the arrival at the last subscriber of this process. Several processes
// can hold the subscribers: only one publishes (--publish), the others
// listen, and MergeBroadcast combines their summaries.
type broadcast struct {
	r          *runner
	subscribed []atomic.Bool // by Conn.ID
	nsub       atomic.Int64
	listening  atomic.Bool
	// arrivals and last are by shard, then publish (seq-1).
	arrivals   []atomic.Int32
	last       []atomic.Int64 // Unix ns of the latest arrival
	sentAt     []atomic.Int64 // Unix ns the publish was sent, from its body
	deliveries atomic.Int64
	unexpected atomic.Int64
	firstOdd   atomic.Pointer[string]
}

func (r *runner) newBroadcast() *broadcast {
	m := r.o.Publishes
	b := &broadcast{r: r, subscribed: make([]atomic.Bool, r.o.Connections),
		arrivals: make([]atomic.Int32, broadcastShards*m), last: make([]atomic.Int64, broadcastShards*m),
		sentAt: make([]atomic.Int64, m)}
	r.onMessage = b.onMessage
	return b
}

// onMessage runs on an event loop for every frame.
func (b *broadcast) onMessage(c *wsclient.Conn, msg []byte) {
	if !b.listening.Load() {
		// The route's answer to the subscribe message.
		if !b.subscribed[c.ID].Swap(true) {
			b.nsub.Add(1)
		}
		return
	}
	seq, ns, ok := parseStamp(msg)
	if !ok || seq == 0 || seq > uint64(b.r.o.Publishes) {
		b.unexpected.Add(1)
		if b.firstOdd.Load() == nil {
			s := clip(string(msg), 200)
			b.firstOdd.CompareAndSwap(nil, &s)
		}
		return
	}
	now := time.Now().UnixNano()
	i := int(seq - 1)
	b.sentAt[i].Store(ns)
	j := int(c.ID%broadcastShards)*b.r.o.Publishes + i
	b.arrivals[j].Add(1)
	for {
		old := b.last[j].Load()
		if now <= old || b.last[j].CompareAndSwap(old, now) {
			break
		}
	}
	b.deliveries.Add(1)
}

// subscribe sends every connection the subscribe message and waits for
// the route's answers.
func (b *broadcast) subscribe(ctx context.Context) {
	o := b.r.o
	conns := b.r.conns()
	msg := []byte(`{"action":"` + o.Action + `","channel":"` + o.Channel + `"}`)
	for _, c := range conns {
		_ = c.SendText(msg)
	}
	stop := b.r.progress(func() string {
		return fmt.Sprintf("broadcast: %d of %d subscribed", b.nsub.Load(), len(conns))
	})
	waitUntil(ctx, subscribeTimeout, func() bool { return b.nsub.Load() >= int64(len(conns)) })
	stop()
}

// members reads the channel's member count from the management API.
func (b *broadcast) members() (int, error) {
	resp, err := http.Get(b.r.o.managementURL() + "/@channels/" + url.PathEscape(b.r.o.Channel) + "?limit=1")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var page struct{ Count int }
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	err = json.NewDecoder(resp.Body).Decode(&page)
	return page.Count, err
}

func (b *broadcast) run(ctx context.Context) error {
	o, s := b.r.o, b.r.sum
	res := &BroadcastResult{Channel: o.Channel, Publisher: o.Publish, Publishes: o.Publishes,
		PublishRate: o.PublishRate, Statuses: map[string]int64{}}
	s.Broadcast = res
	gw := (*procWatch)(nil)
	if len(o.GatewayPIDs) > 0 {
		gw, _ = watchProc(o.GatewayPIDs)
	}
	b.subscribe(ctx)
	res.Subscribed = int(b.nsub.Load())
	if d := gw.delta(res.Subscribed); d != nil {
		res.BytesPerSubscription = d.BytesPerConnection
	}
	if n := s.Connect.Connected - res.Subscribed; n > 0 {
		s.problem("%d connections did not answer {\"action\":%q} within %v", n, o.Action, subscribeTimeout)
	}
	b.listening.Store(true)
	if o.WaitMembers > 0 {
		var n int
		var err error
		ok := waitUntil(ctx, subscribeTimeout, func() bool { n, err = b.members(); return err == nil && n >= o.WaitMembers })
		if !ok {
			s.problem("the channel had %d members (%v), not the %d of --wait-members, after %v", n, err, o.WaitMembers, subscribeTimeout)
		}
	}

	start := time.Now()
	stopProgress := b.r.progress(func() string {
		return fmt.Sprintf("broadcast: %d deliveries, %.0f/s", b.deliveries.Load(), float64(b.deliveries.Load())/time.Since(start).Seconds())
	})
	var published int64
	if o.Publish {
		published = b.publish(ctx, res, start)
	} else {
		// A listener: until every publish reached all its subscribers.
		waitUntil(ctx, o.Duration, func() bool { return b.complete(res.Subscribed) })
	}
	waitUntil(ctx, o.Drain, func() bool { return b.complete(res.Subscribed) })
	stopProgress()

	last := NewHist()
	var lastArrival, firstSent int64
	res.PublishedAt = make([]int64, 0, o.Publishes)
	res.LastAt = make([]int64, 0, o.Publishes)
	for i := range o.Publishes {
		var n int64
		var at int64
		for sh := range broadcastShards {
			j := sh*o.Publishes + i
			n += int64(b.arrivals[j].Load())
			at = max(at, b.last[j].Load())
		}
		sent := b.sentAt[i].Load()
		res.PublishedAt = append(res.PublishedAt, sent)
		res.LastAt = append(res.LastAt, at)
		if n == 0 {
			continue
		}
		res.Seen++
		if n > int64(res.Subscribed) {
			res.Duplicates += n - int64(res.Subscribed)
		}
		last.Record(time.Duration(at - sent))
		lastArrival = max(lastArrival, at)
		if firstSent == 0 || sent < firstSent {
			firstSent = sent
		}
	}
	res.Deliveries = b.deliveries.Load()
	res.LastDelivery = last.Latency()
	if lastArrival > firstSent {
		res.PerSecond = float64(res.Deliveries) / time.Duration(lastArrival-firstSent).Seconds()
	}
	res.Unexpected = b.unexpected.Load()
	s.Seconds = time.Since(start).Seconds()
	want := int64(res.Seen)
	if o.Publish {
		want = published
	}
	res.Expected = want * int64(res.Subscribed)
	res.Lost = max(res.Expected-res.Deliveries+res.Duplicates, 0)
	if o.Publishes > MaxMergeable {
		res.PublishedAt, res.LastAt = nil, nil
	}
	if res.Lost > 0 {
		s.problem("%d of %d deliveries never arrived", res.Lost, res.Expected)
	}
	if res.Duplicates > 0 {
		s.problem("%d deliveries arrived twice", res.Duplicates)
	}
	if res.Unexpected > 0 {
		s.problem("%d unexpected frames, first: %s", res.Unexpected, clip(*b.firstOdd.Load(), 100))
	}
	return nil
}

// complete reports whether every publish seen reached n subscribers.
func (b *broadcast) complete(n int) bool {
	total := int64(0)
	for i := range b.arrivals {
		total += int64(b.arrivals[i].Load())
	}
	return total >= int64(n)*int64(b.r.o.Publishes)
}

// publish sends the messages from one keep-alive client, paced.
func (b *broadcast) publish(ctx context.Context, res *BroadcastResult, start time.Time) int64 {
	o := b.r.o
	u, _ := url.Parse(o.managementURL() + "/@channels/" + url.PathEscape(o.Channel))
	client := newKeepAlive(u.Host, 10*time.Second)
	defer client.close()
	hist := NewHist()
	var ok int64
	body := make([]byte, 0, 64+o.MessageBytes)
	deadline := start.Add(o.Duration)
	for i := range o.Publishes {
		if ctx.Err() != nil || time.Now().After(deadline) {
			break
		}
		if o.PublishRate > 0 {
			due := start.Add(time.Duration(float64(i) / o.PublishRate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				sleep(ctx, d)
			}
		}
		t0 := time.Now()
		body = appendStamp(body[:0], uint64(i+1), t0.UnixNano(), o.MessageBytes)
		status, answer, err := client.post(u.EscapedPath(), body, nil)
		res.Published++
		if err != nil {
			res.Statuses["error"]++
			if res.FirstError == "" {
				res.FirstError = err.Error()
			}
			continue
		}
		hist.Record(time.Since(t0))
		res.Statuses[strconv.Itoa(status)]++
		if status != http.StatusOK {
			if res.FirstError == "" {
				res.FirstError = fmt.Sprintf("HTTP %d: %s", status, clip(string(answer), 150))
			}
			continue
		}
		ok++
		var a struct{ Delivered, Dropped, Nodes int }
		if json.Unmarshal(answer, &a) == nil {
			res.Nodes = max(res.Nodes, a.Nodes)
			res.Dropped += int64(a.Dropped)
		}
	}
	res.PublishHTTP = hist.Latency()
	if n := res.Published - ok; n > 0 {
		b.r.sum.problem("%d of %d publishes were not answered 200 (first: %s)", n, res.Published, res.FirstError)
	}
	return ok
}
