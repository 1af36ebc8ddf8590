package runner

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sugarme/gotch"

	"github.com/imgcap/imgcap/data/image"
	"github.com/imgcap/imgcap/eval"
	"github.com/imgcap/imgcap/models"
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

// TestModelQuantizeInt8 switches an opened BLIP captioner (as `imgcap serve --int8` does) to
// int8: it logs what it quantized and still captions.
func TestModelQuantizeInt8(t *testing.T) {
	if why := torchx.Int8Unavailable(); why != "" {
		t.Skip(why)
	}
	m, err := Open(blipCaptionDir, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	if err := m.QuantizeInt8(slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "linear layers") {
		t.Errorf("no report of the int8 layers in the log: %q", logs.String())
	}
	img, err := image.DecodeFile(blipImages[0], image.DecodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	caps, err := m.CaptionImages(context.Background(), []*image.RGB{img}, models.GenerateOptions{MaxNewTokens: 5})
	if err != nil || len(caps) != 1 || len(caps[0].IDs) == 0 {
		t.Errorf("CaptionImages after QuantizeInt8 = %+v, %v", caps, err)
	}
}
