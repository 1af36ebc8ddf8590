package tok

import (
	"unicode"
	"unicode/utf8"
)

// byteChars maps each byte to the printable rune GPT-2's byte-level BPE uses for it
// (OpenAI encoder.py bytes_to_unicode): printable Latin-1 bytes map to themselves, the
// other 68 bytes to U+0100.. in byte order.
var byteChars [256]rune

// byteCharStrings holds string(byteChars[b]) so lookups do not allocate.
var byteCharStrings [256]string

// charBytes is the inverse of byteChars.
var charBytes map[rune]byte

func init() {
	printable := func(b int) bool {
		return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)
	}
	n := 0
	charBytes = make(map[rune]byte, 256)
	for b := 0; b < 256; b++ {
		if printable(b) {
			byteChars[b] = rune(b)
		} else {
			byteChars[b] = rune(256 + n)
			n++
		}
		byteCharStrings[b] = string(byteChars[b])
		charBytes[byteChars[b]] = byte(b)
	}
}

// byteLevelString maps the bytes of s to their byte-level runes.
func byteLevelString(s string) string {
	buf := make([]byte, 0, 2*len(s))
	for i := 0; i < len(s); i++ {
		buf = utf8.AppendRune(buf, byteChars[s[i]])
	}
	return string(buf)
}

// byteLevelDecodeToken appends the raw bytes a byte-level token stands for. As in Hugging
// Face's ByteLevel decoder, a token holding any rune outside the byte alphabet (an added
// token such as "<|endoftext|>" written in plain text) contributes its own UTF-8 bytes.
func byteLevelDecodeToken(dst []byte, tok string) []byte {
	start := len(dst)
	for _, r := range tok {
		b, ok := charBytes[r]
		if !ok {
			return append(dst[:start], tok...)
		}
		dst = append(dst, b)
	}
	return dst
}

// GPT-2 pre-tokenizer character classes, as in the pattern
// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// with Unicode semantics: \s is the White_Space property, \p{L} and \p{N} the general
// categories L and N.
const (
	classOther = iota
	classLetter
	classNumber
	classSpace
)

func runeClass(r rune) int {
	if r < utf8.RuneSelf {
		return asciiClass[r]
	}
	switch {
	case unicode.IsLetter(r):
		return classLetter
	case unicode.IsNumber(r):
		return classNumber
	case unicode.IsSpace(r):
		return classSpace
	}
	return classOther
}

var asciiClass [utf8.RuneSelf]int

func init() {
	for r := rune(0); r < utf8.RuneSelf; r++ {
		switch {
		case unicode.IsLetter(r):
			asciiClass[r] = classLetter
		case unicode.IsNumber(r):
			asciiClass[r] = classNumber
		case unicode.IsSpace(r):
			asciiClass[r] = classSpace
		default:
			asciiClass[r] = classOther
		}
	}
}

// decodeRune is utf8.DecodeRuneInString with an ASCII fast path.
func decodeRune(s string, i int) (rune, int) {
	if c := s[i]; c < utf8.RuneSelf {
		return rune(c), 1
	}
	return utf8.DecodeRuneInString(s[i:])
}

// runEnd returns the end of the run of runes of class cls starting at i.
func runEnd(s string, i, cls int) int {
	for i < len(s) {
		r, n := decodeRune(s, i)
		if runeClass(r) != cls {
			break
		}
		i += n
	}
	return i
}

// gpt2Split calls fn with each piece of s as GPT-2's pre-tokenizer regex
// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// splits it. Go's RE2 has no lookahead, so the alternation is evaluated by hand, in the
// pattern's order (leftmost-first), at each position. s must be valid UTF-8.
func gpt2Split(s string, fn func(piece string)) {
	for i := 0; i < len(s); {
		end := gpt2Match(s, i)
		fn(s[i:end])
		i = end
	}
}

// gpt2Match returns the end of the regex match that starts at i.
func gpt2Match(s string, i int) int {
	c := s[i]
	// 's|'t|'re|'ve|'m|'ll|'d (case-sensitive, as in the pattern).
	if c == '\'' && i+1 < len(s) {
		switch s[i+1] {
		case 's', 't', 'm', 'd':
			return i + 2
		case 'r', 'v':
			if i+2 < len(s) && s[i+2] == 'e' {
				return i + 3
			}
		case 'l':
			if i+2 < len(s) && s[i+2] == 'l' {
				return i + 3
			}
		}
	}
	r, n := decodeRune(s, i)
	cls := runeClass(r)
	// " ?\p{L}+", " ?\p{N}+", " ?[^\s\p{L}\p{N}]+": an optional U+0020, then a run of one class.
	if c == ' ' && i+1 < len(s) {
		r2, _ := decodeRune(s, i+1)
		if cls2 := runeClass(r2); cls2 != classSpace {
			return runEnd(s, i+1, cls2)
		}
	}
	if cls != classSpace {
		return runEnd(s, i+n, cls)
	}
	// \s+(?!\S): the whitespace run, minus its last rune when a non-space follows it;
	// \s+ for a lone whitespace rune followed by a non-space.
	end := runEnd(s, i, classSpace)
	if end == len(s) {
		return end
	}
	_, lastLen := utf8.DecodeLastRuneInString(s[:end])
	if end-lastLen > i {
		return end - lastLen
	}
	return end
}

// appendLossyUTF8 appends b to dst as valid UTF-8, replacing each maximal invalid
// subsequence with one U+FFFD, as Rust's String::from_utf8_lossy and Python's
// bytes.decode("utf-8", "replace") do (Unicode's "substitution of maximal subparts").
func appendLossyUTF8(dst []byte, b []byte) []byte {
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			dst = append(dst, c)
			i++
			continue
		}
		var need int
		lo, hi := byte(0x80), byte(0xBF)
		switch {
		case c >= 0xC2 && c <= 0xDF:
			need = 1
		case c == 0xE0:
			need, lo = 2, 0xA0
		case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
			need = 2
		case c == 0xED:
			need, hi = 2, 0x9F
		case c == 0xF0:
			need, lo = 3, 0x90
		case c >= 0xF1 && c <= 0xF3:
			need = 3
		case c == 0xF4:
			need, hi = 3, 0x8F
		default:
			dst = append(dst, "\uFFFD"...)
			i++
			continue
		}
		j := i + 1
		ok := true
		for k := 0; k < need; k++ {
			if j >= len(b) || b[j] < lo || b[j] > hi {
				ok = false
				break
			}
			j++
			lo, hi = 0x80, 0xBF
		}
		if ok {
			dst = append(dst, b[i:j]...)
		} else {
			dst = append(dst, "\uFFFD"...)
		}
		i = j
	}
	return dst
}
