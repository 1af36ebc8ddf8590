package blip

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"github.com/imgcap/imgcap/internal/reftest"
	"github.com/imgcap/imgcap/models"
	"github.com/imgcap/imgcap/nn"
	"github.com/imgcap/imgcap/torchx"
)

// TestInt8Captioner quantizes the fixture captioner and checks that every linear layer of the
// vision model, the text decoder and the LM head switched, that logits stay close to Hugging
// Face's float32 ones, and reports how many greedy and beam captions still match them exactly.
func TestInt8Captioner(t *testing.T) {
	m := loadCaptioner(t)
	rep, err := nn.QuantizeInt8(m, nn.Int8Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer nn.DequantizeInt8(m)
	// Vision layer: qkv, projection, fc1, fc2. Text layer: query, key, value, output for self-
	// and cross-attention, intermediate, output. LM head: transform dense, decoder.
	want := 4*m.Cfg.Vision.NumHiddenLayers + 10*m.Cfg.Text.NumHiddenLayers + 2
	if rep.Layers != want {
		t.Errorf("%d layers quantized, want %d (%s)", rep.Layers, want, rep)
	}
	f := func(name string) string { return filepath.Join(captionDir, name) }
	pixels := reftest.Tensor(t, f("pixel_values.npy"))
	inScope(t, func() error {
		ids := reftest.Tensor(t, f("input_ids.npy"))
		mask := reftest.Tensor(t, f("attention_mask.npy"))
		logits, err := m.Logits(pixels, ids, mask, false)
		if err != nil {
			return err
		}
		got, err := torchx.Float32s(logits)
		if err != nil {
			return err
		}
		want, _ := reftest.Float32s(t, f("logits.npy"))
		d, mx := reftest.Diff(got, want)
		t.Logf("int8 logits: max |Δ| %.3g (max |x| %.3g), relative RMS %.4f", d, mx, reftest.RelRMS(got, want))
		if d := reftest.RelRMS(got, want); d > 0.05 {
			t.Errorf("int8 logits differ from float32 by %.3f (relative RMS), want ≤ 0.05", d)
		}
		return nil
	})
	e := readExpected(t, captionDir).Scalars.GenerateKwargs
	for _, c := range []struct {
		name  string
		beams int
	}{{"gen_greedy_noprompt", 1}, {"gen_beam3_noprompt", 3}} {
		caps, err := m.Caption(context.Background(), pixels, models.GenerateOptions{NumBeams: c.beams,
			MaxNewTokens: e.MaxNewTokens, LengthPenalty: e.LengthPenalty, EarlyStopping: e.EarlyStopping})
		if err != nil {
			t.Fatal(err)
		}
		want := reftest.Int64Rows(t, f(c.name+".npy"))
		same := 0
		for i, cp := range caps {
			row := want[i]
			for len(row) > 1 && row[len(row)-1] == m.Cfg.Text.PadTokenID {
				row = row[:len(row)-1]
			}
			if slices.Equal(cp.Sequence, row) {
				same++
			}
		}
		t.Logf("%s: %d of %d int8 captions equal HF's float32 ones", c.name, same, len(caps))
	}
}
