package loadtest

import (
	"fmt"
	"io"
	"time"
)

// BroadcastResult describes a broadcast run of one generator process.
type BroadcastResult struct {
	Channel     string  `json:"channel"`
	Subscribed  int     `json:"subscribed"` // connections whose subscribe was answered
	Publisher   bool    `json:"publisher"`  // this process published
	Publishes   int     `json:"publishes"`  // asked (--publishes)
	PublishRate float64 `json:"publishRate,omitempty"`
	// Published counts the publishes sent and Statuses their answers
	// (publisher only); Nodes is the most other nodes one answer
	// reported, Dropped the subscribers whose queue was full, summed.
	Published   int64            `json:"published,omitempty"`
	Statuses    map[string]int64 `json:"statuses,omitempty"`
	PublishHTTP Latency          `json:"publishHttp"`
	Nodes       int              `json:"nodes"`
	Dropped     int64            `json:"dropped"`
	FirstError  string           `json:"firstError,omitempty"`
	// Seen counts the publishes that reached this process at all.
	Seen       int   `json:"seen"`
	Deliveries int64 `json:"deliveries"`
	Expected   int64 `json:"expected"`
	Lost       int64 `json:"lost"`
	Duplicates int64 `json:"duplicates"`
	Unexpected int64 `json:"unexpected"`
	// PerSecond is Deliveries over the time from the first publish sent
	// to the last delivery.
	PerSecond float64 `json:"perSecond"`
	// LastDelivery is, per publish, the time from sending it to its
	// arrival at the last subscriber of this process.
	LastDelivery Latency `json:"lastDelivery"`
	// BytesPerSubscription is the growth of --gateway-pid's RSS while
	// the connections subscribed, per subscription.
	BytesPerSubscription float64 `json:"bytesPerSubscription,omitempty"`
	// PublishedAt and LastAt are, per publish, when it was sent and when
	// its last subscriber here had it (Unix ns; 0: never), for
	// MergeBroadcast; left out beyond MaxMergeable publishes.
	PublishedAt []int64 `json:"publishedAt,omitempty"`
	LastAt      []int64 `json:"lastAt,omitempty"`
}

// MergedBroadcast combines the summaries of the processes of one
// broadcast run.
type MergedBroadcast struct {
	Processes   int     `json:"processes"`
	Subscribers int     `json:"subscribers"`
	Publishes   int     `json:"publishes"` // reaching at least one process
	Deliveries  int64   `json:"deliveries"`
	Lost        int64   `json:"lost"`
	Duplicates  int64   `json:"duplicates"`
	PerSecond   float64 `json:"perSecond"`
	// LastDelivery is, per publish, the time until the last subscriber
	// of any process had it.
	LastDelivery Latency `json:"lastDelivery"`
}

// MergeBroadcast combines the broadcast summaries of several generator
// processes that held the subscribers of one run.
func MergeBroadcast(sums []*Summary) (MergedBroadcast, error) {
	var m MergedBroadcast
	var sent, last []int64
	for i, s := range sums {
		b := s.Broadcast
		if b == nil {
			return m, fmt.Errorf("summary %d is not of a broadcast run", i+1)
		}
		if len(b.LastAt) == 0 && b.Seen > 0 {
			return m, fmt.Errorf("summary %d lists no per-publish times (over %d publishes)", i+1, MaxMergeable)
		}
		m.Processes++
		m.Subscribers += b.Subscribed
		m.Deliveries += b.Deliveries
		m.Lost += b.Lost
		m.Duplicates += b.Duplicates
		for len(last) < len(b.LastAt) {
			last, sent = append(last, 0), append(sent, 0)
		}
		for j, at := range b.LastAt {
			last[j] = max(last[j], at)
			if p := b.PublishedAt[j]; p != 0 {
				sent[j] = p
			}
		}
	}
	h := NewHist()
	var first, end int64
	for j := range last {
		if last[j] == 0 || sent[j] == 0 {
			continue
		}
		m.Publishes++
		h.Record(time.Duration(last[j] - sent[j]))
		if first == 0 || sent[j] < first {
			first = sent[j]
		}
		end = max(end, last[j])
	}
	m.LastDelivery = h.Latency()
	if end > first {
		m.PerSecond = float64(m.Deliveries) / time.Duration(end-first).Seconds()
	}
	return m, nil
}

func printBroadcast(tw io.Writer, b *BroadcastResult) {
	fmt.Fprintf(tw, "broadcast\t%q to %d subscribers\t%d of %d publishes seen\n", b.Channel, b.Subscribed, b.Seen, b.Publishes)
	if b.Publisher {
		fmt.Fprintf(tw, "  published\t%d\tother nodes %d, %d dropped, answers %v\n", b.Published, b.Nodes, b.Dropped, b.Statuses)
		latency(tw, "publish HTTP", b.PublishHTTP)
	}
	fmt.Fprintf(tw, "  delivered\t%d of %d\t%.0f/s, %d lost, %d twice, %d unexpected\n", b.Deliveries, b.Expected, b.PerSecond, b.Lost, b.Duplicates, b.Unexpected)
	latency(tw, "last delivery", b.LastDelivery)
	if b.BytesPerSubscription != 0 {
		fmt.Fprintf(tw, "  server memory\t%.0f bytes/subscription\t(RSS growth while subscribing)\n", b.BytesPerSubscription)
	}
}
