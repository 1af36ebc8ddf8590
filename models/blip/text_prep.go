package blip

import (
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"unicode"

	"github.com/imgcap/imgcap/internal/atomicfile"
)

// MaxCaptionWords is the caption length BLIP's training datasets keep (coco_karpathy_train,
// coco_karpathy_retrieval_eval, pretrain_dataset: max_words=30).
const MaxCaptionWords = 30

var (
	captionPunct = regexp.MustCompile(`([.!"()*#:;~])`)
	spaceRuns    = regexp.MustCompile(`\s{2,}`)
)

// PreCaption is BLIP's pre_caption (data/utils.py): lower-case, the characters . ! " ( ) * # : ; ~
// replaced by spaces, runs of whitespace collapsed, surrounding spaces removed, and at most
// maxWords space-separated words kept (maxWords ≤ 0: all).
func PreCaption(caption string, maxWords int) string {
	c := captionPunct.ReplaceAllString(strings.ToLower(caption), " ")
	c = spaceRuns.ReplaceAllString(c, " ")
	c = strings.TrimRight(c, "\n")
	c = strings.Trim(c, " ")
	if w := strings.Split(c, " "); maxWords > 0 && len(w) > maxWords {
		c = strings.Join(w[:maxWords], " ")
	}
	return c
}

// Special tokens of BLIP's BERT tokenizer: bert-base-uncased's five, then [DEC] (bos_token, the
// token the text decoder starts from) and [ENC] (the original BLIP's ITM start token), which
// transformers appends after the vocabulary.
var vocabSpecials = []string{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}

// VocabTokens builds a WordPiece vocabulary for captions, for BLIP models trained from scratch:
// the five BERT special tokens, every word (BERT's basic tokenization: lower-cased, split at
// whitespace and punctuation) seen at least minCount times, most frequent first, then every
// character of the captions alone and as a "##" continuation, so that any word of these
// characters tokenizes without [UNK].
func VocabTokens(captions []string, minCount int) []string {
	counts := map[string]int{}
	chars := map[rune]bool{}
	for _, c := range captions {
		for _, w := range basicTokens(c) {
			counts[w]++
			for _, r := range w {
				chars[r] = true
			}
		}
	}
	var words []string
	for w, n := range counts {
		if n >= minCount && !slices.Contains(vocabSpecials, w) {
			words = append(words, w)
		}
	}
	slices.SortFunc(words, func(a, b string) int {
		if c := cmp.Compare(counts[b], counts[a]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	out := slices.Clone(vocabSpecials)
	out = append(out, words...)
	seen := map[string]bool{}
	for _, t := range out {
		seen[t] = true
	}
	rs := make([]rune, 0, len(chars))
	for r := range chars {
		rs = append(rs, r)
	}
	slices.Sort(rs)
	for _, pre := range []string{"", "##"} {
		for _, r := range rs {
			if t := pre + string(r); !seen[t] {
				seen[t] = true
				out = append(out, t)
			}
		}
	}
	return out
}

// basicTokens is BERT's basic tokenization of ASCII-ish text: lower-cased words split at
// whitespace, punctuation characters standing alone.
func basicTokens(s string) []string {
	var out []string
	var cur []rune
	flush := func() {
		if len(cur) > 0 {
			out = append(out, string(cur))
			cur = cur[:0]
		}
	}
	for _, r := range strings.ToLower(s) {
		switch {
		case unicode.IsSpace(r) || unicode.IsControl(r):
			flush()
		case isBertPunct(r):
			flush()
			out = append(out, string(r))
		default:
			cur = append(cur, r)
		}
	}
	flush()
	return out
}

// isBertPunct is BERT's punctuation test: ASCII non-alphanumeric printables and Unicode P*.
func isBertPunct(r rune) bool {
	if r >= 33 && r <= 47 || r >= 58 && r <= 64 || r >= 91 && r <= 96 || r >= 123 && r <= 126 {
		return true
	}
	return unicode.IsPunct(r)
}

// WriteVocab writes a BLIP tokenizer for captions into dir: vocab.txt (VocabTokens) and the
// tokenizer_config.json and special_tokens_map.json of Salesforce's BLIP checkpoints (lower
// case, bos_token [DEC], additional special token [ENC]), so that data/tok and transformers'
// BertTokenizer load the same tokenizer.
func WriteVocab(dir string, captions []string, minCount int) error {
	if len(captions) == 0 {
		return fmt.Errorf("blip vocabulary: no captions")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	toks := VocabTokens(captions, max(1, minCount))
	if err := atomicfile.WriteFile(filepath.Join(dir, "vocab.txt"), []byte(strings.Join(toks, "\n")+"\n")); err != nil {
		return err
	}
	special := map[string]any{
		"bos_token": "[DEC]", "additional_special_tokens": []string{"[ENC]"}, "cls_token": "[CLS]",
		"sep_token": "[SEP]", "pad_token": "[PAD]", "unk_token": "[UNK]", "mask_token": "[MASK]",
	}
	conf := map[string]any{
		"tokenizer_class": "BertTokenizer", "do_lower_case": true, "model_max_length": 512,
	}
	for k, v := range special {
		conf[k] = v
	}
	for name, v := range map[string]any{"tokenizer_config.json": conf, "special_tokens_map.json": special} {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		if err := atomicfile.WriteFile(filepath.Join(dir, name), append(b, '\n')); err != nil {
			return err
		}
	}
	return nil
}
