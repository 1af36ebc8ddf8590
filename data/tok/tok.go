// Package tok holds imgcap's tokenizers, in pure Go and exact against Hugging Face:
//
//   - GPT-2 byte-level BPE (tokenizer.json, or vocab.json + merges.txt), with the GPT-2
//     pre-tokenizer regex evaluated by hand (Go's RE2 has no lookahead), Hugging Face's
//     merge order, added/special tokens in the text, and lossy UTF-8 decoding;
//   - BERT WordPiece (tokenizer.json, or vocab.txt + tokenizer_config.json), with the
//     BERT normalizer and pre-tokenizer and BLIP's extra tokens ([DEC], [ENC]);
//   - the word vocabulary of the original Keras VGG16+LSTM notebook (WordVocab).
//
// Load picks the right one from a model folder. Every tokenizer is safe for concurrent use.
//
// Exactness: ids, tokens and decoded text match Hugging Face's Rust tokenizers library
// on every caption of the reference set (325/325 for GPT-2 and for BERT, whichever file
// the tokenizer is loaded from), and GPT-2's merges match a naive reference BPE on 42 562
// numbers and repeated letters. Known gaps, all deliberate:
//
//   - Unicode tables are Go's (Unicode 15). tokenizers' BERT cleaner uses an older
//     (Unicode 9-era) table of control, format and private-use characters, and its
//     regex engine and normalizer have their own Unicode versions, so characters
//     assigned recently may be classified differently.
//   - Encode rejects text that is not valid UTF-8 (Hugging Face cannot receive it).
//   - tokenizer.json's truncation and padding settings are not applied: callers
//     truncate and pad. BPE dropout is rejected, and so are components other than
//     those listed in the errors (e.g. Unigram models, Metaspace, Split pre-tokenizers).
//   - Ids must be dense enough (largest id at most 10 times the vocabulary size).
package tok

// Tokenizer turns text into ids and back.
type Tokenizer interface {
	// Encode returns the ids of text, without the special tokens a model adds around a
	// sequence (use AddSpecial or EncodeSpecial for those). Special-token text inside
	// the text (e.g. "<|endoftext|>", "[SEP]") becomes that token's id, as in Hugging Face.
	// The only error is text that is not valid UTF-8.
	Encode(text string) ([]int, error)
	// Decode turns ids into text; with skipSpecial, special tokens are left out.
	// Ids that name no token are ignored.
	Decode(ids []int, skipSpecial bool) string
	// AddSpecial wraps the ids of one sequence with the special tokens the model expects
	// (BERT: [CLS] ids [SEP]; GPT-2: nothing; word vocabulary: startseq ids endseq).
	AddSpecial(ids []int) []int
	// VocabSize is 1 + the largest id: the number of embedding rows a model needs.
	VocabSize() int
	// Special returns the ids of the special-token roles (-1 where a role is absent).
	Special() SpecialIDs
	// TokenToID returns the id of a token string, as spelled in the vocabulary.
	TokenToID(token string) (int, bool)
	// IDToToken returns the token string of an id.
	IDToToken(id int) (string, bool)
	// Info describes the tokenizer.
	Info() Info
}

// Kinds of tokenizer, as reported by Info.Kind.
const (
	// KindBPE is a byte-pair-encoding tokenizer (GPT-2).
	KindBPE = "bpe"
	// KindWordPiece is a WordPiece tokenizer (BERT, BLIP).
	KindWordPiece = "wordpiece"
	// KindWord is a WordVocab.
	KindWord = "word"
)

// Info describes a loaded tokenizer.
type Info struct {
	// Kind is KindBPE, KindWordPiece or KindWord.
	Kind string
	// Source is the file or folder the tokenizer was loaded from.
	Source string
	// CleanUpSpaces is whether Python transformers' decode applies
	// CleanUpTokenization by default for this tokenizer (tokenizer_config.json's
	// clean_up_tokenization_spaces; without it: true for WordPiece, false otherwise).
	CleanUpSpaces bool
}

// SpecialIDs holds the ids of the special-token roles; -1 marks an absent role.
type SpecialIDs struct {
	BOS, EOS, PAD, UNK, CLS, SEP, MASK int
	// Additional lists further special tokens (e.g. BLIP's [ENC]), in declaration order.
	Additional []int
}

// NoSpecialIDs returns a SpecialIDs with every role absent.
func NoSpecialIDs() SpecialIDs {
	return SpecialIDs{BOS: -1, EOS: -1, PAD: -1, UNK: -1, CLS: -1, SEP: -1, MASK: -1}
}

func (s SpecialIDs) clone() SpecialIDs {
	s.Additional = append([]int(nil), s.Additional...)
	return s
}

// EncodeSpecial encodes text and adds the model's special tokens around it, as Hugging
// Face's tokenizer(text) does by default.
func EncodeSpecial(tk Tokenizer, text string) ([]int, error) {
	ids, err := tk.Encode(text)
	if err != nil {
		return nil, err
	}
	return tk.AddSpecial(ids), nil
}

// DecodeText decodes ids for display as Python transformers' tokenizer.decode(ids,
// skip_special_tokens=True) does: special tokens dropped, and CleanUpTokenization
// applied when the tokenizer's Info().CleanUpSpaces says so.
func DecodeText(tk Tokenizer, ids []int) string {
	s := tk.Decode(ids, true)
	if tk.Info().CleanUpSpaces {
		s = CleanUpTokenization(s)
	}
	return s
}
