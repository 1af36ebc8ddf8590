package tok

import (
	"hash/maphash"
	"sync"
)

// wordCache is a bounded, sharded LRU cache from a pre-tokenized word to its ids. It is safe
// for concurrent use; sharding keeps goroutines that encode in parallel from contending
// on one lock.
type wordCache struct {
	seed   maphash.Seed
	shards [cacheShards]cacheShard
}

const (
	cacheShards = 16
	// cacheCapacity matches Hugging Face's BPE cache (10 000 words).
	cacheCapacity = 10000
	// cacheMaxWordLen: longer words are not cached (Hugging Face uses 256 too).
	cacheMaxWordLen = 256
)

type cacheShard struct {
	mu      sync.Mutex
	entries map[string]*cacheEntry
	head    cacheEntry // sentinel of the recency list: head.next is the most recent
	cap     int
}

type cacheEntry struct {
	key        string
	ids        []int
	prev, next *cacheEntry
}

func newWordCache(capacity int) *wordCache {
	c := &wordCache{seed: maphash.MakeSeed()}
	per := (capacity + cacheShards - 1) / cacheShards
	for i := range c.shards {
		s := &c.shards[i]
		s.entries = make(map[string]*cacheEntry, per)
		s.head.next, s.head.prev = &s.head, &s.head
		s.cap = per
	}
	return c
}

func (c *wordCache) shard(key string) *cacheShard {
	return &c.shards[maphash.String(c.seed, key)%cacheShards]
}

// appendCached appends the cached ids of key to dst; ok is false on a miss.
func (c *wordCache) appendCached(dst []int, key string) ([]int, bool) {
	if c == nil || len(key) >= cacheMaxWordLen {
		return dst, false
	}
	s := c.shard(key)
	s.mu.Lock()
	e, ok := s.entries[key]
	if ok {
		s.unlink(e)
		s.pushFront(e)
		dst = append(dst, e.ids...)
	}
	s.mu.Unlock()
	return dst, ok
}

// put stores a copy of ids under key, evicting the least recently used entry when full.
func (c *wordCache) put(key string, ids []int) {
	if c == nil || len(key) >= cacheMaxWordLen {
		return
	}
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.entries[key]; ok {
		return
	}
	if len(s.entries) >= s.cap {
		old := s.head.prev
		s.unlink(old)
		delete(s.entries, old.key)
	}
	// Clone the key: it may be a slice of a caller's long string.
	e := &cacheEntry{key: cloneString(key), ids: append([]int(nil), ids...)}
	s.entries[e.key] = e
	s.pushFront(e)
}

func (s *cacheShard) unlink(e *cacheEntry) {
	e.prev.next = e.next
	e.next.prev = e.prev
}

func (s *cacheShard) pushFront(e *cacheEntry) {
	e.prev = &s.head
	e.next = s.head.next
	s.head.next.prev = e
	s.head.next = e
}

func cloneString(s string) string { return string(append([]byte(nil), s...)) }
