package auth

import (
	"container/list"
	"sync"
	"time"
)

// DefaultCacheSize bounds each authorizer's result cache (entries).
const DefaultCacheSize = 10000

// resultCache keeps authorizer answers for a TTL, at most max of them
// (the least recently used goes first). Safe for concurrent use.
type resultCache struct {
	mu    sync.Mutex
	max   int
	ttl   time.Duration
	now   func() time.Time
	items map[string]*list.Element
	order list.List // front: most recently used
}

type cacheEntry struct {
	key     string
	answer  *Answer
	expires time.Time
}

func newResultCache(size int, ttl time.Duration, now func() time.Time) *resultCache {
	return &resultCache{max: size, ttl: ttl, now: now, items: make(map[string]*list.Element)}
}

// get returns the answer cached under key, if it has not expired.
func (c *resultCache) get(key string) (*Answer, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if !ok {
		return nil, false
	}
	e := el.Value.(*cacheEntry)
	if !c.now().Before(e.expires) {
		c.order.Remove(el)
		delete(c.items, key)
		return nil, false
	}
	c.order.MoveToFront(el)
	return e.answer, true
}

// put caches a under key for the TTL.
func (c *resultCache) put(key string, a *Answer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	exp := c.now().Add(c.ttl)
	if el, ok := c.items[key]; ok {
		e := el.Value.(*cacheEntry)
		e.answer, e.expires = a, exp
		c.order.MoveToFront(el)
		return
	}
	c.items[key] = c.order.PushFront(&cacheEntry{key: key, answer: a, expires: exp})
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.items, last.Value.(*cacheEntry).key)
	}
}

// len is the number of entries, expired ones included.
func (c *resultCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
