package tok

import (
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestCleanCaptionWords(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"A dog's toy, 2 balls.", []string{"dogs", "toy", "balls"}},
		{"T-shirt  and\tJEANS", []string{"tshirt", "and", "jeans"}},
		{"a b c . 1 22", nil},
		{"A child in a pink dress is climbing up a set of stairs in an entry way .",
			[]string{"child", "in", "pink", "dress", "is", "climbing", "up", "set", "of", "stairs", "in", "an", "entry", "way"}},
		{"café au lait", []string{"caf", "au", "lait"}},
		{"startseq ok endseq", []string{"startseq", "ok", "endseq"}},
		{"", nil},
	}
	for _, tc := range tests {
		if got := CleanCaptionWords(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("CleanCaptionWords(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

var wordCaptions = []string{
	"The dog runs.", "the cat runs", "A dog sits", "zebra!", "the bird", "startseq weird endseq",
}

func TestBuildWordVocab(t *testing.T) {
	tests := []struct {
		minCount int
		words    []string
		unkCount int
	}{
		// the:3, dog:2, runs:2, then the count-1 words alphabetically.
		{1, []string{"<pad>", "<unk>", "startseq", "endseq", "the", "dog", "runs", "bird", "cat", "sits", "weird", "zebra"}, 0},
		{2, []string{"<pad>", "<unk>", "startseq", "endseq", "the", "dog", "runs"}, 5},
		{4, []string{"<pad>", "<unk>", "startseq", "endseq"}, 12},
	}
	for _, tc := range tests {
		v := BuildWordVocab(wordCaptions, tc.minCount)
		if got := v.Words(); !slices.Equal(got, tc.words) {
			t.Errorf("min %d: words %q, want %q", tc.minCount, got, tc.words)
		}
		if got := v.Count(1); got != tc.unkCount {
			t.Errorf("min %d: <unk> count %d, want %d", tc.minCount, got, tc.unkCount)
		}
		if v.VocabSize() != len(tc.words) {
			t.Errorf("min %d: VocabSize %d", tc.minCount, v.VocabSize())
		}
	}
	v := BuildWordVocab(wordCaptions, 2)
	if v.Count(2) != len(wordCaptions) || v.Count(4) != 3 {
		t.Errorf("counts: startseq %d, the %d", v.Count(2), v.Count(4))
	}
	ids, err := v.Encode("The ZEBRA runs!")
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{4, 1, 6}; !slices.Equal(ids, want) {
		t.Errorf("Encode = %v, want %v", ids, want)
	}
	full := v.AddSpecial(ids)
	if want := []int{2, 4, 1, 6, 3}; !slices.Equal(full, want) {
		t.Errorf("AddSpecial = %v, want %v", full, want)
	}
	if got := v.Decode(append(full, 0, 0, 99), false); got != "startseq the <unk> runs endseq <pad> <pad>" {
		t.Errorf("Decode = %q", got)
	}
	if got := DecodeText(v, append(full, 0, 0)); got != "the runs" {
		t.Errorf("DecodeText = %q", got)
	}
	sp := v.Special()
	if sp.PAD != 0 || sp.UNK != 1 || sp.BOS != 2 || sp.EOS != 3 || sp.CLS != -1 || sp.SEP != -1 || sp.MASK != -1 {
		t.Errorf("Special = %+v", sp)
	}
	if id, ok := v.TokenToID("dog"); !ok || id != 5 {
		t.Errorf("TokenToID(dog) = %d %v", id, ok)
	}
	if tok, ok := v.IDToToken(6); !ok || tok != "runs" {
		t.Errorf("IDToToken(6) = %q %v", tok, ok)
	}
}

func TestWordVocabDeterministicAndRoundTrip(t *testing.T) {
	var caps []string
	for _, c := range gpt2Cases(t) {
		caps = append(caps, c.Text)
	}
	dir := t.TempDir()
	a := filepath.Join(dir, "a.json")
	if err := BuildWordVocab(caps, 2).Save(a); err != nil {
		t.Fatal(err)
	}
	rand.New(rand.NewSource(3)).Shuffle(len(caps), func(i, j int) { caps[i], caps[j] = caps[j], caps[i] })
	b := filepath.Join(dir, "b.json")
	orig := BuildWordVocab(caps, 2)
	if err := orig.Save(b); err != nil {
		t.Fatal(err)
	}
	da, _ := os.ReadFile(a)
	db, _ := os.ReadFile(b)
	if string(da) != string(db) {
		t.Error("the vocabulary depends on the caption order")
	}
	back, err := LoadWordVocab(b)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(back.Words(), orig.Words()) {
		t.Error("words differ after Save/Load")
	}
	for _, c := range caps {
		x, _ := orig.Encode(c)
		y, _ := back.Encode(c)
		if !slices.Equal(x, y) {
			t.Errorf("%q: %v before, %v after Save/Load", c, x, y)
		}
	}
	if back.Info().Source != b || back.Info().Kind != KindWord {
		t.Errorf("Info = %+v", back.Info())
	}
}

func TestLoadWordVocabErrors(t *testing.T) {
	tests := []struct{ name, content, want string }{
		{"not JSON", "{", "unexpected end"},
		{"format", `{"format": "x", "version": 1, "tokens": []}`, `format "x"`},
		{"version", `{"format": "imgcap-word-vocab", "version": 2, "tokens": []}`, "version 2"},
		{"too short", `{"format": "imgcap-word-vocab", "version": 1, "tokens": ["<pad>"]}`, "at least 4"},
		{"specials order", `{"format": "imgcap-word-vocab", "version": 1, "tokens": ["<pad>", "startseq", "<unk>", "endseq"]}`, `tokens[1] is "startseq", want "<unk>"`},
		{"duplicate", `{"format": "imgcap-word-vocab", "version": 1, "tokens": ["<pad>", "<unk>", "startseq", "endseq", "dog", "dog"]}`, `tokens[4] and tokens[5] are both "dog"`},
		{"counts", `{"format": "imgcap-word-vocab", "version": 1, "tokens": ["<pad>", "<unk>", "startseq", "endseq"], "counts": [1]}`, "1 counts for 4 tokens"},
		{"space", `{"format": "imgcap-word-vocab", "version": 1, "tokens": ["<pad>", "<unk>", "startseq", "endseq", "a b"]}`, "white space"},
	}
	for _, tc := range tests {
		path := filepath.Join(t.TempDir(), "v.json")
		writeFile(t, path, tc.content)
		_, err := LoadWordVocab(path)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: error %v, want one naming %s and containing %q", tc.name, err, path, tc.want)
		}
	}
}

func TestWordVocabMinWordLength(t *testing.T) {
	caps := []string{"A dog on a mat.", "a cat"}
	tests := []struct {
		minLen int
		want   string // decode(encode(caps[0]))
	}{
		{2, "dog on mat"},
		{1, "a dog on a mat"},
	}
	for _, tc := range tests {
		v := BuildWordVocabMinLength(caps, 1, tc.minLen)
		ids, err := v.Encode(caps[0])
		if err != nil {
			t.Fatal(err)
		}
		if got := v.Decode(ids, true); got != tc.want {
			t.Errorf("minLen %d: %q, want %q", tc.minLen, got, tc.want)
		}
		// The rule is saved with the vocabulary, so a reloaded one encodes the same way.
		p := filepath.Join(t.TempDir(), "v.json")
		if err := v.Save(p); err != nil {
			t.Fatal(err)
		}
		back, err := LoadWordVocab(p)
		if err != nil {
			t.Fatal(err)
		}
		ids2, _ := back.Encode(caps[0])
		if back.Decode(ids2, true) != tc.want {
			t.Errorf("minLen %d after reload: %q", tc.minLen, back.Decode(ids2, true))
		}
	}
	if got := BuildWordVocab(caps, 1).Decode(mustEncode(t, BuildWordVocab(caps, 1), caps[0]), true); got != "dog on mat" {
		t.Errorf("BuildWordVocab keeps the notebook's rule: %q", got)
	}
}

func mustEncode(t *testing.T, v *WordVocab, s string) []int {
	t.Helper()
	ids, err := v.Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}
