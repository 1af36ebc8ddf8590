package meteor

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testWordNet loads WordNet or skips: only the tests that need synonym data
// use it.
func testWordNet(t *testing.T) *WordNet {
	t.Helper()
	wn, err := LoadWordNet(WordNetDir())
	if err != nil {
		t.Skipf("WordNet files absent (%v): synonym-dependent METEOR tests skipped; install wordnet-base or set %s", err, WordNetEnv)
	}
	return wn
}

// emptyWordNet has no synonyms: exact and stem matching only.
func emptyWordNet() *WordNet {
	return &WordNet{synsets: map[string][]int32{}, exceptions: map[string][]string{}}
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-12*math.Max(1, math.Abs(b)) }

func TestNormalize(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"plain words", "a man riding a horse", "a man riding a horse"},
		{"clitics", "a child 's bike is n't here", "a child ' s bike is n 't here"},
		{"contraction inside a word", "isn't it", "isn 't it"},
		{"decade", "the 1990's", "the 1990 's"},
		{"hyphens between word characters", "a t-shirt and a well-dressed man", "a t shirt and a well dressed man"},
		{"hyphen chain", "a-b-c", "a b c"},
		{"symbols, acronyms", "it 's 3:30 p.m. in the u.s.a", "it ' s 3 : 30 pm in the u.s.a"},
		{"commas and final period", "A dog, a cat.", "A dog , a cat ."},
		{"comma chain", "a,b,c", "a , b , c"},
		{"comma in a number", "10,000 people", "10,000 people"},
		{"repeated symbols", "wow !! really", "wow ! ! really"},
		{"PTB bracket escapes", "-lrb- in red -rrb-", "-lrb- in red -rrb-"},
		{"quotes, dashes, ellipsis", "He said \u201chi\u201d -- ok...", "He said \" hi \" - ok ..."},
		{"two apostrophes are a quote", "''hi''", "\" hi \""},
		{"em dash between words", "a man\u2014smiling", "a man smiling"},
		// Abbreviations (imgcap's lists; matched case-insensitively).
		{"title before a name", "Mr. Smith", "Mr. Smith"},
		{"title at line end", "end with mr.", "end with mr."},
		{"month", "Sept. 5", "Sept. 5"},
		{"common abbreviation at line end", "dogs, cats, etc.", "dogs , cats , etc."},
		{"initial", "J. Smith", "J. Smith"},
		{"dotted abbreviation", "e.g. this", "eg this"},
		{"number abbreviation before a number", "see no. 5", "see no. 5"},
		{"number abbreviation elsewhere", "she said no.", "she said no ."},
		{"number abbreviation before a word", "She said No. Then", "She said No . Then"},
		{"unlisted word at line end", "a dog.", "a dog ."},
		{"unlisted word before an upper-case word", "A cat. The dog", "A cat . The dog"},
		{"unlisted word before a lower-case word", "a cat. the dog", "a cat. the dog"},
		{"period inside a number", "3.5.", "3.5 ."},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Normalize(c.in); got != c.want {
				t.Errorf("Normalize(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}

func TestNormalizeFastPath(t *testing.T) {
	for _, in := range []string{"", " ", "a man  riding a horse ", "A Dog 3 4", "x"} {
		if fast, full := Normalize(in), normalizeFull(in); fast != full {
			t.Errorf("Normalize(%q) = %q, general path %q", in, fast, full)
		}
	}
}

// TestBreakdownArithmetic checks the score formula on statistics worked out by hand.
func TestBreakdownArithmetic(t *testing.T) {
	sc, err := New(emptyWordNet())
	if err != nil {
		t.Fatal(err)
	}
	// Candidate "the cat sat on the mat", reference "on the mat sat the cat":
	// 6 exact matches, 3 function words (the, on, the) on each side, and the
	// best alignment has 3 chunks: [on the mat] [sat] [the cat].
	st := Stats{TestLen: 6, RefLen: 6, TestFunction: 3, RefFunction: 3, Chunks: 3, TestMatches: 6, RefMatches: 6}
	st.TestContent[ModuleExact], st.RefContent[ModuleExact] = 3, 3
	st.TestFuncMatch[ModuleExact], st.RefFuncMatch[ModuleExact] = 3, 3
	b := sc.Breakdown(st)
	// P = R = (3*.75 + 3*.25) / (3*.75 + 3*.25) = 1; frag = 3 / ((6+6)/2) = 0.5.
	wantPen := 0.6 * math.Pow(0.5, 0.2)
	if !near(b.Precision, 1) || !near(b.Recall, 1) || !near(b.Fmean, 1) || !near(b.Penalty, wantPen) || !near(b.Score, 1-wantPen) {
		t.Fatalf("breakdown %+v, want P=R=F=1 pen=%v score=%v", b, wantPen, 1-wantPen)
	}
	if math.Abs(b.Score-0.47766) > 1e-4 {
		t.Fatalf("score %v, want about 0.47766", b.Score)
	}
	// A perfect match (all words matched, one chunk) has no penalty.
	st.Chunks = 1
	if b := sc.Breakdown(st); !near(b.Score, 1) || b.Penalty != 0 {
		t.Fatalf("perfect match: %+v", b)
	}
	// Two stem matches, candidate "dogs run fast" vs reference "a dog is
	// running": test length 3 (no function words), reference length 4 with
	// 2 function words (a, is); 2 content stem matches per side; 2 chunks.
	st = Stats{TestLen: 3, RefLen: 4, RefFunction: 2, Chunks: 2, TestMatches: 2, RefMatches: 2}
	st.TestContent[ModuleStem], st.RefContent[ModuleStem] = 2, 2
	b = sc.Breakdown(st)
	p := (2 * 0.6 * 0.75) / (0.75 * 3)           // 0.4
	r := (2 * 0.6 * 0.75) / (0.75*2 + 0.25*2)    // 0.45
	f := 1 / (0.15/p + 0.85/r)                   // 0.441717...
	want := f * (1 - 0.6*math.Pow(2.0/2.0, 0.2)) // penalty 0.6
	if !near(b.Precision, 0.4) || !near(b.Recall, 0.45) || !near(b.Fmean, f) || !near(b.Score, want) {
		t.Fatalf("stem breakdown %+v, want P=.4 R=.45 F=%v score=%v", b, f, want)
	}
	if math.Abs(b.Score-0.176687) > 1e-6 {
		t.Fatalf("score %v, want about 0.176687", b.Score)
	}
	// No matches: score 0, no NaN.
	if s := sc.Score(Stats{TestLen: 2, RefLen: 3}); s != 0 {
		t.Fatalf("no matches: %v", s)
	}
	if s := sc.Score(Stats{}); s != 0 {
		t.Fatalf("empty: %v", s)
	}
}

func TestFunctionWordList(t *testing.T) {
	seen := map[string]bool{}
	for _, w := range FunctionWords {
		if w != strings.ToLower(w) || strings.TrimSpace(w) != w || w == "" {
			t.Errorf("entry %q is not a trimmed lower-case word", w)
		}
		if seen[w] {
			t.Errorf("duplicate entry %q", w)
		}
		seen[w] = true
	}
	sc, err := New(emptyWordNet())
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		word string
		want bool
	}{
		{"the", true}, {"The", true}, {"an", true}, {"of", true}, {"is", true}, {"could", true},
		{"their", true}, {"while", true}, {"'s", true}, {"n't", true}, {"-lrb-", true},
		// Punctuation and symbols, by rule.
		{",", true}, {"...", true}, {"$", true}, {"!!", true}, {"\u2019", true},
		// Content words, numerals and mixed tokens.
		{"dog", false}, {"red", false}, {"people", false}, {"two", false}, {"one", false},
		{"said", false}, {"3", false}, {"3:30", false}, {"mr.", false}, {"", false},
	}
	for _, c := range cases {
		if got := sc.isFunction(c.word); got != c.want {
			t.Errorf("isFunction(%q) = %v, want %v", c.word, got, c.want)
		}
	}
	// A custom list replaces the words but not the symbol rule.
	custom, err := New(emptyWordNet(), WithFunctionWords([]string{"Dog"}))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		word string
		want bool
	}{{"dog", true}, {"the", false}, {",", true}} {
		if got := custom.isFunction(c.word); got != c.want {
			t.Errorf("custom list: isFunction(%q) = %v, want %v", c.word, got, c.want)
		}
	}
}

// TestFunctionWordWeighting checks that missing a function word costs less
// than missing a content word, with the statistics and scores worked out by
// hand. Reference "a dog on grass": function words a, on (weight 0.25),
// content words dog, grass (0.75); reference weight 2.
func TestFunctionWordWeighting(t *testing.T) {
	pen := 0.6 * math.Pow(1.0/3.0, 0.2) // 1 chunk over 3 matches
	fmean := func(p, r float64) float64 { return 1 / (0.15/p + 0.85/r) }
	cases := []struct {
		name, cand                string
		testFunction, refFunction float64
		funcMatches, contMatches  float64
		wantPrecision, wantRecall float64
	}{
		// Drops "a": recall (0.75+0.25+0.75)/2; precision (0.75+0.25+0.75)/1.75.
		{"function word missing", "dog on grass", 1, 2, 1, 2, 1, 0.875},
		// Drops "grass": recall (0.25+0.75+0.25)/2; precision 1.25/1.25.
		{"content word missing", "a dog on", 2, 2, 2, 1, 1, 0.625},
	}
	sc, err := New(emptyWordNet())
	if err != nil {
		t.Fatal(err)
	}
	scores := map[string]float64{}
	for _, c := range cases {
		_, st := sc.Align(c.cand, "a dog on grass")
		if st.TestFunction != c.testFunction || st.RefFunction != c.refFunction ||
			st.TestFuncMatch[ModuleExact] != c.funcMatches || st.TestContent[ModuleExact] != c.contMatches ||
			st.RefFuncMatch[ModuleExact] != c.funcMatches || st.RefContent[ModuleExact] != c.contMatches || st.Chunks != 1 {
			t.Fatalf("%s: stats %+v", c.name, st)
		}
		b := sc.Breakdown(st)
		want := fmean(c.wantPrecision, c.wantRecall) * (1 - pen)
		if !near(b.Precision, c.wantPrecision) || !near(b.Recall, c.wantRecall) || !near(b.Score, want) {
			t.Fatalf("%s: breakdown %+v, want P=%v R=%v score=%v", c.name, b, c.wantPrecision, c.wantRecall, want)
		}
		scores[c.name] = b.Score
	}
	if !(scores["function word missing"] > scores["content word missing"]) {
		t.Fatalf("missing a function word should cost less: %v", scores)
	}
	// Without function words the two candidates are symmetric and tie.
	flat, err := New(emptyWordNet(), WithFunctionWords(nil))
	if err != nil {
		t.Fatal(err)
	}
	_, st1 := flat.Align("dog on grass", "a dog on grass")
	_, st2 := flat.Align("a dog on", "a dog on grass")
	if s1, s2 := flat.Score(st1), flat.Score(st2); !near(s1, s2) || !near(s1, fmean(1, 0.75)*(1-pen)) {
		t.Fatalf("no function words: scores %v %v, want both %v", s1, s2, fmean(1, 0.75)*(1-pen))
	}
}

func TestAlignExactChunks(t *testing.T) {
	sc, err := New(emptyWordNet())
	if err != nil {
		t.Fatal(err)
	}
	a, st := sc.Align("the cat sat on the mat", "on the mat sat the cat")
	if st.Chunks != 3 || st.TestMatches != 6 || st.TestFunction != 3 || st.RefFunction != 3 {
		t.Fatalf("stats %+v", st)
	}
	// The beam search must pick the alignment with 3 chunks: ref "the"(1) ->
	// test "the"(4) and ref "the"(4) -> test "the"(0).
	wantTest := []int{3, 4, 5, 2, 0, 1}
	for j, m := range a.Matches {
		if m == nil || m.TestPos != wantTest[j] || m.Module != ModuleExact {
			t.Fatalf("match %d = %+v, want test pos %d exact", j, m, wantTest[j])
		}
	}
	if got := sc.Score(st); !near(got, 1-0.6*math.Pow(0.5, 0.2)) {
		t.Fatalf("score %v", got)
	}
	// Identical sentences: one chunk, score 1.
	_, st = sc.Align("A dog runs .", "a dog runs .")
	if st.Chunks != 1 || sc.Score(st) != 1 {
		t.Fatalf("identical: %+v score %v", st, sc.Score(st))
	}
}

func TestStemAndSynonymMatching(t *testing.T) {
	cases := []struct {
		name, cand, ref string
		needWordNet     bool
		want            []int // module per reference word, -1 = unmatched
	}{
		{"exact", "a dog runs", "a dog runs", false, []int{ModuleExact, ModuleExact, ModuleExact}},
		{"stem", "dogs run fast", "a dog is running", false, []int{-1, ModuleStem, -1, ModuleStem}},
		{"exact beats stem", "dog dogs", "dogs", false, []int{ModuleExact}},
		{"synonym", "a man rides a bike", "a man rides a bicycle", true, []int{ModuleExact, ModuleExact, ModuleExact, ModuleExact, ModuleSynonym}},
		{"synonym via exception list", "children play", "kids played", true, []int{ModuleSynonym, ModuleStem}},
		{"no synonym", "a red car", "a green car", true, []int{ModuleExact, -1, ModuleExact}},
	}
	var wn *WordNet
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := emptyWordNet()
			if c.needWordNet {
				if wn == nil {
					wn = testWordNet(t)
				}
				w = wn
			}
			sc, err := New(w)
			if err != nil {
				t.Fatal(err)
			}
			a, _ := sc.Align(c.cand, c.ref)
			for j, m := range a.Matches {
				got := -1
				if m != nil {
					got = m.Module
				}
				if got != c.want[j] {
					t.Fatalf("ref word %d (%q): module %d, want %d (matches %v)", j, a.Ref[j], got, c.want[j], a.Matches)
				}
			}
		})
	}
}

func TestMultipleReferencesAndAggregate(t *testing.T) {
	sc, err := New(emptyWordNet())
	if err != nil {
		t.Fatal(err)
	}
	refs := []string{"a cat sleeps", "a dog runs on the grass"}
	st := sc.Stats("a dog runs on grass", refs)
	if st.RefLen != 6 {
		t.Fatalf("best reference not chosen: %+v", st)
	}
	// Corpus score is computed from summed statistics, not a mean of scores.
	s1 := sc.Stats("a dog runs", []string{"a dog runs"})
	s2 := sc.Stats("the cat sat on the mat", []string{"on the mat sat the cat"})
	var agg Stats
	agg.Add(s1)
	agg.Add(s2)
	// s1 is a perfect match, so it adds no chunks: 3 chunks over 9 matches.
	if agg.Chunks != 3 || agg.TestMatches != 9 {
		t.Fatalf("aggregate %+v", agg)
	}
	want := 1 - 0.6*math.Pow(3.0/9.0, 0.2)
	if got := sc.Score(agg); !near(got, want) {
		t.Fatalf("aggregate score %v want %v", got, want)
	}
	// No references: zero.
	if got := sc.Score(sc.Stats("a dog", nil)); got != 0 {
		t.Fatalf("no refs: %v", got)
	}
}

func TestWordNetMissing(t *testing.T) {
	_, err := LoadWordNet(filepath.Join(t.TempDir(), "nowhere"))
	if !errors.Is(err, ErrNoWordNet) {
		t.Fatalf("err = %v, want ErrNoWordNet", err)
	}
	t.Setenv(WordNetEnv, "/nonexistent/wordnet")
	if d := WordNetDir(); d != "/nonexistent/wordnet" {
		t.Fatalf("WordNetDir = %q", d)
	}
	if _, err := New(nil); !errors.Is(err, ErrNoWordNet) {
		t.Fatalf("New(nil) err = %v", err)
	}
}

func TestWordNetSynsets(t *testing.T) {
	wn := testWordNet(t)
	if !intersects(wn.Synsets("bike"), wn.Synsets("bicycle")) {
		t.Fatal("bike and bicycle share no synset")
	}
	// Exception list: "children" -> "child"; morphology: "dogs" -> "dog".
	if !intersects(wn.Synsets("children"), wn.synsets["child"]) {
		t.Fatal("children not mapped to child")
	}
	if !intersects(wn.Synsets("dogs"), wn.synsets["dog"]) {
		t.Fatal("dogs not mapped to dog")
	}
	if len(wn.Synsets("qwzx")) != 0 {
		t.Fatal("nonsense word has synsets")
	}
	if _, err := os.Stat(WordNetDir()); err != nil {
		t.Fatal(err)
	}
}
