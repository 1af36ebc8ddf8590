package tok

import (
	"slices"
	"sync"
	"testing"
)

// TestConcurrentEncode encodes the oracle captions from many goroutines at once (run with
// -race); the shared word cache must neither race nor change any result.
func TestConcurrentEncode(t *testing.T) {
	gcases := gpt2Cases(t)
	bcases := bertCases(t)
	gpt2 := load(t, "gpt2")
	bert := load(t, "bert-base-uncased")
	var wg sync.WaitGroup
	errs := make(chan string, 16)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for round := 0; round < 3; round++ {
				for i := range gcases {
					c := gcases[(i+g*41)%len(gcases)]
					if ids, err := gpt2.Encode(c.Text); err != nil || !slices.Equal(ids, c.IDs) {
						errs <- "gpt2: " + c.Text
						return
					}
					if dec := gpt2.Decode(c.IDs, true); dec != c.Decoded {
						errs <- "gpt2 decode: " + c.Text
						return
					}
					b := bcases[(i+g*41)%len(bcases)]
					if ids, err := bert.Encode(b.Text); err != nil || !slices.Equal(ids, b.IDsNoSpecial) {
						errs <- "bert: " + b.Text
						return
					}
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error("concurrent encode differs:", e)
	}
}

func TestWordCacheEviction(t *testing.T) {
	c := newWordCache(cacheShards * 2) // two entries per shard
	for i := 0; i < 1000; i++ {
		c.put(string(rune('a'+i%26))+itoa(i), []int{i})
	}
	total := 0
	for i := range c.shards {
		if n := len(c.shards[i].entries); n > 2 {
			t.Errorf("shard %d holds %d entries, cap 2", i, n)
		}
		total += len(c.shards[i].entries)
	}
	if total == 0 {
		t.Error("cache is empty")
	}
	// The most recent entry survives, with a copy of its ids.
	ids := []int{7}
	c.put("last", ids)
	ids[0] = 8
	if got, ok := c.appendCached(nil, "last"); !ok || !slices.Equal(got, []int{7}) {
		t.Errorf("appendCached(last) = %v, %v", got, ok)
	}
}
