package tok

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Load loads the tokenizer of a model folder, or of one tokenizer file. For a folder it
// takes the first of these that is present:
//
//   - tokenizer.json (Hugging Face fast tokenizer; model.type BPE or WordPiece);
//   - vocab.json + merges.txt, or OpenAI's encoder.json + vocab.bpe (GPT-2 BPE);
//   - vocab.txt (BERT WordPiece);
//   - word_vocab.json (WordVocab).
//
// A file path is loaded by its name (tokenizer.json, vocab.json/encoder.json with the
// merges file next to it, vocab.txt) or, for other .json files, as a WordVocab when its
// "format" says so. Transformers' configuration files in the same folder
// (tokenizer_config.json, special_tokens_map.json, added_tokens.json) are read too.
func Load(path string) (Tokenizer, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("tok: %w", err)
	}
	if !st.IsDir() {
		return loadFile(path)
	}
	dir := path
	has := func(name string) bool {
		st, err := os.Stat(filepath.Join(dir, name))
		return err == nil && !st.IsDir()
	}
	switch {
	case has("tokenizer.json"):
		return LoadTokenizerJSON(filepath.Join(dir, "tokenizer.json"))
	case has("vocab.json") && has("merges.txt"):
		return LoadBPEFiles(filepath.Join(dir, "vocab.json"), filepath.Join(dir, "merges.txt"))
	case has("encoder.json") && has("vocab.bpe"):
		return LoadBPEFiles(filepath.Join(dir, "encoder.json"), filepath.Join(dir, "vocab.bpe"))
	case has("vocab.json"):
		return nil, fmt.Errorf("tok: %s has vocab.json but no merges.txt next to it (a BPE tokenizer needs both)", dir)
	case has("merges.txt"):
		return nil, fmt.Errorf("tok: %s has merges.txt but no vocab.json next to it (a BPE tokenizer needs both)", dir)
	case has("vocab.txt"):
		return LoadWordPieceVocab(filepath.Join(dir, "vocab.txt"))
	case has(WordVocabFile):
		return LoadWordVocab(filepath.Join(dir, WordVocabFile))
	}
	return nil, fmt.Errorf("tok: no tokenizer in %s: want tokenizer.json, vocab.json + merges.txt, vocab.txt or %s (found: %s)",
		dir, WordVocabFile, listDir(dir))
}

func loadFile(path string) (Tokenizer, error) {
	dir, base := filepath.Split(path)
	sibling := func(name string) (string, error) {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("tok: %s needs %s next to it", path, p)
		}
		return p, nil
	}
	switch {
	case base == "tokenizer.json":
		return LoadTokenizerJSON(path)
	case base == "vocab.json":
		m, err := sibling("merges.txt")
		if err != nil {
			return nil, err
		}
		return LoadBPEFiles(path, m)
	case base == "encoder.json":
		m, err := sibling("vocab.bpe")
		if err != nil {
			return nil, err
		}
		return LoadBPEFiles(path, m)
	case strings.HasSuffix(base, ".txt"):
		return LoadWordPieceVocab(path)
	case strings.HasSuffix(base, ".json"):
		if jsonFormat(path) == WordVocabFormat {
			return LoadWordVocab(path)
		}
		// Any other JSON file: try it as a tokenizer.json.
		return LoadTokenizerJSON(path)
	}
	return nil, fmt.Errorf("tok: %s: unknown tokenizer file (want tokenizer.json, vocab.json, encoder.json, vocab.txt or a %s file)", path, WordVocabFile)
}

// listDir names up to 12 entries of dir, for error messages.
func listDir(dir string) string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err.Error()
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	if len(names) == 0 {
		return "nothing"
	}
	if len(names) > 12 {
		names = append(names[:12], fmt.Sprintf("and %d more", len(names)-12))
	}
	return strings.Join(names, ", ")
}
