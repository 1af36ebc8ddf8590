package tok

import (
	"sort"
	"unicode"
)

// AddedToken is a token matched in the text before the model sees it, as in Hugging Face's
// AddedVocabulary: special tokens ([CLS], <|endoftext|>, BLIP's [DEC]) and user-added words.
type AddedToken struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"` // match only as a whole word
	LStrip     bool   `json:"lstrip"`      // absorb whitespace on the left
	RStrip     bool   `json:"rstrip"`      // absorb whitespace on the right
	Normalized bool   `json:"normalized"`  // match against the normalized text
	Special    bool   `json:"special"`     // skipped by Decode(ids, true)
}

// addedMatcher finds added tokens in text with Hugging Face's semantics: leftmost-longest
// matches, then the single_word, lstrip and rstrip rules.
type addedMatcher struct {
	byFirst  [256][]*AddedToken // candidates by first byte, longest first
	any      bool
	patterns func(*AddedToken) string // the text each token matches
}

func newAddedMatcher(toks []*AddedToken, pattern func(*AddedToken) string) *addedMatcher {
	m := &addedMatcher{}
	for _, t := range toks {
		p := pattern(t)
		if p == "" {
			continue
		}
		m.byFirst[p[0]] = append(m.byFirst[p[0]], t)
		m.any = true
	}
	for i := range m.byFirst {
		c := m.byFirst[i]
		sort.SliceStable(c, func(a, b int) bool { return len(pattern(c[a])) > len(pattern(c[b])) })
	}
	m.patterns = pattern
	return m
}

// split calls fn for each segment of s in order: text between matches with id -1, and
// each matched token (with any whitespace it strips) with its id.
func (m *addedMatcher) split(s string, fn func(seg string, id int)) {
	if m == nil || !m.any {
		fn(s, -1)
		return
	}
	done := 0 // start of the text not yet emitted
	for i := 0; i < len(s); {
		t := m.longestAt(s, i)
		if t == nil {
			i++
			continue
		}
		start, stop := i, i+len(m.patterns(t))
		i = stop
		if t.SingleWord {
			startOK := start == 0 || !endsWithWord(s[:start])
			stopOK := stop == len(s) || !startsWithWord(s[stop:])
			if !startOK || !stopOK {
				continue
			}
		}
		if t.LStrip {
			start = max(trailingSpaceStart(s[:start]), done)
		}
		if t.RStrip {
			stop += leadingSpaceLen(s[stop:])
			i = stop
		}
		if done < start {
			fn(s[done:start], -1)
		}
		fn(s[start:stop], t.ID)
		done = stop
	}
	if done < len(s) {
		fn(s[done:], -1)
	}
}

func (m *addedMatcher) longestAt(s string, i int) *AddedToken {
	for _, t := range m.byFirst[s[i]] {
		p := m.patterns(t)
		if len(s)-i >= len(p) && s[i:i+len(p)] == p {
			return t
		}
	}
	return nil
}

func endsWithWord(s string) bool {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i]&0xC0 != 0x80 { // start of the last rune
			r, _ := decodeRune(s, i)
			return isRegexWord(r)
		}
	}
	return false
}

func startsWithWord(s string) bool {
	if s == "" {
		return false
	}
	r, _ := decodeRune(s, 0)
	return isRegexWord(r)
}

// trailingSpaceStart returns where the run of whitespace at the end of s begins.
func trailingSpaceStart(s string) int {
	i := len(s)
	for i > 0 {
		j := i - 1
		for j > 0 && s[j]&0xC0 == 0x80 {
			j--
		}
		r, _ := decodeRune(s, j)
		if !unicode.IsSpace(r) {
			break
		}
		i = j
	}
	return i
}

// leadingSpaceLen returns the length of the run of whitespace at the start of s.
func leadingSpaceLen(s string) int {
	i := 0
	for i < len(s) {
		r, n := decodeRune(s, i)
		if !unicode.IsSpace(r) {
			break
		}
		i += n
	}
	return i
}
