package train

import (
	"math"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/config"
	"github.com/imgcap/imgcap/torchx"
)

// twoParams is a VarStore with a matrix "layer.weight" (decayed), a vector "layer.bias" (not
// decayed) and a frozen "frozen" tensor.
func twoParams(t *testing.T) *nn.VarStore {
	t.Helper()
	vs := nn.NewVarStore(gotch.CPU)
	err := torchx.Locked(func() error {
		for _, p := range []struct {
			name      string
			vals      []float32
			shape     []int64
			trainable bool
		}{
			{"weight", []float32{1, -2}, []int64{1, 2}, true},
			{"bias", []float32{0.5, 0.25}, []int64{2}, true},
		} {
			x, err := ts.OfSlice(p.vals)
			if err != nil {
				return err
			}
			if x, err = x.View(p.shape, true); err != nil {
				return err
			}
			if _, err := vs.Root().Sub("layer").Add(p.name, x, p.trainable); err != nil {
				return err
			}
		}
		x, err := ts.OfSlice([]float32{7})
		if err != nil {
			return err
		}
		_, err = vs.Root().Add("frozen", x, false)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

// backward sets the gradients of the VarStore's parameters to grads by back-propagating
// Σ sum(p·c).
func backward(t *testing.T, vs *nn.VarStore, grads map[string][]float32) {
	t.Helper()
	err := torchx.WithScope(func(*torchx.Scope) error {
		var total *ts.Tensor
		for name, g := range grads {
			v := vs.Variables()[name]
			c, err := ts.OfSlice(g)
			if err != nil {
				return err
			}
			shape, _ := v.Size()
			if c, err = c.View(shape, true); err != nil {
				return err
			}
			prod, err := v.Mul(c, false)
			if err != nil {
				return err
			}
			s, err := prod.Sum(gotch.Float, false)
			if err != nil {
				return err
			}
			if total == nil {
				total = s
			} else if total, err = total.Add(s, false); err != nil {
				return err
			}
		}
		return total.Backward()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// reference is the optimizers' textbook update in float64 (the algorithm boxes of the PyTorch
// documentation), for one parameter.
type reference struct {
	kind           string
	lr, b1, b2, wd float64
	decay          bool
	p, m, v        []float64
	step           int
}

func (r *reference) update(g []float64) {
	r.step++
	for i := range r.p {
		gi := g[i]
		wd := 0.0
		if r.decay {
			wd = r.wd
		}
		switch r.kind {
		case "adamw", "adam":
			if r.kind == "adamw" {
				r.p[i] *= 1 - r.lr*wd
			} else {
				gi += wd * r.p[i]
			}
			r.m[i] = r.b1*r.m[i] + (1-r.b1)*gi
			r.v[i] = r.b2*r.v[i] + (1-r.b2)*gi*gi
			mhat := r.m[i] / (1 - math.Pow(r.b1, float64(r.step)))
			vhat := r.v[i] / (1 - math.Pow(r.b2, float64(r.step)))
			r.p[i] -= r.lr * mhat / (math.Sqrt(vhat) + 1e-8)
		case "sgd":
			gi += wd * r.p[i]
			if r.step == 1 {
				r.m[i] = gi
			} else {
				r.m[i] = r.b1*r.m[i] + gi
			}
			r.p[i] -= r.lr * r.m[i]
		}
	}
}

func TestOptimizersMatchReference(t *testing.T) {
	grads := []map[string][]float32{
		{"layer.weight": {0.5, -1.5}, "layer.bias": {2, -0.125}},
		{"layer.weight": {-0.25, 3}, "layer.bias": {0.75, 0.5}},
	}
	lrs := []float64{0.1, 0.05}
	for _, kind := range []string{"adamw", "adam", "sgd"} {
		t.Run(kind, func(t *testing.T) {
			c := config.Default().Train
			c.Optimizer, c.WeightDecay, c.Beta1, c.Beta2 = kind, 0.1, 0.9, 0.999
			vs := twoParams(t)
			opt, err := NewOptimizer(vs, c, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer opt.Close()
			if len(opt.Params) != 2 || opt.Params[0].Name != "layer.bias" || opt.Params[1].Name != "layer.weight" {
				t.Fatalf("params %v; want layer.bias, layer.weight (frozen excluded)", opt.Params)
			}
			if opt.Params[0].Decay || !opt.Params[1].Decay {
				t.Errorf("decay flags bias=%v weight=%v; want false, true", opt.Params[0].Decay, opt.Params[1].Decay)
			}
			refs := map[string]*reference{
				"layer.weight": {kind: kind, lr: 0, b1: 0.9, b2: 0.999, wd: 0.1, decay: true, p: []float64{1, -2}, m: make([]float64, 2), v: make([]float64, 2)},
				"layer.bias":   {kind: kind, lr: 0, b1: 0.9, b2: 0.999, wd: 0.1, decay: false, p: []float64{0.5, 0.25}, m: make([]float64, 2), v: make([]float64, 2)},
			}
			for step, g := range grads {
				backward(t, vs, g)
				if err := opt.Step(lrs[step]); err != nil {
					t.Fatal(err)
				}
				if err := opt.ZeroGrad(); err != nil {
					t.Fatal(err)
				}
				for name, r := range refs {
					r.lr = lrs[step]
					g64 := make([]float64, len(g[name]))
					for i, x := range g[name] {
						g64[i] = float64(x)
					}
					r.update(g64)
				}
				for name, r := range refs {
					v := vs.Variables()[name]
					got := values(t, &v)
					for i := range got {
						if math.Abs(got[i]-r.p[i]) > 2e-6*math.Max(1, math.Abs(r.p[i])) {
							t.Errorf("step %d %s[%d] = %.8f; reference %.8f", step+1, name, i, got[i], r.p[i])
						}
					}
				}
			}
			for _, p := range opt.Params {
				if p.Steps != 2 {
					t.Errorf("%s took %d steps; want 2", p.Name, p.Steps)
				}
				g, _ := p.t.Grad(false)
				for _, x := range values(t, g) {
					if x != 0 {
						t.Errorf("%s: gradient not zeroed: %v", p.Name, x)
					}
				}
			}
			fv := vs.Variables()["frozen"]
			if got := values(t, &fv); got[0] != 7 {
				t.Errorf("frozen tensor changed to %v", got)
			}
		})
	}
	// One step of AdamW by hand: m̂ = g and v̂ = g², so the update is -lr·g/(|g|+ε) after the
	// decay p·(1 - lr·wd): weight[0] = 1·(1 - 0.1·0.1) - 0.1·0.5/(0.5+1e-8) = 0.89 (to 1e-7).
	c := config.Default().Train
	c.Optimizer, c.WeightDecay = "adamw", 0.1
	vs := twoParams(t)
	opt, err := NewOptimizer(vs, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer opt.Close()
	backward(t, vs, grads[0])
	if err := opt.Step(0.1); err != nil {
		t.Fatal(err)
	}
	w := vs.Variables()["layer.weight"]
	b := vs.Variables()["layer.bias"]
	gw, gb := values(t, &w), values(t, &b)
	for _, chk := range []struct {
		name      string
		got, want float64
	}{
		{"weight[0]", gw[0], 0.89}, {"weight[1]", gw[1], -2*0.99 + 0.1},
		{"bias[0] (no decay)", gb[0], 0.4}, {"bias[1] (no decay)", gb[1], 0.35},
	} {
		if math.Abs(chk.got-chk.want) > 1e-6 {
			t.Errorf("%s = %.8f; want %.8f", chk.name, chk.got, chk.want)
		}
	}
}

func TestNoDecayRule(t *testing.T) {
	cases := []struct {
		name  string
		shape []int64
		want  bool
	}{
		{"fc1.weight", []int64{16, 8}, false},
		{"fc1.bias", []int64{16}, true},
		{"encoder.layer.0.attention.output.LayerNorm.weight", []int64{768}, true},
		{"vit.encoder.layer.0.layernorm_before.weight", []int64{4, 4}, true},
		{"transformer.h.0.ln_1.weight", []int64{4, 4}, true},
		{"transformer.ln_f.bias", []int64{4, 4}, true},
		{"bn1.weight", []int64{4, 4}, true},
		{"features.0.weight", []int64{64, 3, 3, 3}, false},
		{"features.1.weight", []int64{64}, true}, // a BatchNorm in a numbered Sequential
		{"decoder.lstm.bias_ih_l0", []int64{1024}, true},
		{"decoder.lstm.weight_ih_l0", []int64{1024, 256}, false},
		{"embeddings.word_embeddings.weight", []int64{30522, 768}, false},
		{"linear.weight", []int64{4, 4}, false},
		{"scale", []int64{}, true},
	}
	for _, tc := range cases {
		if got := DefaultNoDecay(tc.name, tc.shape); got != tc.want {
			t.Errorf("DefaultNoDecay(%q, %v) = %v; want %v", tc.name, tc.shape, got, tc.want)
		}
	}
}

func TestModelOverridesNoDecay(t *testing.T) {
	m := noDecayModel{newToy(t, 1, 4, 4, 2, 0)}
	m.noDecay = func(name string) bool { return name == "fc1.weight" }
	r, err := newRunner(Options{Model: m, Train: newToyData(8, 4, 2, 4, 1), Config: baseConfig(), RunDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	for _, p := range r.opt.Params {
		if p.Decay != (p.Name != "fc1.weight") {
			t.Errorf("%s: decay %v", p.Name, p.Decay)
		}
		if p.Name == "frozen_bias" {
			t.Error("the frozen tensor is in the optimizer")
		}
	}
	if len(r.opt.Params) != 6 {
		t.Errorf("%d parameters; want the 6 trainable ones", len(r.opt.Params))
	}
}

func TestClipGradNorm(t *testing.T) {
	cases := []struct {
		name     string
		max      float64
		wantNorm float64
		scale    float64
	}{
		{"clips", 6.5, 13, 6.5 / (13 + 1e-6)},
		{"below the limit", 20, 13, 1},
		{"measure only", 0, 13, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			vs := twoParams(t)
			opt, err := NewOptimizer(vs, config.Default().Train, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer opt.Close()
			// ‖(3,4)‖ = 5 and ‖(12,0)‖ = 12: global norm 13.
			backward(t, vs, map[string][]float32{"layer.weight": {3, 4}, "layer.bias": {12, 0}})
			norm, err := opt.ClipGradNorm(tc.max)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(norm-tc.wantNorm) > 1e-5 {
				t.Errorf("norm %v; want %v", norm, tc.wantNorm)
			}
			want := map[string][]float64{"layer.weight": {3, 4}, "layer.bias": {12, 0}}
			for _, p := range opt.Params {
				g, _ := p.t.Grad(false)
				for i, x := range values(t, g) {
					if w := want[p.Name][i] * tc.scale; math.Abs(x-w) > 1e-5 {
						t.Errorf("%s grad[%d] = %v; want %v", p.Name, i, x, w)
					}
				}
			}
		})
	}
}
