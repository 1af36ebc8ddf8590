package meteor

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Normalize is imgcap's text normalization before METEOR matching. It
// plays the role of METEOR 1.5's "-norm" option (which the COCO caption
// evaluation passes) but uses imgcap's own rules and abbreviation list, so
// its output can differ from METEOR's on punctuation. Lower-casing is left
// to the caller; the result is a space-separated token string. Rules, in
// order:
//
//  1. Unify: curly single quotes and the backquote become an apostrophe,
//     curly double quotes and two apostrophes become '"', en and em dashes
//     become "-", and a run of hyphens becomes one.
//  2. Split: every character other than letters, digits, combining marks,
//     white space and . , ' - is a token of its own ("3:30" -> "3 : 30",
//     "!!" -> "! !"). A comma is split off unless it is between two digits
//     ("10,000" stays). A hyphen between two letters or digits (or after a
//     period) becomes a space ("t-shirt" -> "t shirt"); other hyphens stay
//     ("-lrb-"). An apostrophe between two letters, or between a digit and
//     "s", starts the next token ("isn't" -> "isn 't", "1990's" -> "1990
//     's"); any other apostrophe is a token of its own ("child 's" ->
//     "child ' s"). Two or more periods in a row are one token ("...").
//  3. Word-final periods (see splitFinalPeriod): dotted acronyms lose their
//     periods ("u.s." -> "us"), abbreviations keep theirs ("mr.", "etc."),
//     and any other final period is split off ("cat." -> "cat .").
//
// White space of any kind separates tokens.
func Normalize(line string) string {
	if plainWords(line) {
		// Only ASCII letters, digits and spaces: no rule below changes
		// anything but the spacing.
		return strings.Join(splitSpaces(line), " ")
	}
	return normalizeFull(line)
}

// plainWords reports whether s holds only ASCII letters, digits and spaces.
func plainWords(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == ' ') {
			return false
		}
	}
	return true
}

// isWordRune reports whether r is part of a word: a letter, a digit or a
// combining mark.
func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)
}

// normalizeFull is the general path of Normalize.
func normalizeFull(line string) string {
	rs := unifyPunct(line)
	at := func(i int) rune {
		if i < 0 || i >= len(rs) {
			return ' '
		}
		return rs[i]
	}
	var b strings.Builder
	b.Grow(len(line) + len(line)/2)
	for i := 0; i < len(rs); i++ {
		r, prev, next := rs[i], at(i-1), at(i+1)
		switch {
		case isWordRune(r) || unicode.IsSpace(r):
			b.WriteRune(r)
		case r == '.':
			j := i + 1
			for j < len(rs) && rs[j] == '.' {
				j++
			}
			if j-i == 1 {
				b.WriteByte('.') // decided per token below
				continue
			}
			b.WriteByte(' ')
			b.WriteString(strings.Repeat(".", j-i))
			b.WriteByte(' ')
			i = j - 1
		case r == ',':
			if unicode.IsDigit(prev) && unicode.IsDigit(next) {
				b.WriteByte(',')
			} else {
				b.WriteString(" , ")
			}
		case r == '-':
			if (isWordRune(prev) || prev == '.') && isWordRune(next) {
				b.WriteByte(' ')
			} else {
				b.WriteByte('-')
			}
		case r == '\'':
			if unicode.IsLetter(prev) && unicode.IsLetter(next) || unicode.IsDigit(prev) && (next == 's' || next == 'S') {
				b.WriteString(" '")
			} else {
				b.WriteString(" ' ")
			}
		default:
			b.WriteByte(' ')
			b.WriteRune(r)
			b.WriteByte(' ')
		}
	}
	words := strings.FieldsFunc(b.String(), unicode.IsSpace)
	out := make([]string, 0, len(words)+4)
	for i, w := range words {
		next := ""
		if i+1 < len(words) {
			next = words[i+1]
		}
		out = append(out, splitFinalPeriod(w, next)...)
	}
	return strings.Join(out, " ")
}

// unifyPunct applies rule 1 of Normalize.
func unifyPunct(s string) []rune {
	out := make([]rune, 0, len(s))
	for _, r := range s {
		switch r {
		case '\u2018', '\u2019', '`':
			r = '\''
		case '\u201c', '\u201d':
			r = '"'
		case '\u2013', '\u2014':
			r = '-'
		}
		if n := len(out); n > 0 {
			switch {
			case r == '\'' && out[n-1] == '\'':
				out[n-1] = '"'
				continue
			case r == '-' && out[n-1] == '-':
				continue
			}
		}
		out = append(out, r)
	}
	return out
}

// splitFinalPeriod decides what happens to a token w that ends in a period
// (and is more than a period), given the token that follows it ("" at the
// end of the line). With stem = w without its final period:
//   - a dotted acronym (stem has another period and a letter: "u.s.",
//     "p.m.", "e.g.") loses all its periods: "us", "pm", "eg";
//   - the period stays attached when stem is a single letter (an initial),
//     is in abbrevAlways (compared lower-cased), is in abbrevBeforeNumber
//     and next starts with a digit ("no. 5"), or when next starts with a
//     lower-case letter (a period before a lower-case word is taken as
//     not ending a sentence);
//   - otherwise the period becomes a token of its own.
//
// Other tokens are returned unchanged.
func splitFinalPeriod(w, next string) []string {
	if !strings.HasSuffix(w, ".") || strings.Trim(w, ".") == "" {
		return []string{w}
	}
	stem := w[:len(w)-1]
	if strings.Contains(stem, ".") && strings.ContainsFunc(stem, unicode.IsLetter) {
		return []string{strings.ReplaceAll(w, ".", "")}
	}
	lower := strings.ToLower(stem)
	first, _ := utf8.DecodeRuneInString(next)
	switch {
	case utf8.RuneCountInString(stem) == 1 && unicode.IsLetter(first0(stem)),
		abbrevAlways[lower],
		abbrevBeforeNumber[lower] && unicode.IsDigit(first),
		next != "" && unicode.IsLower(first):
		return []string{w}
	}
	return []string{stem, "."}
}

// first0 returns the first rune of s.
func first0(s string) rune {
	r, _ := utf8.DecodeRuneInString(s)
	return r
}

// abbrevAlways are imgcap's abbreviations that keep their period wherever
// they stand (lower case; matched case-insensitively). Deliberately short:
// abbreviations that are also common words (days such as "sat", "wed",
// "sun") are left out, because captions use those words.
var abbrevAlways = wordSet(
	// Titles and honorifics.
	"mr", "mrs", "ms", "messrs", "dr", "drs", "prof", "rev", "hon", "fr", "sr", "jr", "st",
	// Military and civic ranks and offices.
	"gen", "col", "capt", "lt", "sgt", "cpl", "pvt", "maj", "adm", "gov", "sen", "rep", "pres",
	// Months ("may" is never abbreviated).
	"jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
	// Common abbreviations of Latin phrases, companies and places.
	"etc", "vs", "cf", "approx", "inc", "ltd", "co", "corp", "dept", "univ", "ave", "blvd",
	"rd", "mt",
)

// abbrevBeforeNumber are imgcap's abbreviations that keep their period only
// before a number ("no. 5", "vol. 2"); elsewhere the period ends a
// sentence ("she said no." -> "no .").
var abbrevBeforeNumber = wordSet("no", "nos", "vol", "vols", "fig", "figs", "pp", "art", "ch")

// wordSet builds a set from words.
func wordSet(words ...string) map[string]bool {
	m := make(map[string]bool, len(words))
	for _, w := range words {
		m[w] = true
	}
	return m
}

// splitSpaces splits on ASCII space, tab, newline, carriage return and form
// feed.
func splitSpaces(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool {
		return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\f'
	})
}
