package runner

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/sugarme/gotch"

	"github.com/imgcap/imgcap/config"
	"github.com/imgcap/imgcap/data"
	"github.com/imgcap/imgcap/data/synth"
	"github.com/imgcap/imgcap/eval"
	"github.com/imgcap/imgcap/train"
)

// synthConfig writes a small synthetic Flickr8k-layout set and returns a tiny VGG16+LSTM config
// that trains on it.
func synthConfig(t *testing.T, n, steps int) config.Config {
	t.Helper()
	dir := t.TempDir()
	ds := filepath.Join(dir, "data")
	if _, err := synth.Generate(synth.Options{Format: "flickr8k", N: n, OutDir: ds, Seed: 7, Size: 32}); err != nil {
		t.Fatal(err)
	}
	c := config.Default()
	c.Model.Arch = "vgg16_lstm"
	c.Model.ImageSize = 32
	c.Model.VGGWidth = 0.0625
	c.Model.VGGBatchNorm = true
	c.Model.EmbedDim, c.Model.HiddenDim = 32, 64
	c.Model.Dropout = 0.1
	c.Model.MaxLength = 16
	c.Data.Format = "flickr-token"
	c.Data.Annotations = filepath.Join(ds, "Flickr8k.token.txt")
	c.Data.Images = filepath.Join(ds, "Images")
	c.Data.SplitFiles = map[string]string{
		"train": filepath.Join(ds, "Flickr_8k.trainImages.txt"),
		"val":   filepath.Join(ds, "Flickr_8k.devImages.txt"),
		"test":  filepath.Join(ds, "Flickr_8k.testImages.txt"),
	}
	c.Data.Workers = 2
	c.Train.OutDir = filepath.Join(dir, "run")
	c.Train.Epochs, c.Train.MaxSteps = 0, steps
	c.Train.BatchSize = 32
	c.Train.LR = 3e-3
	c.Train.Schedule = "cosine"
	c.Train.WarmupSteps = 10
	c.Train.ClipGradNorm = 5
	c.Train.LogEvery = 50
	c.Eval.BatchSize = 64
	c.Eval.NumBeams = 1
	c.Eval.MaxNewTokens = 15
	c.Eval.Metrics = []string{"bleu", "cider"}
	if errs := config.Validate(c); len(errs) > 0 {
		t.Fatal(errs)
	}
	return c
}

// TestVGGLSTMLearnsSynthetic trains a tiny model on synthetic scenes and checks that its
// held-out captions beat the best constant caption by a wide margin: it must learn what is in
// the picture, not only lower its loss.
func TestVGGLSTMLearnsSynthetic(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a model")
	}
	c := synthConfig(t, 400, 300)
	env := Env{Device: gotch.CPU}
	yml, _ := config.YAML(c)
	res, err := Train(context.Background(), c, yml, false, env)
	if err != nil {
		t.Fatal(err)
	}
	if res.Step != 300 {
		t.Errorf("trained %d steps, want 300", res.Step)
	}
	var out bytes.Buffer
	rep, err := Evaluate(context.Background(), c.Train.OutDir, EvalOptions{Split: "test"}, Env{Device: gotch.CPU, Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	model := rep.Corpus[eval.KeyBleu4]

	baseline, common := constantBaseline(t, c)
	test := mustSplit(t, c, "test")
	t.Logf("held-out BLEU-4: model %.3f, most common caption %q %.3f\n%s", model, common, baseline, out.String())
	if model < 0.22 || model < 1.8*baseline {
		t.Errorf("model BLEU-4 %.3f is not far above the constant-caption baseline %.3f", model, baseline)
	}
	checkInt8Eval(t, c.Train.OutDir, model)
	if _, err := os.Stat(filepath.Join(c.Train.OutDir, "eval-test", "results.json")); err != nil {
		t.Errorf("no COCO results written: %v", err)
	}
	caps, err := CaptionFiles(context.Background(), c.Train.OutDir, []string{test[0].Path}, generateOptions(c.Eval), env)
	if err != nil || len(caps) != 1 || caps[0] == "" {
		t.Errorf("CaptionFiles = %q, %v", caps, err)
	}
}

// TestVGGLSTMResumeIsExact stops a run after k steps, resumes it, and compares its final
// weights with an uninterrupted run's: parallel data loading, shuffling, dropout and the
// optimizer state must all continue exactly.
func TestVGGLSTMResumeIsExact(t *testing.T) {
	c := synthConfig(t, 60, 6)
	c.Train.BatchSize = 8
	c.Train.GradAccum = 2
	c.Data.Augment.RandomResizedCrop = true
	c.Data.Augment.HFlip = 0.5
	c.Train.WarmupSteps = 2
	c.Train.LogEvery = 1
	env := Env{Device: gotch.CPU}
	full := c
	full.Train.OutDir = c.Train.OutDir + "-full"
	yml, _ := config.YAML(full)
	if _, err := Train(context.Background(), full, yml, false, env); err != nil {
		t.Fatal(err)
	}
	// Interrupt the second run after its third step, as SIGINT would: the progress line of
	// step 3 cancels the context.
	yml, _ = config.YAML(c)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopper := &cancelOn{marker: []byte("step 3/"), cancel: cancel}
	res, err := Train(ctx, c, yml, false, Env{Device: gotch.CPU, Progress: stopper})
	if !errors.Is(err, train.ErrInterrupted) || res.Step != 3 {
		t.Fatalf("interrupted run: step %d, err %v; want step 3 and ErrInterrupted", res.Step, err)
	}
	res, err = Train(context.Background(), c, yml, true, env)
	if err != nil {
		t.Fatal(err)
	}
	if res.Step != 6 {
		t.Fatalf("resumed run ended at step %d, want 6", res.Step)
	}
	a, err := os.ReadFile(filepath.Join(train.CheckpointDir(full.Train.OutDir, 6), train.ModelFile))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(train.CheckpointDir(c.Train.OutDir, 6), train.ModelFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Error("resumed weights differ from the uninterrupted run's")
	}
}

// cancelOn is a progress writer that cancels a context once marker appears.
type cancelOn struct {
	marker []byte
	cancel context.CancelFunc
	seen   []byte
}

func (c *cancelOn) Write(p []byte) (int, error) {
	c.seen = append(c.seen, p...)
	if bytes.Contains(c.seen, c.marker) {
		c.cancel()
	}
	return len(p), nil
}

// mustSplit loads a split of the config's dataset.
func mustSplit(t *testing.T, c config.Config, split string) []data.Record {
	t.Helper()
	ds, err := LoadDataset(c.Data, c.Train.Seed)
	if err != nil {
		t.Fatal(err)
	}
	return ds.Split(split)
}

// constantBaseline is the test-split BLEU-4 of the most common training caption given for
// every test image: what a model that ignores the picture can reach.
func constantBaseline(t *testing.T, c config.Config) (float64, string) {
	t.Helper()
	counts := map[string]int{}
	for _, r := range mustSplit(t, c, "train") {
		for _, cap := range r.Captions {
			counts[cap]++
		}
	}
	var common []string
	for cap := range counts {
		common = append(common, cap)
	}
	sort.Slice(common, func(i, j int) bool {
		if counts[common[i]] != counts[common[j]] {
			return counts[common[i]] > counts[common[j]]
		}
		return common[i] < common[j]
	})
	test := mustSplit(t, c, "test")
	ids := make([]string, len(test))
	refs := make([][]string, len(test))
	cands := make([]string, len(test))
	for i, r := range test {
		ids[i], refs[i], cands[i] = r.Name, r.Captions, common[0]
	}
	base, err := eval.Score(ids, refs, cands, eval.Options{Metrics: []string{"bleu"}})
	if err != nil {
		t.Fatal(err)
	}
	return base.Corpus[eval.KeyBleu4], common[0]
}
