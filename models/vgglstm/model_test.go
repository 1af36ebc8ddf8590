package vgglstm

import (
	"context"
	"fmt"
	"sort"
	"testing"

	"github.com/sugarme/gotch"
	gnn "github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/models"
	"github.com/imgcap/imgcap/torchx"
)

func tinyConfig() Config {
	return Config{VocabSize: 8, EmbedDim: 16, HiddenDim: 16, Dropout: 0.4, ImageSize: 32, Width: 1.0 / 16,
		PadID: 0, StartID: 1, EndID: 2, MaxLength: 6}
}

func TestParameterNamesAreTorchvisions(t *testing.T) {
	m, err := New(tinyConfig(), gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for name := range m.VarStore().Variables() {
		got = append(got, name)
	}
	sort.Strings(got)
	want := map[string]bool{}
	for _, i := range []int{0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28} {
		want[fmt.Sprintf("features.%d.weight", i)] = true
		want[fmt.Sprintf("features.%d.bias", i)] = true
	}
	for _, i := range []int{0, 3} {
		want[fmt.Sprintf("classifier.%d.weight", i)] = true
		want[fmt.Sprintf("classifier.%d.bias", i)] = true
	}
	for _, n := range []string{"decoder.image_proj.weight", "decoder.image_proj.bias", "decoder.embed.weight",
		"decoder.lstm.weight_ih_l0", "decoder.lstm.weight_hh_l0", "decoder.lstm.bias_ih_l0", "decoder.lstm.bias_hh_l0",
		"decoder.fc.weight", "decoder.fc.bias", "decoder.out.weight", "decoder.out.bias"} {
		want[n] = true
	}
	if len(got) != len(want) {
		t.Errorf("got %d parameters, want %d: %v", len(got), len(want), got)
	}
	for _, n := range got {
		if !want[n] {
			t.Errorf("unexpected parameter %s", n)
		}
	}
	// Full-width shapes are torchvision's.
	full := Config{VocabSize: 10, EmbedDim: 256, HiddenDim: 256, ImageSize: 224, Width: 1, MaxLength: 5}
	if full.FeatureDim() != 4096 {
		t.Errorf("full FeatureDim = %d", full.FeatureDim())
	}
}

// batch of two fixed images with two different captions.
func fixedBatch(t *testing.T) *models.Batch {
	t.Helper()
	torchx.Seed(3)
	// Two clearly different images: dark noise and bright noise.
	vals := make([]float32, 2*3*32*32)
	for i := range vals {
		vals[i] = float32((i*7919)%13) / 13
		if i >= len(vals)/2 {
			vals[i] = 2 - vals[i]
		} else {
			vals[i] -= 1
		}
	}
	px, err := ts.OfSlice(vals)
	if err != nil {
		t.Fatal(err)
	}
	px, err = px.View([]int64{2, 3, 32, 32}, true)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := ts.OfSlice([]int64{1, 3, 4, 5, 2, 0, 1, 6, 7, 2, 0, 0})
	if err != nil {
		t.Fatal(err)
	}
	ids, err = ids.View([]int64{2, 6}, true)
	if err != nil {
		t.Fatal(err)
	}
	return &models.Batch{Pixels: px, InputIDs: ids}
}

func TestOverfitsAndCaptions(t *testing.T) {
	cfg := tinyConfig()
	cfg.Dropout = 0
	torchx.Seed(1)
	m, err := New(cfg, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	b := fixedBatch(t)
	defer b.Drop()
	opt, err := gnn.DefaultAdamConfig().Build(m.VarStore(), 3e-3)
	if err != nil {
		t.Fatal(err)
	}
	var first, last float64
	err = torchx.Locked(func() error {
		for step := 0; step < 150; step++ {
			err := torchx.WithScope(func(s *torchx.Scope) error {
				loss, err := m.Loss(b, true)
				if err != nil {
					return err
				}
				opt.ZeroGrad()
				if err := loss.Backward(); err != nil {
					return err
				}
				opt.Step()
				v, err := loss.Float64Value([]int64{})
				if step == 0 {
					first = v
				}
				last = v
				return err
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("loss %.3f -> %.3f", first, last)
	if !(last < first*0.2) {
		t.Errorf("loss did not drop enough: %.3f -> %.3f", first, last)
	}
	for _, beams := range []int{1, 3} {
		caps, err := m.Caption(context.Background(), b.Pixels, models.GenerateOptions{NumBeams: beams, MaxNewTokens: 5})
		if err != nil {
			t.Fatal(err)
		}
		want := [][]int64{{3, 4, 5}, {6, 7}}
		for i, c := range caps {
			if fmt.Sprint(c.IDs) != fmt.Sprint(want[i]) {
				t.Errorf("beams %d, image %d: caption %v, want %v", beams, i, c.IDs, want[i])
			}
		}
	}
}

func TestFrozenEncoderGetsNoGradient(t *testing.T) {
	m, err := New(tinyConfig(), gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.FreezeEncoder(); err != nil {
		t.Fatal(err)
	}
	b := fixedBatch(t)
	defer b.Drop()
	err = torchx.WithScope(func(s *torchx.Scope) error {
		loss, err := m.Loss(b, true)
		if err != nil {
			return err
		}
		return loss.Backward()
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range m.VarStore().Variables() {
		if isEncoderParam(name) && p.MustRequiresGrad() {
			t.Errorf("%s still requires grad", name)
		}
		if !isEncoderParam(name) && !p.MustRequiresGrad() {
			t.Errorf("decoder parameter %s frozen", name)
		}
	}
}

func TestLossErrors(t *testing.T) {
	m, err := New(tinyConfig(), gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Loss(&models.Batch{}, true); err == nil {
		t.Error("empty batch accepted")
	}
	b := fixedBatch(t)
	defer b.Drop()
	bad, _ := ts.Ones([]int64{2, 6}, gotch.Int64, gotch.CPU)
	bad, _ = bad.MulScalar(ts.IntScalar(100), true)
	b2 := &models.Batch{Pixels: b.Pixels, InputIDs: bad}
	if _, err := m.Loss(b2, true); err == nil {
		t.Error("token ids outside the vocabulary accepted")
	}
	if _, err := New(Config{VocabSize: 1}, gotch.CPU); err == nil {
		t.Error("invalid config accepted")
	}
}
