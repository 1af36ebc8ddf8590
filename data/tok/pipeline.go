package tok

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// model is the part of a pipeline that turns one pre-tokenized word into ids.
type model interface {
	tokenize(word string, dst []int) []int
	tokenToID(tok string) (int, bool)
	idToToken(id int) (string, bool)
	size() int // 1 + the largest id
}

// decoder turns tokens back into text (Hugging Face's decoders).
type decoder interface {
	decode(tokens []string) string
}

// pipeline is a Hugging Face fast tokenizer: added tokens, normalizer, pre-tokenizer,
// model, post-processor template and decoder, applied in that library's order. It is
// immutable after construction (the word cache locks itself), so it is safe for
// concurrent use.
type pipeline struct {
	info    Info
	model   model
	norm    normalizer // nil: none
	pre     preTokenizer
	dec     decoder // nil: join tokens with " "
	special SpecialIDs

	added      []*AddedToken
	addedByID  map[int]*AddedToken
	addedByTok map[string]*AddedToken
	decodeForm map[int]string // decode form of normalized added tokens, when it differs
	specialSet map[string]bool
	raw, normd *addedMatcher // added tokens matched before / after normalization

	prefix, suffix []int // post-processor: ids around a single sequence
}

// setAdded installs the added tokens; it must be called once the normalizer is set.
func (p *pipeline) setAdded(toks []*AddedToken) {
	p.added = toks
	p.addedByID = make(map[int]*AddedToken, len(toks))
	p.addedByTok = make(map[string]*AddedToken, len(toks))
	p.decodeForm = make(map[int]string)
	p.specialSet = make(map[string]bool)
	var raw, normd []*AddedToken
	for _, t := range toks {
		p.addedByID[t.ID] = t
		p.addedByTok[t.Content] = t
		if t.Special {
			p.specialSet[t.Content] = true
		}
		if t.Normalized {
			normd = append(normd, t)
			if p.norm != nil {
				if n := p.norm(t.Content); n != t.Content {
					p.decodeForm[t.ID] = n
				}
			}
		} else {
			raw = append(raw, t)
		}
	}
	p.raw = newAddedMatcher(raw, func(t *AddedToken) string { return t.Content })
	p.normd = newAddedMatcher(normd, func(t *AddedToken) string {
		if f, ok := p.decodeForm[t.ID]; ok {
			return f
		}
		return t.Content
	})
}

// Encode returns the ids of text without special tokens around it (special-token text
// inside it, such as "<|endoftext|>" or "[SEP]", still becomes its id).
func (p *pipeline) Encode(text string) ([]int, error) {
	if !utf8.ValidString(text) {
		return nil, invalidUTF8(text)
	}
	ids := make([]int, 0, len(text)/3+2)
	p.raw.split(text, func(seg string, id int) {
		if id >= 0 {
			ids = append(ids, id)
			return
		}
		if p.norm != nil {
			seg = p.norm(seg)
		}
		p.normd.split(seg, func(seg string, id int) {
			if id >= 0 {
				ids = append(ids, id)
				return
			}
			p.pre.split(seg, func(word string) { ids = p.model.tokenize(word, ids) })
		})
	})
	return ids, nil
}

func invalidUTF8(text string) error {
	for i := 0; i < len(text); {
		r, n := utf8.DecodeRuneInString(text[i:])
		if r == utf8.RuneError && n == 1 {
			return fmt.Errorf("tok: text is not valid UTF-8 (byte %d is 0x%02x)", i, text[i])
		}
		i += n
	}
	return fmt.Errorf("tok: text is not valid UTF-8")
}

// Decode turns ids back into text as Hugging Face's tokenizers library does: ids with no
// token are ignored, special tokens are dropped when skipSpecial is set, and the
// decoder (byte-level with U+FFFD for invalid UTF-8, or WordPiece) joins the rest.
func (p *pipeline) Decode(ids []int, skipSpecial bool) string {
	toks := make([]string, 0, len(ids))
	for _, id := range ids {
		var tok string
		if t, ok := p.addedByID[id]; ok {
			tok = t.Content
			if f, ok := p.decodeForm[id]; ok {
				tok = f
			}
		} else if s, ok := p.model.idToToken(id); ok {
			tok = s
		} else {
			continue
		}
		if skipSpecial && p.specialSet[tok] {
			continue
		}
		toks = append(toks, tok)
	}
	if p.dec == nil {
		return strings.Join(toks, " ")
	}
	return p.dec.decode(toks)
}

// AddSpecial wraps ids with the special tokens the post-processor adds to one sequence.
func (p *pipeline) AddSpecial(ids []int) []int {
	out := make([]int, 0, len(p.prefix)+len(ids)+len(p.suffix))
	out = append(out, p.prefix...)
	out = append(out, ids...)
	return append(out, p.suffix...)
}

// VocabSize is 1 + the largest id of the model vocabulary and the added tokens.
func (p *pipeline) VocabSize() int {
	n := p.model.size()
	for _, t := range p.added {
		n = max(n, t.ID+1)
	}
	return n
}

// Special returns the ids of the special-token roles.
func (p *pipeline) Special() SpecialIDs { return p.special.clone() }

// TokenToID looks tok up among the added tokens, then in the model vocabulary.
func (p *pipeline) TokenToID(tok string) (int, bool) {
	if t, ok := p.addedByTok[tok]; ok {
		return t.ID, true
	}
	return p.model.tokenToID(tok)
}

// IDToToken returns the added token or vocabulary entry with this id.
func (p *pipeline) IDToToken(id int) (string, bool) {
	if t, ok := p.addedByID[id]; ok {
		return t.Content, true
	}
	return p.model.idToToken(id)
}

// Info describes the tokenizer.
func (p *pipeline) Info() Info { return p.info }

// AddedTokens returns a copy of the added tokens, in id order.
func (p *pipeline) AddedTokens() []AddedToken {
	out := make([]AddedToken, len(p.added))
	for i, t := range p.added {
		out[i] = *t
	}
	return out
}

// byteLevelDecoder is Hugging Face's ByteLevel decoder.
type byteLevelDecoder struct{}

func (byteLevelDecoder) decode(toks []string) string {
	var raw []byte
	for _, t := range toks {
		raw = byteLevelDecodeToken(raw, t)
	}
	return string(appendLossyUTF8(make([]byte, 0, len(raw)), raw))
}

// wordPieceDecoder is Hugging Face's WordPiece decoder: tokens after the first are joined
// with a space unless they carry the continuation prefix, which is removed; with cleanup,
// each token then goes through tokenizers' cleanup (note: per token, so " ' " is never
// seen; Python's clean_up_tokenization, see CleanUpTokenization, runs on the whole text).
type wordPieceDecoder struct {
	prefix  string
	cleanup bool
}

func (d wordPieceDecoder) decode(toks []string) string {
	var b strings.Builder
	for i, t := range toks {
		if i > 0 {
			if strings.HasPrefix(t, d.prefix) {
				t = t[len(d.prefix):]
			} else {
				t = " " + t
			}
		}
		if d.cleanup {
			t = rustCleanup(t)
		}
		b.WriteString(t)
	}
	return b.String()
}

// rustCleanupSteps is tokenizers' decoders::wordpiece::cleanup, applied in this order.
var rustCleanupSteps = [][2]string{
	{" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"}, {" n't", "n't"},
	{" 'm", "'m"}, {" do not", " don't"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"},
}

func rustCleanup(s string) string {
	// Every pattern starts with a space followed by one of . ? ! , ' n d.
	if i := strings.IndexByte(s, ' '); i < 0 ||
		(i+1 < len(s) && strings.IndexByte(".?!,'nd", s[i+1]) < 0 && strings.IndexByte(s[i+1:], ' ') < 0) {
		return s
	}
	for _, st := range rustCleanupSteps {
		s = strings.ReplaceAll(s, st[0], st[1])
	}
	return s
}

// pythonCleanupSteps is transformers' clean_up_tokenization, applied in this order.
var pythonCleanupSteps = [][2]string{
	{" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"}, {" n't", "n't"},
	{" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"},
}

// CleanUpTokenization is Python transformers' clean_up_tokenization, which
// tokenizer.decode applies to the whole text when clean_up_tokenization_spaces is set
// (BERT's default): " ." -> ".", " ?" -> "?", " !" -> "!", " ," -> ",", " ' " -> "'",
// " n't" -> "n't", " 'm" -> "'m", " 's" -> "'s", " 've" -> "'ve", " 're" -> "'re", each
// replacement applied to the result of the previous one.
func CleanUpTokenization(s string) string {
	for _, st := range pythonCleanupSteps {
		s = strings.ReplaceAll(s, st[0], st[1])
	}
	return s
}
