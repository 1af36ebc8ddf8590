package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sugarme/gotch"

	"github.com/imgcap/imgcap/config"
	"github.com/imgcap/imgcap/data"
	"github.com/imgcap/imgcap/data/tok"
	"github.com/imgcap/imgcap/eval"
	"github.com/imgcap/imgcap/internal/reftest"
	"github.com/imgcap/imgcap/models"
	"github.com/imgcap/imgcap/models/blip"
)

// BLIP fixtures: models/blip's tiny Hugging Face checkpoints with a made-up tokenizer
// (testdata/blip/README.md).
var (
	blipCaptionDir   = filepath.Join("testdata", "blip", "caption")
	blipRetrievalDir = filepath.Join("testdata", "blip", "retrieval")
	blipImages       = []string{filepath.Join("testdata", "blip", "images", "img0.png"), filepath.Join("testdata", "blip", "images", "img1.png")}
	// The fixture's input_ids [101 205 11 57 9 102] and [101 77 301 5 102] as text.
	blipTexts = []string{"t205 t11 t57 t9", "t77 t301 t5"}
)

// tinyBLIP is configs/FILE on a synthetic set of n images written for the test, trained for
// steps steps.
func tinyBLIP(t *testing.T, file string, n, steps int) config.Config {
	t.Helper()
	synth := synthConfig(t, n, steps)
	c, err := config.Load(config.Options{File: filepath.Join("..", "configs", file)})
	if err != nil {
		t.Fatal(err)
	}
	c.Data = synth.Data
	c.Train.OutDir = synth.Train.OutDir
	c.Train.MaxSteps = steps
	if errs := config.Validate(c); len(errs) > 0 {
		t.Fatal(errs)
	}
	return c
}

// TestBLIPCaptionLearnsSynthetic trains a tiny BLIP captioner from scratch (with a WordPiece
// vocabulary built from the captions) and checks that its held-out captions are far better than
// the best constant caption; the run directory is then a Hugging Face model folder that captions,
// with and without a prompt.
func TestBLIPCaptionLearnsSynthetic(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a model")
	}
	c := tinyBLIP(t, "blip_caption_tiny.yaml", 400, 500)
	env := Env{Device: gotch.CPU}
	yml, _ := config.YAML(c)
	res, err := Train(context.Background(), c, yml, false, env)
	if err != nil {
		t.Fatal(err)
	}
	if res.Step != 500 {
		t.Errorf("trained %d steps, want 500", res.Step)
	}
	var out bytes.Buffer
	rep, err := Evaluate(context.Background(), c.Train.OutDir, EvalOptions{Split: "test", Show: 3}, Env{Device: gotch.CPU, Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	model := rep.Corpus[eval.KeyBleu4]
	baseline, common := constantBaseline(t, c)
	t.Logf("held-out BLEU-4: model %.3f, most common caption %q %.3f\n%s", model, common, baseline, out.String())
	if model < 0.22 || model < 1.8*baseline {
		t.Errorf("model BLEU-4 %.3f is not far above the constant-caption baseline %.3f", model, baseline)
	}
	checkInt8Eval(t, c.Train.OutDir, model)
	// The run directory is a model folder with BLIP's tokenizer.
	for _, f := range []string{HFConfigFile, HFPreprocessorFile, "vocab.txt", "tokenizer_config.json"} {
		if _, err := os.Stat(filepath.Join(c.Train.OutDir, f)); err != nil {
			t.Error(err)
		}
	}
	if arch, err := Arch(c.Train.OutDir); err != nil || arch != "blip_caption" {
		t.Errorf("Arch = %q, %v", arch, err)
	}
	tk, err := tok.Load(c.Train.OutDir)
	if err != nil {
		t.Fatal(err)
	}
	bc, err := blip.ReadConfig(c.Train.OutDir)
	if err != nil {
		t.Fatal(err)
	}
	if sp := tk.Special(); int64(sp.BOS) != bc.Text.BOSTokenID || int64(sp.SEP) != bc.Text.SepTokenID || bc.Text.VocabSize != tk.VocabSize() {
		t.Errorf("tokenizer %+v (%d ids) vs text config %+v", sp, tk.VocabSize(), bc.Text)
	}
	// The eval section's generation settings are the run's generation defaults.
	if gc, err := blip.ReadGenerationConfig(c.Train.OutDir); err != nil || gc.NumBeams != c.Eval.NumBeams || gc.MaxNewTokens == nil || *gc.MaxNewTokens != c.Eval.MaxNewTokens {
		t.Errorf("generation defaults %+v, %v; want the eval section's", gc, err)
	}
	test := mustSplit(t, c, "test")
	paths := []string{test[0].Path, test[1].Path}
	caps, err := CaptionModel(context.Background(), c.Train.OutDir, paths, CaptionOptions{}, env)
	if err != nil || len(caps) != 2 || caps[0].Text == "" || len(caps[0].IDs) == 0 {
		t.Errorf("CaptionModel = %+v, %v", caps, err)
	}
	// A prompt is continued: the sequence holds [DEC] + the prompt's words, the caption the rest.
	pc, err := CaptionModel(context.Background(), c.Train.OutDir, paths, CaptionOptions{Generate: models.GenerateOptions{Prompt: "three", NumBeams: 2}}, env)
	if err != nil || len(pc) != 2 {
		t.Fatalf("CaptionModel with a prompt = %+v, %v", pc, err)
	}
	three, _ := tk.TokenToID("three")
	if s := pc[0].Sequence; len(s) < 2 || s[0] != bc.Text.BOSTokenID || s[1] != int64(three) {
		t.Errorf("prompted sequence %v, want [DEC] three …", s)
	}
}

// TestBLIPRetrievalLearnsSynthetic trains a tiny BLIP retrieval model from scratch with ITC +
// ITM and checks held-out recall (ITC ranking with ITM re-ranking, both directions) well above
// chance, through imgcap eval's path and with a small re-ranking k; then matches files.
func TestBLIPRetrievalLearnsSynthetic(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a model")
	}
	c := tinyBLIP(t, "blip_retrieval_tiny.yaml", 400, 300)
	env := Env{Device: gotch.CPU}
	yml, _ := config.YAML(c)
	res, err := Train(context.Background(), c, yml, false, env)
	if err != nil {
		t.Fatal(err)
	}
	if res.Step != 300 || res.Metrics["r_mean"] <= 0 {
		t.Errorf("trained %d steps (want 300), last metrics %v", res.Step, res.Metrics)
	}
	var out bytes.Buffer
	rep, err := Evaluate(context.Background(), c.Train.OutDir, EvalOptions{Split: "test"}, Env{Device: gotch.CPU, Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	test := mustSplit(t, c, "test")
	// Chance: image → text finds one of an image's 5 captions among all texts, text → image
	// its image among all images.
	nText := 0
	for _, r := range test {
		nText += len(r.Captions)
	}
	chanceT := func(k int) float64 { // 1 − C(M−5, k)/C(M, k)
		miss := 1.0
		for i := 0; i < k; i++ {
			miss *= float64(nText-5-i) / float64(nText-i)
		}
		return 1 - miss
	}
	chanceI := func(k int) float64 { return float64(k) / float64(len(test)) }
	chanceMean := (chanceT(1) + chanceT(5) + chanceT(10) + chanceI(1) + chanceI(5) + chanceI(10)) / 6
	t.Logf("chance: R@1 %.3f / %.3f, r_mean %.3f\n%s", chanceT(1), chanceI(1), chanceMean, out.String())
	if r := rep.Corpus["txt_r1"]; r < 3*chanceT(1) {
		t.Errorf("image→text R@1 %.3f is not well above chance %.3f", r, chanceT(1))
	}
	if r := rep.Corpus["img_r1"]; r < 2*chanceI(1) {
		t.Errorf("text→image R@1 %.3f is not well above chance %.3f", r, chanceI(1))
	}
	if r := rep.Corpus["r_mean"]; r < 2*chanceMean {
		t.Errorf("r_mean %.3f is not well above chance %.3f", r, chanceMean)
	}
	var saved RetrievalReport
	data, err := os.ReadFile(filepath.Join(c.Train.OutDir, "eval-test", "retrieval.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &saved); err != nil || saved.Texts != nText || saved.K != DefaultRetrievalK {
		t.Errorf("retrieval.json: %+v, %v", saved, err)
	}
	// Re-ranking only the ITC top 1 cannot change R@1 (the image embeddings not cached, so the
	// ITM pass encodes the images again).
	small, err := EvaluateRetrieval(context.Background(), c.Train.OutDir, c.Data, c.Eval, EvalOptions{Split: "test", OutDir: t.TempDir()}, RetrievalOptions{K: 1, EmbedCacheBytes: 1}, env)
	if err != nil {
		t.Fatal(err)
	}
	if small.K != 1 || small.Reranked.ImageToText.R1 != small.ITC.ImageToText.R1 || small.Reranked.TextToImage.R1 != small.ITC.TextToImage.R1 ||
		small.ITC.ImageToText.R1 != saved.ITC.ImageToText.R1 {
		t.Errorf("k=1: R@1 %v / %v, ITC's %v / %v (full evaluation's ITC %v)", small.Reranked.ImageToText.R1, small.Reranked.TextToImage.R1,
			small.ITC.ImageToText.R1, small.ITC.TextToImage.R1, saved.ITC.ImageToText.R1)
	}
	// Matching: an image's own caption beats another image's on average.
	m, err := MatchFiles(context.Background(), c.Train.OutDir, []string{test[0].Path, test[1].Path}, []string{test[0].Captions[0], test[1].Captions[0]}, env)
	if err != nil {
		t.Fatal(err)
	}
	if d := m.ITMProb[0][0] + m.ITMProb[1][1] - m.ITMProb[0][1] - m.ITMProb[1][0]; d <= 0 && test[0].Captions[0] != test[1].Captions[0] {
		t.Errorf("match probabilities %v do not favour the true pairs", m.ITMProb)
	}
	if _, err := CaptionModel(context.Background(), c.Train.OutDir, []string{test[0].Path}, CaptionOptions{}, env); err == nil || !strings.Contains(err.Error(), "does not caption") {
		t.Errorf("captioning with an ITC+ITM model: %v", err)
	}
}

// TestMatchFilesMatchesHF runs imgcap match's path on the fixture images and texts: image
// preprocessing, tokenization and the retrieval model must give transformers' ITM
// probabilities and ITC similarities.
func TestMatchFilesMatchesHF(t *testing.T) {
	m, err := MatchFiles(context.Background(), blipRetrievalDir, blipImages, blipTexts, Env{Device: gotch.CPU})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		got  [][]float32
	}{{"itm_probs", m.ITMProb}, {"itc_similarity", m.ITC}} {
		want, _ := reftest.Float32s(t, filepath.Join(blipRetrievalDir, c.name+".npy"))
		got := slices.Concat(c.got...)
		if len(got) != len(want) {
			t.Fatalf("%s: %d values, want %d", c.name, len(got), len(want))
		}
		if d, _ := reftest.Diff(got, want); d > 1e-4 {
			t.Errorf("%s: %v, want %v", c.name, got, want)
		}
	}
	for _, tt := range []struct {
		name          string
		model         string
		images, texts []string
		want          string
	}{
		{"caption model", blipCaptionDir, blipImages, blipTexts, "retrieval model"},
		{"no texts", blipRetrievalDir, blipImages, nil, "at least one"},
		{"missing image", blipRetrievalDir, []string{"nope.png"}, blipTexts, "nope.png"},
	} {
		if _, err := MatchFiles(context.Background(), tt.model, tt.images, tt.texts, Env{Device: gotch.CPU}); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want it to mention %q", tt.name, err, tt.want)
		}
	}
}

// TestBLIPCaptionFolder captions the fixture images through the runner (generation_config.json
// defaults, the tokenizer's prompt) and checks the ids against transformers' greedy output.
func TestBLIPCaptionFolder(t *testing.T) {
	// transformers' greedy ids for these pixels without and with the prompt [CLS] t33 t45 t7 [SEP]
	// (models/blip/testdata/caption/gen_greedy_{noprompt,prompt}.npy with max_new_tokens 12).
	caps, err := CaptionModel(context.Background(), blipCaptionDir, blipImages, CaptionOptions{Generate: models.GenerateOptions{MaxNewTokens: 5}}, Env{Device: gotch.CPU})
	if err != nil {
		t.Fatal(err)
	}
	if len(caps) != 2 {
		t.Fatalf("%d captions", len(caps))
	}
	for _, c := range caps {
		if len(c.IDs) == 0 || len(c.IDs) > 5 || c.Sequence[0] != 318 {
			t.Errorf("caption %+v", c)
		}
		words := strings.Fields(c.Text)
		if len(words) != len(c.IDs) {
			t.Errorf("text %q for ids %v", c.Text, c.IDs)
		}
	}
	pc, err := CaptionModel(context.Background(), blipCaptionDir, blipImages, CaptionOptions{Generate: models.GenerateOptions{Prompt: "t33 t45 t7", MaxNewTokens: 3}}, Env{Device: gotch.CPU})
	if err != nil {
		t.Fatal(err)
	}
	if s := pc[0].Sequence; !slices.Equal(s[:4], []int64{318, 33, 45, 7}) {
		t.Errorf("prompted sequence %v, want [318 33 45 7 …]", s)
	}
}

// TestCapFilt runs CapFilt with the fixture captioner and filter: every web and synthetic caption
// gets the filter's match probability (checked against MatchFiles), the threshold decides what
// the COCO-style annotations file keeps, and that file loads back as a dataset.
func TestCapFilt(t *testing.T) {
	ann := filepath.Join("testdata", "blip", "images", "captions.json")
	dc := config.Default().Data
	dc.Annotations, dc.Images, dc.Format = ann, filepath.Join("testdata", "blip", "images"), "coco"
	dc.SplitFractions = []float64{1, 0, 0}
	for _, tt := range []struct {
		name      string
		threshold float64
		samples   int
	}{{"keep all", 0, 2}, {"keep none", 1, 1}, {"BLIP's", 0.5, 1}} {
		t.Run(tt.name, func(t *testing.T) {
			out := t.TempDir()
			rep, err := CapFilt(context.Background(), CapFiltOptions{Captioner: blipCaptionDir, Filter: blipRetrievalDir, Data: dc,
				Threshold: tt.threshold, Samples: tt.samples, MaxNewTokens: 6, Seed: 3, OutDir: out}, Env{Device: gotch.CPU})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Images) != 2 || rep.Kept.Web+rep.Dropped.Web != 3 || rep.Kept.Synthetic+rep.Dropped.Synthetic != 2*tt.samples {
				t.Fatalf("report %+v", rep)
			}
			kept := 0
			for _, im := range rep.Images {
				i := slices.Index([]string{"img0.png", "img1.png"}, im.File)
				var texts []string
				for _, c := range im.Captions {
					texts = append(texts, c.Text)
					if c.Kept != (c.Prob >= tt.threshold) || c.Text == "" {
						t.Errorf("%s: %+v", im.File, c)
					}
					if c.Kept {
						kept++
					}
				}
				m, err := MatchFiles(context.Background(), blipRetrievalDir, []string{blipImages[i]}, texts, Env{Device: gotch.CPU})
				if err != nil {
					t.Fatal(err)
				}
				for j, c := range im.Captions {
					if math.Abs(c.Prob-float64(m.ITMProb[0][j])) > 1e-5 {
						t.Errorf("%s %q: probability %g, MatchFiles %g", im.File, c.Text, c.Prob, m.ITMProb[0][j])
					}
				}
			}
			ds, err := data.Load(data.LoadOptions{Format: data.FormatCOCO, Annotations: []string{rep.Output}})
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, r := range ds.Records {
				n += len(r.Captions)
			}
			if len(ds.Records) != 2 || n != kept {
				t.Errorf("annotations hold %d images, %d captions; want 2, %d", len(ds.Records), n, kept)
			}
			if _, err := os.Stat(filepath.Join(out, "report.json")); err != nil {
				t.Error(err)
			}
		})
	}
	// Same seed, same synthetic captions.
	a, err := CapFilt(context.Background(), CapFiltOptions{Captioner: blipCaptionDir, Filter: blipRetrievalDir, Data: dc, Threshold: 0.5, MaxNewTokens: 6, Seed: 9, OutDir: t.TempDir()}, Env{Device: gotch.CPU})
	if err != nil {
		t.Fatal(err)
	}
	b, err := CapFilt(context.Background(), CapFiltOptions{Captioner: blipCaptionDir, Filter: blipRetrievalDir, Data: dc, Threshold: 0.5, MaxNewTokens: 6, Seed: 9, OutDir: t.TempDir()}, Env{Device: gotch.CPU})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(a.Images, b.Images, func(x, y CapFiltImage) bool { return slices.Equal(x.Captions, y.Captions) }) {
		t.Error("CapFilt with one seed is not reproducible")
	}
	for _, bad := range []CapFiltOptions{
		{Captioner: blipCaptionDir, Filter: blipCaptionDir, Data: dc, OutDir: t.TempDir()},
		{Captioner: blipCaptionDir, Filter: blipRetrievalDir, Data: dc, OutDir: t.TempDir(), Threshold: 2},
		{Captioner: blipCaptionDir, Filter: blipRetrievalDir, Data: dc},
	} {
		if _, err := CapFilt(context.Background(), bad, Env{Device: gotch.CPU}); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}

// TestBLIPPretrainSettings checks model.hf_config.pretrain: defaults (BLIP's retrieval
// fine-tuning), overrides, a token name for itm_first_token, and rejected keys and values.
func TestBLIPPretrainSettings(t *testing.T) {
	tk, err := tok.Load(blipRetrievalDir)
	if err != nil {
		t.Fatal(err)
	}
	c := config.Default()
	c.Train.LabelSmoothing = 0.1
	o, err := blipPretrainOptions(c, tk)
	if err != nil || o.WeightITC != 1 || o.WeightITM != 1 || o.WeightLM != 0 || o.LabelSmoothing != 0.1 || o.ITMFirstToken != -1 {
		t.Errorf("defaults %+v, %v", o, err)
	}
	c.Model.HFConfig = map[string]any{"pretrain": map[string]any{"weight_lm": 1, "temp_init": 0.1, "itm_first_token": "[ENC]"}}
	o, err = blipPretrainOptions(c, tk)
	if err != nil || o.WeightLM != 1 || o.TempInit != 0.1 || o.ITMFirstToken != 319 {
		t.Errorf("overrides %+v, %v", o, err)
	}
	for _, bad := range []any{
		map[string]any{"weight_lmm": 1},
		map[string]any{"temp_init": 5},
		map[string]any{"itm_first_token": "[NOPE]"},
		map[string]any{"weight_itc": 0, "weight_itm": 0, "weight_lm": 0},
		"itc",
	} {
		c.Model.HFConfig = map[string]any{"pretrain": bad}
		if _, err := blipPretrainOptions(c, tk); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}

// TestBLIPConfigs loads the BLIP configs of configs/ and checks what the runner derives from
// them: objectives, the [ENC] token and the from-scratch model sizes.
func TestBLIPConfigs(t *testing.T) {
	tk, err := tok.Load(blipRetrievalDir) // BLIP's special tokens: [DEC] 318, [ENC] 319
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		file    string
		arch    string
		weights [3]float64 // ITC, ITM, LM
		itm     int64
	}{
		{"blip_large_coco_caption.yaml", "blip_caption", [3]float64{1, 1, 0}, -1},
		{"blip_retrieval_coco.yaml", "blip_retrieval", [3]float64{1, 1, 0}, 30523},
		{"blip_pretrain.yaml", "blip_retrieval", [3]float64{1, 1, 1}, 319},
		{"blip_retrieval_tiny.yaml", "blip_retrieval", [3]float64{1, 1, 0}, -1},
	}
	for _, tt := range tests {
		c, err := config.Load(config.Options{File: filepath.Join("..", "configs", tt.file)})
		if err != nil {
			t.Fatalf("%s: %v", tt.file, err)
		}
		if c.Model.Arch != tt.arch {
			t.Errorf("%s: arch %s", tt.file, c.Model.Arch)
		}
		o, err := blipPretrainOptions(c, tk)
		if err != nil {
			t.Errorf("%s: %v", tt.file, err)
			continue
		}
		if got := [3]float64{o.WeightITC, o.WeightITM, o.WeightLM}; got != tt.weights || o.ITMFirstToken != tt.itm || o.LabelSmoothing != c.Train.LabelSmoothing {
			t.Errorf("%s: options %+v", tt.file, o)
		}
	}
	// The pre-training config builds BLIP-base from scratch: ViT-B/16 at 224², BERT-base.
	c, err := config.Load(config.Options{File: filepath.Join("..", "configs", "blip_pretrain.yaml")})
	if err != nil {
		t.Fatal(err)
	}
	bc, err := blipScratchConfig(c.Model, tk)
	if err != nil {
		t.Fatal(err)
	}
	v, x := bc.Vision, bc.Text
	if v.HiddenSize != 768 || v.NumHiddenLayers != 12 || v.ImageSize != 224 || v.PatchSize != 16 || x.HiddenSize != 768 ||
		x.NumAttentionHeads != 12 || x.NumHiddenLayers != 12 || x.EncoderHiddenSize != 768 || bc.ImageTextHiddenSize != 256 ||
		x.VocabSize != tk.VocabSize() || x.BOSTokenID != 318 || x.SepTokenID != 102 || x.PadTokenID != 0 {
		t.Errorf("BLIP-base from blip_pretrain.yaml: %+v", bc)
	}
}

// TestBLIPPretrainRun pre-trains a tiny model with all three objectives for a few steps (with
// [ENC] for ITM, as BLIP), resumes it, and uses the run directory as a model folder: it reopens
// with exactly the trained parameters (text decoder and temperature included), captions with its
// decoder and ranks images and texts.
func TestBLIPPretrainRun(t *testing.T) {
	c := tinyBLIP(t, "blip_retrieval_tiny.yaml", 60, 6)
	c.Model.HFConfig["pretrain"] = map[string]any{"weight_itc": 1, "weight_itm": 1, "weight_lm": 1, "itm_first_token": "[ENC]"}
	c.Train.LabelSmoothing = 0.1
	c.Train.BatchSize, c.Train.SaveEvery = 8, 3
	c.Eval.MaxNewTokens = 5
	env := Env{Device: gotch.CPU}
	yml, _ := config.YAML(c)
	first := c
	first.Train.MaxSteps = 3
	if _, err := Train(context.Background(), first, yml, false, env); err != nil {
		t.Fatal(err)
	}
	res, err := Train(context.Background(), c, yml, true, env)
	if err != nil {
		t.Fatal(err)
	}
	if res.Step != 6 {
		t.Errorf("resumed run ended at step %d, want 6", res.Step)
	}
	b, err := OpenModel(c.Train.OutDir, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	m, err := b.retrievalModel()
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := b.tok.TokenToID("[ENC]")
	if m.pt == nil || m.cap == nil || m.itmFirst != int64(enc) || m.pt.Opts.WeightLM != 1 {
		t.Fatalf("reopened run: %+v", m)
	}
	var decoder, temp bool
	for name := range m.VarStore().Variables() {
		decoder = decoder || strings.HasPrefix(name, "text_decoder.")
		temp = temp || name == "temp"
	}
	if !decoder || !temp {
		t.Errorf("reopened run lacks the decoder (%v) or the temperature (%v)", decoder, temp)
	}
	test := mustSplit(t, c, "test")
	caps, err := CaptionModel(context.Background(), c.Train.OutDir, []string{test[0].Path}, CaptionOptions{}, env)
	if err != nil || len(caps) != 1 || len(caps[0].IDs) == 0 || len(caps[0].IDs) > 5 {
		t.Errorf("captioning with the pre-trained decoder: %+v, %v", caps, err)
	}
	rep, err := EvaluateRetrieval(context.Background(), c.Train.OutDir, c.Data, c.Eval, EvalOptions{Split: "test", OutDir: t.TempDir()}, RetrievalOptions{K: 4}, env)
	if err != nil || rep.Images != len(test) || rep.Metrics["r_mean"] <= 0 {
		t.Errorf("retrieval evaluation: %+v, %v", rep, err)
	}
}

// TestRetrievalRerankingMatchesBLIP recomputes BLIP's retrieval scores from MatchFiles' ITM
// logits and ITC similarities (ITM match logit + ITC on each query's top k by ITC, −100
// elsewhere) and checks EvaluateRetrieval's recalls against them, for k = 1 and k = all.
func TestRetrievalRerankingMatchesBLIP(t *testing.T) {
	dc := config.Default().Data
	dc.Annotations, dc.Images, dc.Format = filepath.Join("testdata", "blip", "images", "captions.json"), filepath.Join("testdata", "blip", "images"), "coco"
	dc.SplitFractions = []float64{1, 0, 0}
	recs, err := splitRecords(dc, EvalOptions{Split: "train"})
	if err != nil {
		t.Fatal(err)
	}
	var paths, texts []string
	var textToImage []int
	for i, r := range recs {
		paths = append(paths, r.Path)
		for _, c := range r.Captions {
			texts = append(texts, c)
			textToImage = append(textToImage, i)
		}
	}
	m, err := MatchFiles(context.Background(), blipRetrievalDir, paths, texts, Env{Device: gotch.CPU})
	if err != nil {
		t.Fatal(err)
	}
	N, M := len(paths), len(texts)
	for _, k := range []int{1, 256} {
		i2t, t2i := make([][]float64, N), make([][]float64, N)
		for i := range i2t {
			i2t[i], t2i[i] = make([]float64, M), make([]float64, M)
			for j := range i2t[i] {
				i2t[i][j], t2i[i][j] = -100, -100
			}
		}
		score := func(i, j int) float64 { return float64(m.ITMLogits[i][j][1]) + float64(m.ITC[i][j]) }
		for i := 0; i < N; i++ {
			for _, j := range topK(M, min(k, M), func(j int) float32 { return m.ITC[i][j] }) {
				i2t[i][j] = score(i, j)
			}
		}
		for j := 0; j < M; j++ {
			for _, i := range topK(N, min(k, N), func(i int) float32 { return m.ITC[i][j] }) {
				t2i[i][j] = score(i, j)
			}
		}
		a, err := eval.Retrieval(i2t, textToImage)
		if err != nil {
			t.Fatal(err)
		}
		b, err := eval.Retrieval(t2i, textToImage)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := EvaluateRetrieval(context.Background(), blipRetrievalDir, dc, config.Default().Eval, EvalOptions{Split: "train", OutDir: t.TempDir()}, RetrievalOptions{K: k}, Env{Device: gotch.CPU})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(rep.Reranked.ImageToText.Ranks, a.ImageToText.Ranks) || !slices.Equal(rep.Reranked.TextToImage.Ranks, b.TextToImage.Ranks) {
			t.Errorf("k=%d: ranks %v / %v, want %v / %v", k, rep.Reranked.ImageToText.Ranks, rep.Reranked.TextToImage.Ranks, a.ImageToText.Ranks, b.TextToImage.Ranks)
		}
	}
}
