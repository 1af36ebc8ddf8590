package nn

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	gnn "github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/torchx"
)

// dpTensor makes a float32 tensor of the given shape from vals.
func dpTensor(t *testing.T, vals []float32, shape ...int64) *ts.Tensor {
	t.Helper()
	x, err := ts.OfSlice(vals)
	if err != nil {
		t.Fatal(err)
	}
	v, err := x.View(shape, true)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// dpRandom are n values drawn from N(0, 1) + 2 (never zero in practice) with seed.
func dpRandom(n int, seed uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed, 7))
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(rng.NormFloat64() + 2)
	}
	return out
}

func dpValues(t *testing.T, x *ts.Tensor) []float32 {
	t.Helper()
	v, err := torchx.Float32s(x)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestDropPathStatistics checks, over many samples, that DropPath zeroes whole samples (never
// parts of one) at rate p, that every kept sample is the input times 1/(1−p), and that the
// number of zeroed samples is within 5 standard deviations of N·p.
func TestDropPathStatistics(t *testing.T) {
	const n, per = 4000, 6
	for _, p := range []float64{0.1, 0.5, 0.9} {
		torchx.Seed(11)
		in := dpRandom(n*per, 3)
		x := dpTensor(t, in, n, 3, 2)
		y, err := DropPath(x, p, true)
		if err != nil {
			t.Fatal(err)
		}
		got := dpValues(t, y)
		x.Drop()
		y.Drop()
		scale := 1 / (1 - p)
		zeroed := 0
		for s := 0; s < n; s++ {
			row, want := got[s*per:(s+1)*per], in[s*per:(s+1)*per]
			if row[0] == 0 {
				zeroed++
				for j, v := range row {
					if v != 0 {
						t.Fatalf("p %v sample %d: partly dropped: element %d = %v", p, s, j, v)
					}
				}
				continue
			}
			for j, v := range row {
				w := float64(want[j]) * scale
				if math.Abs(float64(v)-w) > 2e-7*math.Abs(w) {
					t.Fatalf("p %v sample %d element %d: %v, want %v·1/(1−p) = %v", p, s, j, v, want[j], w)
				}
			}
		}
		sd := math.Sqrt(float64(n) * p * (1 - p))
		if d := math.Abs(float64(zeroed) - float64(n)*p); d > 5*sd {
			t.Errorf("p %v: %d of %d samples dropped, want %.0f ± %.0f", p, zeroed, n, float64(n)*p, 5*sd)
		}
	}
}

// TestDropPathIdentity checks that outside training, or with p = 0, DropPath returns the input
// values bit for bit (in a tensor the caller may drop).
func TestDropPathIdentity(t *testing.T) {
	in := dpRandom(24, 5)
	tests := []struct {
		p     float64
		train bool
	}{{0.5, false}, {0, true}, {0, false}, {0.999, false}}
	for _, tt := range tests {
		x := dpTensor(t, in, 4, 3, 2)
		y, err := DropPath(x, tt.p, tt.train)
		if err != nil {
			t.Fatal(err)
		}
		y.Drop()
		got := dpValues(t, x) // x survives dropping y
		x.Drop()
		for i := range in {
			if got[i] != in[i] {
				t.Fatalf("p %v train %v: element %d %v, want %v", tt.p, tt.train, i, got[i], in[i])
			}
		}
		x = dpTensor(t, in, 4, 3, 2)
		y, _ = DropPath(x, tt.p, tt.train)
		out := dpValues(t, y)
		x.Drop()
		y.Drop()
		for i := range in {
			if math.Float32bits(out[i]) != math.Float32bits(in[i]) {
				t.Fatalf("p %v train %v: output %d %v, want %v", tt.p, tt.train, i, out[i], in[i])
			}
		}
	}
}

// TestDropPathRejects checks the errors for probabilities outside [0, 1) and for a scalar.
func TestDropPathRejects(t *testing.T) {
	x := dpTensor(t, dpRandom(6, 1), 3, 2)
	defer x.Drop()
	for _, p := range []float64{-0.1, 1, 1.5, math.NaN(), math.Inf(1)} {
		for _, train := range []bool{true, false} {
			y, err := DropPath(x, p, train)
			if err == nil || !strings.Contains(err.Error(), "drop path") {
				t.Errorf("p %v train %v: error %v", p, train, err)
			}
			if y != nil {
				y.Drop()
			}
		}
	}
	s, err := dpTensor(t, []float32{1}, 1).Squeeze(true)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Drop()
	if _, err := DropPath(s, 0.5, true); err == nil {
		t.Error("a scalar was accepted")
	}
}

// TestDropPathRates checks the per-layer rates against torch.linspace(0, rate, depth) written
// out by hand and computed as start + i·step.
func TestDropPathRates(t *testing.T) {
	tests := []struct {
		rate  float64
		depth int
		want  []float64 // nil: computed below
	}{
		{0.5, 3, []float64{0, 0.25, 0.5}},
		{0.2, 5, []float64{0, 0.05, 0.1, 0.15, 0.2}},
		{0.3, 1, []float64{0}}, // torch.linspace(0, 0.3, 1) = [0]
		{0.1, 2, []float64{0, 0.1}},
		{0, 4, []float64{0, 0, 0, 0}},
		{0.4, 0, []float64{}},
		{0.1, 24, nil}, // BLIP's ViT-large
		{0.1, 12, nil}, // ViT-base
	}
	for _, tt := range tests {
		want := tt.want
		if want == nil {
			step := tt.rate / float64(tt.depth-1)
			for i := 0; i < tt.depth; i++ {
				want = append(want, float64(i)*step)
			}
		}
		got := DropPathRates(tt.rate, tt.depth)
		if len(got) != len(want) {
			t.Fatalf("rate %v depth %d: %v, want %v", tt.rate, tt.depth, got, want)
		}
		for i := range want {
			if math.Abs(got[i]-want[i]) > 1e-12 {
				t.Errorf("rate %v depth %d: layer %d %v, want %v", tt.rate, tt.depth, i, got[i], want[i])
			}
		}
		if tt.depth > 1 && got[tt.depth-1] != tt.rate {
			t.Errorf("rate %v depth %d: last layer %v", tt.rate, tt.depth, got[tt.depth-1])
		}
	}
}

// dpBlock is a tiny pre-LN block (hidden 8, 2 heads, MLP 16) without dropout.
func dpBlock(t *testing.T, dropPath float64) *PreLNBlock {
	t.Helper()
	const h = 8
	vs := gnn.NewVarStore(gotch.CPU)
	p := vs.Root()
	lin := func(name string, in, out int64) *Linear {
		l, err := NewLinear(p.Sub(name), in, out, true)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	ln := func(name string) *LayerNorm {
		l, err := NewLayerNorm(p.Sub(name), h, 1e-5)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	act, err := Activation("gelu")
	if err != nil {
		t.Fatal(err)
	}
	return &PreLNBlock{
		LN1:      ln("ln1"),
		Attn:     &MultiHeadAttention{QKV: lin("qkv", h, 3*h), Heads: 2, Scale: 0.5},
		AttnOut:  lin("proj", h, h),
		LN2:      ln("ln2"),
		MLP:      &MLP{FC1: lin("fc1", h, 16), FC2: lin("fc2", 16, h), Act: act},
		DropPath: dropPath,
	}
}

// TestPreLNBlockDropPath checks a block's stochastic depth against its four possible outcomes per
// sample, computed from the block's parts without DropPath: x (both branches dropped),
// x + MLP(LN2(x))/keep, h = x + Attn(LN1(x))/keep, and h + MLP(LN2(h))/keep. Each sample must be
// exactly one of them, at the rates keep², keep·p, p·keep and p². Outside training the block
// must compute exactly what it does with DropPath 0.
func TestPreLNBlockDropPath(t *testing.T) {
	const n, T, h, p = 1000, 3, 8, 0.3
	keep := 1 - p
	torchx.Seed(5)
	b := dpBlock(t, p)
	in := dpRandom(n*T*h, 9)
	err := torchx.NoGrad(func() error {
		return torchx.WithScope(func(*torchx.Scope) error {
			x := dpTensor(t, in, n, T, h)
			must := func(y *ts.Tensor, err error) *ts.Tensor {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
				return y
			}
			div := func(y *ts.Tensor) *ts.Tensor { return must(y.DivScalar(ts.FloatScalar(keep), false)) }
			attn := must(b.AttnOut.Forward(must(b.Attn.SelfAttention(must(b.LN1.Forward(x)), nil, nil, false))))
			mlp := func(y *ts.Tensor) *ts.Tensor { return must(b.MLP.Forward(must(b.LN2.Forward(y)))) }
			hk := must(x.Add(div(attn), false))
			cands := [][]float32{
				dpValues(t, x),
				dpValues(t, must(x.Add(div(mlp(x)), false))),
				dpValues(t, hk),
				dpValues(t, must(hk.Add(div(mlp(hk)), false))),
			}
			got := dpValues(t, must(b.Forward(x, BlockInput{Train: true})))
			var counts [4]int
			per := T * h
			for s := 0; s < n; s++ {
				match := -1
				for c, vals := range cands {
					ok := true
					for j := s * per; j < (s+1)*per && ok; j++ {
						ok = math.Abs(float64(got[j]-vals[j])) <= 1e-5*(1+math.Abs(float64(vals[j])))
					}
					if ok {
						if match >= 0 {
							t.Fatalf("sample %d matches outcomes %d and %d", s, match, c)
						}
						match = c
					}
				}
				if match < 0 {
					t.Fatalf("sample %d is none of the four outcomes: %v", s, got[s*per:(s+1)*per])
				}
				counts[match]++
			}
			for c, prob := range []float64{p * p, p * keep, keep * p, keep * keep} {
				sd := math.Sqrt(n * prob * (1 - prob))
				if math.Abs(float64(counts[c])-n*prob) > 5*sd {
					t.Errorf("outcome %d: %d of %d samples, want %.0f ± %.0f", c, counts[c], n, n*prob, 5*sd)
				}
			}

			// Inference: identical to the block without stochastic depth.
			b0 := *b
			b0.DropPath = 0
			evalDP := dpValues(t, must(b.Forward(x, BlockInput{})))
			eval0 := dpValues(t, must(b0.Forward(x, BlockInput{})))
			train0 := dpValues(t, must(b0.Forward(x, BlockInput{Train: true})))
			for i := range eval0 {
				if math.Float32bits(evalDP[i]) != math.Float32bits(eval0[i]) {
					t.Fatalf("eval with drop path differs at %d: %v vs %v", i, evalDP[i], eval0[i])
				}
			}
			// Without dropout, training with DropPath 0 computes exactly what inference does.
			for i := range train0 {
				if math.Float32bits(train0[i]) != math.Float32bits(eval0[i]) {
					t.Fatalf("training with DropPath 0 differs from inference at %d: %v vs %v", i, train0[i], eval0[i])
				}
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}
