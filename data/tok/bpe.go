package tok

import (
	"fmt"
	"sync"
	"unicode/utf8"
)

// bpeModel is Hugging Face's BPE model: a vocabulary, ranked merges, and the options of
// tokenizers' `models.BPE` (continuing_subword_prefix, end_of_word_suffix, unk_token,
// fuse_unk, byte_fallback, ignore_merges). Dropout is not supported (inference only).
type bpeModel struct {
	vocab  map[string]int
	idToks []string // id -> token
	hasID  []bool   // whether an id is used
	merges map[uint64]bpeMerge

	// byteLevel: words are raw bytes that the ByteLevel pre-tokenizer maps to the
	// byte alphabet; byteIDs caches the id of each byte's one-rune token (-1: absent).
	byteLevel bool
	byteIDs   [256]int

	prefix, suffix string // continuing_subword_prefix, end_of_word_suffix
	unkID          int    // -1 when there is no unk_token
	fuseUnk        bool
	byteFallback   bool
	ignoreMerges   bool

	cache *wordCache
}

type bpeMerge struct {
	rank, newID int32
}

func pairKey(a, b int) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// bpeOptions are the optional settings of a BPE model.
type bpeOptions struct {
	prefix, suffix string
	unkToken       string // "" = none
	fuseUnk        bool
	byteFallback   bool
	ignoreMerges   bool
	byteLevel      bool
}

// newBPE builds the model. merges are in rank order (first = applied first); as in
// Hugging Face, a later duplicate of a pair overrides the earlier rank. Every merge's
// parts and result must be in vocab. src names the file for errors.
func newBPE(src string, vocab map[string]int, merges [][2]string, o bpeOptions) (*bpeModel, error) {
	m := &bpeModel{
		vocab:        vocab,
		merges:       make(map[uint64]bpeMerge, len(merges)),
		byteLevel:    o.byteLevel,
		prefix:       o.prefix,
		suffix:       o.suffix,
		unkID:        -1,
		fuseUnk:      o.fuseUnk,
		byteFallback: o.byteFallback,
		ignoreMerges: o.ignoreMerges,
		cache:        newWordCache(cacheCapacity),
	}
	var err error
	if m.idToks, m.hasID, err = invertVocab(src, vocab); err != nil {
		return nil, err
	}
	if o.unkToken != "" {
		id, ok := vocab[o.unkToken]
		if !ok {
			return nil, fmt.Errorf("%s: unk_token %q is not in the vocabulary", src, o.unkToken)
		}
		m.unkID = id
	}
	for rank, mg := range merges {
		a, ok := vocab[mg[0]]
		if !ok {
			return nil, fmt.Errorf("%s: merge %d (%q %q): %q is not in the vocabulary", src, rank+1, mg[0], mg[1], mg[0])
		}
		b, ok := vocab[mg[1]]
		if !ok {
			return nil, fmt.Errorf("%s: merge %d (%q %q): %q is not in the vocabulary", src, rank+1, mg[0], mg[1], mg[1])
		}
		right := mg[1]
		if o.prefix != "" && len(right) >= len(o.prefix) && right[:len(o.prefix)] == o.prefix {
			right = right[len(o.prefix):]
		}
		merged := mg[0] + right
		id, ok := vocab[merged]
		if !ok {
			return nil, fmt.Errorf("%s: merge %d (%q %q): result %q is not in the vocabulary", src, rank+1, mg[0], mg[1], merged)
		}
		m.merges[pairKey(a, b)] = bpeMerge{rank: int32(rank), newID: int32(id)}
	}
	for b := 0; b < 256; b++ {
		if id, ok := vocab[byteCharStrings[b]]; ok {
			m.byteIDs[b] = id
		} else {
			m.byteIDs[b] = -1
		}
	}
	return m, nil
}

// invertVocab returns the id -> token table and which ids are used, rejecting negative,
// duplicate or absurdly sparse ids.
func invertVocab(src string, vocab map[string]int) ([]string, []bool, error) {
	maxID := -1
	for tok, id := range vocab {
		if id < 0 {
			return nil, nil, fmt.Errorf("%s: token %q has negative id %d", src, tok, id)
		}
		maxID = max(maxID, id)
	}
	if maxID > 10*len(vocab)+1000 {
		return nil, nil, fmt.Errorf("%s: vocabulary of %d tokens has id %d: ids are too sparse", src, len(vocab), maxID)
	}
	toks := make([]string, maxID+1)
	seen := make([]bool, maxID+1)
	for tok, id := range vocab {
		if seen[id] {
			a, b := toks[id], tok
			if b < a {
				a, b = b, a
			}
			return nil, nil, fmt.Errorf("%s: id %d is used by both %q and %q", src, id, a, b)
		}
		seen[id] = true
		toks[id] = tok
	}
	return toks, seen, nil
}

func (m *bpeModel) tokenToID(tok string) (int, bool) {
	id, ok := m.vocab[tok]
	return id, ok
}

func (m *bpeModel) idToToken(id int) (string, bool) {
	if id < 0 || id >= len(m.idToks) || !m.hasID[id] {
		return "", false
	}
	return m.idToks[id], true
}

func (m *bpeModel) size() int { return len(m.idToks) }

// bpeScratch holds per-call buffers, pooled to keep Encode allocation-light.
type bpeScratch struct {
	syms []bpeSymbol
	heap []bpeCand
	ids  []int
}

type bpeSymbol struct {
	id         int32
	prev, next int32
	gone       bool
}

type bpeCand struct {
	rank, pos, newID int32
}

var bpeScratchPool = sync.Pool{New: func() any { return new(bpeScratch) }}

// tokenize appends the ids of one pre-tokenized word (raw bytes for byte-level models).
func (m *bpeModel) tokenize(word string, dst []int) []int {
	if word == "" {
		return dst
	}
	if out, ok := m.cache.appendCached(dst, word); ok {
		return out
	}
	if m.ignoreMerges {
		key := word
		if m.byteLevel {
			key = byteLevelString(word)
		}
		if id, ok := m.vocab[key]; ok {
			m.cache.put(word, []int{id})
			return append(dst, id)
		}
	}
	sc := bpeScratchPool.Get().(*bpeScratch)
	sc.syms = m.initialSymbols(word, sc.syms[:0])
	m.mergeAll(sc)
	ids := sc.ids[:0]
	for _, s := range sc.syms {
		if !s.gone {
			ids = append(ids, int(s.id))
		}
	}
	m.cache.put(word, ids)
	dst = append(dst, ids...)
	sc.ids = ids
	bpeScratchPool.Put(sc)
	return dst
}

// initialSymbols splits word into its characters (bytes for byte-level models) and looks
// each up, handling continuing_subword_prefix, end_of_word_suffix, byte_fallback and
// unk_token exactly as Hugging Face's BPE::merge_word does (a character with no token and
// no unk_token is dropped).
func (m *bpeModel) initialSymbols(word string, syms []bpeSymbol) []bpeSymbol {
	add := func(id int) {
		n := int32(len(syms))
		syms = append(syms, bpeSymbol{id: int32(id), prev: n - 1, next: n + 1})
	}
	if m.byteLevel && m.prefix == "" && m.suffix == "" && m.unkID < 0 && !m.byteFallback {
		for i := 0; i < len(word); i++ {
			if id := m.byteIDs[word[i]]; id >= 0 {
				add(id)
			}
		}
		return closeSymbols(syms)
	}
	unk, unkPending := -1, false
	flushUnk := func() {
		if unkPending {
			add(unk)
			unkPending = false
		}
	}
	for i := 0; i < len(word); {
		var ch string
		var next int
		if m.byteLevel {
			ch, next = byteCharStrings[word[i]], i+1
		} else {
			_, n := utf8.DecodeRuneInString(word[i:])
			ch, next = word[i:i+n], i+n
		}
		s := ch
		if i > 0 && m.prefix != "" {
			s = m.prefix + s
		}
		if next == len(word) && m.suffix != "" {
			s += m.suffix
		}
		i = next
		if id, ok := m.vocab[s]; ok {
			flushUnk()
			add(id)
			continue
		}
		if m.byteFallback {
			ids := make([]int, 0, len(s))
			for j := 0; j < len(s); j++ {
				id, ok := m.vocab[fmt.Sprintf("<0x%02X>", s[j])]
				if !ok {
					ids = nil
					break
				}
				ids = append(ids, id)
			}
			if ids != nil {
				for _, id := range ids {
					add(id)
				}
				continue
			}
		}
		if m.unkID >= 0 {
			if unkPending && !m.fuseUnk {
				add(unk)
			}
			unk, unkPending = m.unkID, true
		}
	}
	flushUnk()
	return closeSymbols(syms)
}

func closeSymbols(syms []bpeSymbol) []bpeSymbol {
	if len(syms) > 0 {
		syms[len(syms)-1].next = -1
	}
	return syms
}

// mergeAll applies merges until none applies: always the pair with the lowest rank,
// the leftmost one among equal ranks (Hugging Face's Word::merge_all, without dropout).
func (m *bpeModel) mergeAll(sc *bpeScratch) {
	syms := sc.syms
	h := sc.heap[:0]
	for i := 0; i+1 < len(syms); i++ {
		if mg, ok := m.merges[pairKey(int(syms[i].id), int(syms[i+1].id))]; ok {
			h = heapPush(h, bpeCand{rank: mg.rank, pos: int32(i), newID: mg.newID})
		}
	}
	for len(h) > 0 {
		var top bpeCand
		top, h = heapPop(h)
		s := &syms[top.pos]
		if s.gone || s.next < 0 {
			continue
		}
		right := &syms[s.next]
		// Skip entries made stale by an earlier merge: the pair at pos changed.
		if mg, ok := m.merges[pairKey(int(s.id), int(right.id))]; !ok || mg.newID != top.newID {
			continue
		}
		s.id = top.newID
		s.next = right.next
		right.gone = true
		if s.next >= 0 {
			syms[s.next].prev = top.pos
		}
		if s.prev >= 0 {
			if mg, ok := m.merges[pairKey(int(syms[s.prev].id), int(s.id))]; ok {
				h = heapPush(h, bpeCand{rank: mg.rank, pos: s.prev, newID: mg.newID})
			}
		}
		if s.next >= 0 {
			if mg, ok := m.merges[pairKey(int(s.id), int(syms[s.next].id))]; ok {
				h = heapPush(h, bpeCand{rank: mg.rank, pos: top.pos, newID: mg.newID})
			}
		}
	}
	sc.heap = h
}

func candLess(a, b bpeCand) bool {
	return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos)
}

func heapPush(h []bpeCand, c bpeCand) []bpeCand {
	h = append(h, c)
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if !candLess(h[i], h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
	return h
}

func heapPop(h []bpeCand) (bpeCand, []bpeCand) {
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h = h[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(h) && candLess(h[l], h[m]) {
			m = l
		}
		if r < len(h) && candLess(h[r], h[m]) {
			m = r
		}
		if m == i {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	return top, h
}
