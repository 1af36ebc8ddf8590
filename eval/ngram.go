package eval

import (
	"unicode"
	"unicode/utf8"
)

// maxN is the largest n-gram order used by BLEU and CIDEr-D.
const maxN = 4

// pyIsSpace reports whether Python's str.split() (no arguments) splits on r.
func pyIsSpace(r rune) bool {
	switch {
	case r == ' ' || r >= '\t' && r <= '\r' || r >= 0x1c && r <= 0x1f || r == 0x85 || r == 0xa0:
		return true
	case r < 0x80:
		return false
	}
	return unicode.Is(unicode.White_Space, r) && r != 0x180e
}

// pyFields calls fn for each field of s as Python's str.split() (no
// arguments) finds them: runs of non-whitespace. BLEU and CIDEr-D split
// sentences this way.
func pyFields(s string, fn func(string)) {
	start := -1
	for i := 0; i < len(s); {
		c := s[i]
		var space bool
		size := 1
		if c < utf8.RuneSelf {
			space = c == ' ' || c >= '\t' && c <= '\r' || c >= 0x1c && c <= 0x1f
		} else {
			var r rune
			r, size = utf8.DecodeRuneInString(s[i:])
			space = pyIsSpace(r)
		}
		if space {
			if start >= 0 {
				fn(s[start:i])
				start = -1
			}
		} else if start < 0 {
			start = i
		}
		i += size
	}
	if start >= 0 {
		fn(s[start:])
	}
}

// pySplit splits like Python's str.split() with no arguments.
func pySplit(s string) []string {
	var out []string
	pyFields(s, func(w string) { out = append(out, w) })
	return out
}

// gramCount is one distinct n-gram of a sentence and its count.
type gramCount struct {
	id    int32
	count int32
}

// sentence is a tokenized sentence's distinct n-grams (orders 1..4) in
// order of first occurrence (order 1 first, then 2, ...), as Python's
// dict in pycocoevalcap's precook holds them.
type sentence struct {
	words int
	grams []gramCount
}

// gramIndex interns words and n-grams to dense ids for one scoring run. An
// n-gram's id is found from the id of its (n-1)-gram prefix and its last
// word, so every lookup is one uint64-keyed map access.
type gramIndex struct {
	words map[string]int32
	grams u64Table
	order []uint8 // n-gram order (1..4) by id

	buf   []int32 // word ids of the current sentence
	prev  []int32 // (k-1)-gram ids at each position
	seen  []int32 // per gram id: 1 + index of the last sentence that contains it
	slot  []int32 // per gram id: its index in that sentence's grams
	nsent int32
	arena []gramCount
}

func newGramIndex() *gramIndex {
	return &gramIndex{words: map[string]int32{}}
}

// reserve pre-sizes the index for about nWords more words.
func (x *gramIndex) reserve(nWords int) {
	if need := len(x.arena) + maxN*nWords; cap(x.arena) < need {
		a := make([]gramCount, len(x.arena), need)
		copy(a, x.arena)
		x.arena = a
	}
	x.grams.reserve(2 * nWords)
}

// u64Table is an open-addressing hash table from non-zero uint64 keys to
// int32 values (linear probing, power-of-two size).
type u64Table struct {
	keys []uint64
	vals []int32
	n    int
}

func (t *u64Table) reserve(n int) {
	size := 16
	for size < 2*(t.n+n) {
		size <<= 1
	}
	if size > len(t.keys) {
		t.rehash(size)
	}
}

func (t *u64Table) rehash(size int) {
	oldK, oldV := t.keys, t.vals
	t.keys, t.vals = make([]uint64, size), make([]int32, size)
	mask := uint64(size - 1)
	for i, k := range oldK {
		if k != 0 {
			j := hash64(k) & mask
			for t.keys[j] != 0 {
				j = (j + 1) & mask
			}
			t.keys[j], t.vals[j] = k, oldV[i]
		}
	}
}

func hash64(k uint64) uint64 {
	k ^= k >> 33
	k *= 0xff51afd7ed558ccd
	k ^= k >> 33
	return k
}

// lookup returns the value of key, inserting next() if key is absent.
func (t *u64Table) lookup(key uint64, next func() int32) int32 {
	if 2*(t.n+1) > len(t.keys) {
		t.rehash(max(16, 2*len(t.keys)))
	}
	mask := uint64(len(t.keys) - 1)
	for j := hash64(key) & mask; ; j = (j + 1) & mask {
		switch t.keys[j] {
		case key:
			return t.vals[j]
		case 0:
			v := next()
			t.keys[j], t.vals[j] = key, v
			t.n++
			return v
		}
	}
}

func (x *gramIndex) gramID(prefix int32, word int32) int32 {
	// prefix+1 >= 0 and word+1 >= 1, so the key is never 0.
	key := uint64(uint32(prefix+1))<<32 | uint64(uint32(word+1))
	return x.grams.lookup(key, func() int32 {
		id := int32(len(x.order))
		var o uint8 = 1
		if prefix >= 0 {
			o = x.order[prefix] + 1
		}
		x.order = append(x.order, o)
		x.seen = append(x.seen, 0)
		x.slot = append(x.slot, 0)
		return id
	})
}

// add splits s Python-style and returns its n-gram counts.
func (x *gramIndex) add(s string) sentence {
	x.buf = x.buf[:0]
	pyFields(s, func(w string) {
		id, ok := x.words[w]
		if !ok {
			id = int32(len(x.words))
			x.words[w] = id
		}
		x.buf = append(x.buf, id)
	})
	n := len(x.buf)
	x.nsent++
	stamp := x.nsent
	start := len(x.arena)
	if cap(x.prev) < n {
		x.prev = make([]int32, n)
	}
	prev := x.prev[:n]
	for i := range prev {
		prev[i] = -1
	}
	for k := 1; k <= maxN; k++ {
		for i := 0; i+k <= n; i++ {
			id := x.gramID(prev[i], x.buf[i+k-1])
			prev[i] = id
			if x.seen[id] == stamp {
				x.arena[x.slot[id]].count++
				continue
			}
			x.seen[id] = stamp
			x.slot[id] = int32(len(x.arena))
			x.arena = append(x.arena, gramCount{id: id, count: 1})
		}
	}
	return sentence{words: n, grams: x.arena[start:len(x.arena):len(x.arena)]}
}
