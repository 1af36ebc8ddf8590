package vitgpt2

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/imgcap/imgcap/internal/reftest"
	"github.com/imgcap/imgcap/nn"
	"github.com/imgcap/imgcap/torchx"
)

// TestInt8Model quantizes the fixture VisionEncoderDecoder (ViT Linear layers, GPT-2 Conv1D
// layers) and compares its logits with Hugging Face's float32 ones; it reports how many greedy
// captions still match them exactly. The fixture's random ViT attends sharply, which amplifies
// int8 rounding (one quantized query projection alone moves its states by 4%): with every layer
// in int8 the logits move by ~40% (relative RMS), with the GPT-2 decoder alone by ~6%. The bounds
// catch a broken kernel (relative RMS ≥ 1), not int8's accuracy on real checkpoints.
func TestInt8Model(t *testing.T) {
	if why := torchx.Int8Unavailable(); why != "" {
		t.Skip(why)
	}
	for _, c := range []struct {
		name  string
		skip  func(string) bool
		bound float64
	}{
		{"decoder only", func(p string) bool { return strings.HasPrefix(p, "Encoder") }, 0.15},
		{"every layer", nil, 0.6},
	} {
		t.Run(c.name, func(t *testing.T) { testInt8Model(t, c.skip, c.bound) })
	}
}

func testInt8Model(t *testing.T, skip func(string) bool, bound float64) {
	m := loadFixture(t)
	rep, err := nn.QuantizeInt8(m, nn.Int8Options{Skip: skip})
	if err != nil {
		t.Fatal(err)
	}
	// ViT layer: query, key, value, attention output, intermediate, output; GPT-2 block: c_attn,
	// c_proj, q_attn and c_attn/c_proj of the cross-attention, mlp c_fc and c_proj. The LM head
	// is tied to wte (an embedding) and stays float32.
	want := 6*m.Cfg.Encoder.NumHiddenLayers + 7*m.Cfg.Decoder.NLayer
	if skip != nil {
		want = 7 * m.Cfg.Decoder.NLayer
	}
	if rep.Layers < want {
		t.Errorf("%d layers quantized, want at least %d (%s)", rep.Layers, want, rep)
	}
	pixels := reftest.Tensor(t, fixturePath("pixel_values.npy"))
	err = torchx.NoGrad(func() error {
		return torchx.WithScope(func(s *torchx.Scope) error {
			labels := reftest.Tensor(t, fixturePath("labels.npy"))
			in, err := ShiftTokensRight(labels, m.Cfg.PadTokenID, m.Cfg.DecoderStartTokenID)
			if err != nil {
				return err
			}
			logits, err := m.Logits(pixels, in, false)
			if err != nil {
				return err
			}
			got, err := torchx.Float32s(logits)
			if err != nil {
				return err
			}
			want, _ := reftest.Float32s(t, fixturePath("logits.npy"))
			d, mx := reftest.Diff(got, want)
			rel := reftest.RelRMS(got, want)
			t.Logf("int8 logits: max |Δ| %.3g (max |x| %.3g), relative RMS %.4f", d, mx, rel)
			if rel > bound || rel == 0 {
				t.Errorf("int8 logits differ from float32 by %.3f (relative RMS), want (0, %.2f]", rel, bound)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	start := []int64{m.Cfg.DecoderStartTokenID}
	o := m.GenerateOptions(nn.GenerateOptions{NumBeams: 1, MaxNewTokens: 10, LengthPenalty: 1})
	seqs, err := m.Generate(context.Background(), pixels, [][]int64{start, start}, o)
	if err != nil {
		t.Fatal(err)
	}
	got := hfRows([][]int64{start, start}, seqs, m.Cfg.PadTokenID)
	wantIDs := reftest.Int64Rows(t, fixturePath("gen_greedy.npy"))
	same := 0
	for i := range got {
		if reflect.DeepEqual(got[i], wantIDs[i]) {
			same++
		}
	}
	t.Logf("greedy: %d of %d int8 captions equal HF's float32 ones", same, len(got))
}
