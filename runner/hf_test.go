package runner

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/sugarme/gotch"

	"github.com/imgcap/imgcap/config"
	"github.com/imgcap/imgcap/eval"
	"github.com/imgcap/imgcap/models/vitgpt2"
)

// tinyViTGPT2 is configs/vit_gpt2_tiny.yaml on a synthetic set of n images written for the
// test, trained for steps steps.
func tinyViTGPT2(t *testing.T, n, steps int) config.Config {
	t.Helper()
	synth := synthConfig(t, n, steps)
	c, err := config.Load(config.Options{File: filepath.Join("..", "configs", "vit_gpt2_tiny.yaml")})
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

// TestViTGPT2LearnsSynthetic trains a tiny ViT+GPT-2 from scratch with the shared trainer and
// checks that its held-out captions are far better than the best constant caption; the run
// directory is then a Hugging Face model folder that captions and evaluates.
func TestViTGPT2LearnsSynthetic(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a model")
	}
	c := tinyViTGPT2(t, 400, 400)
	env := Env{Device: gotch.CPU}
	yml, _ := config.YAML(c)
	res, err := Train(context.Background(), c, yml, false, env)
	if err != nil {
		t.Fatal(err)
	}
	if res.Step != 400 {
		t.Errorf("trained %d steps, want 400", res.Step)
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
	// The run directory is a model folder: config.json, preprocessor config and tokenizer.
	for _, f := range []string{HFConfigFile, HFPreprocessorFile} {
		if _, err := os.Stat(filepath.Join(c.Train.OutDir, f)); err != nil {
			t.Error(err)
		}
	}
	if _, err := vitgpt2.ReadConfig(c.Train.OutDir); err != nil {
		t.Error(err)
	}
	test := mustSplit(t, c, "test")
	caps, err := CaptionModel(context.Background(), c.Train.OutDir, []string{test[0].Path, test[1].Path}, CaptionOptions{}, env)
	if err != nil || len(caps) != 2 || caps[0].Text == "" || len(caps[0].IDs) == 0 {
		t.Errorf("CaptionModel = %+v, %v", caps, err)
	}
}
