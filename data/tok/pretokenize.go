package tok

import (
	"unicode"
	"unicode/utf8"
)

// preTokenizer splits a normalized segment into words (Hugging Face's pre-tokenizers).
type preTokenizer interface {
	// split calls fn with each word of s, in order; it never calls fn with "".
	split(s string, fn func(word string))
}

// byteLevelPre is Hugging Face's ByteLevel pre-tokenizer. The mapping of bytes to the
// byte alphabet is done by the BPE model itself (bpeModel.byteLevel), so the words passed
// on are raw text.
type byteLevelPre struct {
	addPrefixSpace bool
	useRegex       bool
}

func (p byteLevelPre) split(s string, fn func(string)) {
	if s == "" {
		return
	}
	if p.addPrefixSpace && s[0] != ' ' {
		s = " " + s
	}
	if !p.useRegex {
		fn(s)
		return
	}
	gpt2Split(s, fn)
}

// isBertPunct: ASCII punctuation (every printable non-alphanumeric ASCII character, so
// also $ + < = > ^ ` | ~) or a Unicode punctuation category (Pc Pd Ps Pe Pi Pf Po).
func isBertPunct(r rune) bool {
	if r < utf8.RuneSelf {
		return (r >= 33 && r <= 47) || (r >= 58 && r <= 64) || (r >= 91 && r <= 96) || (r >= 123 && r <= 126)
	}
	return unicode.IsPunct(r)
}

// bertPre is Hugging Face's BertPreTokenizer: split on White_Space (removed) and
// isolate each punctuation rune.
type bertPre struct{}

// asciiBert classifies ASCII bytes for the BERT pre-tokenizer.
var asciiBert = func() (t [utf8.RuneSelf]byte) {
	for r := rune(0); r < utf8.RuneSelf; r++ {
		switch {
		case unicode.IsSpace(r):
			t[r] = bertSpace
		case isBertPunct(r):
			t[r] = bertPunct
		}
	}
	return t
}()

const (
	bertOther = iota
	bertSpace
	bertPunct
)

func bertClass(r rune) byte {
	if r < utf8.RuneSelf {
		return asciiBert[r]
	}
	switch {
	case unicode.IsSpace(r):
		return bertSpace
	case unicode.IsPunct(r):
		return bertPunct
	}
	return bertOther
}

func (bertPre) split(s string, fn func(string)) {
	start := 0
	for i := 0; i < len(s); {
		r, n := decodeRune(s, i)
		switch bertClass(r) {
		case bertSpace:
			if start < i {
				fn(s[start:i])
			}
			start = i + n
		case bertPunct:
			if start < i {
				fn(s[start:i])
			}
			fn(s[i : i+n])
			start = i + n
		}
		i += n
	}
	if start < len(s) {
		fn(s[start:])
	}
}

// whitespaceSplitPre is Hugging Face's WhitespaceSplit: split on White_Space.
type whitespaceSplitPre struct{}

func (whitespaceSplitPre) split(s string, fn func(string)) {
	start := -1
	for i := 0; i < len(s); {
		r, n := decodeRune(s, i)
		if unicode.IsSpace(r) {
			if start >= 0 {
				fn(s[start:i])
				start = -1
			}
		} else if start < 0 {
			start = i
		}
		i += n
	}
	if start >= 0 {
		fn(s[start:])
	}
}

// isRegexWord is the \w class of Rust's regex crate: Alphabetic, marks, decimal digits,
// connector punctuation and the joiners.
func isRegexWord(r rune) bool {
	if r < utf8.RuneSelf {
		return r == '_' || ('0' <= r && r <= '9') || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z')
	}
	return unicode.IsLetter(r) || unicode.In(r, unicode.Nl, unicode.Other_Alphabetic, unicode.Nd, unicode.Pc) ||
		unicode.IsMark(r) || r == 0x200C || r == 0x200D
}

// whitespacePre is Hugging Face's Whitespace pre-tokenizer: the pattern \w+|[^\w\s]+.
type whitespacePre struct{}

func (whitespacePre) split(s string, fn func(string)) {
	const none, word, other = 0, 1, 2
	start, kind := 0, none
	for i := 0; i < len(s); {
		r, n := decodeRune(s, i)
		k := other
		if unicode.IsSpace(r) {
			k = none
		} else if isRegexWord(r) {
			k = word
		}
		if k != kind {
			if kind != none {
				fn(s[start:i])
			}
			start, kind = i, k
		}
		i += n
	}
	if kind != none {
		fn(s[start:])
	}
}

// sequencePre applies pre-tokenizers one after the other, each to the words of the last.
type sequencePre []preTokenizer

func (q sequencePre) split(s string, fn func(string)) {
	if len(q) == 0 {
		if s != "" {
			fn(s)
		}
		return
	}
	q[0].split(s, func(w string) { q[1:].split(w, fn) })
}

// noPre passes the segment through as one word.
type noPre struct{}

func (noPre) split(s string, fn func(string)) {
	if s != "" {
		fn(s)
	}
}
