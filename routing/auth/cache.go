package auth

import (
	"container/list"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultCacheSize bounds each authorizer's result cache (entries).
const DefaultCacheSize = 10000

// resultCache keeps authorizer answers for a TTL, at most max of them
// (the least recently used goes first). Safe for concurrent use.
type resultCache = lruCache[string, *cachedAnswer]

func newResultCache(size int, ttl time.Duration, now func() time.Time) *resultCache {
	return newLRUCache[string, *cachedAnswer](size, ttl, now)
}

// cachedAnswer is an answer in the result cache with the identity its
// hits share.
type cachedAnswer struct {
	*Answer
	hit atomic.Pointer[hitIdentity]
}

// hitIdentity is the identity the cache hits of one answer share for
// one method ARN: the connections of one token hold one Identity (and
// one requestContext.authorizer of it) instead of one each.
type hitIdentity struct {
	methodArn string
	id        *Identity
}

// identity is the answer's identity for a cache hit on methodArn by a
// request selecting no subprotocol: shared by every such hit, the
// policy evaluated once per method ARN.
func (c *cachedAnswer) identity(typ, methodArn string) (*Identity, error) {
	if h := c.hit.Load(); h != nil && h.methodArn == methodArn {
		return h.id, nil
	}
	id, err := c.Answer.identity(&Identity{Type: typ, shared: true}, methodArn)
	if err != nil {
		return nil, err
	}
	c.hit.Store(&hitIdentity{methodArn: methodArn, id: id})
	return id, nil
}

// lruCache keeps values until their expiry (at most ttl after they were
// put), at most max of them: the least recently used goes first. Safe
// for concurrent use.
type lruCache[K comparable, V any] struct {
	mu    sync.Mutex
	max   int
	ttl   time.Duration
	now   func() time.Time
	items map[K]*list.Element
	order list.List // front: most recently used
}

type cacheEntry[K comparable, V any] struct {
	key     K
	value   V
	expires time.Time
}

func newLRUCache[K comparable, V any](size int, ttl time.Duration, now func() time.Time) *lruCache[K, V] {
	if size <= 0 {
		size = DefaultCacheSize
	}
	return &lruCache[K, V]{max: size, ttl: ttl, now: now, items: make(map[K]*list.Element)}
}

// get returns the value cached under key, if it has not expired.
func (c *lruCache[K, V]) get(key K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if !ok {
		var zero V
		return zero, false
	}
	e := el.Value.(*cacheEntry[K, V])
	if !c.now().Before(e.expires) {
		c.order.Remove(el)
		delete(c.items, key)
		var zero V
		return zero, false
	}
	c.order.MoveToFront(el)
	return e.value, true
}

// put caches v under key for the TTL.
func (c *lruCache[K, V]) put(key K, v V) {
	c.putUntil(key, v, time.Time{})
}

// putUntil caches v under key for the TTL, or until expires when that
// is sooner (zero: no sooner).
func (c *lruCache[K, V]) putUntil(key K, v V, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	exp := c.now().Add(c.ttl)
	if !expires.IsZero() && expires.Before(exp) {
		exp = expires
	}
	if el, ok := c.items[key]; ok {
		e := el.Value.(*cacheEntry[K, V])
		e.value, e.expires = v, exp
		c.order.MoveToFront(el)
		return
	}
	c.items[key] = c.order.PushFront(&cacheEntry[K, V]{key: key, value: v, expires: exp})
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.items, last.Value.(*cacheEntry[K, V]).key)
	}
}

// remove drops the entry under key, if any.
func (c *lruCache[K, V]) remove(key K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		c.order.Remove(el)
		delete(c.items, key)
	}
}

// len is the number of entries, expired ones included.
func (c *lruCache[K, V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
