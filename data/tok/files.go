package tok

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// LoadBPEFiles loads a GPT-2 style byte-level BPE from vocab.json (token -> id; OpenAI's
// encoder.json is the same file) and merges.txt (OpenAI's vocab.bpe), as transformers'
// GPT2Tokenizer does: no normalizer, the GPT-2 pre-tokenizer (add_prefix_space from
// tokenizer_config.json, default false), no special tokens added around a sequence, and
// "<|endoftext|>" as BOS, EOS and UNK unless the configuration files say otherwise.
func LoadBPEFiles(vocabPath, mergesPath string) (Tokenizer, error) {
	p, err := loadBPEFiles(vocabPath, mergesPath)
	if err != nil {
		return nil, fmt.Errorf("tok: %w", err)
	}
	return p, nil
}

func loadBPEFiles(vocabPath, mergesPath string) (*pipeline, error) {
	sc, err := readSidecar(filepath.Dir(vocabPath))
	if err != nil {
		return nil, err
	}
	var vocab jsonVocab
	ok, err := readJSONFile(vocabPath, &vocab)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%s: no such file", vocabPath)
	}
	if len(vocab) == 0 {
		return nil, fmt.Errorf("%s: empty vocabulary", vocabPath)
	}
	merges, err := readMergesFile(mergesPath)
	if err != nil {
		return nil, err
	}
	m, err := newBPE(vocabPath, vocab, merges, bpeOptions{byteLevel: true})
	if err != nil {
		return nil, err
	}
	pre := byteLevelPre{useRegex: true}
	if sc.prefixSpace != nil {
		pre.addPrefixSpace = *sc.prefixSpace
	}
	p := &pipeline{
		info:  Info{Kind: KindBPE, Source: vocabPath},
		model: m,
		pre:   pre,
		dec:   byteLevelDecoder{},
	}
	for _, role := range []string{"bos_token", "eos_token", "unk_token"} {
		if !sc.declared[role] {
			sc.roles[role] = &AddedToken{Content: "<|endoftext|>", Special: true}
		}
	}
	if _, ok := vocab["<|endoftext|>"]; !ok {
		for role, t := range sc.roles {
			if t.Content == "<|endoftext|>" && !sc.declared[role] {
				delete(sc.roles, role)
			}
		}
	}
	toks, special := resolveSpecial(nil, sc, m.tokenToID, m.size())
	p.special = special
	p.setAdded(toks)
	p.info.CleanUpSpaces = sc.hasCleanUp && sc.cleanUp
	return p, nil
}

// readMergesFile reads a merges.txt: an optional "#version" line, then one "a b" merge per
// line, highest priority first.
func readMergesFile(path string) ([][2]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var merges [][2]string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 16<<20)
	line := 0
	for sc.Scan() {
		line++
		l := strings.TrimSuffix(sc.Text(), "\r")
		if strings.HasPrefix(l, "#version") {
			continue
		}
		pr, err := splitMerge(l)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		merges = append(merges, pr)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return merges, nil
}

// LoadWordPieceVocab loads a BERT WordPiece tokenizer from vocab.txt (one token per line,
// id = line number - 1) as transformers' BertTokenizer does: the BERT normalizer with
// do_lower_case (default true), strip_accents (default: follow do_lower_case) and
// tokenize_chinese_chars (default true) from tokenizer_config.json when present, the
// BERT pre-tokenizer, [CLS] ... [SEP] around a sequence, and the special tokens of
// special_tokens_map.json / tokenizer_config.json / added_tokens.json (BLIP's [DEC] and
// [ENC] get ids 30522 and 30523 after bert-base-uncased's vocabulary, as in transformers).
func LoadWordPieceVocab(path string) (Tokenizer, error) {
	p, err := loadWordPieceVocab(path)
	if err != nil {
		return nil, fmt.Errorf("tok: %w", err)
	}
	return p, nil
}

func loadWordPieceVocab(path string) (*pipeline, error) {
	sc, err := readSidecar(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	vocab := make(map[string]int, 32000)
	lines := bytes.Split(data, []byte("\n"))
	if len(lines) > 0 && len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	for i, l := range lines {
		vocab[string(bytes.TrimSuffix(l, []byte("\r")))] = i // a later duplicate wins, as in transformers
	}
	if len(vocab) == 0 {
		return nil, fmt.Errorf("%s: empty vocabulary", path)
	}
	defaults := map[string]string{
		"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]",
	}
	for role, content := range defaults {
		if !sc.declared[role] {
			sc.roles[role] = &AddedToken{Content: content, Special: true}
		}
	}
	unk := "[UNK]"
	if t, ok := sc.roles["unk_token"]; ok {
		unk = t.Content
	}
	m, err := newWordPiece(path, vocab, unk, "##", 100)
	if err != nil {
		return nil, err
	}
	n := bertNormalizer{cleanText: true, chineseChars: true, lowercase: true}
	if sc.doLowerCase != nil {
		n.lowercase = *sc.doLowerCase
	}
	if sc.chineseChars != nil {
		n.chineseChars = *sc.chineseChars
	}
	n.stripAccents = n.lowercase
	if sc.stripAccents != nil {
		n.stripAccents = *sc.stripAccents
	}
	p := &pipeline{
		info:  Info{Kind: KindWordPiece, Source: path, CleanUpSpaces: true},
		model: m,
		norm:  n.normalize,
		pre:   bertPre{},
		dec:   wordPieceDecoder{prefix: "##", cleanup: true},
	}
	if sc.hasCleanUp {
		p.info.CleanUpSpaces = sc.cleanUp
	}
	toks, special := resolveSpecial(nil, sc, m.tokenToID, m.size())
	if special.CLS < 0 || special.SEP < 0 {
		return nil, fmt.Errorf("%s: a BERT tokenizer needs cls_token and sep_token", path)
	}
	p.prefix, p.suffix = []int{special.CLS}, []int{special.SEP}
	p.special = special
	p.setAdded(toks)
	return p, nil
}

// jsonFormat peeks at a JSON file's "format" field (used to recognise word vocabularies).
func jsonFormat(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var v struct {
		Format string `json:"format"`
	}
	if json.Unmarshal(data, &v) != nil {
		return ""
	}
	return v.Format
}
