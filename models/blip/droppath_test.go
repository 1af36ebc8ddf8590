package blip

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	gnn "github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/torchx"
)

// dpVisionConfig is a tiny vision transformer: 3 layers of width 16 on 32² images (4 patches).
func dpVisionConfig(rate float64) VisionConfig {
	c := DefaultVisionConfig()
	c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers, c.NumAttentionHeads = 16, 32, 3, 2
	c.ImageSize, c.PatchSize, c.InitializerRange = 32, 16, 0.02
	c.DropPathRate = rate
	return c
}

// dpVision builds a tiny vision model in its own variable store.
func dpVision(t *testing.T, c VisionConfig) (*VisionModel, *gnn.VarStore) {
	t.Helper()
	vs := gnn.NewVarStore(gotch.CPU)
	m, err := NewVisionModel(vs.Root().Sub("vision_model"), c, 0.02)
	if err != nil {
		t.Fatal(err)
	}
	return m, vs
}

// TestVisionDropPath checks BLIP's stochastic depth in the vision model: the layers' rates are
// linspace(0, rate, layers); with the same weights, inference is bit-identical to the model
// without it; training differs from it; gradients reach every parameter.
func TestVisionDropPath(t *testing.T) {
	const rate, B = 0.5, 6
	torchx.Seed(3)
	m, vs := dpVision(t, dpVisionConfig(rate))
	m0, vs0 := dpVision(t, dpVisionConfig(0))
	if err := vs0.Copy(vs); err != nil {
		t.Fatal(err)
	}

	// torch.linspace(0, 0.5, 3), written out.
	want := []float64{0, 0.25, 0.5}
	got := m.DropPathRates()
	if len(got) != len(want) {
		t.Fatalf("rates %v, want %v", got, want)
	}
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-15 {
			t.Errorf("layer %d rate %v, want %v", i, got[i], want[i])
		}
	}
	for i, r := range m0.DropPathRates() {
		if r != 0 {
			t.Errorf("drop path 0: layer %d rate %v", i, r)
		}
	}

	rng := rand.New(rand.NewPCG(1, 2))
	px := make([]float32, B*3*32*32)
	for i := range px {
		px[i] = float32(rng.NormFloat64())
	}
	pixels, err := ts.OfSlice(px)
	if err != nil {
		t.Fatal(err)
	}
	if pixels, err = pixels.View([]int64{B, 3, 32, 32}, true); err != nil {
		t.Fatal(err)
	}
	defer pixels.Drop()
	forward := func(m *VisionModel, train bool) []float32 {
		t.Helper()
		var vals []float32
		err := torchx.NoGrad(func() error {
			out, err := m.Forward(pixels, train)
			if err != nil {
				return err
			}
			defer out.Drop()
			vals, err = torchx.Float32s(out)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return vals
	}
	eval, eval0 := forward(m, false), forward(m0, false)
	for i := range eval0 {
		if math.Float32bits(eval[i]) != math.Float32bits(eval0[i]) {
			t.Fatalf("inference with drop path differs at %d: %v vs %v", i, eval[i], eval0[i])
		}
	}
	if train0 := forward(m0, true); !slicesEqualBits(train0, eval0) {
		t.Error("drop path 0: training differs from inference (the tiny model has no dropout)")
	}
	if train := forward(m, true); slicesEqualBits(train, eval0) {
		t.Error("drop path 0.5: training output equals inference")
	}

	// Gradients flow through the dropped and kept branches to every parameter.
	err = torchx.WithScope(func(*torchx.Scope) error {
		out, err := m.Forward(pixels, true)
		if err != nil {
			return err
		}
		// A random projection: the sum of a LayerNorm's output alone has no gradient.
		size, err := out.Size()
		if err != nil {
			return err
		}
		r, err := ts.Randn(size, gotch.Float, gotch.CPU)
		if err != nil {
			return err
		}
		prod, err := out.Mul(r, false)
		if err != nil {
			return err
		}
		loss, err := prod.Sum(gotch.Float, false)
		if err != nil {
			return err
		}
		return loss.Backward()
	})
	if err != nil {
		t.Fatal(err)
	}
	nonzero := 0
	for name := range vs.Variables() {
		v, err := vs.Root().Get(name)
		if err != nil {
			t.Fatal(err)
		}
		g, err := v.Grad(false)
		if err != nil {
			t.Fatal(err)
		}
		if ok, _ := g.Defined(); !ok {
			t.Errorf("%s: no gradient", name)
			continue
		}
		vals, err := torchx.Float32s(g)
		g.Drop()
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range vals {
			if x != 0 {
				nonzero++
				break
			}
		}
		if strings.Contains(name, "layers.0.") || strings.Contains(name, "patch_embedding") {
			some := false
			for _, x := range vals {
				some = some || x != 0
			}
			if !some {
				t.Errorf("%s: zero gradient", name)
			}
		}
	}
	t.Logf("%d of %d parameters have a nonzero gradient", nonzero, len(vs.Variables()))
	if nonzero < len(vs.Variables())/2 {
		t.Errorf("only %d of %d parameters have a nonzero gradient", nonzero, len(vs.Variables()))
	}
}

func slicesEqualBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// TestVisionDropPathRejects checks that rates outside [0, 1) are refused with an error naming
// the drop path rate.
func TestVisionDropPathRejects(t *testing.T) {
	for _, r := range []float64{-0.1, 1, 1.5, math.NaN()} {
		vs := gnn.NewVarStore(gotch.CPU)
		_, err := NewVisionModel(vs.Root(), dpVisionConfig(r), 0.02)
		if err == nil || !strings.Contains(err.Error(), "drop path rate") {
			t.Errorf("rate %v: error %v", r, err)
		}
	}
}

// TestMarshalHFOmitsDropPath checks that the drop path rate, which Hugging Face's
// BlipVisionConfig does not have, stays out of config.json and is not read from it.
func TestMarshalHFOmitsDropPath(t *testing.T) {
	c := DefaultConfig()
	c.Architectures = []string{"BlipForConditionalGeneration"}
	plain, err := c.MarshalHF()
	if err != nil {
		t.Fatal(err)
	}
	c.Vision.DropPathRate = 0.1
	with, err := c.MarshalHF()
	if err != nil {
		t.Fatal(err)
	}
	if string(with) != string(plain) || strings.Contains(string(with), "drop_path") {
		t.Errorf("config.json changed with the drop path rate:\n%s", with)
	}
	var m map[string]any
	if err := json.Unmarshal(with, &m); err != nil {
		t.Fatal(err)
	}
	for k := range m["vision_config"].(map[string]any) {
		if strings.Contains(k, "drop_path") {
			t.Errorf("vision_config has %s", k)
		}
	}
	back, err := ParseConfig(with)
	if err != nil {
		t.Fatal(err)
	}
	if back.Vision.DropPathRate != 0 {
		t.Errorf("parsed drop path rate %v", back.Vision.DropPathRate)
	}
}
