package blip

import (
	"context"
	"math"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/data/tok"
	"github.com/imgcap/imgcap/internal/reftest"
	"github.com/imgcap/imgcap/models"
	"github.com/imgcap/imgcap/nn"
	"github.com/imgcap/imgcap/torchx"
)

// TestCaptionMatchesHF runs the models.Captioner entry point (generation_config.json defaults
// plus the caller's options, the tokenizer's [CLS] … [SEP] prompt) and compares its captions and
// sequences with Hugging Face's generate().
func TestCaptionMatchesHF(t *testing.T) {
	m := loadCaptioner(t)
	if m.Gen.BOSTokenID == nil || *m.Gen.BOSTokenID != m.Cfg.Text.BOSTokenID {
		t.Errorf("LoadCaptioner did not read generation_config.json: %+v", m.Gen)
	}
	e := readExpected(t, captionDir).Scalars.GenerateKwargs
	f := func(name string) string { return filepath.Join(captionDir, name) }
	pixels := reftest.Tensor(t, f("pixel_values.npy"))
	prompt := reftest.Int64Rows(t, f("prompt_ids.npy"))[0]
	tests := []struct {
		name   string
		beams  int
		prompt []int64
	}{
		{"gen_greedy_noprompt", 1, nil},
		{"gen_greedy_prompt", 1, prompt},
		{"gen_beam3_noprompt", 3, nil},
		{"gen_beam3_prompt", 3, prompt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := models.GenerateOptions{NumBeams: tt.beams, MaxNewTokens: e.MaxNewTokens, LengthPenalty: e.LengthPenalty,
				EarlyStopping: e.EarlyStopping, PromptIDs: tt.prompt}
			caps, err := m.Caption(context.Background(), pixels, o)
			if err != nil {
				t.Fatal(err)
			}
			want := reftest.Int64Rows(t, f(tt.name+".npy"))
			if len(caps) != len(want) {
				t.Fatalf("%d captions, want %d", len(caps), len(want))
			}
			start := 1 // the decoder prompt: [DEC], or [DEC] + the prompt's words
			if tt.prompt != nil {
				start = len(tt.prompt) - 1
			}
			for i, c := range caps {
				row := want[i]
				for len(row) > start && row[len(row)-1] == m.Cfg.Text.PadTokenID {
					row = row[:len(row)-1]
				}
				if !slices.Equal(c.Sequence, row) {
					t.Errorf("row %d: sequence %v, want %v", i, c.Sequence, row)
				}
				ids := row[start:]
				if n := len(ids); n > 0 && ids[n-1] == m.Cfg.Text.SepTokenID {
					ids = ids[:n-1]
				}
				if !slices.Equal(c.IDs, ids) {
					t.Errorf("row %d: ids %v, want %v", i, c.IDs, ids)
				}
			}
		})
	}
	if _, err := m.Caption(context.Background(), pixels, models.GenerateOptions{PromptIDs: []int64{5}}); err == nil {
		t.Error("one-token prompt: no error")
	}
	if _, err := m.Caption(context.Background(), pixels, models.GenerateOptions{DoSample: true, NumBeams: 2}); err == nil {
		t.Error("beam sampling: no error")
	}
	// Sampling is reproducible from the seed.
	sample := func(seed int64) [][]int64 {
		caps, err := m.Caption(context.Background(), pixels, models.GenerateOptions{DoSample: true, TopP: 0.9, Seed: seed, MaxNewTokens: 8})
		if err != nil {
			t.Fatal(err)
		}
		var out [][]int64
		for _, c := range caps {
			out = append(out, c.Sequence)
		}
		return out
	}
	if a, b := sample(3), sample(3); !reflect.DeepEqual(a, b) {
		t.Errorf("sampling with one seed differs: %v, %v", a, b)
	}
}

func TestMarshalHFRoundTrip(t *testing.T) {
	c, err := ReadConfig(captionDir)
	if err != nil {
		t.Fatal(err)
	}
	ls := 0.2
	c.Text.LabelSmoothing = &ls
	for _, cfg := range []Config{DefaultConfig(), c} {
		cfg.Architectures = []string{"BlipForConditionalGeneration"}
		data, err := cfg.MarshalHF()
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseConfig(data)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(cfg, back) {
			t.Errorf("round trip:\n%+v\n%+v", cfg, back)
		}
		if strings.Contains(string(data), "null") {
			t.Errorf("config.json has nulls:\n%s", data)
		}
	}
}

func TestPreCaption(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"A Dog runs.", 30, "a dog runs"},
		{"  two (small) cats: sleeping!!  ", 30, "two small cats sleeping"},
		{"a man's hat, on a table?", 30, "a man's hat, on a table?"},
		{"one two three four", 2, "one two"},
		{"one two three", 0, "one two three"},
		{"", 30, ""},
	}
	for _, tt := range tests {
		if got := PreCaption(tt.in, tt.max); got != tt.want {
			t.Errorf("PreCaption(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
	}
}

// TestWriteVocab builds a tokenizer from captions and loads it back with data/tok: BERT's
// special tokens first, BLIP's [DEC] as bos and [ENC] after the vocabulary, and no [UNK] for
// unseen words made of seen characters.
func TestWriteVocab(t *testing.T) {
	dir := t.TempDir()
	caps := []string{"A red circle.", "a blue square", "Two red squares, side by side"}
	if err := WriteVocab(dir, caps, 1); err != nil {
		t.Fatal(err)
	}
	tk, err := tok.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	sp := tk.Special()
	words := len(VocabTokens(caps, 1))
	if sp.PAD != 0 || sp.UNK != 1 || sp.CLS != 2 || sp.SEP != 3 || sp.MASK != 4 || sp.BOS != words ||
		!slices.Equal(sp.Additional, []int{words + 1}) || tk.VocabSize() != words+2 {
		t.Errorf("special ids %+v, vocab %d; want [PAD] 0 … [MASK] 4, [DEC] %d, [ENC] %d", sp, tk.VocabSize(), words, words+1)
	}
	for _, text := range []string{"a red circle", "two blue circles", "sided"} {
		ids, err := tok.EncodeSpecial(tk, text)
		if err != nil {
			t.Fatal(err)
		}
		if ids[0] != sp.CLS || ids[len(ids)-1] != sp.SEP || slices.Contains(ids, sp.UNK) {
			t.Errorf("%q: ids %v", text, ids)
		}
		if got := tk.Decode(ids, true); got != text {
			t.Errorf("%q decodes to %q", text, got)
		}
	}
	if err := WriteVocab(dir, nil, 1); err == nil {
		t.Error("no captions: no error")
	}
}

// TestLossIgnoresPrompt checks PromptLen: the loss equals Hugging Face's loss with the prompt's
// labels set to −100.
func TestLossIgnoresPrompt(t *testing.T) {
	m := loadCaptioner(t)
	f := func(name string) string { return filepath.Join(captionDir, name) }
	pixels := reftest.Tensor(t, f("pixel_values.npy"))
	ids := reftest.Int64Rows(t, f("input_ids.npy"))
	masks := reftest.Int64Rows(t, f("attention_mask.npy"))
	vals, _ := reftest.Float32s(t, f("pixel_values.npy"))
	B, T := len(ids), len(ids[0])
	var px [][]float32
	var rows [][]int64
	for i := range ids {
		px = append(px, vals[i*len(vals)/B:(i+1)*len(vals)/B])
		n := 0
		for _, k := range masks[i] {
			n += int(k)
		}
		rows = append(rows, ids[i][:n])
	}
	s := torchx.MustSize(pixels)
	batch, err := models.Collate(px, s[1:], rows, m.Cfg.Text.PadTokenID, nil, nil, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	defer batch.Drop()
	for _, n := range []int{0, 1, 3, T + 4} {
		m.PromptLen = n
		inScope(t, func() error {
			got, err := m.Loss(batch, false)
			if err != nil {
				return err
			}
			var in, lab []int64
			for i, r := range ids {
				for j, k := range r {
					if j == 0 {
						k = m.Cfg.Text.BOSTokenID
					}
					in = append(in, k)
					if masks[i][j] == 0 || j < n {
						k = nn.IgnoreIndex
					}
					lab = append(lab, k)
				}
			}
			shape := []int64{int64(B), int64(T)}
			inT, _ := ts.OfSlice(in)
			inT, _ = inT.View(shape, true)
			labT, _ := ts.OfSlice(lab)
			labT, _ = labT.View(shape, true)
			want, err := m.LossLabels(pixels, inT, batch.AttentionMask, labT, HFLabelSmoothing, false)
			if err != nil {
				return err
			}
			g, w := reftest.Value(t, got), reftest.Value(t, want)
			if n >= T {
				if !math.IsNaN(w) || !math.IsNaN(g) {
					t.Errorf("prompt covering every label: loss %v (want NaN as HF gives for no labels, %v)", g, w)
				}
				return nil
			}
			if math.Abs(g-w) > 1e-6*w || math.IsNaN(g) {
				t.Errorf("prompt %d: loss %.7f, want %.7f", n, g, w)
			}
			return nil
		})
	}
	m.PromptLen = 0
}

// TestPretrainerParts checks the retrieval and captioning views of a pre-training model and that
// retrieval fine-tuning builds no decoder.
func TestPretrainerParts(t *testing.T) {
	cfg := tinyConfig(t)
	o := DefaultPretrainOptions()
	o.WeightLM = 0
	m, err := NewPretrainer(cfg, o, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	for name := range m.VarStore().Variables() {
		if strings.HasPrefix(name, "text_decoder.") {
			t.Fatalf("ITC+ITM model has %s", name)
		}
	}
	if m.Captioner() != nil {
		t.Error("a model without decoder has a captioner")
	}
	m.Opts.WeightLM = 1
	batch := randomBatch(t, cfg, 3, 6, nil, 1)
	defer batch.Drop()
	if _, err := m.Losses(batch, false); err == nil || !strings.Contains(err.Error(), "without a text decoder") {
		t.Errorf("LM loss without decoder: %v", err)
	}

	full, err := NewPretrainer(cfg, DefaultPretrainOptions(), gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	r := full.Retrieval()
	c := full.Captioner()
	if r.VarStore() != full.VarStore() || c == nil || c.VarStore() != full.VarStore() {
		t.Fatal("views do not share the pre-training model's parameters")
	}
	// The retrieval view computes what a Retrieval with the same weights computes.
	ref, err := NewRetrieval(cfg, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	inScope(t, func() error {
		for name, v := range ref.VarStore().Variables() {
			src := full.VarStore().Variables()[name]
			v.Copy_(&src)
		}
		a, err := r.ITC(batch.Pixels, batch.InputIDs, batch.AttentionMask)
		if err != nil {
			return err
		}
		b, err := ref.ITC(batch.Pixels, batch.InputIDs, batch.AttentionMask)
		if err != nil {
			return err
		}
		av, _ := torchx.Float32s(a)
		bv, _ := torchx.Float32s(b)
		if d, _ := reftest.Diff(av, bv); d > 1e-6 {
			t.Errorf("retrieval view ITC differs by %g", d)
		}
		return nil
	})
	caps, err := c.Caption(context.Background(), batch.Pixels, models.GenerateOptions{MaxNewTokens: 3})
	if err != nil || len(caps) != 3 {
		t.Errorf("captioner view: %v, %v", caps, err)
	}
}

// TestMatchLogitsMatchHF compares the retrieval-evaluation pieces with the fixture: image and
// text features, and the ITM match logit of every pair with the image's texts grouped.
func TestMatchLogitsMatchHF(t *testing.T) {
	m := loadRetrieval(t)
	f := func(name string) string { return filepath.Join(retrievalDir, name) }
	pixels := reftest.Tensor(t, f("pixel_values.npy"))
	ids := reftest.Tensor(t, f("input_ids.npy"))
	mask := reftest.Tensor(t, f("attention_mask.npy"))
	embeds, feats, err := m.EncodeImages(pixels)
	if err != nil {
		t.Fatal(err)
	}
	defer embeds.Drop()
	defer feats.Drop()
	reftest.Close(t, "itc_image_feat", feats, f("itc_image_feat.npy"), 1e-4)
	tf, err := m.EncodeTexts(ids, mask)
	if err != nil {
		t.Fatal(err)
	}
	defer tf.Drop()
	reftest.Close(t, "itc_text_feat", tf, f("itc_text_feat.npy"), 1e-4)
	all, _ := reftest.Float32s(t, f("itm_logits.npy")) // [image, text, 2]
	N, M := torchx.MustSize(embeds)[0], torchx.MustSize(ids)[0]
	for i := int64(0); i < N; i++ {
		inScope(t, func() error {
			img := torchx.Must(embeds.Narrow(0, i, 1, false))
			got, err := m.PairLogits(img, ids, mask)
			if err != nil {
				return err
			}
			probs, _ := reftest.Float32s(t, f("itm_probs.npy"))
			for j := int64(0); j < M; j++ {
				for k := 0; k < 2; k++ {
					if w := all[2*(i*M+j)+int64(k)]; math.Abs(float64(got[j][k]-w)) > 1e-4*math.Max(1, math.Abs(float64(w))) {
						t.Errorf("image %d text %d: logit %d %g, want %g", i, j, k, got[j][k], w)
					}
				}
				if p, w := MatchProb(got[j]), float64(probs[i*M+j]); math.Abs(p-w) > 1e-5 {
					t.Errorf("image %d text %d: match probability %g, want %g", i, j, p, w)
				}
			}
			return nil
		})
	}
	if _, err := m.PairLogits(embeds, ids, mask); M%N != 0 && err == nil {
		t.Error("rows that do not split over the images: no error")
	}
}
