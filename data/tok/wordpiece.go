package tok

import (
	"fmt"
	"unicode/utf8"
)

// wordPieceModel is Hugging Face's WordPiece model: greedy longest-match-first over the
// vocabulary, continuation pieces spelled with a prefix ("##"), and the whole word
// replaced by unk_token when it is longer than maxChars runes or any part has no piece.
type wordPieceModel struct {
	vocab    map[string]int
	cont     map[string]int // continuation pieces, keyed without the prefix
	idToks   []string
	hasID    []bool
	prefix   string
	unkID    int
	maxChars int
	cache    *wordCache
}

func newWordPiece(src string, vocab map[string]int, unkToken, prefix string, maxChars int) (*wordPieceModel, error) {
	m := &wordPieceModel{
		vocab:    vocab,
		cont:     make(map[string]int),
		prefix:   prefix,
		maxChars: maxChars,
		cache:    newWordCache(cacheCapacity),
	}
	var err error
	if m.idToks, m.hasID, err = invertVocab(src, vocab); err != nil {
		return nil, err
	}
	id, ok := vocab[unkToken]
	if !ok {
		return nil, fmt.Errorf("%s: unk_token %q is not in the vocabulary", src, unkToken)
	}
	m.unkID = id
	for tok, id := range vocab {
		if len(tok) > len(prefix) && tok[:len(prefix)] == prefix {
			m.cont[tok[len(prefix):]] = id
		}
	}
	return m, nil
}

func (m *wordPieceModel) tokenToID(tok string) (int, bool) {
	id, ok := m.vocab[tok]
	return id, ok
}

func (m *wordPieceModel) idToToken(id int) (string, bool) {
	if id < 0 || id >= len(m.idToks) || !m.hasID[id] {
		return "", false
	}
	return m.idToks[id], true
}

func (m *wordPieceModel) size() int { return len(m.idToks) }

func (m *wordPieceModel) tokenize(word string, dst []int) []int {
	if word == "" {
		return dst
	}
	if out, ok := m.cache.appendCached(dst, word); ok {
		return out
	}
	start := len(dst)
	dst = m.pieces(word, dst)
	m.cache.put(word, dst[start:])
	return dst
}

func (m *wordPieceModel) pieces(word string, dst []int) []int {
	if utf8.RuneCountInString(word) > m.maxChars {
		return append(dst, m.unkID)
	}
	start0 := len(dst)
	for start := 0; start < len(word); {
		end := len(word)
		found := -1
		for start < end {
			var id int
			var ok bool
			if start == 0 {
				id, ok = m.vocab[word[:end]]
			} else if m.prefix == "" {
				id, ok = m.vocab[word[start:end]]
			} else {
				id, ok = m.cont[word[start:end]]
			}
			if ok {
				found = id
				break
			}
			_, n := utf8.DecodeLastRuneInString(word[start:end])
			end -= n
		}
		if found < 0 {
			return append(dst[:start0], m.unkID)
		}
		dst = append(dst, found)
		start = end
	}
	return dst
}
