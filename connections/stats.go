package connections

import "sync/atomic"

// QueueStats counts one server's send queues: the bytes queued now across
// its connections (frames the socket has not taken yet) and the sends
// refused since start because a queue was full. The send path only adds
// to atomic words; metrics read them at scrape time.
type QueueStats struct {
	queued    atomic.Int64
	overflows atomic.Int64
}

// Read returns the bytes queued now and the overflows so far.
func (q *QueueStats) Read() (queuedBytes, overflows int64) {
	return q.queued.Load(), q.overflows.Load()
}
