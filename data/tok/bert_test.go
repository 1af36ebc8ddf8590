package tok

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestBertNormalizer(t *testing.T) {
	uncased := bertNormalizer{cleanText: true, chineseChars: true, lowercase: true, stripAccents: true}
	lowerOnly := bertNormalizer{cleanText: true, chineseChars: true, lowercase: true}
	cased := bertNormalizer{cleanText: true, chineseChars: true}
	tests := []struct {
		name string
		n    bertNormalizer
		in   string
		want string
	}{
		{"ascii", uncased, "Hello WORLD", "hello world"},
		{"accents", uncased, "Héllo Ça", "hello ca"},
		{"combining accent", uncased, "cafe\u0301", "cafe"},
		{"controls and format chars dropped", uncased, "a\x00b\ufffdc\u200bd\u00ade\ufeff", "abcde"},
		{"\\v \\f and NEL are controls, dropped", uncased, "a\vb\fc\u0085d", "abcd"},
		{"private use dropped", uncased, "a\ue000b", "ab"},
		{"white space becomes a space", uncased, "a\tb\nc\u00a0d\u3000e\u2009f\r", "a b c d e f "},
		{"CJK spaced out", uncased, "我爱NY", " 我  爱 ny"},
		{"Hangul is not CJK, decomposed by NFD", uncased, "한", "\u1112\u1161\u11ab"},
		{"dotted I, strip accents", uncased, "İstanbul", "istanbul"},
		{"dotted I, lowercase only: full lowercase mapping", lowerOnly, "İ", "i\u0307"},
		{"no final sigma rule", uncased, "ΟΔΟΣ", "οδοσ"},
		{"no NFKC", uncased, "Ｋﬁ", "ｋﬁ"},
		{"Kelvin and Ohm signs", uncased, "\u212a\u2126", "kω"},
		{"cased keeps case and accents", cased, "Héllo", "Héllo"},
	}
	for _, tc := range tests {
		if got := tc.n.normalize(tc.in); got != tc.want {
			t.Errorf("%s: normalize(%q) = %q, want %q", tc.name, tc.in, got, tc.want)
		}
	}
}

func TestBertPreTokenizer(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"Hey friend!     How are you?!?", []string{"Hey", "friend", "!", "How", "are", "you", "?", "!", "?"}},
		{"$5+3=8^2|x~y`z", []string{"$", "5", "+", "3", "=", "8", "^", "2", "|", "x", "~", "y", "`", "z"}}, // ASCII symbols count
		{"a—b «c»", []string{"a", "—", "b", "«", "c", "»"}},
		{"5€ a°b", []string{"5€", "a°b"}}, // non-ASCII symbols (Sc, So) are not punctuation
		{"  ", nil},
	}
	for _, tc := range tests {
		var got []string
		bertPre{}.split(tc.in, func(w string) { got = append(got, w) })
		if !slices.Equal(got, tc.want) {
			t.Errorf("split(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestWordPieceMaxChars(t *testing.T) {
	tk := load(t, "bert-base-uncased")
	unk := tk.Special().UNK
	if unk != 100 {
		t.Fatalf("UNK = %d, want 100", unk)
	}
	ids, _ := tk.Encode(strings.Repeat("a", 100))
	if slices.Contains(ids, unk) {
		t.Errorf("100 letters: got [UNK]: %v", ids)
	}
	ids, _ = tk.Encode(strings.Repeat("a", 101))
	if !slices.Equal(ids, []int{unk}) {
		t.Errorf("101 letters: got %v, want [%d]", ids, unk)
	}
}

func TestBERTSpecialIDs(t *testing.T) {
	for _, src := range bertSources {
		sp := load(t, src).Special()
		want := SpecialIDs{BOS: -1, EOS: -1, PAD: 0, UNK: 100, CLS: 101, SEP: 102, MASK: 103}
		sp.Additional = nil
		if sp.BOS != want.BOS || sp.EOS != want.EOS || sp.PAD != want.PAD || sp.UNK != want.UNK ||
			sp.CLS != want.CLS || sp.SEP != want.SEP || sp.MASK != want.MASK {
			t.Errorf("%s: Special() = %+v, want %+v", src, sp, want)
		}
		if n := load(t, src).VocabSize(); n != 30522 {
			t.Errorf("%s: VocabSize %d, want 30522", src, n)
		}
	}
	for _, src := range gpt2Sources {
		tk := load(t, src)
		sp := tk.Special()
		if sp.BOS != 50256 || sp.EOS != 50256 || sp.UNK != 50256 || sp.PAD != -1 || sp.CLS != -1 {
			t.Errorf("%s: Special() = %+v, want BOS=EOS=UNK=50256, others -1", src, sp)
		}
		if n := tk.VocabSize(); n != 50257 {
			t.Errorf("%s: VocabSize %d, want 50257", src, n)
		}
	}
}

// BLIP's tokenizer is bert-base-uncased plus [DEC] (bos, 30522) and [ENC] (30523), however
// the folder spells it.
func TestBLIPTokens(t *testing.T) {
	const stm = `{"bos_token": "[DEC]", "additional_special_tokens": ["[ENC]"], "cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]", "unk_token": "[UNK]", "mask_token": "[MASK]"}`
	layouts := map[string]func(t *testing.T) string{
		"vocab.txt + special_tokens_map.json": func(t *testing.T) string {
			dir := copyFiles(t, map[string]string{"bert-base-uncased/vocab.txt": "vocab.txt"})
			writeFile(t, filepath.Join(dir, "special_tokens_map.json"), stm)
			return dir
		},
		"vocab.txt + added_tokens.json + special_tokens_map.json": func(t *testing.T) string {
			dir := copyFiles(t, map[string]string{"bert-base-uncased/vocab.txt": "vocab.txt"})
			writeFile(t, filepath.Join(dir, "added_tokens.json"), `{"[ENC]": 30523, "[DEC]": 30522}`)
			writeFile(t, filepath.Join(dir, "special_tokens_map.json"), stm)
			return dir
		},
		"tokenizer.json + tokenizer_config.json": func(t *testing.T) string {
			dir := copyFiles(t, map[string]string{"bert-base-uncased/tokenizer.json": "tokenizer.json"})
			writeFile(t, filepath.Join(dir, "tokenizer_config.json"), `{
				"added_tokens_decoder": {
					"30522": {"content": "[DEC]", "lstrip": false, "normalized": false, "rstrip": false, "single_word": false, "special": true},
					"30523": {"content": "[ENC]", "lstrip": false, "normalized": false, "rstrip": false, "single_word": false, "special": true}
				},
				"bos_token": "[DEC]", "additional_special_tokens": ["[ENC]"], "do_lower_case": true,
				"clean_up_tokenization_spaces": true, "model_max_length": 512, "tokenizer_class": "BertTokenizer"}`)
			return dir
		},
		"tokenizer.json with the tokens in added_tokens": func(t *testing.T) string {
			dir := copyFiles(t, map[string]string{"bert-base-uncased/tokenizer.json": "tokenizer.json"})
			path := filepath.Join(dir, "tokenizer.json")
			var f map[string]any
			data, _ := os.ReadFile(path)
			if err := json.Unmarshal(data, &f); err != nil {
				t.Fatal(err)
			}
			for i, c := range []string{"[DEC]", "[ENC]"} {
				f["added_tokens"] = append(f["added_tokens"].([]any), map[string]any{
					"id": 30522 + i, "content": c, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true})
			}
			out, _ := json.Marshal(f)
			writeFile(t, path, string(out))
			return dir
		},
	}
	for name, mk := range layouts {
		t.Run(name, func(t *testing.T) {
			tk, err := Load(mk(t))
			if err != nil {
				t.Fatal(err)
			}
			for tok, want := range map[string]int{"[DEC]": 30522, "[ENC]": 30523, "[CLS]": 101, "[SEP]": 102} {
				if id, ok := tk.TokenToID(tok); !ok || id != want {
					t.Errorf("TokenToID(%q) = %d, %v; want %d", tok, id, ok, want)
				}
			}
			sp := tk.Special()
			if sp.BOS != 30522 || sp.CLS != 101 || sp.SEP != 102 || sp.PAD != 0 || sp.UNK != 100 || sp.MASK != 103 {
				t.Errorf("Special() = %+v", sp)
			}
			if name != "tokenizer.json with the tokens in added_tokens" && !slices.Equal(sp.Additional, []int{30523}) {
				t.Errorf("Special().Additional = %v, want [30523]", sp.Additional)
			}
			if n := tk.VocabSize(); n != 30524 {
				t.Errorf("VocabSize = %d, want 30524", n)
			}
			a, _ := tk.TokenToID("a")
			dog, _ := tk.TokenToID("dog")
			ids, err := tk.Encode("[DEC] a DOG[ENC]")
			if err != nil {
				t.Fatal(err)
			}
			if want := []int{30522, a, dog, 30523}; !slices.Equal(ids, want) {
				t.Errorf("Encode = %v, want %v", ids, want)
			}
			if got := tk.Decode(ids, true); got != "a dog" {
				t.Errorf("Decode(skip special) = %q, want %q", got, "a dog")
			}
			if got := tk.Decode(ids, false); got != "[DEC] a dog [ENC]" {
				t.Errorf("Decode = %q, want %q", got, "[DEC] a dog [ENC]")
			}
		})
	}
}

// Older tokenizer.json files leave out model.type and write merges as "a b" strings.
func TestLegacyTokenizerJSON(t *testing.T) {
	rewrite := func(t *testing.T, rel string, edit func(model map[string]any)) Tokenizer {
		dir := copyFiles(t, map[string]string{rel: "tokenizer.json"})
		path := filepath.Join(dir, "tokenizer.json")
		data, _ := os.ReadFile(path)
		var f map[string]any
		if err := json.Unmarshal(data, &f); err != nil {
			t.Fatal(err)
		}
		edit(f["model"].(map[string]any))
		out, _ := json.Marshal(f)
		writeFile(t, path, string(out))
		tk, err := Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		return tk
	}
	gpt2 := rewrite(t, "gpt2/tokenizer.json", func(m map[string]any) {
		delete(m, "type")
		merges := m["merges"].([]any)
		for i, pr := range merges {
			p := pr.([]any)
			merges[i] = p[0].(string) + " " + p[1].(string)
		}
	})
	ok := 0
	cases := gpt2Cases(t)
	for _, c := range cases {
		if ids, _ := gpt2.Encode(c.Text); slices.Equal(ids, c.IDs) {
			ok++
		} else {
			t.Errorf("legacy gpt2 %q: got %v, want %v", c.Text, ids, c.IDs)
		}
	}
	t.Logf("legacy GPT-2 tokenizer.json: %d/%d", ok, len(cases))
	bert := rewrite(t, "bert-base-uncased/tokenizer.json", func(m map[string]any) { delete(m, "type") })
	ok = 0
	bcases := bertCases(t)
	for _, c := range bcases {
		if ids, _ := bert.Encode(c.Text); slices.Equal(ids, c.IDsNoSpecial) {
			ok++
		} else {
			t.Errorf("legacy bert %q: got %v, want %v", c.Text, ids, c.IDsNoSpecial)
		}
	}
	t.Logf("legacy BERT tokenizer.json: %d/%d", ok, len(bcases))
}

func TestBertOptionsFromTokenizerConfig(t *testing.T) {
	dir := copyFiles(t, map[string]string{"bert-base-uncased/vocab.txt": "vocab.txt"})
	writeFile(t, filepath.Join(dir, "tokenizer_config.json"), `{"do_lower_case": true, "strip_accents": false, "tokenize_chinese_chars": false}`)
	tk, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	// strip_accents false keeps "é" (not in the uncased vocabulary: [UNK], where the
	// default gives "e"); without CJK spacing "北京" is one word: 北 ##京.
	bei, _ := tk.TokenToID("北")
	jing, _ := tk.TokenToID("##京")
	ids, _ := tk.Encode("é 北京")
	if want := []int{100, bei, jing}; !slices.Equal(ids, want) {
		t.Errorf("Encode = %v (%q), want %v", ids, tokensOf(tk, ids), want)
	}
	def := load(t, "bert-base-uncased/vocab.txt")
	e, _ := def.TokenToID("e")
	jing, _ = def.TokenToID("京")
	ids, _ = def.Encode("é 北京")
	if want := []int{e, bei, jing}; !slices.Equal(ids, want) {
		t.Errorf("default options: Encode = %v (%q), want %v", ids, tokensOf(def, ids), want)
	}
}
