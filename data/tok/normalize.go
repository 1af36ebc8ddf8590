package tok

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// normalizer rewrites a text segment before pre-tokenization (Hugging Face's normalizers).
type normalizer func(s string) string

// bertNormalizer is Hugging Face's BertNormalizer (the BasicTokenizer of the original
// BERT), in the same order of steps: clean text, space out CJK ideographs, strip accents
// (NFD, then drop nonspacing marks), lowercase.
type bertNormalizer struct {
	cleanText    bool
	chineseChars bool
	stripAccents bool // strip_accents, with null already resolved to lowercase
	lowercase    bool
}

// isBertWhitespace: \t, \n, \r and every White_Space rune.
func isBertWhitespace(r rune) bool {
	return r == '\t' || r == '\n' || r == '\r' || unicode.IsSpace(r)
}

// isBertControl: control (Cc), format (Cf) and private-use (Co) runes, except \t \n \r.
func isBertControl(r rune) bool {
	if r == '\t' || r == '\n' || r == '\r' {
		return false
	}
	return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Co)
}

// isChineseChar: the CJK ideograph blocks BERT spaces out.
func isChineseChar(r rune) bool {
	return (r >= 0x4E00 && r <= 0x9FFF) ||
		(r >= 0x3400 && r <= 0x4DBF) ||
		(r >= 0x20000 && r <= 0x2A6DF) ||
		(r >= 0x2A700 && r <= 0x2B73F) ||
		(r >= 0x2B740 && r <= 0x2B81F) ||
		(r >= 0x2B920 && r <= 0x2CEAF) ||
		(r >= 0xF900 && r <= 0xFAFF) ||
		(r >= 0x2F800 && r <= 0x2FA1F)
}

// appendLower appends the full lowercase mapping of r, as Rust's char::to_lowercase: the
// simple mapping, except U+0130 (İ), whose lowercase is two runes.
func appendLower(b []byte, r rune) []byte {
	if r < utf8.RuneSelf {
		if 'A' <= r && r <= 'Z' {
			r += 'a' - 'A'
		}
		return append(b, byte(r))
	}
	if r == 0x130 {
		return append(b, "i\u0307"...)
	}
	return utf8.AppendRune(b, unicode.ToLower(r))
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// asciiClean is what clean_text does to each ASCII byte.
var asciiClean = func() (t [utf8.RuneSelf]byte) {
	for r := rune(0); r < utf8.RuneSelf; r++ {
		switch {
		case r == 0 || isBertControl(r):
			t[r] = cleanDrop
		case isBertWhitespace(r):
			t[r] = cleanSpace
		}
	}
	return t
}()

const (
	cleanKeep = iota
	cleanDrop
	cleanSpace
)

func (n bertNormalizer) normalize(s string) string {
	b := make([]byte, 0, len(s)+8)
	// Fast path over the ASCII prefix: no CJK, accents or multi-byte case mappings.
	i := 0
	for ; i < len(s) && s[i] < utf8.RuneSelf; i++ {
		c := s[i]
		if n.cleanText {
			switch asciiClean[c] {
			case cleanDrop:
				continue
			case cleanSpace:
				c = ' '
			}
		}
		if n.lowercase && 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	if i == len(s) {
		return string(b)
	}
	ascii := true
	for _, r := range s[i:] {
		if n.cleanText {
			if r == 0 || r == 0xFFFD || isBertControl(r) {
				continue
			}
			if isBertWhitespace(r) {
				r = ' '
			}
		}
		if r >= utf8.RuneSelf {
			ascii = false
		}
		if n.chineseChars && isChineseChar(r) {
			b = append(b, ' ')
			b = utf8.AppendRune(b, r)
			b = append(b, ' ')
			continue
		}
		if ascii && n.lowercase {
			// ASCII has no accents and NFD leaves it alone: lowercase right away.
			b = appendLower(b, r)
			continue
		}
		b = utf8.AppendRune(b, r)
	}
	if ascii {
		return string(b)
	}
	// Non-ASCII: the prefix of b up to the first non-ASCII rune may already be
	// lowercased, which is harmless since lowercasing is idempotent on it.
	out := b
	if n.stripAccents {
		out = norm.NFD.Append(nil, b...)
		j := 0
		for i := 0; i < len(out); {
			r, size := utf8.DecodeRune(out[i:])
			if !unicode.Is(unicode.Mn, r) {
				j += copy(out[j:], out[i:i+size])
			}
			i += size
		}
		out = out[:j]
	}
	if n.lowercase {
		low := make([]byte, 0, len(out)+4)
		for i := 0; i < len(out); {
			r, size := utf8.DecodeRune(out[i:])
			low = appendLower(low, r)
			i += size
		}
		out = low
	}
	return string(out)
}

// lowercaseNormalizer is Hugging Face's Lowercase normalizer.
func lowercaseNormalizer(s string) string {
	b := make([]byte, 0, len(s)+4)
	for _, r := range s {
		b = appendLower(b, r)
	}
	return string(b)
}

// stripAccentsNormalizer is Hugging Face's StripAccents: it drops combining marks.
func stripAccentsNormalizer(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsMark(r) {
			return -1
		}
		return r
	}, s)
}

func formNormalizer(f norm.Form) normalizer { return f.String }

func sequenceNormalizer(steps []normalizer) normalizer {
	return func(s string) string {
		for _, n := range steps {
			s = n(s)
		}
		return s
	}
}
