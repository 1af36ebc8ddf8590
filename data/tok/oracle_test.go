package tok

import (
	"slices"
	"testing"
)

// gpt2Sources are the ways the GPT-2 tokenizer can be loaded; all must match the oracle.
var gpt2Sources = []string{
	"gpt2",                // folder: tokenizer.json wins
	"gpt2/tokenizer.json", // the file itself
	"gpt2/vocab.json",     // vocab.json + merges.txt
}

func TestGPT2Oracle(t *testing.T) {
	cases := gpt2Cases(t)
	if len(cases) != 325 {
		t.Fatalf("oracle has %d lines, want 325", len(cases))
	}
	for _, src := range gpt2Sources {
		t.Run(src, func(t *testing.T) {
			tk := load(t, src)
			idsOK, toksOK, decOK := 0, 0, 0
			for i, c := range cases {
				ids, err := tk.Encode(c.Text)
				if err != nil {
					t.Errorf("line %d %q: %v", i+1, c.Text, err)
					continue
				}
				if slices.Equal(ids, c.IDs) {
					idsOK++
				} else {
					t.Errorf("line %d %q:\n got ids %v\nwant ids %v", i+1, c.Text, ids, c.IDs)
				}
				// GPT-2 adds no special tokens around a sequence.
				if sp := tk.AddSpecial(ids); !slices.Equal(sp, ids) {
					t.Errorf("line %d: AddSpecial changed the ids: %v", i+1, sp)
				}
				if toks := tokensOf(tk, c.IDs); slices.Equal(toks, c.Tokens) {
					toksOK++
				} else {
					t.Errorf("line %d %q:\n got tokens %q\nwant tokens %q", i+1, c.Text, toks, c.Tokens)
				}
				if dec := tk.Decode(c.IDs, true); dec == c.Decoded {
					decOK++
				} else {
					t.Errorf("line %d: decoded %q, want %q", i+1, dec, c.Decoded)
				}
			}
			t.Logf("%s: ids %d/%d, tokens %d/%d, decoded %d/%d", src, idsOK, len(cases), toksOK, len(cases), decOK, len(cases))
		})
	}
}

// bertSources are the ways the BERT tokenizer can be loaded; all must match the oracle.
var bertSources = []string{
	"bert-base-uncased",                // folder: tokenizer.json wins
	"bert-base-uncased/tokenizer.json", // the file itself
	"bert-base-uncased/vocab.txt",      // vocab.txt with BertTokenizer defaults
}

func TestBERTOracle(t *testing.T) {
	cases := bertCases(t)
	if len(cases) != 325 {
		t.Fatalf("oracle has %d lines, want 325", len(cases))
	}
	for _, src := range bertSources {
		t.Run(src, func(t *testing.T) {
			tk := load(t, src)
			idsOK, specOK, toksOK, decOK := 0, 0, 0, 0
			for i, c := range cases {
				ids, err := tk.Encode(c.Text)
				if err != nil {
					t.Errorf("line %d %q: %v", i+1, c.Text, err)
					continue
				}
				if slices.Equal(ids, c.IDsNoSpecial) {
					idsOK++
				} else {
					t.Errorf("line %d %q:\n got ids %v\nwant ids %v", i+1, c.Text, ids, c.IDsNoSpecial)
				}
				full, err := EncodeSpecial(tk, c.Text)
				if err != nil {
					t.Fatal(err)
				}
				if slices.Equal(full, c.IDs) {
					specOK++
				} else {
					t.Errorf("line %d %q:\n got ids with specials %v\nwant %v", i+1, c.Text, full, c.IDs)
				}
				if toks := tokensOf(tk, c.IDs); slices.Equal(toks, c.Tokens) {
					toksOK++
				} else {
					t.Errorf("line %d %q:\n got tokens %q\nwant tokens %q", i+1, c.Text, toks, c.Tokens)
				}
				if dec := tk.Decode(c.IDs, true); dec == c.Decoded {
					decOK++
				} else {
					t.Errorf("line %d: decoded %q, want %q", i+1, dec, c.Decoded)
				}
			}
			t.Logf("%s: ids %d/%d, ids+special %d/%d, tokens %d/%d, decoded %d/%d",
				src, idsOK, len(cases), specOK, len(cases), toksOK, len(cases), decOK, len(cases))
		})
	}
}
