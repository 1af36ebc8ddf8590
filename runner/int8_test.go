package runner

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/sugarme/gotch"

	"github.com/imgcap/imgcap/eval"
	"github.com/imgcap/imgcap/torchx"
)

// checkInt8Eval scores the trained run's test split again with int8 layers (--int8) and checks
// that held-out BLEU-4 stays within 15% of the float32 score: int8 measured on a trained model,
// not on random weights.
func checkInt8Eval(t *testing.T, runDir string, float32BLEU float64) {
	t.Helper()
	if why := torchx.Int8Unavailable(); why != "" {
		t.Logf("int8 skipped: %s", why)
		return
	}
	var out bytes.Buffer
	rep, err := Evaluate(context.Background(), runDir, EvalOptions{Split: "test", OutDir: filepath.Join(t.TempDir(), "int8")},
		Env{Device: gotch.CPU, Out: &out, Int8: true})
	if err != nil {
		t.Fatal(err)
	}
	got := rep.Corpus[eval.KeyBleu4]
	t.Logf("held-out BLEU-4 with --int8: %.3f (float32 %.3f)", got, float32BLEU)
	if got < 0.85*float32BLEU {
		t.Errorf("int8 BLEU-4 %.3f is more than 15%% below float32's %.3f", got, float32BLEU)
	}
}
