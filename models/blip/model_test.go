package blip

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/internal/reftest"
	"github.com/imgcap/imgcap/models"
	"github.com/imgcap/imgcap/nn"
	"github.com/imgcap/imgcap/torchx"
)

// The reference fixtures: tiny random BlipForConditionalGeneration and BlipForImageTextRetrieval
// checkpoints in Hugging Face's layout with what transformers 4.36.2 computed for them (see
// testdata/README.md).
var (
	captionDir   = filepath.Join("testdata", "caption")
	retrievalDir = filepath.Join("testdata", "retrieval")
)

// expected is the part of a fixture's expected.json the tests read.
type expected struct {
	Scalars struct {
		LossPadMaskedNoSmoothing float64 `json:"loss_labels_pad_masked_without_label_smoothing"`
		GenerateKwargs           struct {
			MaxNewTokens  int     `json:"max_new_tokens"`
			NumBeams      []int   `json:"num_beams"`
			LengthPenalty float64 `json:"length_penalty"`
			EarlyStopping bool    `json:"early_stopping"`
			EOS           int64   `json:"eos_token_id_used"`
			Pad           int64   `json:"pad_token_id_used"`
		} `json:"generate_kwargs"`
	} `json:"scalars"`
}

func readExpected(t *testing.T, dir string) expected {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var e expected
	if err := json.Unmarshal(data, &e); err != nil {
		t.Fatal(err)
	}
	return e
}

func loadCaptioner(t *testing.T) *Captioner {
	t.Helper()
	m, err := LoadCaptioner(captionDir, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func loadRetrieval(t *testing.T) *Retrieval {
	t.Helper()
	m, err := LoadRetrieval(retrievalDir, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// inScope runs fn with gradients off inside a tensor scope.
func inScope(t *testing.T, fn func() error) {
	t.Helper()
	err := torchx.NoGrad(func() error {
		return torchx.WithScope(func(*torchx.Scope) error { return fn() })
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestParseConfigMatchesHFDefaults(t *testing.T) {
	for _, dir := range []string{captionDir, retrievalDir} {
		c, err := ReadConfig(dir)
		if err != nil {
			t.Fatal(err)
		}
		// Every key our config decodes must equal transformers' complete to_dict() value.
		data, err := os.ReadFile(filepath.Join(dir, "config_full.json"))
		if err != nil {
			t.Fatal(err)
		}
		var full map[string]any
		if err := json.Unmarshal(data, &full); err != nil {
			t.Fatal(err)
		}
		compare := func(prefix string, ours any, hf map[string]any) {
			b, _ := json.Marshal(ours)
			var m map[string]any
			_ = json.Unmarshal(b, &m)
			n := 0
			for k, v := range m {
				hv, ok := hf[k]
				if !ok || k == "text_config" || k == "vision_config" {
					continue
				}
				n++
				if !reflect.DeepEqual(v, hv) {
					t.Errorf("%s: %s%s = %v, transformers has %v", dir, prefix, k, v, hv)
				}
			}
			if n < 8 {
				t.Errorf("%s: only %d %s keys compared", dir, n, prefix)
			}
		}
		compare("", c, full)
		compare("text_config.", c.Text, full["text_config"].(map[string]any))
		compare("vision_config.", c.Vision, full["vision_config"].(map[string]any))
	}

	// Absent keys take BlipConfig's defaults; encoder_hidden_size follows the vision width.
	tests := []struct {
		name  string
		json  string
		check func(Config) bool
	}{
		{"empty", `{}`, func(c Config) bool {
			return c.Text.VocabSize == 30524 && c.Text.HiddenSize == 768 && c.Text.NumAttentionHeads == 8 &&
				c.Text.LayerNormEps == 1e-12 && c.Text.HiddenAct == "gelu" && c.Text.BOSTokenID == 30522 &&
				c.Text.SepTokenID == 102 && c.Text.PadTokenID == 0 && c.Text.EOSTokenID == 2 && c.Text.IsDecoder &&
				c.Text.MaxPositionEmbeddings == 512 && c.Vision.HiddenSize == 768 && c.Vision.NumAttentionHeads == 12 &&
				c.Vision.ImageSize == 384 && c.Vision.PatchSize == 16 && c.Vision.LayerNormEps == 1e-5 &&
				c.ImageTextHiddenSize == 256 && c.ProjectionDim == 512 && c.LogitScaleInitValue == 2.6592 &&
				c.Text.EncoderHiddenSize == 768 && c.LMLabelSmoothing() == HFLabelSmoothing
		}},
		{"large vision", `{"vision_config":{"hidden_size":1024,"num_attention_heads":16},"text_config":{"encoder_hidden_size":768}}`, func(c Config) bool {
			return c.Text.EncoderHiddenSize == 1024 && c.Text.HiddenSize == 768
		}},
		{"label smoothing", `{"text_config":{"label_smoothing":0.0}}`, func(c Config) bool { return c.LMLabelSmoothing() == 0 }},
	}
	for _, tt := range tests {
		c, err := ParseConfig([]byte(tt.json))
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if !tt.check(c) {
			t.Errorf("%s: %+v", tt.name, c)
		}
	}
	for _, bad := range []string{
		`{"model_type":"vit"}`,
		`{"text_config":{"hidden_size":10,"num_attention_heads":3}}`,
		`{"vision_config":{"hidden_act":"swish2"}}`,
		`{"text_config":{"vocab_size":100}}`, // bos 30522 outside
		`{"vision_config":{"image_size":8}}`,
		`{"text_config":[1]}`,
		`{"text_config":{"label_smoothing":2}}`,
		`{"image_text_hidden_size":0}`,
	} {
		if _, err := ParseConfig([]byte(bad)); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func TestCaptionerMatchesHF(t *testing.T) {
	m := loadCaptioner(t)
	e := readExpected(t, captionDir)
	f := func(name string) string { return filepath.Join(captionDir, name) }
	inScope(t, func() error {
		pixels := reftest.Tensor(t, f("pixel_values.npy"))
		img, err := m.Encode(pixels, false)
		if err != nil {
			return err
		}
		reftest.Close(t, "vision_last_hidden_state", img, f("vision_last_hidden_state.npy"), 1e-4)
		pool, err := m.Vision.Pool(img)
		if err != nil {
			return err
		}
		reftest.Close(t, "vision_pooler_output", pool, f("vision_pooler_output.npy"), 1e-4)

		ids := reftest.Tensor(t, f("input_ids.npy"))
		mask := reftest.Tensor(t, f("attention_mask.npy"))
		logits, err := m.Logits(pixels, ids, mask, false)
		if err != nil {
			return err
		}
		reftest.Close(t, "logits", logits, f("logits.npy"), 1e-4)

		padMasked := reftest.Tensor(t, f("labels_pad_masked.npy"))
		losses := []struct {
			name      string
			labels    *ts.Tensor
			smoothing float64
			want      float64
		}{
			{"labels = input_ids", ids, HFLabelSmoothing, reftest.Scalar(t, f("loss_labels_eq_input_ids.npy"))},
			{"labels pad masked", padMasked, HFLabelSmoothing, reftest.Scalar(t, f("loss_labels_pad_masked.npy"))},
			{"labels pad masked, no smoothing", padMasked, 0, e.Scalars.LossPadMaskedNoSmoothing},
		}
		for _, l := range losses {
			loss, err := m.LossLabels(pixels, ids, mask, l.labels, l.smoothing, false)
			if err != nil {
				return err
			}
			if got := reftest.Value(t, loss); math.Abs(got-l.want) > 1e-5*math.Abs(l.want) || l.want == 0 {
				t.Errorf("loss (%s) %.8f, want %.8f", l.name, got, l.want)
			}
		}
		if _, err := m.LossLabels(pixels, ids, mask, padMasked, m.Cfg.LMLabelSmoothing(), false); err != nil {
			return err
		}
		return nil
	})
}

// hfSequences rebuilds what HF's generate() returns: decoder prompt + new tokens, padded with pad
// to width.
func hfSequences(prompts [][]int64, seqs []nn.Sequence, pad int64, width int) [][]int64 {
	out := make([][]int64, len(seqs))
	for i, s := range seqs {
		row := append(slices.Clone(prompts[i]), s.Tokens...)
		for len(row) < width {
			row = append(row, pad)
		}
		out[i] = row
	}
	return out
}

func TestGenerateMatchesHF(t *testing.T) {
	m := loadCaptioner(t)
	e := readExpected(t, captionDir).Scalars.GenerateKwargs
	if e.EOS != m.Cfg.Text.SepTokenID || e.Pad != m.Cfg.Text.PadTokenID {
		t.Fatalf("fixture generated with eos %d, pad %d; config has sep %d, pad %d", e.EOS, e.Pad, m.Cfg.Text.SepTokenID, m.Cfg.Text.PadTokenID)
	}
	if len(e.NumBeams) == 0 {
		t.Fatal("expected.json lists no beam counts")
	}
	f := func(name string) string { return filepath.Join(captionDir, name) }
	pixels := reftest.Tensor(t, f("pixel_values.npy"))
	prompt := reftest.Int64Rows(t, f("prompt_ids.npy"))
	promptCopy := slices.Clone(prompt[0])
	type run struct {
		name   string
		beams  int
		prompt [][]int64
	}
	runs := []run{{"gen_greedy_noprompt", 1, nil}, {"gen_greedy_prompt", 1, prompt}}
	for _, k := range e.NumBeams {
		runs = append(runs, run{"gen_beam" + itoa(k) + "_noprompt", k, nil}, run{"gen_beam" + itoa(k) + "_prompt", k, prompt})
	}
	for _, r := range runs {
		t.Run(r.name, func(t *testing.T) {
			// The checkpoint's generation_config.json (eos_token_id 2) with the fixture's
			// generate() arguments, as a caller would build the options.
			gc, err := nn.LoadGenerationConfig(captionDir)
			if err != nil {
				t.Fatal(err)
			}
			maxNew := e.MaxNewTokens
			gc.MaxNewTokens, gc.NumBeams, gc.LengthPenalty, gc.EarlyStopping = &maxNew, r.beams, e.LengthPenalty, e.EarlyStopping
			o, err := m.OptionsFrom(*gc, r.prompt)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(o.EOS, []int64{e.EOS}) || o.PadID != e.Pad || o.MaxNewTokens != maxNew {
				t.Fatalf("options %+v: want EOS [%d], pad %d, %d new tokens", o, e.EOS, e.Pad, maxNew)
			}
			o.OutputScores = r.beams == 1
			seqs, err := m.Generate(context.Background(), pixels, r.prompt, o)
			if err != nil {
				t.Fatal(err)
			}
			B := int(torchx.MustSize(pixels)[0])
			dp, err := m.DecoderPrompts(r.prompt, B)
			if err != nil {
				t.Fatal(err)
			}
			want := reftest.Int64Rows(t, f(r.name+".npy"))
			got := hfSequences(dp, seqs, m.Cfg.Text.PadTokenID, len(want[0]))
			if !reflect.DeepEqual(got, want) {
				t.Errorf("ids\n got %v\nwant %v", got, want)
			}
			if r.beams > 1 {
				ws, _ := reftest.Float32s(t, f(r.name+"_sequence_scores.npy"))
				for i, s := range seqs {
					if math.Abs(s.Score-float64(ws[i])) > 1e-4 {
						t.Errorf("row %d: sequence score %.6f, want %.6f", i, s.Score, ws[i])
					}
				}
				return
			}
			scores, shape := reftest.Float32s(t, f(r.name+"_scores.npy")) // [steps, batch, vocab]
			steps, V := shape[0], shape[2]
			worst := 0.0
			for i, s := range seqs {
				if len(s.StepScores) != steps {
					t.Fatalf("row %d: %d step scores, want %d", i, len(s.StepScores), steps)
				}
				for st, row := range s.StepScores {
					w := scores[(st*B+i)*V : (st*B+i+1)*V]
					for v := range w {
						d := math.Abs(float64(row[v])-float64(w[v])) / math.Max(1, math.Abs(float64(w[v])))
						worst = math.Max(worst, d)
					}
				}
			}
			if worst > 1e-4 {
				t.Errorf("step scores: max relative |Δ| %.3g > 1e-4", worst)
			} else {
				t.Logf("step scores: max relative |Δ| %.3g", worst)
			}
		})
	}
	if !slices.Equal(prompt[0], promptCopy) {
		t.Errorf("Generate modified the caller's prompt: %v, was %v", prompt[0], promptCopy)
	}
}

func TestOptionsFromGenerationConfig(t *testing.T) {
	m := loadCaptioner(t)
	gc, err := nn.LoadGenerationConfig(captionDir)
	if err != nil {
		t.Fatal(err)
	}
	prompt := reftest.Int64Rows(t, filepath.Join(captionDir, "prompt_ids.npy"))
	tests := []struct {
		name    string
		prompt  [][]int64
		wantNew int
	}{
		// HF's max_length counts the decoder prompt: [bos], or the prompt minus its [SEP].
		{"no prompt", nil, gc.MaxLength - 1},
		{"prompt", prompt, gc.MaxLength - (len(prompt[0]) - 1)},
	}
	for _, tt := range tests {
		o, err := m.OptionsFrom(*gc, tt.prompt)
		if err != nil {
			t.Fatal(err)
		}
		if o.MaxNewTokens != tt.wantNew || !slices.Equal(o.EOS, []int64{m.Cfg.Text.SepTokenID}) || o.PadID != m.Cfg.Text.PadTokenID {
			t.Errorf("%s: %+v, want %d new tokens, EOS [%d], pad %d", tt.name, o, tt.wantNew, m.Cfg.Text.SepTokenID, m.Cfg.Text.PadTokenID)
		}
	}
}

func itoa(k int) string {
	b, _ := json.Marshal(k)
	return string(b)
}

func TestGenerateRejectsBadPrompts(t *testing.T) {
	m := loadCaptioner(t)
	pixels := reftest.Tensor(t, filepath.Join(captionDir, "pixel_values.npy"))
	V := int64(m.Cfg.Text.VocabSize)
	o := nn.GenerateOptions{NumBeams: 1, MaxNewTokens: 2}
	tests := []struct {
		name    string
		prompts [][]int64
		want    string
	}{
		{"one prompt for two images", [][]int64{{101, 5, 102}}, "prompts for"},
		{"too short", [][]int64{{101}, {101}}, "at least 2"},
		{"ragged", [][]int64{{101, 5, 102}, {101, 102}}, "same length"},
		{"outside vocab", [][]int64{{101, V, 102}, {101, 5, 102}}, "outside the vocabulary"},
	}
	for _, tt := range tests {
		_, err := m.Generate(context.Background(), pixels, tt.prompts, o)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want one containing %q", tt.name, err, tt.want)
		}
	}
	bad := reftest.Tensor(t, filepath.Join(captionDir, "input_ids.npy"))
	if _, err := m.Generate(context.Background(), bad, nil, o); err == nil {
		t.Error("ids as pixels: no error")
	}
}

// TestGenerateFreesTensors checks that generation and matching leave no tensor behind: the
// caches, the cross-attention keys and values and every step's intermediates are freed.
func TestGenerateFreesTensors(t *testing.T) {
	m := loadCaptioner(t)
	pixels := reftest.Tensor(t, filepath.Join(captionDir, "pixel_values.npy"))
	prompt := reftest.Int64Rows(t, filepath.Join(captionDir, "prompt_ids.npy"))
	r := loadRetrieval(t)
	rpix := reftest.Tensor(t, filepath.Join(retrievalDir, "pixel_values.npy"))
	ids := reftest.Tensor(t, filepath.Join(retrievalDir, "input_ids.npy"))
	mask := reftest.Tensor(t, filepath.Join(retrievalDir, "attention_mask.npy"))
	run := func() {
		for _, beams := range []int{1, 3} {
			if _, err := m.Generate(context.Background(), pixels, prompt, nn.GenerateOptions{NumBeams: beams, MaxNewTokens: 8}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := r.Match(rpix, ids, mask); err != nil {
			t.Fatal(err)
		}
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	run() // warm-up
	before := len(ts.ExistingTensors)
	for i := 0; i < 3; i++ {
		run()
	}
	if after := len(ts.ExistingTensors); after > before {
		t.Errorf("live tensors grew from %d to %d over 3 rounds", before, after)
	}
}

func TestRetrievalMatchesHF(t *testing.T) {
	m := loadRetrieval(t)
	f := func(name string) string { return filepath.Join(retrievalDir, name) }
	pixels := reftest.Tensor(t, f("pixel_values.npy"))
	ids := reftest.Tensor(t, f("input_ids.npy"))
	mask := reftest.Tensor(t, f("attention_mask.npy"))
	inScope(t, func() error {
		img, err := m.Encode(pixels, false)
		if err != nil {
			return err
		}
		reftest.Close(t, "vision_last_hidden_state", img, f("vision_last_hidden_state.npy"), 1e-4)
		h, err := m.pairHidden(img, ids, mask)
		if err != nil {
			return err
		}
		N, M := torchx.MustSize(img)[0], torchx.MustSize(ids)[0]
		s := torchx.MustSize(h)
		h4, err := h.View([]int64{N, M, s[1], s[2]}, false)
		if err != nil {
			return err
		}
		reftest.Close(t, "itm_text_last_hidden_state", h4, f("itm_text_last_hidden_state.npy"), 1e-4)
		th, err := m.TextHidden(ids, mask, false)
		if err != nil {
			return err
		}
		reftest.Close(t, "itc_text_last_hidden_state", th, f("itc_text_last_hidden_state.npy"), 1e-4)
		fi, err := m.ImageFeatures(img)
		if err != nil {
			return err
		}
		reftest.Close(t, "itc_image_feat", fi, f("itc_image_feat.npy"), 1e-4)
		ft, err := m.TextFeatures(th)
		if err != nil {
			return err
		}
		reftest.Close(t, "itc_text_feat", ft, f("itc_text_feat.npy"), 1e-4)
		sim, err := m.ITC(pixels, ids, mask)
		if err != nil {
			return err
		}
		reftest.Close(t, "itc_similarity", sim, f("itc_similarity.npy"), 1e-4)
		// ITM pairs image i with text i: the diagonal of the [image, text, 2] logits.
		itm, err := m.ITM(pixels, ids, mask)
		if err != nil {
			return err
		}
		got, _ := torchx.Float32s(itm)
		all, _ := reftest.Float32s(t, f("itm_logits.npy"))
		var diag []float32
		for i := int64(0); i < N; i++ {
			r := i*M + i
			diag = append(diag, all[2*r], all[2*r+1])
		}
		if d, _ := reftest.Diff(got, diag); d > 1e-4 {
			t.Errorf("ITM logits %v, want %v", got, diag)
		}
		return nil
	})

	// Match: every pair, as Go values.
	res, err := m.Match(pixels, ids, mask)
	if err != nil {
		t.Fatal(err)
	}
	flat := func(rows [][]float32) []float32 { return slices.Concat(rows...) }
	var logits []float32
	for _, row := range res.ITMLogits {
		for _, l := range row {
			logits = append(logits, l[0], l[1])
		}
	}
	for _, c := range []struct {
		name string
		got  []float32
	}{{"itm_logits", logits}, {"itm_probs", flat(res.ITMProb)}, {"itc_similarity", flat(res.ITC)}} {
		want, _ := reftest.Float32s(t, f(c.name+".npy"))
		if len(c.got) != len(want) {
			t.Errorf("Match %s: %d values, want %d", c.name, len(c.got), len(want))
			continue
		}
		if d, _ := reftest.Diff(c.got, want); d > 1e-4 {
			t.Errorf("Match %s: max |Δ| %.3g", c.name, d)
		}
	}
}

func TestLoadReportsProblems(t *testing.T) {
	// The captioning checkpoint lacks the retrieval heads and text encoder.
	dir := t.TempDir()
	for _, name := range []string{"config.json", "model.safetensors"} {
		data, err := os.ReadFile(filepath.Join(captionDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := LoadRetrieval(dir, gotch.CPU); err == nil || !strings.Contains(err.Error(), "itm_head.weight") {
		t.Errorf("retrieval from a captioning checkpoint: %v", err)
	}
	if _, err := LoadCaptioner(t.TempDir(), gotch.CPU); err == nil {
		t.Error("empty folder: no error")
	}
	m := loadCaptioner(t)
	if unexpected, err := m.LoadWeights(captionDir); err != nil || len(unexpected) != 0 {
		t.Errorf("reload: unexpected %v, err %v", unexpected, err)
	}
	for name := range m.VarStore().Variables() {
		if strings.Contains(name, "decoder.bias") {
			t.Errorf("model has a separate %s", name)
		}
	}
}

// TestPretrainerLoadsHFCheckpoints initialises the pre-training model from each Hugging Face
// checkpoint and checks that the loaded half computes what Hugging Face computed.
func TestPretrainerLoadsHFCheckpoints(t *testing.T) {
	tests := []struct {
		dir      string
		keptFrom []string // prefixes of the variables the checkpoint does not have
		check    func(m *Pretrainer, img *ts.Tensor) error
	}{
		{captionDir, []string{"text_encoder.", "vision_proj.", "text_proj.", "itm_head.", "temp"}, func(m *Pretrainer, img *ts.Tensor) error {
			ids := reftest.Tensor(t, filepath.Join(captionDir, "input_ids.npy"))
			mask := reftest.Tensor(t, filepath.Join(captionDir, "attention_mask.npy"))
			h, err := m.Decoder.Forward(TextInput{IDs: ids, Mask: mask, Causal: true, Image: img})
			if err != nil {
				return err
			}
			logits, err := m.Head.Forward(h)
			if err != nil {
				return err
			}
			reftest.Close(t, "pretrainer logits", logits, filepath.Join(captionDir, "logits.npy"), 1e-4)
			return nil
		}},
		{retrievalDir, []string{"text_decoder.", "temp"}, func(m *Pretrainer, img *ts.Tensor) error {
			fi, err := projectFirst(m.VisionProj, img)
			if err != nil {
				return err
			}
			reftest.Close(t, "pretrainer itc_image_feat", fi, filepath.Join(retrievalDir, "itc_image_feat.npy"), 1e-4)
			return nil
		}},
	}
	for _, tt := range tests {
		cfg, err := ReadConfig(tt.dir)
		if err != nil {
			t.Fatal(err)
		}
		m, err := NewPretrainer(cfg, DefaultPretrainOptions(), gotch.CPU)
		if err != nil {
			t.Fatal(err)
		}
		kept, unexpected, err := m.LoadWeights(tt.dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(unexpected) != 0 {
			t.Errorf("%s: unexpected %v", tt.dir, unexpected)
		}
		for _, name := range kept {
			ok := false
			for _, p := range tt.keptFrom {
				ok = ok || strings.HasPrefix(name, p)
			}
			if !ok {
				t.Errorf("%s: %s not loaded", tt.dir, name)
			}
		}
		if len(kept) == 0 {
			t.Errorf("%s: every variable loaded", tt.dir)
		}
		inScope(t, func() error {
			img, err := m.Vision.Forward(reftest.Tensor(t, filepath.Join(tt.dir, "pixel_values.npy")), false)
			if err != nil {
				return err
			}
			return tt.check(m, img)
		})
	}
	m, err := NewPretrainer(tinyConfig(t), DefaultPretrainOptions(), gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.LoadWeights(t.TempDir()); err == nil {
		t.Error("empty folder: no error")
	}
}

// TestCaptionerTrainingLoss checks the trainer's loss: BLIP's recipe ([CLS] → bos, padding
// ignored, the config's label smoothing) on the Hugging Face loss.
func TestCaptionerTrainingLoss(t *testing.T) {
	m := loadCaptioner(t)
	f := func(name string) string { return filepath.Join(captionDir, name) }
	pixels := reftest.Tensor(t, f("pixel_values.npy"))
	ids := reftest.Int64Rows(t, f("input_ids.npy"))
	masks := reftest.Int64Rows(t, f("attention_mask.npy"))
	var rows [][]int64
	for i, r := range ids {
		n := 0
		for _, k := range masks[i] {
			n += int(k)
		}
		rows = append(rows, r[:n])
	}
	vals, _ := reftest.Float32s(t, f("pixel_values.npy"))
	B := len(rows)
	per := len(vals) / B
	var px [][]float32
	for i := 0; i < B; i++ {
		px = append(px, vals[i*per:(i+1)*per])
	}
	s := torchx.MustSize(pixels)
	batch, err := models.Collate(px, s[1:], rows, m.Cfg.Text.PadTokenID, nil, nil, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	defer batch.Drop()
	inScope(t, func() error {
		got, err := m.Loss(batch, false)
		if err != nil {
			return err
		}
		// The same through LossLabels with the prepared inputs.
		bos := make([]int64, 0, B*len(ids[0]))
		lab := make([]int64, 0, B*len(ids[0]))
		for i, r := range ids {
			for j, k := range r {
				if j == 0 {
					k = m.Cfg.Text.BOSTokenID
				}
				bos = append(bos, k)
				if masks[i][j] == 0 {
					k = -100
				}
				lab = append(lab, k)
			}
		}
		shape := []int64{int64(B), int64(len(ids[0]))}
		in, _ := ts.OfSlice(bos)
		in, _ = in.View(shape, true)
		labels, _ := ts.OfSlice(lab)
		labels, _ = labels.View(shape, true)
		mask := reftest.Tensor(t, f("attention_mask.npy"))
		want, err := m.LossLabels(pixels, in, mask, labels, HFLabelSmoothing, false)
		if err != nil {
			return err
		}
		if g, w := reftest.Value(t, got), reftest.Value(t, want); math.Abs(g-w) > 1e-6*w || math.IsNaN(g) {
			t.Errorf("training loss %.7f, want %.7f", g, w)
		}
		return nil
	})
	if _, err := m.Loss(&models.Batch{}, false); err == nil {
		t.Error("empty batch: no error")
	}
}
