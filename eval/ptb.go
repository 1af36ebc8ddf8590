package eval

import (
	"regexp"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// ptbPunctuations are the tokens that pycocoevalcap's PTBTokenizer wrapper
// drops after tokenization. The bracket escapes are upper case here but the
// tokenizer output is lower-cased, so "-lrb-" etc. are never dropped (a quirk
// of the reference tool that we keep).
var ptbPunctuations = map[string]bool{
	"''": true, "'": true, "``": true, "`": true, "-LRB-": true, "-RRB-": true,
	"-LCB-": true, "-RCB-": true, ".": true, "?": true, "!": true, ",": true,
	":": true, "-": true, "--": true, "...": true, ";": true,
}

// ptbLexer is the compiled tokenizer; it is safe for concurrent use.
type ptbLexer struct {
	rules []ptbRule
	// abbrevWord matches (case-insensitively) every letter word that some
	// abbreviation rule can match with a following period.
	abbrevWord *regexp.Regexp
	noFast     bool // disable the fast paths (tests compare both modes)
}

var defaultLexer = sync.OnceValue(func() *ptbLexer {
	return &ptbLexer{rules: compileRules(), abbrevWord: compileAbbrevWords()}
})

// PTBTokenize tokenizes captions exactly as pycocoevalcap's PTBTokenizer does
// when it is given these captions in one call: Stanford PTBTokenizer (CoreNLP
// 3.4.1, -preserveLines -lowerCase) on the captions joined by newlines, then
// removal of the punctuation tokens (PTB quote tokens, - --, ..., and
// . , ; : ? !) and joining with single spaces. The result has one string per caption, in order.
//
// The captions are tokenized as one text, as the reference tool does, so a
// caption's last token can depend on the start of the next caption (for
// example "letter P." before "A dog ..." ends in "p", before "a dog ..." in
// "p."); call PTBTokenize with the captions in the order the reference tool
// would see them (image order, then reference order) to get its output.
//
// Deviation: newline characters inside a caption other than "\n" (\r, \v, \f,
// U+2028, U+2029) are treated as spaces; the Java tool would start a new line
// there and misalign every later caption.
func PTBTokenize(captions []string) []string {
	return defaultLexer().tokenize(captions)
}

// PTBTokenizeOne tokenizes a single caption (as PTBTokenize with one caption).
func PTBTokenizeOne(caption string) string {
	return defaultLexer().tokenize([]string{caption})[0]
}

// sanitizeCaption replaces line breaks inside a caption by spaces.
func sanitizeCaption(s string) string {
	if !strings.ContainsAny(s, "\n\r\v\f\u2028\u2029") {
		return s
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case '\n', '\r', '\v', '\f', '\u2028', '\u2029':
			return ' '
		}
		return r
	}, s)
}

// lineBuilder accumulates the output tokens of one caption.
type lineBuilder struct {
	b strings.Builder
}

func (l *lineBuilder) emit(tok string) {
	low := javaLower(tok)
	if ptbPunctuations[low] {
		return
	}
	if l.b.Len() > 0 {
		l.b.WriteByte(' ')
	}
	l.b.WriteString(low)
}

func (l *lineBuilder) take() string {
	s := l.b.String()
	l.b.Reset()
	return s
}

func isASCIILetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

// isBreak reports whether text[i] is the end of the text or a space, tab
// or newline: characters that no multi-character rule can cross after a
// word or punctuation mark (only SPACENL trailing contexts, checked by the
// callers, look past them).
func isBreak(text string, i int) bool {
	return i >= len(text) || text[i] == ' ' || text[i] == '\n' || text[i] == '\t'
}

// isPTBDigit reports whether r is in PTBLexer's DIGIT class.
func isPTBDigit(r rune) bool { return unicode.IsDigit(r) || r >= 0x07c0 && r <= 0x07c9 }

// splitAssimilations are the words that PTBLexer splits (gon na, can not, ...).
var splitAssimilations = map[string]bool{
	"cannot": true, "gonna": true, "gotta": true, "lemme": true, "gimme": true, "wanna": true,
}

func (lx *ptbLexer) tokenize(captions []string) []string {
	out := make([]string, 0, len(captions))
	if len(captions) == 0 {
		return out
	}
	n := len(captions) - 1
	for _, c := range captions {
		n += len(c)
	}
	var sb strings.Builder
	sb.Grow(n)
	for i, c := range captions {
		if i > 0 {
			sb.WriteByte('\n')
		}
		sb.WriteString(sanitizeCaption(c))
	}
	text := sb.String()

	var line lineBuilder
	pos := 0
	for pos < len(text) {
		c := text[pos]
		if !lx.noFast {
			switch {
			case c == ' ' || c == '\t':
				pos++
				continue
			case c == '\n':
				out = append(out, line.take())
				pos++
				continue
			case isASCIILetter(c):
				j := pos + 1
				for j < len(text) && isASCIILetter(text[j]) {
					j++
				}
				w := text[pos:j]
				if isBreak(text, j) {
					if j-pos < 5 || j-pos > 6 || !splitAssimilations[strings.ToLower(w)] {
						line.emit(w)
						pos = j
						continue
					}
				} else if (text[j] == ',' || text[j] == '.') && isBreak(text, j+1) && j-pos >= 2 &&
					(text[j] == ',' || !lx.abbrevWord.MatchString(w)) {
					// "word," or "word." before white space: no rule can
					// match across the punctuation unless the word is an
					// abbreviation (or a letter: ACRO).
					line.emit(w)
					pos = j
					continue
				}
			case c == '.':
				// A lone period: not an ellipsis (". . .") nor a number (".5").
				if isBreak(text, pos+1) && !(pos+2 < len(text) && text[pos+1] == ' ' && text[pos+2] == '.') {
					line.emit(".")
					pos++
					continue
				}
			case c == ',':
				// INSENTP, unless a digit follows (",5" is a NUMBER).
				if r, _ := utf8.DecodeRuneInString(text[pos+1:]); pos+1 == len(text) || !isPTBDigit(r) {
					line.emit(",")
					pos++
					continue
				}
			}
		}
		consumed, tok, kind := lx.lexAt(text, pos)
		if consumed <= 0 { // cannot happen with PTBLexer's rules; never loop forever
			_, consumed = utf8.DecodeRuneInString(text[pos:])
		}
		switch kind {
		case tokEmit:
			line.emit(tok)
		case tokNewline:
			out = append(out, line.take())
		}
		pos += consumed
	}
	out = append(out, line.take())
	return out
}

type tokKind int

const (
	tokNone tokKind = iota
	tokEmit
	tokNewline
)

// lexAt finds the rule that matches longest at text[pos:] and applies its
// action. It returns the number of bytes consumed (after any push-back), the
// token and whether a token, a line break or nothing was produced.
func (lx *ptbLexer) lexAt(text string, pos int) (int, string, tokKind) {
	rest := text[pos:]
	r, size := utf8.DecodeRuneInString(rest)
	best, bestLen := -1, 0
	for i := range lx.rules {
		ru := &lx.rules[i]
		if !ru.first.has(r) {
			continue
		}
		loc := ru.full.FindStringIndex(rest)
		if loc != nil && loc[1] > bestLen {
			best, bestLen = i, loc[1]
		}
	}
	if best < 0 {
		// Untokenizable character: PTBLexer's default (firstDelete) drops it.
		return size, "", tokNone
	}
	ru := &lx.rules[best]
	m := rest[:bestLen]
	head := m
	if ru.headOnly != nil {
		// JFlex general lookahead: the longest head whose remainder is a trail.
		for h := len(m); h >= 0; h-- {
			if h < len(m) && !utf8.RuneStart(m[h]) {
				continue
			}
			if ru.headOnly.MatchString(m[:h]) && ru.trailAll.MatchString(m[h:]) {
				head = m[:h]
				break
			}
		}
	}
	switch ru.act {
	case actEmit:
		return len(head), head, tokEmit
	case actSoftHyphen:
		return len(head), removeSoftHyphens(head), tokEmit
	case actSkip:
		return len(head), "", tokNone
	case actNewline:
		return len(head), "", tokNewline
	case actPush3:
		return len(head) - 3, head[:len(head)-3], tokEmit
	case actPush2:
		return len(head) - 2, head[:len(head)-2], tokEmit
	case actSpaceNBSP:
		return len(head), strings.ReplaceAll(head, " ", "\u00a0"), tokEmit
	case actDash:
		return len(head), "--", tokEmit
	case actAmp:
		return len(head), replaceFoldASCII(head, "&amp;", "&"), tokEmit
	case actQuoteLeft:
		return len(head), latexQuotes(head, true), tokEmit
	case actQuoteRight:
		return len(head), latexQuotes(head, false), tokEmit
	case actFraction:
		return len(head), fractionReplacer.Replace(head), tokEmit
	case actCurrency:
		return len(head), currencyReplacer.Replace(head), tokEmit
	case actAcronymEnd:
		h := strings.TrimRight(head, " \t\n\v\f\r\u0085")
		if len(h) == 2 { // "I." etc.: the letter now, the period next time
			return 1, h[:1], tokEmit
		}
		// The acronym with its period, and the period again as a token.
		return len(h) - 1, h, tokEmit
	case actEmitKeepDot:
		return len(head) - 1, head, tokEmit
	case actPhone:
		s := strings.ReplaceAll(head, " ", "\u00a0")
		return len(head), parenReplacer.Replace(s), tokEmit
	case actParens:
		return len(head), parenReplacer.Replace(head), tokEmit
	case actLT:
		return len(head), "<", tokEmit
	case actGT:
		return len(head), ">", tokEmit
	case actLCB:
		return len(head), "-LCB-", tokEmit
	case actRCB:
		return len(head), "-RCB-", tokEmit
	case actLSB:
		return len(head), "-LSB-", tokEmit
	case actRSB:
		return len(head), "-RSB-", tokEmit
	case actLRB:
		return len(head), "-LRB-", tokEmit
	case actRRB:
		return len(head), "-RRB-", tokEmit
	case actHyphens:
		if len(head) >= 3 && len(head) <= 4 {
			return len(head), "--", tokEmit
		}
		return len(head), head, tokEmit
	case actEllipsis:
		return len(head), "...", tokEmit
	}
	return len(head), head, tokEmit
}

var (
	fractionReplacer = strings.NewReplacer("\u00bc", "1/4", "\u00bd", "1/2", "\u00be", "3/4", "\u2153", "1/3", "\u2154", "2/3")
	currencyReplacer = strings.NewReplacer("\u00a2", "cents", "\u00a3", "#", "\u0080", "$", "\u00a4", "$", "\u20a0", "$", "\u20ac", "$")
	parenReplacer    = strings.NewReplacer("(", "-LRB-", ")", "-RRB-")
	// latex quote normalisation, applied after the ASCII quote mapping.
	curlyReplacer = strings.NewReplacer(
		"\u0091", "`", "\u2018", "`", "\u201b", "`", "\u2039", "`",
		"\u0092", "'", "\u2019", "'", "\u203a", "'",
		"\u0093", "``", "\u201c", "``", "\u00ab", "``",
		"\u0094", "''", "\u201d", "''", "\u00bb", "''")
	leftASCIIQuotes  = strings.NewReplacer("&apos;", "`", "'", "`", "&quot;", "``", "\"", "``")
	rightASCIIQuotes = strings.NewReplacer("&apos;", "'", "&quot;", "''", "\"", "''")
)

// latexQuotes maps quote characters to PTB's LaTeX-style quote tokens
// (two backquotes, two apostrophes, one backquote, one apostrophe).
func latexQuotes(s string, probablyLeft bool) string {
	if probablyLeft {
		s = leftASCIIQuotes.Replace(s)
	} else {
		s = rightASCIIQuotes.Replace(s)
	}
	return curlyReplacer.Replace(s)
}

// removeSoftHyphens deletes U+00AD; a token made only of soft hyphens becomes "-".
func removeSoftHyphens(s string) string {
	if !strings.Contains(s, "\u00ad") {
		return s
	}
	s = strings.ReplaceAll(s, "\u00ad", "")
	if s == "" {
		return "-"
	}
	return s
}

// replaceFoldASCII replaces every ASCII-case-insensitive occurrence of old by new.
func replaceFoldASCII(s, old, new string) string {
	if !strings.Contains(strings.ToLower(s), old) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if i+len(old) <= len(s) && strings.EqualFold(s[i:i+len(old)], old) {
			b.WriteString(new)
			i += len(old)
			continue
		}
		b.WriteByte(s[i])
		i++
	}
	return b.String()
}

// javaLower lower-cases like Java's String.toLowerCase(Locale.ENGLISH):
// simple case mapping, plus U+0130 -> "i\u0307" and the final-sigma rule.
func javaLower(s string) string {
	ascii := true
	upper := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			ascii = false
			break
		}
		if c >= 'A' && c <= 'Z' {
			upper = true
		}
	}
	if ascii {
		if !upper {
			return s
		}
		b := []byte(s)
		for i, c := range b {
			if c >= 'A' && c <= 'Z' {
				b[i] = c + 'a' - 'A'
			}
		}
		return string(b)
	}
	rs := []rune(s)
	var b strings.Builder
	b.Grow(len(s))
	for i, r := range rs {
		switch {
		case r == '\u0130':
			b.WriteString("i\u0307")
		case r == '\u03a3':
			if i > 0 && unicode.IsLetter(rs[i-1]) && (i+1 == len(rs) || !unicode.IsLetter(rs[i+1])) {
				b.WriteRune('\u03c2')
			} else {
				b.WriteRune('\u03c3')
			}
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}
