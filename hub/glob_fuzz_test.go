package hub

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzPattern checks that every pattern compiles (user patterns must never crash a download),
// that a pattern without wildcards matches exactly itself, and that "*" + a literal suffix
// matches exactly the names ending with it.
func FuzzPattern(f *testing.F) {
	for _, s := range [][2]string{{"*.json", "a/b.json"}, {"[!a-c]?x", "dqx"}, {"[]]", "]"}, {"[z-a]", "m"}, {"[", "["},
		{`a\b`, `a\b`}, {"[^]x", "^x"}, {"sub/", "sub/x"}, {"[[:alpha:]]", "a"}, {"(?i)A", "a"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pat, name string) {
		res, err := compilePatterns([]string{pat})
		if err != nil {
			t.Fatalf("pattern %q does not compile: %v", pat, err)
		}
		if !utf8.ValidString(pat) || !utf8.ValidString(name) {
			return // repository paths come from JSON: always UTF-8
		}
		got := matchAny(res, name)
		if !strings.ContainsAny(pat, "*?[") && !strings.HasSuffix(pat, "/") && got != (pat == name) {
			t.Fatalf("literal pattern %q matching %q: %v", pat, name, got)
		}
		lit := strings.TrimLeft(pat, "*")
		if strings.HasPrefix(pat, "*") && !strings.ContainsAny(lit, "*?[") && !strings.HasSuffix(pat, "/") &&
			matchAny(mustCompile(t, "*"+lit), name) != strings.HasSuffix(name, lit) {
			t.Fatalf("pattern *%q matching %q disagrees with HasSuffix", lit, name)
		}
	})
}

func mustCompile(t *testing.T, pat string) []*regexp.Regexp {
	res, err := compilePatterns([]string{pat})
	if err != nil {
		t.Fatal(err)
	}
	return res
}
