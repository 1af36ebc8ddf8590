package tok

import (
	"bufio"
	"encoding/json"
	"math/rand"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// naiveBPE is an obviously-correct, slow reference for GPT-2's BPE, written from the
// definition and sharing no code with the package: map bytes to the byte alphabet,
// then repeatedly merge the adjacent pair with the lowest rank (the leftmost one among
// equal ranks) until no pair has a rank; then look the parts up in the vocabulary.
type naiveBPE struct {
	vocab map[string]int
	ranks map[[2]string]int
	alpha [256]string
}

var (
	naiveOnce sync.Once
	naiveRef  *naiveBPE
)

func loadNaiveBPE(t testing.TB) *naiveBPE {
	naiveOnce.Do(func() {
		dir := fixtures(t)
		n := &naiveBPE{ranks: map[[2]string]int{}}
		data, err := os.ReadFile(filepath.Join(dir, "gpt2", "vocab.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, &n.vocab); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(filepath.Join(dir, "gpt2", "merges.txt"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		rank := 0
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "#version") || line == "" {
				continue
			}
			parts := strings.Split(line, " ")
			if len(parts) != 2 {
				t.Fatalf("merges line %q", line)
			}
			key := [2]string{parts[0], parts[1]}
			n.ranks[key] = rank // a later duplicate wins, as in Hugging Face
			rank++
		}
		// OpenAI's bytes_to_unicode, written out independently.
		var bs []int
		for b := '!'; b <= '~'; b++ {
			bs = append(bs, int(b))
		}
		for b := 0xA1; b <= 0xAC; b++ {
			bs = append(bs, b)
		}
		for b := 0xAE; b <= 0xFF; b++ {
			bs = append(bs, b)
		}
		in := map[int]bool{}
		for _, b := range bs {
			in[b] = true
			n.alpha[b] = string(rune(b))
		}
		extra := 0
		for b := 0; b < 256; b++ {
			if !in[b] {
				n.alpha[b] = string(rune(256 + extra))
				extra++
			}
		}
		naiveRef = n
	})
	if naiveRef == nil {
		t.Fatal("naive BPE failed to load")
	}
	return naiveRef
}

// encodeWord encodes one pre-tokenized word.
func (n *naiveBPE) encodeWord(t testing.TB, word string) []int {
	parts := make([]string, len(word))
	for i := 0; i < len(word); i++ {
		parts[i] = n.alpha[word[i]]
	}
	for {
		best, bestRank := -1, -1
		for i := 0; i+1 < len(parts); i++ {
			if r, ok := n.ranks[[2]string{parts[i], parts[i+1]}]; ok && (best < 0 || r < bestRank) {
				best, bestRank = i, r
			}
		}
		if best < 0 {
			break
		}
		merged := parts[best] + parts[best+1]
		parts = append(parts[:best], append([]string{merged}, parts[best+2:]...)...)
	}
	ids := make([]int, len(parts))
	for i, p := range parts {
		id, ok := n.vocab[p]
		if !ok {
			t.Fatalf("naive BPE: %q not in vocab", p)
		}
		ids[i] = id
	}
	return ids
}

// stressStrings: numbers 0..20000 with and without a leading space, and runs of one
// letter, digit or symbol (with and without a leading space) of every length up to 64.
func stressStrings() []string {
	var out []string
	for i := 0; i <= 20000; i++ {
		s := strconv.Itoa(i)
		out = append(out, s, " "+s)
	}
	for _, c := range []string{"a", "b", "e", "l", "o", "s", "z", "A", "E", "Z", "0", "1", "9", "ab", "ee", "!", "=", "-", "é", "語"} {
		for n := 1; n <= 64; n++ {
			s := strings.Repeat(c, n)
			out = append(out, s, " "+s)
		}
	}
	return out
}

func TestGPT2StressAgainstNaiveBPE(t *testing.T) {
	ref := loadNaiveBPE(t)
	for _, src := range []string{"gpt2/tokenizer.json", "gpt2/vocab.json"} {
		tk := load(t, src)
		strs := stressStrings()
		bad := 0
		for _, s := range strs {
			got, err := tk.Encode(s)
			if err != nil {
				t.Fatal(err)
			}
			// Each stress string is one GPT-2 pre-token, so the reference encodes it whole.
			want := ref.encodeWord(t, s)
			if !slices.Equal(got, want) {
				bad++
				if bad <= 10 {
					t.Errorf("%s: %q: got %v, want %v", src, s, got, want)
				}
			}
		}
		t.Logf("%s: %d/%d stress strings match the naive reference BPE", src, len(strs)-bad, len(strs))
		if bad > 0 {
			t.Errorf("%s: %d stress strings differ", src, bad)
		}
	}
}

// regexSplit is a reference for the GPT-2 pre-tokenizer built from the pattern itself:
// at each position, try the alternatives in order with Go's regexp (anchored), and emulate
// the one lookahead, \s+(?!\S), by backtracking the greedy \s+ until no \S follows.
// \s is spelled out as the Unicode White_Space set (Go's \s is ASCII-only).
var (
	ws          = `\t\n\v\f\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}`
	refAlts     []*regexp.Regexp
	refSpaceRun = regexp.MustCompile(`^[` + ws + `]+`)
)

func init() {
	for _, p := range []string{`'s`, `'t`, `'re`, `'ve`, `'m`, `'ll`, `'d`, ` ?\pL+`, ` ?\pN+`, ` ?[^` + ws + `\pL\pN]+`} {
		refAlts = append(refAlts, regexp.MustCompile(`^(?:`+p+`)`))
	}
}

func regexSplit(s string) []string {
	var out []string
	for i := 0; i < len(s); {
		rest := s[i:]
		n := 0
		for _, re := range refAlts {
			if m := re.FindString(rest); m != "" {
				n = len(m)
				break
			}
		}
		if n == 0 {
			run := refSpaceRun.FindString(rest)
			if run == "" {
				panic("no alternative matches " + strconv.Quote(rest))
			}
			// \s+(?!\S): try lengths from the longest down.
			for k := len(run); k > 0; {
				after := rest[k:]
				if after == "" || refSpaceRun.MatchString(after) {
					n = k
					break
				}
				_, sz := utf8.DecodeLastRuneInString(run[:k])
				k -= sz
			}
			if n == 0 { // \s+
				n = len(run)
			}
		}
		out = append(out, rest[:n])
		i += n
	}
	return out
}

func gpt2Pieces(s string) []string {
	var out []string
	gpt2Split(s, func(p string) { out = append(out, p) })
	return out
}

func TestGPT2SplitHandCases(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"Hello world", []string{"Hello", " world"}},
		{"it's", []string{"it", "'s"}},
		{"IT'S", []string{"IT", "'", "S"}}, // contractions are case-sensitive
		{"'sup", []string{"'s", "up"}},
		{"we'll they're I've", []string{"we", "'ll", " they", "'re", " I", "'ve"}},
		{"''s", []string{"''", "s"}},
		{"a  b", []string{"a", " ", " b"}},
		{"a   b", []string{"a", "  ", " b"}},
		{"a\n\nb", []string{"a", "\n", "\n", "b"}},
		{"a \nb", []string{"a", " ", "\n", "b"}},
		{"a\n b", []string{"a", "\n", " b"}},
		{"end   ", []string{"end", "   "}},
		{"   ", []string{"   "}},
		{"x\u00a0y", []string{"x", "\u00a0", "y"}},
		{"x\u2009 y", []string{"x", "\u2009", " y"}},
		{"2024 is 20x", []string{"2024", " is", " 20", "x"}},
		{"½²", []string{"½²"}},
		{"a!!b ?!", []string{"a", "!!", "b", " ?!"}},
		{"zero\u200bwidth", []string{"zero", "\u200b", "width"}},
		{"", nil},
	}
	for _, tc := range tests {
		if got := gpt2Pieces(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("gpt2Split(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if got := regexSplit(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("reference regexSplit(%q) = %q, want %q (the reference is wrong)", tc.in, got, tc.want)
		}
	}
}

func TestGPT2SplitMatchesRegexReference(t *testing.T) {
	var texts []string
	for _, c := range gpt2Cases(t) {
		texts = append(texts, c.Text)
	}
	// Random strings over an alphabet of the characters that matter to the pattern.
	alphabet := []string{" ", " ", " ", "\n", "\t", "\r", "\u00a0", "\u3000", "\u2009", "\u0085",
		"a", "Z", "é", "語", "7", "½", "'", "'", "s", "t", "r", "e", "v", "m", "l", "d", "!", ".", "😀", "\u0301", "\u200b", "\x00"}
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 20000; i++ {
		var b strings.Builder
		for n := rng.Intn(12); n >= 0; n-- {
			b.WriteString(alphabet[rng.Intn(len(alphabet))])
		}
		texts = append(texts, b.String())
	}
	bad := 0
	for _, s := range texts {
		got, want := gpt2Pieces(s), regexSplit(s)
		if !slices.Equal(got, want) {
			bad++
			if bad <= 10 {
				t.Errorf("%q: got %q, want %q", s, got, want)
			}
		}
		if strings.Join(got, "") != s {
			t.Errorf("%q: pieces %q do not cover the text", s, got)
		}
	}
	t.Logf("%d/%d texts split as the regex reference", len(texts)-bad, len(texts))
}

// TestGPT2WordsAgainstNaiveBPE runs every pre-token of the oracle captions and of random
// strings through both BPEs.
func TestGPT2WordsAgainstNaiveBPE(t *testing.T) {
	ref := loadNaiveBPE(t)
	tk := load(t, "gpt2/vocab.json").(*pipeline)
	m := tk.model.(*bpeModel)
	words := map[string]bool{}
	for _, c := range gpt2Cases(t) {
		gpt2Split(c.Text, func(w string) { words[w] = true })
	}
	rng := rand.New(rand.NewSource(2))
	letters := "aabeeilnorsttx"
	for i := 0; i < 3000; i++ {
		b := []byte{}
		if rng.Intn(2) == 0 {
			b = append(b, ' ')
		}
		for n := 1 + rng.Intn(20); n > 0; n-- {
			b = append(b, letters[rng.Intn(len(letters))])
		}
		words[string(b)] = true
	}
	for w := range words {
		got := m.tokenize(w, nil)
		if want := ref.encodeWord(t, w); !slices.Equal(got, want) {
			t.Errorf("%q: got %v, want %v", w, got, want)
		}
	}
	t.Logf("%d words match the naive reference BPE", len(words))
}

// FuzzGPT2Encode checks the splitter against the regex reference and the BPE against the
// naive reference on arbitrary text; its seeds run with every go test.
func FuzzGPT2Encode(f *testing.F) {
	for _, s := range []string{"Hello  world\n\n", "it's 2000 o'clock", "aaaaaaaaaaaa", " 1111", "😀😀 \u00a0x", "<|endoftext|>x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		pieces := gpt2Pieces(s)
		if want := regexSplit(s); !slices.Equal(pieces, want) {
			t.Fatalf("split %q: got %q, want %q", s, pieces, want)
		}
		ref := loadNaiveBPE(t)
		tk := load(t, "gpt2/vocab.json")
		m := tk.(*pipeline).model.(*bpeModel)
		for _, p := range pieces {
			if got, want := m.tokenize(p, nil), ref.encodeWord(t, p); !slices.Equal(got, want) {
				t.Fatalf("%q: got %v, want %v", p, got, want)
			}
		}
		// Byte-level BPE is lossless.
		ids, err := tk.Encode(s)
		if err != nil {
			t.Fatal(err)
		}
		if back := tk.Decode(ids, false); back != s {
			t.Fatalf("Decode(Encode(%q)) = %q", s, back)
		}
	})
}

// FuzzBERTEncode checks that the two ways of loading BERT agree, that every id is in the
// vocabulary, and that nothing panics.
func FuzzBERTEncode(f *testing.F) {
	for _, s := range []string{"Héllo, WORLD!", "İstanbul \u00a0 北京 [CLS]x[SEP]", "\x00\ufeff\u200b", "ａｂｃ  ’s", strings.Repeat("ab", 60)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		a, err := load(t, "bert-base-uncased/tokenizer.json").Encode(s)
		if err != nil {
			t.Fatal(err)
		}
		b, err := load(t, "bert-base-uncased/vocab.txt").Encode(s)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(a, b) {
			t.Fatalf("%q: tokenizer.json %v, vocab.txt %v", s, a, b)
		}
		for _, id := range a {
			if id < 0 || id >= 30522 {
				t.Fatalf("%q: id %d", s, id)
			}
		}
	})
}
