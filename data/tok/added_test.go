package tok

import (
	"fmt"
	"testing"
)

type seg struct {
	text string
	id   int
}

// segments runs the added-token stage of the pipeline: raw matches, normalization, then
// normalized matches.
func segments(p *pipeline, text string) []seg {
	var out []seg
	p.raw.split(text, func(s string, id int) {
		if id >= 0 {
			out = append(out, seg{s, id})
			return
		}
		if p.norm != nil {
			s = p.norm(s)
		}
		p.normd.split(s, func(s string, id int) {
			if s != "" || id >= 0 {
				out = append(out, seg{s, id})
			}
		})
	})
	return out
}

// The expectations follow Hugging Face's AddedVocabulary semantics: leftmost-longest
// matches, single_word requires non-word characters (or the text's ends) around the
// match, lstrip/rstrip absorb neighbouring White_Space, and normalized tokens match the
// normalized text.
func TestAddedTokenOptions(t *testing.T) {
	const my, name, ony, cls, sep, mask = 0, 1, 2, 3, 4, 5
	tests := []struct {
		name string
		toks []*AddedToken
		text string
		want []seg
	}{
		{
			name: "lstrip rstrip single_word normalized",
			toks: []*AddedToken{
				{ID: my, Content: "my", LStrip: true, RStrip: true, Normalized: true},
				{ID: name, Content: "name", Normalized: true},
				{ID: ony, Content: "ony", SingleWord: true, Normalized: true},
				{ID: cls, Content: "[CLS]", Special: true},
				{ID: sep, Content: "[SEP]", Special: true},
			},
			text: "[CLS] My name is Anthony [SEP]",
			want: []seg{{"[CLS]", cls}, {" my ", my}, {"name", name}, {" is anthony ", -1}, {"[SEP]", sep}},
		},
		{
			name: "single_word",
			toks: []*AddedToken{{ID: mask, Content: "<mask>", SingleWord: true, Normalized: true}},
			text: "<mask> My name <mask> A<mask> <mask>ony <mask>",
			want: []seg{{"<mask>", mask}, {" my name ", -1}, {"<mask>", mask}, {" a<mask> <mask>ony ", -1}, {"<mask>", mask}},
		},
		{
			name: "single_word unicode: punctuation is not a word, a combining mark is",
			toks: []*AddedToken{{ID: mask, Content: "<mask>", SingleWord: true, Normalized: true}},
			text: "<mask>, <mask>- \u25cc\u0330<mask>",
			want: []seg{{"<mask>", mask}, {", ", -1}, {"<mask>", mask}, {"- \u25cc\u0330<mask>", -1}},
		},
		{
			name: "lstrip rstrip over unicode space, without overlap",
			toks: []*AddedToken{{ID: mask, Content: "<mask>", LStrip: true, RStrip: true, SingleWord: true, Normalized: true}},
			text: "Hi <mask> there\t<mask>\t<mask>\u2000",
			want: []seg{{"hi", -1}, {" <mask> ", mask}, {"there", -1}, {"\t<mask>\t", mask}, {"<mask>\u2000", mask}},
		},
		{
			name: "longest match wins, raw tokens are case-sensitive",
			toks: []*AddedToken{
				{ID: 10, Content: "[A]", Special: true},
				{ID: 11, Content: "[A][B]", Special: true},
			},
			text: "x[A][B][a][A]",
			want: []seg{{"x", -1}, {"[A][B]", 11}, {"[a]", -1}, {"[A]", 10}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := &pipeline{norm: lowercaseNormalizer}
			p.setAdded(tc.toks)
			got := segments(p, tc.text)
			if fmt.Sprintf("%q", segStrings(got)) != fmt.Sprintf("%q", segStrings(tc.want)) {
				t.Errorf("got  %s\nwant %s", segStrings(got), segStrings(tc.want))
			}
		})
	}
}

func segStrings(s []seg) []string {
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = fmt.Sprintf("%q:%d", x.text, x.id)
	}
	return out
}
