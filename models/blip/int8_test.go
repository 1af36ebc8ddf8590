package blip

import (
	"context"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"github.com/sugarme/gotch/ts"

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

// TestInt8GenerateMemoryFlat captions repeatedly with int8 layers: live tensors must not grow,
// and resident memory must stay flat (the int8 kernels allocate their outputs as tensors).
func TestInt8GenerateMemoryFlat(t *testing.T) {
	if why := torchx.Int8Unavailable(); why != "" {
		t.Skip(why)
	}
	m := loadCaptioner(t)
	if _, err := nn.QuantizeInt8(m, nn.Int8Options{ReleaseFloat: true}); err != nil {
		t.Fatal(err)
	}
	pixels := reftest.Tensor(t, filepath.Join(captionDir, "pixel_values.npy"))
	run := func(n int) {
		for i := 0; i < n; i++ {
			for _, beams := range []int{1, 3} {
				if _, err := m.Generate(context.Background(), pixels, nil, nn.GenerateOptions{NumBeams: beams, MaxNewTokens: 8}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	run(20) // warm-up: allocator pools, kernel caches
	runtime.GC()
	before, rss0 := len(ts.ExistingTensors), reftest.RSSBytes(t)
	run(200)
	runtime.GC()
	after, rss1 := len(ts.ExistingTensors), reftest.RSSBytes(t)
	t.Logf("live tensors %d -> %d, resident %.1f -> %.1f MB over 400 captions", before, after, float64(rss0)/1e6, float64(rss1)/1e6)
	if after > before {
		t.Errorf("live tensors grew from %d to %d", before, after)
	}
	if rss1-rss0 > 30<<20 {
		t.Errorf("resident memory grew by %.1f MB over 400 int8 captions", float64(rss1-rss0)/1e6)
	}
}
