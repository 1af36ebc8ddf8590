package eval

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type tokenizerCase struct {
	Kind   string `json:"kind"`
	Input  string `json:"input"`
	Output string `json:"output"`
}

func loadTokenizerCases(t testing.TB) []tokenizerCase {
	t.Helper()
	var doc struct {
		Cases []tokenizerCase `json:"cases"`
	}
	readJSON(t, filepath.Join("testdata", "tokenizer_cases.json"), &doc)
	if len(doc.Cases) != 115 {
		t.Fatalf("tokenizer_cases.json: %d cases, want 115", len(doc.Cases))
	}
	return doc.Cases
}

func readJSON(t testing.TB, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func TestPTBTokenizerCases(t *testing.T) {
	cases := loadTokenizerCases(t)
	pass := 0
	for i, c := range cases {
		got := PTBTokenizeOne(c.Input)
		if got != c.Output {
			t.Errorf("case %d (%s) %q:\n got  %q\n want %q", i, c.Kind, c.Input, got, c.Output)
			continue
		}
		pass++
	}
	t.Logf("tokenizer cases: %d/%d pass", pass, len(cases))
	// The same cases tokenized in one batch (as the reference tool would).
	in := make([]string, len(cases))
	for i, c := range cases {
		in[i] = c.Input
	}
	got := PTBTokenize(in)
	if len(got) != len(cases) {
		t.Fatalf("batch: %d lines, want %d", len(got), len(cases))
	}
	for i, c := range cases {
		if got[i] != c.Output {
			t.Errorf("batch case %d %q: got %q want %q", i, c.Input, got[i], c.Output)
		}
	}
}

// fixtureSet loads one fixture set's references and candidates in scorer order.
type fixtureSet struct {
	name      string
	refs      *References
	cands     map[string][]Candidate // candidates file name -> entries
	tokenized struct {
		Refs       map[string][]string `json:"refs"`
		Human      map[string]string   `json:"candidates_human"`
		Degraded   map[string]string   `json:"candidates_degraded"`
		Candidates map[string]map[string]string
	}
}

var fixtureSetNames = []string{"flickr8k_dev", "coco_dev"}

func loadFixtureSet(t testing.TB, name string) *fixtureSet {
	t.Helper()
	dir := filepath.Join("testdata", name)
	refs, err := ReadCOCORefs(filepath.Join(dir, "refs.json"))
	if err != nil {
		t.Fatal(err)
	}
	fs := &fixtureSet{name: name, refs: refs, cands: map[string][]Candidate{}}
	for _, c := range []string{"human", "degraded"} {
		cs, err := ReadCOCOResults(filepath.Join(dir, "candidates_"+c+".json"))
		if err != nil {
			t.Fatal(err)
		}
		fs.cands[c] = cs
	}
	readJSON(t, filepath.Join(dir, "tokenized.json"), &fs.tokenized)
	fs.tokenized.Candidates = map[string]map[string]string{
		"human": fs.tokenized.Human, "degraded": fs.tokenized.Degraded,
	}
	return fs
}

// candidateCaptions returns the candidate captions in refs image order.
func (fs *fixtureSet) candidateCaptions(t testing.TB, which string) []string {
	t.Helper()
	by := map[string]string{}
	for _, c := range fs.cands[which] {
		by[c.ImageID] = c.Caption
	}
	out := make([]string, len(fs.refs.ImageIDs))
	for i, id := range fs.refs.ImageIDs {
		c, ok := by[id]
		if !ok {
			t.Fatalf("%s/%s: no candidate for image %s", fs.name, which, id)
		}
		out[i] = c
	}
	return out
}

func TestPTBTokenizedFixtures(t *testing.T) {
	for _, name := range fixtureSetNames {
		fs := loadFixtureSet(t, name)
		// References: all captions of all images in one call, image order then file order.
		var flat, want []string
		for _, id := range fs.refs.ImageIDs {
			flat = append(flat, fs.refs.Captions[id]...)
			want = append(want, fs.tokenized.Refs[id]...)
		}
		got := PTBTokenize(flat)
		bad := 0
		for i := range want {
			if got[i] != want[i] {
				bad++
				t.Errorf("%s ref %q:\n got  %q\n want %q", name, flat[i], got[i], want[i])
			}
		}
		t.Logf("%s refs: %d/%d captions equal", name, len(want)-bad, len(want))
		for _, which := range []string{"human", "degraded"} {
			caps := fs.candidateCaptions(t, which)
			got := PTBTokenize(caps)
			bad := 0
			for i, id := range fs.refs.ImageIDs {
				w := fs.tokenized.Candidates[which][id]
				if got[i] != w {
					bad++
					t.Errorf("%s %s cand %q:\n got  %q\n want %q", name, which, caps[i], got[i], w)
				}
			}
			t.Logf("%s candidates_%s: %d/%d captions equal", name, which, len(caps)-bad, len(caps))
		}
	}
}

// TestPTBFastPathEquivalence checks that the fast paths of the tokenizer
// change nothing: the general lexer alone gives the same output on the
// fixture captions and on random strings made of tricky characters.
func TestPTBFastPathEquivalence(t *testing.T) {
	slow := &ptbLexer{rules: defaultLexer().rules, noFast: true}
	fast := defaultLexer()
	var texts []string
	for _, c := range loadTokenizerCases(t) {
		texts = append(texts, c.Input)
	}
	for _, name := range fixtureSetNames {
		fs := loadFixtureSet(t, name)
		for _, id := range fs.refs.ImageIDs {
			texts = append(texts, fs.refs.Captions[id]...)
		}
	}
	pieces := []string{"a", "A", "b", "dog", "Mr", "U", "S", "p", "m", "etc", "no", "cannot", "Gonna", "wanna",
		"co", "pty", "ltd", "Inc", "Jr", "fig", "vs", "al", "St", "Ave", "Dr", "Ltd", "The", "He", "I", "n't", "'s", "'", "\"", "`", ".", ",", ";", ":", "!", "?", "-", "--",
		"(", ")", "[", "]", "{", "}", "<", ">", "&", "&amp;", "#", "$", "%", "*", "/", "@", "_", "1", "22", "5",
		"1/2", "3:30", "www", "com", " ", " ", " ", "\t", "\n", "\u00a0", "é", "£", "€", "’", "“", "”", "—",
		"…", "x", "o", "y", "=", "^", "~", "\\", "+", "0", "http", "://", "e", "s", "t"}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 3000; i++ {
		var b strings.Builder
		n := 1 + rng.IntN(12)
		for j := 0; j < n; j++ {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		texts = append(texts, b.String())
	}
	// Both one at a time and as one batch (cross-caption context).
	for _, s := range texts {
		a, b := fast.tokenize([]string{s}), slow.tokenize([]string{s})
		if strings.Join(a, "\n") != strings.Join(b, "\n") {
			t.Fatalf("fast path differs on %q:\n fast %q\n slow %q", s, a, b)
		}
	}
	a, b := fast.tokenize(texts), slow.tokenize(texts)
	if len(a) != len(texts) || len(b) != len(texts) {
		t.Fatalf("line count: fast %d slow %d want %d", len(a), len(b), len(texts))
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("batch: fast path differs on %q: fast %q slow %q", texts[i], a[i], b[i])
		}
	}
}

// TestPTBCrossCaptionContext checks that a caption's end depends on the
// next caption as in the reference tool (the lexer's trailing contexts see
// across the newline that joins captions).
func TestPTBCrossCaptionContext(t *testing.T) {
	cases := []struct {
		in   []string
		want []string
	}{
		{[]string{"the letter P.", "A dog runs"}, []string{"the letter p", "a dog runs"}},
		{[]string{"the letter P.", "a dog runs"}, []string{"the letter p.", "a dog runs"}},
		{[]string{"the letter P."}, []string{"the letter p."}},
		{[]string{"in the U.S.", "The end"}, []string{"in the u.s.", "the end"}},
	}
	for _, c := range cases {
		got := PTBTokenize(c.in)
		if strings.Join(got, "|") != strings.Join(c.want, "|") {
			t.Errorf("PTBTokenize(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestPTBArbitraryInput feeds random bytes (invalid UTF-8 included): no
// panic, no hang, one output line per caption.
func TestPTBArbitraryInput(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	caps := make([]string, 2000)
	for i := range caps {
		b := make([]byte, rng.IntN(40))
		for j := range b {
			b[j] = byte(rng.IntN(256))
		}
		caps[i] = string(b)
	}
	if got := PTBTokenize(caps); len(got) != len(caps) {
		t.Fatalf("%d lines for %d captions", len(got), len(caps))
	}
}

func TestPTBLineAlignment(t *testing.T) {
	in := []string{"", "a\nb", "c\rd", "...", "x\u2028y", "  ", "end"}
	got := PTBTokenize(in)
	want := []string{"", "a b", "c d", "", "x y", "", "end"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q want %q", got, want)
	}
	if got := PTBTokenize(nil); len(got) != 0 {
		t.Fatalf("nil input: %q", got)
	}
}
