package blip

import (
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	gnn "github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/models"
	"github.com/imgcap/imgcap/torchx"
)

// tinyConfig is the fixture's (tiny) configuration.
func tinyConfig(t *testing.T) Config {
	t.Helper()
	c, err := ReadConfig(captionDir)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// randomBatch makes a batch of b random images and right-padded random captions of up to T
// tokens (the first token stands for [CLS]), sized from cfg.
func randomBatch(t *testing.T, cfg Config, b, T int, imageIDs []int64, seed uint64) *models.Batch {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	v := cfg.Vision
	px := make([]float32, b*v.NumChannels*v.ImageSize*v.ImageSize)
	for i := range px {
		px[i] = float32(rng.NormFloat64())
	}
	var ids [][]int64
	for i := 0; i < b; i++ {
		n := T - rng.IntN(T/2)
		row := []int64{101 % int64(cfg.Text.VocabSize)}
		for len(row) < n {
			tok := 1 + rng.Int64N(int64(cfg.Text.VocabSize)-1)
			if tok == cfg.Text.PadTokenID {
				continue
			}
			row = append(row, tok)
		}
		ids = append(ids, row)
	}
	flat := make([][]float32, b)
	per := v.NumChannels * v.ImageSize * v.ImageSize
	for i := range flat {
		flat[i] = px[i*per : (i+1)*per]
	}
	batch, err := models.Collate(flat, []int64{int64(v.NumChannels), int64(v.ImageSize), int64(v.ImageSize)}, ids,
		cfg.Text.PadTokenID, imageIDs, nil, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	return batch
}

func scalar(t *testing.T, x *ts.Tensor) float64 {
	t.Helper()
	v, err := torchx.Float32s(x)
	if err != nil {
		t.Fatal(err)
	}
	return float64(v[0])
}

// TestPretrainLossesDecrease optimises the three objectives on one batch of a tiny random model
// and checks that every loss is finite and that the losses go down.
func TestPretrainLossesDecrease(t *testing.T) {
	cfg := tinyConfig(t)
	torchx.Seed(7)
	m, err := NewPretrainer(cfg, DefaultPretrainOptions(), gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	batch := randomBatch(t, cfg, 4, 8, nil, 3)
	defer batch.Drop()
	opt, err := gnn.DefaultAdamConfig().Build(m.VarStore(), 2e-3)
	if err != nil {
		t.Fatal(err)
	}
	snapshot := func() map[string][]float32 {
		out := map[string][]float32{}
		for name := range m.VarStore().Variables() {
			v, err := m.VarStore().Root().Get(name)
			if err != nil {
				t.Fatal(err)
			}
			vals, err := torchx.Float32s(v)
			if err != nil {
				t.Fatal(err)
			}
			out[name] = vals
		}
		return out
	}
	before := snapshot()
	const steps = 25
	type rec struct{ itc, itm, lm, total float64 }
	var first, last rec
	err = torchx.WithGrad(func() error {
		for step := 0; step < steps; step++ {
			err := torchx.WithScope(func(*torchx.Scope) error {
				l, err := m.Losses(batch, true)
				if err != nil {
					return err
				}
				r := rec{scalar(t, l.ITC), scalar(t, l.ITM), scalar(t, l.LM), scalar(t, l.Total)}
				for _, x := range []float64{r.itc, r.itm, r.lm, r.total} {
					if math.IsNaN(x) || math.IsInf(x, 0) {
						t.Fatalf("step %d: loss not finite: %+v", step, r)
					}
				}
				if want := r.itc + r.itm + r.lm; math.Abs(r.total-want) > 1e-5*want {
					t.Fatalf("step %d: total %.6f is not ITC + ITM + LM = %.6f", step, r.total, want)
				}
				if step == 0 {
					first = r
				}
				last = r
				return opt.BackwardStep(l.Total)
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
	t.Logf("step 0: %+v; step %d: %+v", first, steps-1, last)
	if !(last.itc < first.itc && last.lm < 0.9*first.lm && last.total < 0.9*first.total) {
		t.Errorf("losses did not go down: %+v -> %+v", first, last)
	}
	// Every parameter is reached by some objective (the text encoder's cross-attention through
	// ITM, the decoder's through LM, temp through ITC): none is left at its initial value.
	after := snapshot()
	for name, b := range before {
		if reflect.DeepEqual(b, after[name]) {
			t.Errorf("%s did not change in training", name)
		}
	}
}

func TestPretrainWeightsAndTemperatureClamp(t *testing.T) {
	cfg := tinyConfig(t)
	batch := randomBatch(t, cfg, 3, 6, nil, 5)
	defer batch.Drop()
	tests := []struct {
		name    string
		temp    float64
		weights [3]float64
		want    [3]bool // ITC, ITM, LM computed
	}{
		{"too hot", 5, [3]float64{1, 1, 1}, [3]bool{true, true, true}},
		{"too cold", 1e-6, [3]float64{1, 1, 1}, [3]bool{true, true, true}},
		{"lm only", 0.07, [3]float64{0, 0, 2}, [3]bool{false, false, true}},
		{"itm only", 0.07, [3]float64{0, 1, 0}, [3]bool{false, true, false}},
	}
	o := DefaultPretrainOptions()
	m, err := NewPretrainer(cfg, o, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		m.Opts.WeightITC, m.Opts.WeightITM, m.Opts.WeightLM = tt.weights[0], tt.weights[1], tt.weights[2]
		err := torchx.NoGrad(func() error {
			if err := m.Temp.Fill_(ts.FloatScalar(tt.temp)); err != nil {
				return err
			}
			return torchx.WithScope(func(*torchx.Scope) error {
				l, err := m.Losses(batch, false)
				if err != nil {
					return err
				}
				got := [3]bool{l.ITC != nil, l.ITM != nil, l.LM != nil}
				if got != tt.want {
					t.Errorf("%s: computed %v, want %v", tt.name, got, tt.want)
				}
				if temp := scalar(t, m.Temp); temp < o.TempMin || temp > o.TempMax {
					t.Errorf("%s: temperature %g outside [%g, %g]", tt.name, temp, o.TempMin, o.TempMax)
				}
				var want float64
				for i, x := range []*ts.Tensor{l.ITC, l.ITM, l.LM} {
					if x != nil {
						want += tt.weights[i] * scalar(t, x)
					}
				}
				if got := scalar(t, l.Total); math.Abs(got-want) > 1e-5*math.Abs(want) {
					t.Errorf("%s: total %g, want %g", tt.name, got, want)
				}
				return nil
			})
		})
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
	}
	// The temperature bounds are the options'.
	if math.Abs(scalar(t, m.Temp)-0.07) > 1e-7 {
		t.Errorf("temperature %g moved inside its bounds", scalar(t, m.Temp))
	}
	// Batches without two different images cannot contrast.
	same := randomBatch(t, cfg, 2, 6, []int64{9, 9}, 5)
	defer same.Drop()
	if _, err := m.Losses(same, false); err == nil || !strings.Contains(err.Error(), "another image") {
		t.Errorf("one image only: %v", err)
	}
	for _, bad := range []PretrainOptions{
		{WeightITC: 1, TempInit: 0.07, TempMin: 0.5, TempMax: 0.001},
		{TempInit: 0.07, TempMin: 0.001, TempMax: 0.5},
		{WeightLM: 1, TempInit: 1, TempMin: 0.001, TempMax: 0.5},
		{WeightLM: 1, TempInit: 0.07, TempMin: 0.001, TempMax: 0.5, LabelSmoothing: -1},
	} {
		if _, err := NewPretrainer(cfg, bad, gotch.CPU); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}

func TestHardNegativesNeverPositive(t *testing.T) {
	tests := []struct {
		name string
		ids  []int64
	}{
		{"distinct images", nil},
		{"repeated images", []int64{4, 4, 7, 8, 8, 8}},
		{"two images", []int64{1, 2, 1, 2, 1, 2}},
	}
	rng := rand.New(rand.NewPCG(11, 2))
	for _, tt := range tests {
		B := 6
		pos, err := positives(tt.ids, B)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[[2]int64]bool{}
		err = torchx.NoGrad(func() error {
			return torchx.WithScope(func(*torchx.Scope) error {
				posT, err := floatMatrix(pos, B, gotch.CPU)
				if err != nil {
					return err
				}
				for trial := 0; trial < 100; trial++ {
					sim := make([]float32, B*B)
					for i := range sim {
						// Strong positives make the softmax put almost all mass on them.
						sim[i] = float32(rng.NormFloat64())
						if pos[i] == 1 {
							sim[i] += 30
						}
					}
					simT, err := floatMatrix(sim, B, gotch.CPU)
					if err != nil {
						return err
					}
					negImg, negTxt, err := SampleHardNegatives(simT, posT)
					if err != nil {
						return err
					}
					for i := 0; i < B; i++ {
						// Text i with image negImg[i]; image i with text negTxt[i].
						if pos[int(negImg[i])*B+i] == 1 || pos[i*B+int(negTxt[i])] == 1 {
							t.Fatalf("%s: row %d drew a positive: images %v, texts %v", tt.name, i, negImg, negTxt)
						}
						seen[[2]int64{int64(i), negImg[i]}] = true
					}
				}
				return nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(seen) <= B {
			t.Errorf("%s: negatives never vary (%d distinct pairs)", tt.name, len(seen))
		}
	}
	if _, err := positives([]int64{3, 3}, 2); err == nil {
		t.Error("a batch of one image has no negatives: no error")
	}
}

// TestContrastiveLossValue checks ContrastiveLoss against the formula computed in Go.
func TestContrastiveLossValue(t *testing.T) {
	const B, D = 4, 5
	rng := rand.New(rand.NewPCG(3, 4))
	norm := func() []float32 {
		v := make([]float32, B*D)
		for i := 0; i < B; i++ {
			var s float64
			for j := 0; j < D; j++ {
				x := rng.NormFloat64()
				v[i*D+j] = float32(x)
				s += x * x
			}
			for j := 0; j < D; j++ {
				v[i*D+j] /= float32(math.Sqrt(s))
			}
		}
		return v
	}
	img, txt := norm(), norm()
	pos, err := positives([]int64{1, 2, 1, 3}, B)
	if err != nil {
		t.Fatal(err)
	}
	const temp = 0.1
	// Reference.
	sim := func(i, j int) float64 {
		var s float64
		for k := 0; k < D; k++ {
			s += float64(img[i*D+k]) * float64(txt[j*D+k])
		}
		return s / temp
	}
	dir := func(s func(i, j int) float64, p func(i, j int) float64) float64 {
		var total float64
		for i := 0; i < B; i++ {
			var lse, npos float64
			for j := 0; j < B; j++ {
				lse += math.Exp(s(i, j))
				npos += p(i, j)
			}
			for j := 0; j < B; j++ {
				total -= p(i, j) / npos * (s(i, j) - math.Log(lse))
			}
		}
		return total / B
	}
	want := (dir(sim, func(i, j int) float64 { return float64(pos[i*B+j]) }) +
		dir(func(i, j int) float64 { return sim(j, i) }, func(i, j int) float64 { return float64(pos[j*B+i]) })) / 2
	err = torchx.NoGrad(func() error {
		return torchx.WithScope(func(*torchx.Scope) error {
			it, _ := floatMatrix(img, B, gotch.CPU)
			tt, _ := floatMatrix(txt, B, gotch.CPU)
			pt, _ := floatMatrix(pos, B, gotch.CPU)
			tp, err := ts.Full([]int64{1}, ts.FloatScalar(temp), gotch.Float, gotch.CPU)
			if err != nil {
				return err
			}
			loss, s, err := ContrastiveLoss(it, tt, tp, pt)
			if err != nil {
				return err
			}
			if got := scalar(t, loss); math.Abs(got-want) > 1e-5*want {
				t.Errorf("ITC loss %.7f, want %.7f", got, want)
			}
			sv, _ := torchx.Float32s(s)
			if math.Abs(float64(sv[1])-sim(0, 1)) > 1e-4 {
				t.Errorf("sim[0][1] %g, want %g", sv[1], sim(0, 1))
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestDecoderInputs(t *testing.T) {
	err := torchx.NoGrad(func() error {
		return torchx.WithScope(func(*torchx.Scope) error {
			ids, _ := ts.OfSlice([]int64{101, 5, 6, 102, 101, 7, 102, 0})
			ids, _ = ids.View([]int64{2, 4}, true)
			mask, _ := ts.OfSlice([]int64{1, 1, 1, 1, 1, 1, 1, 0})
			mask, _ = mask.View([]int64{2, 4}, true)
			in, labels, err := DecoderInputs(ids, mask, 30522)
			if err != nil {
				return err
			}
			gi, _ := torchx.Int64s(in)
			gl, _ := torchx.Int64s(labels)
			if want := []int64{30522, 5, 6, 102, 30522, 7, 102, 0}; !reflect.DeepEqual(gi, want) {
				t.Errorf("decoder input %v, want %v", gi, want)
			}
			if want := []int64{30522, 5, 6, 102, 30522, 7, 102, -100}; !reflect.DeepEqual(gl, want) {
				t.Errorf("labels %v, want %v", gl, want)
			}
			orig, _ := torchx.Int64s(ids)
			if orig[0] != 101 {
				t.Errorf("input ids modified: %v", orig)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}
