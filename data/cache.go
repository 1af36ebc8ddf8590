package data

import (
	"container/list"
	"sync"
	"sync/atomic"
)

// Cache memoizes values by key for the loader's workers: at most maxEntries values are kept (least
// recently used evicted first; 0 = no bound), concurrent Gets of one key compute it once, and errors are
// not cached. It is safe for concurrent use.
//
// Two uses: LoaderOptions.Cache keeps whole items of a deterministic transform (evaluation: decode and
// resize each image once, not once per epoch); inside a random transform, a Cache[int, P] keyed by record
// index keeps the expensive deterministic part (the decoded, resized image) while the random part
// (crop, flip) runs every time.
type Cache[K comparable, V any] struct {
	mu           sync.Mutex
	max          int
	entries      map[K]*list.Element
	lru          list.List // front = most recently used; values are *cacheEntry[K, V]
	inflight     map[K]*cacheCall[V]
	hits, misses atomic.Int64
}

type cacheEntry[K comparable, V any] struct {
	key K
	val V
}

// cacheCall is a computation in progress that other callers wait for.
type cacheCall[V any] struct {
	done chan struct{}
	val  V
	err  error
}

// NewCache returns a cache holding at most maxEntries values (0 = unbounded).
func NewCache[K comparable, V any](maxEntries int) *Cache[K, V] {
	return &Cache[K, V]{max: maxEntries, entries: map[K]*list.Element{}, inflight: map[K]*cacheCall[V]{}}
}

// Get returns the value for key, calling compute on a miss. Callers asking for a key that is being
// computed wait for that computation and share its result (or error).
func (c *Cache[K, V]) Get(key K, compute func() (V, error)) (V, error) {
	c.mu.Lock()
	if e, ok := c.entries[key]; ok {
		c.lru.MoveToFront(e)
		v := e.Value.(*cacheEntry[K, V]).val
		c.mu.Unlock()
		c.hits.Add(1)
		return v, nil
	}
	if call, ok := c.inflight[key]; ok {
		c.mu.Unlock()
		<-call.done
		c.hits.Add(1)
		return call.val, call.err
	}
	call := &cacheCall[V]{done: make(chan struct{})}
	c.inflight[key] = call
	c.mu.Unlock()
	c.misses.Add(1)

	defer func() {
		c.mu.Lock()
		delete(c.inflight, key)
		if call.err == nil {
			c.entries[key] = c.lru.PushFront(&cacheEntry[K, V]{key, call.val})
			if c.max > 0 && c.lru.Len() > c.max {
				old := c.lru.Back()
				c.lru.Remove(old)
				delete(c.entries, old.Value.(*cacheEntry[K, V]).key)
			}
		}
		c.mu.Unlock()
		close(call.done)
	}()
	call.err = errPanicked // replaced below unless compute panics
	call.val, call.err = compute()
	return call.val, call.err
}

// Len is the number of cached values.
func (c *Cache[K, V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// Stats returns how many Gets were served from the cache (or a shared computation) and how many computed.
func (c *Cache[K, V]) Stats() (hits, misses int64) {
	return c.hits.Load(), c.misses.Load()
}
