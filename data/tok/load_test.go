package tok

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadPicksTheRightTokenizer(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		kind  string
		file  string // expected Info().Source base name
	}{
		{"gpt2 tokenizer.json wins over vocab files", map[string]string{
			"gpt2/tokenizer.json": "tokenizer.json", "gpt2/vocab.json": "vocab.json", "gpt2/merges.txt": "merges.txt"}, KindBPE, "tokenizer.json"},
		{"vocab.json + merges.txt", map[string]string{"gpt2/vocab.json": "vocab.json", "gpt2/merges.txt": "merges.txt"}, KindBPE, "vocab.json"},
		{"OpenAI encoder.json + vocab.bpe", map[string]string{"gpt2/vocab.json": "encoder.json", "gpt2/merges.txt": "vocab.bpe"}, KindBPE, "encoder.json"},
		{"bert tokenizer.json", map[string]string{"bert-base-uncased/tokenizer.json": "tokenizer.json", "bert-base-uncased/vocab.txt": "vocab.txt"}, KindWordPiece, "tokenizer.json"},
		{"vocab.txt", map[string]string{"bert-base-uncased/vocab.txt": "vocab.txt"}, KindWordPiece, "vocab.txt"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyFiles(t, tc.files)
			tk, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			if info := tk.Info(); info.Kind != tc.kind || filepath.Base(info.Source) != tc.file {
				t.Errorf("Info() = %+v, want kind %s from %s", info, tc.kind, tc.file)
			}
			ids, err := tk.Encode("A dog runs.")
			if err != nil || len(ids) == 0 {
				t.Errorf("Encode: %v %v", ids, err)
			}
		})
	}
	t.Run("word_vocab.json", func(t *testing.T) {
		dir := t.TempDir()
		if err := BuildWordVocab([]string{"a dog runs", "the dog sits"}, 1).Save(filepath.Join(dir, WordVocabFile)); err != nil {
			t.Fatal(err)
		}
		tk, err := Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		if tk.Info().Kind != KindWord {
			t.Errorf("kind %s", tk.Info().Kind)
		}
		// The file itself, under another name.
		other := filepath.Join(dir, "vocab-words.json")
		if err := os.Rename(filepath.Join(dir, WordVocabFile), other); err != nil {
			t.Fatal(err)
		}
		if tk, err := Load(other); err != nil || tk.Info().Kind != KindWord {
			t.Errorf("Load(%s): %v", other, err)
		}
	})
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string) string // returns the path to load
		want  []string                              // substrings of the error
	}{
		{"empty folder", func(t *testing.T, dir string) string {
			writeFile(t, filepath.Join(dir, "config.json"), "{}")
			return dir
		}, []string{"no tokenizer in", "want tokenizer.json", "found: config.json"}},
		{"vocab.json without merges.txt", func(t *testing.T, dir string) string {
			writeFile(t, filepath.Join(dir, "vocab.json"), `{"a": 0}`)
			return dir
		}, []string{"vocab.json but no merges.txt"}},
		{"vocab.json file without merges.txt", func(t *testing.T, dir string) string {
			writeFile(t, filepath.Join(dir, "vocab.json"), `{"a": 0}`)
			return filepath.Join(dir, "vocab.json")
		}, []string{"needs", "merges.txt"}},
		{"missing path", func(t *testing.T, dir string) string { return filepath.Join(dir, "nope") }, []string{"nope"}},
		{"broken tokenizer.json", func(t *testing.T, dir string) string {
			writeFile(t, filepath.Join(dir, "tokenizer.json"), "{\n \"model\": {\"type\": \"BPE\",\n ]\n}")
			return dir
		}, []string{"tokenizer.json", "line 3"}},
		{"unsupported model", func(t *testing.T, dir string) string {
			writeFile(t, filepath.Join(dir, "tokenizer.json"), `{"model": {"type": "Unigram", "vocab": {"a": 0}}}`)
			return dir
		}, []string{"model.type \"Unigram\" is not supported"}},
		{"unsupported normalizer", func(t *testing.T, dir string) string {
			writeFile(t, filepath.Join(dir, "tokenizer.json"), `{"normalizer": {"type": "Sequence", "normalizers": [{"type": "Precompiled"}]}, "model": {"type": "WordPiece", "vocab": {"[UNK]": 0}}}`)
			return dir
		}, []string{"normalizer.normalizers[0].type \"Precompiled\" is not supported"}},
		{"merge of unknown tokens", func(t *testing.T, dir string) string {
			writeFile(t, filepath.Join(dir, "vocab.json"), `{"a": 0, "b": 1, "ab": 2}`)
			writeFile(t, filepath.Join(dir, "merges.txt"), "#version: 0.2\na b\nab c\n")
			return dir
		}, []string{"merge 2", `"c" is not in the vocabulary`}},
		{"bad merges line", func(t *testing.T, dir string) string {
			writeFile(t, filepath.Join(dir, "vocab.json"), `{"a": 0, "b": 1, "ab": 2}`)
			writeFile(t, filepath.Join(dir, "merges.txt"), "#version: 0.2\na b\nabc\n")
			return dir
		}, []string{"merges.txt:3", "two tokens"}},
		{"duplicate ids", func(t *testing.T, dir string) string {
			writeFile(t, filepath.Join(dir, "vocab.json"), `{"a": 0, "b": 0}`)
			writeFile(t, filepath.Join(dir, "merges.txt"), "")
			return dir
		}, []string{`id 0 is used by both "a" and "b"`}},
		{"wordpiece without unk", func(t *testing.T, dir string) string {
			writeFile(t, filepath.Join(dir, "vocab.txt"), "[CLS]\n[SEP]\na\n")
			return dir
		}, []string{`unk_token "[UNK]" is not in the vocabulary`}},
		{"bad special_tokens_map.json", func(t *testing.T, dir string) string {
			writeFile(t, filepath.Join(dir, "vocab.txt"), "[UNK]\n[CLS]\n[SEP]\n")
			writeFile(t, filepath.Join(dir, "special_tokens_map.json"), `{"bos_token": 5}`)
			return dir
		}, []string{"special_tokens_map.json", "bos_token"}},
		{"bpe dropout", func(t *testing.T, dir string) string {
			writeFile(t, filepath.Join(dir, "tokenizer.json"), `{"model": {"type": "BPE", "dropout": 0.1, "vocab": {"a": 0}, "merges": []}}`)
			return dir
		}, []string{"dropout"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := tc.setup(t, dir)
			_, err := Load(path)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}
