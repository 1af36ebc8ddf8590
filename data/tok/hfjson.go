package tok

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/text/unicode/norm"
)

// hfFile is the subset of Hugging Face's tokenizer.json that inference needs.
type hfFile struct {
	AddedTokens   []AddedToken    `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Decoder       json.RawMessage `json:"decoder"`
	Model         *hfModel        `json:"model"`
}

type hfModel struct {
	Type                    string      `json:"type"`
	Vocab                   jsonVocab   `json:"vocab"`
	Merges                  *jsonMerges `json:"merges"`
	Dropout                 *float64    `json:"dropout"`
	UnkToken                *string     `json:"unk_token"`
	ContinuingSubwordPrefix *string     `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string     `json:"end_of_word_suffix"`
	FuseUnk                 bool        `json:"fuse_unk"`
	ByteFallback            bool        `json:"byte_fallback"`
	IgnoreMerges            bool        `json:"ignore_merges"`
	MaxInputCharsPerWord    *int        `json:"max_input_chars_per_word"`
}

// typed is a component object: its "type" and its raw fields.
type typed struct {
	Type string
	raw  json.RawMessage
}

func parseTyped(raw json.RawMessage) (*typed, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var t struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(raw, &t); err != nil {
		return nil, err
	}
	return &typed{Type: t.Type, raw: raw}, nil
}

func (t *typed) fields(v any) error { return json.Unmarshal(t.raw, v) }

// LoadTokenizerJSON loads a Hugging Face tokenizer.json (BPE or WordPiece model). The
// transformers files next to it (tokenizer_config.json, special_tokens_map.json,
// added_tokens.json), if present, add special-token roles and added tokens.
func LoadTokenizerJSON(path string) (Tokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tok: %w", err)
	}
	sc, err := readSidecar(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("tok: %w", err)
	}
	p, err := parseTokenizerJSON(path, data, sc)
	if err != nil {
		return nil, fmt.Errorf("tok: %w", err)
	}
	return p, nil
}

func parseTokenizerJSON(path string, data []byte, sc *sidecar) (*pipeline, error) {
	var f hfFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, jsonErr(data, err))
	}
	if f.Model == nil {
		return nil, fmt.Errorf("%s: no \"model\" object", path)
	}
	hm := *f.Model
	if hm.Type == "" { // older files leave the type out
		switch {
		case hm.Merges != nil:
			hm.Type = "BPE"
		case hm.MaxInputCharsPerWord != nil || hm.ContinuingSubwordPrefix != nil:
			hm.Type = "WordPiece"
		default:
			return nil, fmt.Errorf("%s: model.type is missing and the model is neither BPE (merges) nor WordPiece", path)
		}
	}

	p := &pipeline{info: Info{Source: path}}
	var err error
	if p.norm, err = parseNormalizer(path, "normalizer", f.Normalizer); err != nil {
		return nil, err
	}
	byteLevel := false
	if p.pre, byteLevel, err = parsePreTokenizer(path, "pre_tokenizer", f.PreTokenizer); err != nil {
		return nil, err
	}
	if p.dec, err = parseDecoder(path, f.Decoder); err != nil {
		return nil, err
	}

	vocab := map[string]int(hm.Vocab)
	if len(vocab) == 0 {
		return nil, fmt.Errorf("%s: model.vocab is empty", path)
	}
	switch hm.Type {
	case "BPE":
		if hm.Dropout != nil && *hm.Dropout > 0 {
			return nil, fmt.Errorf("%s: model.dropout %v: BPE dropout is not supported (set it to null for inference)", path, *hm.Dropout)
		}
		if hm.Merges == nil {
			return nil, fmt.Errorf("%s: model.merges is missing", path)
		}
		merges := [][2]string(*hm.Merges)
		o := bpeOptions{fuseUnk: hm.FuseUnk, byteFallback: hm.ByteFallback, ignoreMerges: hm.IgnoreMerges, byteLevel: byteLevel}
		if hm.UnkToken != nil {
			o.unkToken = *hm.UnkToken
		}
		if hm.ContinuingSubwordPrefix != nil {
			o.prefix = *hm.ContinuingSubwordPrefix
		}
		if hm.EndOfWordSuffix != nil {
			o.suffix = *hm.EndOfWordSuffix
		}
		if p.model, err = newBPE(path, vocab, merges, o); err != nil {
			return nil, err
		}
		p.info.Kind = KindBPE
	case "WordPiece":
		unk, prefix, maxChars := "[UNK]", "##", 100
		if hm.UnkToken != nil {
			unk = *hm.UnkToken
		}
		if hm.ContinuingSubwordPrefix != nil {
			prefix = *hm.ContinuingSubwordPrefix
		}
		if hm.MaxInputCharsPerWord != nil {
			maxChars = *hm.MaxInputCharsPerWord
		}
		if p.model, err = newWordPiece(path, vocab, unk, prefix, maxChars); err != nil {
			return nil, err
		}
		p.info.Kind = KindWordPiece
	default:
		return nil, fmt.Errorf("%s: model.type %q is not supported (want BPE or WordPiece)", path, hm.Type)
	}
	if byteLevel && hm.Type != "BPE" {
		return nil, fmt.Errorf("%s: a ByteLevel pre_tokenizer needs a BPE model, not %s", path, hm.Type)
	}

	base := make([]*AddedToken, len(f.AddedTokens))
	for i := range f.AddedTokens {
		t := f.AddedTokens[i]
		if t.Content == "" {
			return nil, fmt.Errorf("%s: added_tokens[%d]: empty content", path, i)
		}
		base[i] = &t
	}
	if p.prefix, p.suffix, err = parsePostProcessor(path, "post_processor", f.PostProcessor, func(tok string) (int, bool) {
		for _, t := range f.AddedTokens {
			if t.Content == tok {
				return t.ID, true
			}
		}
		return p.model.tokenToID(tok)
	}); err != nil {
		return nil, err
	}
	toks, special := resolveSpecial(base, sc, p.model.tokenToID, p.model.size())
	if special.UNK < 0 && hm.UnkToken != nil {
		if id, ok := p.model.tokenToID(*hm.UnkToken); ok {
			special.UNK = id
		}
	}
	p.special = special
	p.setAdded(toks)
	p.info.CleanUpSpaces = p.info.Kind == KindWordPiece
	if sc.hasCleanUp {
		p.info.CleanUpSpaces = sc.cleanUp
	}
	return p, nil
}

// splitMerge splits a merges line "a b" into its two parts.
func splitMerge(l string) ([2]string, error) {
	a, b, ok := strings.Cut(l, " ")
	if !ok || strings.Contains(b, " ") {
		return [2]string{}, fmt.Errorf("%q: want two tokens separated by one space", l)
	}
	return [2]string{a, b}, nil
}

func parseNormalizer(path, at string, raw json.RawMessage) (normalizer, error) {
	t, err := parseTyped(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", path, at, err)
	}
	if t == nil {
		return nil, nil
	}
	switch t.Type {
	case "BertNormalizer":
		v := struct {
			CleanText          *bool `json:"clean_text"`
			HandleChineseChars *bool `json:"handle_chinese_chars"`
			StripAccents       *bool `json:"strip_accents"`
			Lowercase          *bool `json:"lowercase"`
		}{}
		if err := t.fields(&v); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", path, at, err)
		}
		or := func(b *bool, def bool) bool {
			if b == nil {
				return def
			}
			return *b
		}
		n := bertNormalizer{
			cleanText:    or(v.CleanText, true),
			chineseChars: or(v.HandleChineseChars, true),
			lowercase:    or(v.Lowercase, true),
		}
		// strip_accents null means "do what lowercase does".
		n.stripAccents = or(v.StripAccents, n.lowercase)
		return n.normalize, nil
	case "Lowercase":
		return lowercaseNormalizer, nil
	case "StripAccents":
		return stripAccentsNormalizer, nil
	case "NFC":
		return formNormalizer(norm.NFC), nil
	case "NFD":
		return formNormalizer(norm.NFD), nil
	case "NFKC":
		return formNormalizer(norm.NFKC), nil
	case "NFKD":
		return formNormalizer(norm.NFKD), nil
	case "Sequence":
		var v struct {
			Normalizers []json.RawMessage `json:"normalizers"`
		}
		if err := t.fields(&v); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", path, at, err)
		}
		var steps []normalizer
		for i, r := range v.Normalizers {
			n, err := parseNormalizer(path, fmt.Sprintf("%s.normalizers[%d]", at, i), r)
			if err != nil {
				return nil, err
			}
			if n != nil {
				steps = append(steps, n)
			}
		}
		return sequenceNormalizer(steps), nil
	}
	return nil, fmt.Errorf("%s: %s.type %q is not supported (want BertNormalizer, Lowercase, StripAccents, NFC, NFD, NFKC, NFKD or Sequence)", path, at, t.Type)
}

// parsePreTokenizer returns the pre-tokenizer and whether it contains ByteLevel.
func parsePreTokenizer(path, at string, raw json.RawMessage) (preTokenizer, bool, error) {
	t, err := parseTyped(raw)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %s: %w", path, at, err)
	}
	if t == nil {
		return noPre{}, false, nil
	}
	switch t.Type {
	case "ByteLevel":
		v := struct {
			AddPrefixSpace *bool `json:"add_prefix_space"`
			UseRegex       *bool `json:"use_regex"`
		}{}
		if err := t.fields(&v); err != nil {
			return nil, false, fmt.Errorf("%s: %s: %w", path, at, err)
		}
		p := byteLevelPre{addPrefixSpace: true, useRegex: true}
		if v.AddPrefixSpace != nil {
			p.addPrefixSpace = *v.AddPrefixSpace
		}
		if v.UseRegex != nil {
			p.useRegex = *v.UseRegex
		}
		return p, true, nil
	case "BertPreTokenizer":
		return bertPre{}, false, nil
	case "Whitespace":
		return whitespacePre{}, false, nil
	case "WhitespaceSplit":
		return whitespaceSplitPre{}, false, nil
	case "Sequence":
		var v struct {
			PreTokenizers []json.RawMessage `json:"pretokenizers"`
		}
		if err := t.fields(&v); err != nil {
			return nil, false, fmt.Errorf("%s: %s: %w", path, at, err)
		}
		var seq sequencePre
		anyByte := false
		for i, r := range v.PreTokenizers {
			p, bl, err := parsePreTokenizer(path, fmt.Sprintf("%s.pretokenizers[%d]", at, i), r)
			if err != nil {
				return nil, false, err
			}
			seq = append(seq, p)
			anyByte = anyByte || bl
		}
		return seq, anyByte, nil
	}
	return nil, false, fmt.Errorf("%s: %s.type %q is not supported (want ByteLevel, BertPreTokenizer, Whitespace, WhitespaceSplit or Sequence)", path, at, t.Type)
}

func parseDecoder(path string, raw json.RawMessage) (decoder, error) {
	t, err := parseTyped(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: decoder: %w", path, err)
	}
	if t == nil {
		return nil, nil
	}
	switch t.Type {
	case "ByteLevel":
		return byteLevelDecoder{}, nil
	case "WordPiece":
		v := struct {
			Prefix  *string `json:"prefix"`
			Cleanup *bool   `json:"cleanup"`
		}{}
		if err := t.fields(&v); err != nil {
			return nil, fmt.Errorf("%s: decoder: %w", path, err)
		}
		d := wordPieceDecoder{prefix: "##", cleanup: true}
		if v.Prefix != nil {
			d.prefix = *v.Prefix
		}
		if v.Cleanup != nil {
			d.cleanup = *v.Cleanup
		}
		return d, nil
	}
	return nil, fmt.Errorf("%s: decoder.type %q is not supported (want ByteLevel or WordPiece)", path, t.Type)
}

// parsePostProcessor returns the ids a post-processor puts before and after one sequence.
func parsePostProcessor(path, at string, raw json.RawMessage, lookup func(string) (int, bool)) (prefix, suffix []int, err error) {
	t, err := parseTyped(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %s: %w", path, at, err)
	}
	if t == nil {
		return nil, nil, nil
	}
	switch t.Type {
	case "ByteLevel":
		return nil, nil, nil
	case "BertProcessing", "RobertaProcessing":
		var v struct {
			Sep []json.RawMessage `json:"sep"`
			Cls []json.RawMessage `json:"cls"`
		}
		if err := t.fields(&v); err != nil {
			return nil, nil, fmt.Errorf("%s: %s: %w", path, at, err)
		}
		id := func(name string, pair []json.RawMessage) (int, error) {
			var n int
			if len(pair) != 2 || json.Unmarshal(pair[1], &n) != nil {
				return 0, fmt.Errorf("%s: %s.%s: want [token, id]", path, at, name)
			}
			return n, nil
		}
		cls, err := id("cls", v.Cls)
		if err != nil {
			return nil, nil, err
		}
		sep, err := id("sep", v.Sep)
		if err != nil {
			return nil, nil, err
		}
		return []int{cls}, []int{sep}, nil
	case "TemplateProcessing":
		var v struct {
			Single        []map[string]json.RawMessage `json:"single"`
			SpecialTokens map[string]struct {
				IDs []int `json:"ids"`
			} `json:"special_tokens"`
		}
		if err := t.fields(&v); err != nil {
			return nil, nil, fmt.Errorf("%s: %s: %w", path, at, err)
		}
		seenSeq := false
		for i, piece := range v.Single {
			where := fmt.Sprintf("%s.single[%d]", at, i)
			if raw, ok := piece["Sequence"]; ok {
				var s struct {
					ID string `json:"id"`
				}
				if err := json.Unmarshal(raw, &s); err != nil || s.ID != "A" || seenSeq {
					return nil, nil, fmt.Errorf("%s: %s: want one Sequence A in the single template", path, where)
				}
				seenSeq = true
				continue
			}
			raw, ok := piece["SpecialToken"]
			if !ok {
				return nil, nil, fmt.Errorf("%s: %s: want Sequence or SpecialToken", path, where)
			}
			var s struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal(raw, &s); err != nil {
				return nil, nil, fmt.Errorf("%s: %s: %w", path, where, err)
			}
			var ids []int
			if st, ok := v.SpecialTokens[s.ID]; ok {
				ids = st.IDs
			} else if id, ok := lookup(s.ID); ok {
				ids = []int{id}
			} else {
				return nil, nil, fmt.Errorf("%s: %s: special token %q is not defined", path, where, s.ID)
			}
			if seenSeq {
				suffix = append(suffix, ids...)
			} else {
				prefix = append(prefix, ids...)
			}
		}
		if !seenSeq {
			return nil, nil, fmt.Errorf("%s: %s.single: no Sequence A", path, at)
		}
		return prefix, suffix, nil
	case "Sequence":
		var v struct {
			Processors []json.RawMessage `json:"processors"`
		}
		if err := t.fields(&v); err != nil {
			return nil, nil, fmt.Errorf("%s: %s: %w", path, at, err)
		}
		for i, r := range v.Processors {
			p, s, err := parsePostProcessor(path, fmt.Sprintf("%s.processors[%d]", at, i), r, lookup)
			if err != nil {
				return nil, nil, err
			}
			prefix = append(append([]int(nil), p...), prefix...)
			suffix = append(suffix, s...)
		}
		return prefix, suffix, nil
	}
	return nil, nil, fmt.Errorf("%s: %s.type %q is not supported (want TemplateProcessing, BertProcessing, RobertaProcessing, ByteLevel or Sequence)", path, at, t.Type)
}
