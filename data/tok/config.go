package tok

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
)

// sidecar holds what the Python transformers files next to a vocabulary say:
// tokenizer_config.json, special_tokens_map.json and added_tokens.json.
type sidecar struct {
	roles      map[string]*AddedToken // bos_token, eos_token, ... -> token
	additional []*AddedToken          // additional_special_tokens
	added      []*AddedToken          // added_tokens_decoder, then added_tokens.json
	hasCleanUp bool
	cleanUp    bool

	// BertTokenizer options (vocab.txt folders).
	doLowerCase  *bool
	stripAccents *bool
	chineseChars *bool
	prefixSpace  *bool           // GPT2Tokenizer add_prefix_space
	declared     map[string]bool // roles a file sets, to a token or to null
}

// roleOrder is transformers' SPECIAL_TOKENS_ATTRIBUTES order (additional tokens last),
// which decides the ids of special tokens missing from the vocabulary.
var roleOrder = []string{"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"}

// readJSONFile reads path into v; a missing file reports ok=false and no error.
func readJSONFile(path string, v any) (bool, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("%s: %w", path, jsonErr(data, err))
	}
	return true, nil
}

// jsonErr adds the line and column to encoding/json syntax and type errors.
func jsonErr(data []byte, err error) error {
	var off int64 = -1
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	}
	if off < 0 || off > int64(len(data)) {
		return err
	}
	line := 1 + bytes.Count(data[:off], []byte("\n"))
	col := off - int64(bytes.LastIndexByte(data[:off], '\n'))
	return fmt.Errorf("line %d, column %d: %w", line, col, err)
}

// parseTokenValue reads a special-token value: a string, an AddedToken object
// ({"content": ..., "lstrip": ...}), or null (ok=false).
func parseTokenValue(raw json.RawMessage) (*AddedToken, bool, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, false, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, false, err
		}
		if s == "" {
			return nil, false, nil
		}
		return &AddedToken{Content: s, Special: true}, true, nil
	}
	var t AddedToken
	if err := json.Unmarshal(raw, &t); err != nil {
		return nil, false, err
	}
	if t.Content == "" {
		return nil, false, fmt.Errorf("token object without content")
	}
	t.Special = true
	return &t, true, nil
}

// readSidecar reads the transformers configuration files of dir; all are optional.
func readSidecar(dir string) (*sidecar, error) {
	sc := &sidecar{roles: map[string]*AddedToken{}, declared: map[string]bool{}}

	var cfg map[string]json.RawMessage
	cfgPath := filepath.Join(dir, "tokenizer_config.json")
	if _, err := readJSONFile(cfgPath, &cfg); err != nil {
		return nil, err
	}
	var stm map[string]json.RawMessage
	stmPath := filepath.Join(dir, "special_tokens_map.json")
	if _, err := readJSONFile(stmPath, &stm); err != nil {
		return nil, err
	}
	// special_tokens_map.json overrides tokenizer_config.json, as in transformers.
	for _, src := range []struct {
		path string
		m    map[string]json.RawMessage
	}{{cfgPath, cfg}, {stmPath, stm}} {
		for _, role := range roleOrder {
			raw, ok := src.m[role]
			if !ok {
				continue
			}
			t, ok, err := parseTokenValue(raw)
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", src.path, role, err)
			}
			sc.declared[role] = true
			if ok {
				sc.roles[role] = t
			} else {
				delete(sc.roles, role)
			}
		}
		if raw, ok := src.m["additional_special_tokens"]; ok {
			var list []json.RawMessage
			if err := json.Unmarshal(raw, &list); err != nil {
				return nil, fmt.Errorf("%s: additional_special_tokens: %w", src.path, err)
			}
			sc.additional = sc.additional[:0]
			for i, r := range list {
				t, ok, err := parseTokenValue(r)
				if err != nil {
					return nil, fmt.Errorf("%s: additional_special_tokens[%d]: %w", src.path, i, err)
				}
				if ok {
					sc.additional = append(sc.additional, t)
				}
			}
		}
	}

	boolOpt := func(key string, dst **bool) error {
		raw, ok := cfg[key]
		if !ok || string(bytes.TrimSpace(raw)) == "null" {
			return nil
		}
		var b bool
		if err := json.Unmarshal(raw, &b); err != nil {
			return fmt.Errorf("%s: %s: %w", cfgPath, key, err)
		}
		*dst = &b
		return nil
	}
	var cleanUp *bool
	for key, dst := range map[string]**bool{
		"do_lower_case":                &sc.doLowerCase,
		"strip_accents":                &sc.stripAccents,
		"tokenize_chinese_chars":       &sc.chineseChars,
		"add_prefix_space":             &sc.prefixSpace,
		"clean_up_tokenization_spaces": &cleanUp,
	} {
		if err := boolOpt(key, dst); err != nil {
			return nil, err
		}
	}
	if cleanUp != nil {
		sc.hasCleanUp, sc.cleanUp = true, *cleanUp
	}

	if raw, ok := cfg["added_tokens_decoder"]; ok {
		var dec map[string]AddedToken
		if err := json.Unmarshal(raw, &dec); err != nil {
			return nil, fmt.Errorf("%s: added_tokens_decoder: %w", cfgPath, err)
		}
		keys := make([]int, 0, len(dec))
		byID := map[int]AddedToken{}
		for k, t := range dec {
			id, err := strconv.Atoi(k)
			if err != nil || id < 0 {
				return nil, fmt.Errorf("%s: added_tokens_decoder: key %q is not a token id", cfgPath, k)
			}
			t.ID = id
			byID[id] = t
			keys = append(keys, id)
		}
		sort.Ints(keys)
		for _, id := range keys {
			t := byID[id]
			sc.added = append(sc.added, &t)
		}
	}

	var atj map[string]int
	atjPath := filepath.Join(dir, "added_tokens.json")
	if _, err := readJSONFile(atjPath, &atj); err != nil {
		return nil, err
	}
	// As in transformers: tokens that are also special tokens are special and matched
	// in the raw text; the others are plain added tokens matched after normalization.
	isSpecial := map[string]bool{}
	for _, t := range sc.roles {
		isSpecial[t.Content] = true
	}
	for _, t := range sc.additional {
		isSpecial[t.Content] = true
	}
	var extra []*AddedToken
	for content, id := range atj {
		if id < 0 {
			return nil, fmt.Errorf("%s: %q has negative id %d", atjPath, content, id)
		}
		sp := isSpecial[content]
		extra = append(extra, &AddedToken{ID: id, Content: content, Normalized: !sp, Special: sp})
	}
	sort.Slice(extra, func(i, j int) bool { return extra[i].ID < extra[j].ID })
	sc.added = append(sc.added, extra...)
	return sc, nil
}

// guessRoles lists, for tokens with well-known spellings, the roles they usually fill;
// used for roles that no configuration file declares.
var guessRoles = []struct {
	content string
	roles   []string
}{
	{"[CLS]", []string{"cls_token"}},
	{"[SEP]", []string{"sep_token"}},
	{"[PAD]", []string{"pad_token"}},
	{"[UNK]", []string{"unk_token"}},
	{"[MASK]", []string{"mask_token"}},
	{"[DEC]", []string{"bos_token"}}, // BLIP's text decoder start token
	{"<|endoftext|>", []string{"bos_token", "eos_token", "unk_token"}},
	{"<s>", []string{"bos_token"}},
	{"</s>", []string{"eos_token"}},
	{"<pad>", []string{"pad_token"}},
	{"<unk>", []string{"unk_token"}},
	{"<mask>", []string{"mask_token"}},
}

// resolveSpecial merges the added tokens of all sources, adds the role tokens that are
// missing (appended after the largest id, in transformers' order), and fills SpecialIDs.
// base are the tokens the primary file declares (tokenizer.json's added_tokens, or the
// family defaults for vocab files); lookup finds a token in the model vocabulary.
func resolveSpecial(base []*AddedToken, sc *sidecar, lookup func(string) (int, bool), modelSize int) ([]*AddedToken, SpecialIDs) {
	var toks []*AddedToken
	byContent := map[string]*AddedToken{}
	byID := map[int]bool{}
	nextID := modelSize
	add := func(t *AddedToken) {
		if _, dup := byContent[t.Content]; dup || byID[t.ID] {
			return
		}
		c := *t
		toks = append(toks, &c)
		byContent[c.Content] = &c
		byID[c.ID] = true
		nextID = max(nextID, c.ID+1)
	}
	for _, t := range base {
		add(t)
	}
	for _, t := range sc.added {
		add(t)
	}
	// Role and additional tokens: existing ones are marked special; new ones get ids.
	ensure := func(t *AddedToken) int {
		if have, ok := byContent[t.Content]; ok {
			have.Special = true
			return have.ID
		}
		c := *t
		c.Special = true
		if id, ok := lookup(c.Content); ok {
			c.ID = id
		} else {
			c.ID = nextID
		}
		add(&c)
		return c.ID
	}
	roleIDs := map[string]int{}
	for _, role := range roleOrder {
		if t, ok := sc.roles[role]; ok {
			roleIDs[role] = ensure(t)
		}
	}
	var additional []int
	for _, t := range sc.additional {
		additional = append(additional, ensure(t))
	}
	for _, g := range guessRoles {
		t, ok := byContent[g.content]
		if !ok || !t.Special {
			continue
		}
		for _, role := range g.roles {
			if _, set := roleIDs[role]; !set {
				if !sc.declared[role] {
					roleIDs[role] = t.ID
				}
			}
		}
	}
	sort.SliceStable(toks, func(i, j int) bool { return toks[i].ID < toks[j].ID })
	sp := NoSpecialIDs()
	for role, dst := range map[string]*int{
		"bos_token": &sp.BOS, "eos_token": &sp.EOS, "pad_token": &sp.PAD, "unk_token": &sp.UNK,
		"cls_token": &sp.CLS, "sep_token": &sp.SEP, "mask_token": &sp.MASK,
	} {
		if id, ok := roleIDs[role]; ok {
			*dst = id
		}
	}
	sp.Additional = additional
	return toks, sp
}
