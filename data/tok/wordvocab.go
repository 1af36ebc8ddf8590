package tok

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Reserved tokens and file naming of WordVocab.
const (
	// WordPad is the padding token, id 0.
	WordPad = "<pad>"
	// WordUnk stands for words outside the vocabulary, id 1.
	WordUnk = "<unk>"
	// WordStart opens every caption, id 2 (the notebook's "startseq").
	WordStart = "startseq"
	// WordEnd closes every caption, id 3 (the notebook's "endseq").
	WordEnd = "endseq"
	// WordVocabFile is the file name Load looks for in a model folder.
	WordVocabFile = "word_vocab.json"
	// WordVocabFormat is the "format" field of a word vocabulary file.
	WordVocabFormat = "imgcap-word-vocab"
)

var wordSpecials = []string{WordPad, WordUnk, WordStart, WordEnd}

// WordVocab is the word vocabulary of the original Keras VGG16+LSTM notebook, made
// deterministic. It implements Tokenizer.
//
// Captions are cleaned as the notebook intends: lowercased, split on white space, every
// character outside a-z removed from each word, and words shorter than two letters
// dropped (so "A dog's toy, 2 balls." gives "dogs toy balls"). Non-ASCII letters are
// removed too ("café" -> "caf"), as the notebook's [^A-Za-z] pattern says. (In the
// notebook that pattern is passed to Python's str.replace, which does not take regular
// expressions, so it removes nothing; the words there are split by Keras' Tokenizer
// filters instead, which keep digits and apostrophes. We implement the stated intent.)
//
// Ids: 0 is <pad>, 1 is <unk> (words below the minimum count, or never seen), 2 is
// startseq, 3 is endseq; then the words by decreasing count, ties in alphabetical (byte)
// order. Keras' Tokenizer breaks ties by first appearance, which depends on the caption
// order; this order depends only on the counts. The words "startseq" and "endseq" in a
// caption map to their reserved ids, as in the notebook.
//
// The JSON file (Save, LoadWordVocab) holds {"format", "version": 1, "min_count",
// "tokens": [...] (index = id), "counts": [...]}.
type WordVocab struct {
	tokens   []string
	counts   []int
	index    map[string]int
	minCount int
	minLen   int // shortest word kept; 0 means the notebook's 2
	source   string
}

// minWordLength is the shortest word the vocabulary keeps.
func (v *WordVocab) minWordLength() int {
	if v.minLen <= 0 {
		return notebookMinWordLength
	}
	return v.minLen
}

// wordVocabFile is the JSON form of a WordVocab: tokens[i] has id i.
type wordVocabFile struct {
	Format   string `json:"format"`
	Version  int    `json:"version"`
	MinCount int    `json:"min_count"`
	// MinWordLength is the shortest word kept (absent: 2, the notebook's rule).
	MinWordLength int      `json:"min_word_length,omitempty"`
	Tokens        []string `json:"tokens"`
	Counts        []int    `json:"counts,omitempty"`
}

// CleanCaptionWords returns the words the notebook keeps from a caption (see WordVocab),
// without startseq/endseq.
func CleanCaptionWords(caption string) []string {
	return CleanWords(caption, notebookMinWordLength)
}

// notebookMinWordLength is the notebook's rule: words of one letter are dropped.
const notebookMinWordLength = 2

// CleanWords is CleanCaptionWords keeping words of at least minLen letters (1 keeps "a").
func CleanWords(caption string, minLen int) []string {
	minLen = max(minLen, 1)
	var out []string
	for _, w := range strings.Fields(strings.ToLower(caption)) {
		b := make([]byte, 0, len(w))
		for i := 0; i < len(w); i++ {
			if c := w[i]; c >= 'a' && c <= 'z' {
				b = append(b, c)
			}
		}
		if len(b) >= minLen {
			out = append(out, string(b))
		}
	}
	return out
}

// BuildWordVocab counts the cleaned words of captions and keeps those seen at least
// minCount times (minCount <= 1 keeps all).
func BuildWordVocab(captions []string, minCount int) *WordVocab {
	return BuildWordVocabMinLength(captions, minCount, notebookMinWordLength)
}

// BuildWordVocabMinLength is BuildWordVocab keeping words of at least minLen letters (the
// notebook uses 2; 1 also keeps "a", which the references of caption metrics contain).
func BuildWordVocabMinLength(captions []string, minCount, minLen int) *WordVocab {
	minLen = max(minLen, 1)
	counts := map[string]int{}
	for _, c := range captions {
		for _, w := range CleanWords(c, minLen) {
			counts[w]++
		}
	}
	reserved := map[string]bool{}
	for _, s := range wordSpecials {
		reserved[s] = true
	}
	var words []string
	unk := 0
	for w, n := range counts {
		switch {
		case reserved[w]:
		case n >= minCount:
			words = append(words, w)
		default:
			unk += n
		}
	}
	sort.Slice(words, func(i, j int) bool {
		if counts[words[i]] != counts[words[j]] {
			return counts[words[i]] > counts[words[j]]
		}
		return words[i] < words[j]
	})
	v := &WordVocab{minCount: max(minCount, 1), minLen: minLen}
	v.tokens = append(append([]string(nil), wordSpecials...), words...)
	v.counts = []int{0, unk, len(captions), len(captions)}
	for _, w := range words {
		v.counts = append(v.counts, counts[w])
	}
	v.buildIndex()
	return v
}

func (v *WordVocab) buildIndex() {
	v.index = make(map[string]int, len(v.tokens))
	for i, t := range v.tokens {
		v.index[t] = i
	}
}

// Save writes the vocabulary as JSON (atomically: a temporary file renamed into place).
func (v *WordVocab) Save(path string) error {
	data, err := json.MarshalIndent(wordVocabFile{
		Format: WordVocabFormat, Version: 1, MinCount: v.minCount, MinWordLength: v.minWordLength(), Tokens: v.tokens, Counts: v.counts,
	}, "", " ")
	if err != nil {
		return fmt.Errorf("tok: %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".word_vocab-*.tmp")
	if err != nil {
		return fmt.Errorf("tok: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("tok: %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("tok: %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("tok: %w", err)
	}
	return nil
}

// LoadWordVocab reads a vocabulary written by Save.
func LoadWordVocab(path string) (*WordVocab, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tok: %w", err)
	}
	var f wordVocabFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("tok: %s: %w", path, jsonErr(data, err))
	}
	if f.Format != WordVocabFormat {
		return nil, fmt.Errorf("tok: %s: format %q, want %q", path, f.Format, WordVocabFormat)
	}
	if f.Version != 1 {
		return nil, fmt.Errorf("tok: %s: version %d is not supported (want 1)", path, f.Version)
	}
	if len(f.Tokens) < len(wordSpecials) {
		return nil, fmt.Errorf("tok: %s: tokens: want at least %d entries, got %d", path, len(wordSpecials), len(f.Tokens))
	}
	for i, s := range wordSpecials {
		if f.Tokens[i] != s {
			return nil, fmt.Errorf("tok: %s: tokens[%d] is %q, want %q", path, i, f.Tokens[i], s)
		}
	}
	if f.Counts != nil && len(f.Counts) != len(f.Tokens) {
		return nil, fmt.Errorf("tok: %s: %d counts for %d tokens", path, len(f.Counts), len(f.Tokens))
	}
	if f.MinWordLength < 0 {
		return nil, fmt.Errorf("tok: %s: min_word_length %d, want >= 1", path, f.MinWordLength)
	}
	v := &WordVocab{tokens: f.Tokens, counts: f.Counts, minCount: f.MinCount, minLen: f.MinWordLength, source: path}
	v.buildIndex()
	if len(v.index) != len(v.tokens) {
		seen := map[string]int{}
		for i, t := range v.tokens {
			if j, dup := seen[t]; dup {
				return nil, fmt.Errorf("tok: %s: tokens[%d] and tokens[%d] are both %q", path, j, i, t)
			}
			seen[t] = i
		}
	}
	for i, t := range v.tokens {
		if t == "" || strings.ContainsAny(t, " \t\n\r") {
			return nil, fmt.Errorf("tok: %s: tokens[%d] %q is empty or holds white space", path, i, t)
		}
	}
	return v, nil
}

// Words returns the vocabulary in id order (a copy).
func (v *WordVocab) Words() []string { return append([]string(nil), v.tokens...) }

// Count returns how often the token with this id was seen when the vocabulary was built
// (for <unk>: the occurrences of the words left out); 0 when unknown.
func (v *WordVocab) Count(id int) int {
	if id < 0 || id >= len(v.counts) {
		return 0
	}
	return v.counts[id]
}

// Encode returns the ids of the caption's cleaned words; unknown words become <unk>.
func (v *WordVocab) Encode(text string) ([]int, error) {
	words := CleanWords(text, v.minWordLength())
	ids := make([]int, len(words))
	for i, w := range words {
		id, ok := v.index[w]
		if !ok {
			id = 1
		}
		ids[i] = id
	}
	return ids, nil
}

// Decode joins the words of ids with spaces; with skipSpecial, <pad>, <unk>, startseq and
// endseq are left out. Ids outside the vocabulary are ignored.
func (v *WordVocab) Decode(ids []int, skipSpecial bool) string {
	var words []string
	for _, id := range ids {
		if id < 0 || id >= len(v.tokens) || (skipSpecial && id < len(wordSpecials)) {
			continue
		}
		words = append(words, v.tokens[id])
	}
	return strings.Join(words, " ")
}

// AddSpecial returns startseq ids endseq.
func (v *WordVocab) AddSpecial(ids []int) []int {
	out := make([]int, 0, len(ids)+2)
	out = append(out, 2)
	out = append(out, ids...)
	return append(out, 3)
}

// VocabSize is the number of tokens, padding included.
func (v *WordVocab) VocabSize() int { return len(v.tokens) }

// Special returns PAD 0, UNK 1, BOS startseq (2) and EOS endseq (3).
func (v *WordVocab) Special() SpecialIDs {
	s := NoSpecialIDs()
	s.PAD, s.UNK, s.BOS, s.EOS = 0, 1, 2, 3
	return s
}

// TokenToID returns the id of a word.
func (v *WordVocab) TokenToID(token string) (int, bool) {
	id, ok := v.index[token]
	return id, ok
}

// IDToToken returns the word with this id.
func (v *WordVocab) IDToToken(id int) (string, bool) {
	if id < 0 || id >= len(v.tokens) {
		return "", false
	}
	return v.tokens[id], true
}

// Info describes the vocabulary.
func (v *WordVocab) Info() Info { return Info{Kind: KindWord, Source: v.source} }
