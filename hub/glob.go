package hub

import (
	"fmt"
	"regexp"
	"strings"
)

// compilePatterns compiles shell patterns with Python fnmatch's rules, which
// huggingface_hub's allow_patterns and ignore_patterns use: '*' matches any run of characters
// including '/', '?' any one character, "[seq]" and "[!seq]" character classes; matching is
// case-sensitive and anchored at both ends. A pattern ending in '/' matches everything under
// that folder, as in huggingface_hub.
func compilePatterns(patterns []string) ([]*regexp.Regexp, error) {
	out := make([]*regexp.Regexp, 0, len(patterns))
	for _, p := range patterns {
		q := p
		if strings.HasSuffix(q, "/") {
			q += "*"
		}
		re, err := regexp.Compile(fnmatchRegexp(q))
		if err != nil {
			return nil, fmt.Errorf("pattern %q: %v", p, err)
		}
		out = append(out, re)
	}
	return out, nil
}

// MatchPattern reports whether a repository path matches a pattern as Download's Include and
// Exclude options match it.
// A pattern that cannot be compiled matches nothing.
func MatchPattern(pattern, name string) bool {
	res, err := compilePatterns([]string{pattern})
	return err == nil && matchAny(res, name)
}

func matchAny(res []*regexp.Regexp, s string) bool {
	for _, re := range res {
		if re.MatchString(s) {
			return true
		}
	}
	return false
}

// fnmatchRegexp translates a shell pattern to a Go regular expression as Python's
// fnmatch.translate does; every pattern translates to a valid expression.
func fnmatchRegexp(pat string) string {
	var b strings.Builder
	b.WriteString(`(?s)\A`)
	r := []rune(pat)
	for i := 0; i < len(r); i++ {
		switch c := r[i]; c {
		case '*':
			for i+1 < len(r) && r[i+1] == '*' {
				i++
			}
			b.WriteString(`.*`)
		case '?':
			b.WriteString(`.`)
		case '[':
			j := i + 1
			if j < len(r) && r[j] == '!' {
				j++
			}
			if j < len(r) && r[j] == ']' {
				j++
			}
			for j < len(r) && r[j] != ']' {
				j++
			}
			if j >= len(r) {
				b.WriteString(`\[`) // no closing bracket: a literal '['
				continue
			}
			class := r[i+1 : j]
			i = j
			var cb strings.Builder
			neg := false
			if len(class) > 0 && class[0] == '!' {
				neg, class = true, class[1:]
			}
			for k, cc := range class {
				switch {
				case cc == '\\' || cc == '[' || cc == ']' || (cc == '^' && k == 0):
					cb.WriteString(`\`)
					cb.WriteRune(cc)
				case cc == '-' && (k == 0 || k == len(class)-1):
					cb.WriteString(`\-`)
				default:
					cb.WriteRune(cc)
				}
			}
			if !validClass(cb.String()) {
				// A reversed range such as [z-a] matches nothing in Python.
				b.WriteString(`[^\x00-\x{10FFFF}]`)
				continue
			}
			if neg {
				b.WriteString(`[^` + cb.String() + `]`)
			} else {
				b.WriteString(`[` + cb.String() + `]`)
			}
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString(`\z`)
	return b.String()
}

// validClass reports whether a character class body compiles.
func validClass(body string) bool {
	_, err := regexp.Compile(`[` + body + `]`)
	return err == nil
}
