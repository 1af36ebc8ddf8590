package train

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"unsafe"

	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/config"
	"github.com/imgcap/imgcap/torchx"
)

// AdamEps is the ε added to Adam's denominator, as in PyTorch.
const AdamEps = 1e-8

// NoDecayer is implemented by models that choose themselves which parameters are exempt from
// weight decay; it replaces DefaultNoDecay for that model.
type NoDecayer interface {
	// NoDecay reports whether the parameter with this VarStore name gets no weight decay.
	NoDecay(name string) bool
}

// DefaultNoDecay is the rule that exempts a parameter from weight decay: every tensor with at
// most one dimension (biases, norm scales, LSTM biases, BatchNorm weights in numbered
// torchvision Sequentials), every name ending in "bias", and every name with a dot-separated
// component that contains "norm" (LayerNorm, layernorm_before, norm1), starts with "ln" (GPT-2's
// ln_1, ln_f) or starts with "bn" (bn1). Matrices, convolution kernels and embeddings decay.
func DefaultNoDecay(name string, shape []int64) bool {
	if len(shape) <= 1 || strings.HasSuffix(name, "bias") {
		return true
	}
	for _, part := range strings.Split(strings.ToLower(name), ".") {
		if strings.Contains(part, "norm") || strings.HasPrefix(part, "ln") || strings.HasPrefix(part, "bn") {
			return true
		}
	}
	return false
}

// Param is one trainable tensor and its optimizer state.
type Param struct {
	// Name is the VarStore name, e.g. "decoder.fc.weight".
	Name string
	// Shape is the tensor's shape.
	Shape []int64
	// Decay says whether weight decay applies to this parameter.
	Decay bool
	// Steps counts the optimizer updates this parameter has received.
	Steps int

	t   *ts.Tensor // the VarStore's own tensor
	m   *ts.Tensor // Adam: first moment (exp_avg); SGD: momentum buffer
	v   *ts.Tensor // Adam: second moment (exp_avg_sq); nil for SGD
	num int64
}

// Optimizer is AdamW (decoupled weight decay), Adam (L2 penalty added to the gradient) or SGD
// with momentum, written in tensor operations so that weight decay can differ per parameter.
// The update formulas and their operation order follow PyTorch's single-tensor
// implementations (torch.optim.AdamW, Adam, SGD with foreach=False). For SGD, Beta1 is the
// momentum. Parameters whose gradient is undefined in a step are skipped in that step.
type Optimizer struct {
	Kind        string  // adamw, adam or sgd
	Beta1       float64 // Adam's β1; SGD's momentum
	Beta2       float64 // Adam's β2
	Eps         float64 // Adam's ε
	WeightDecay float64 // applied to the parameters with Decay set
	Params      []*Param
}

// NewOptimizer builds the optimizer that c selects over the trainable tensors of vs (those
// with requires_grad set; frozen ones are left alone), in name order. noDecay picks the
// parameters without weight decay; nil means DefaultNoDecay. Its state tensors are zeros of the
// parameters' shapes, types and devices; Close frees them.
func NewOptimizer(vs *nn.VarStore, c config.TrainConfig, noDecay func(name string, shape []int64) bool) (*Optimizer, error) {
	kind := strings.ToLower(c.Optimizer)
	switch kind {
	case "adamw", "adam", "sgd":
	default:
		return nil, fmt.Errorf("optimizer %q: want adamw, adam or sgd", c.Optimizer)
	}
	if noDecay == nil {
		noDecay = DefaultNoDecay
	}
	o := &Optimizer{Kind: kind, Beta1: c.Beta1, Beta2: c.Beta2, Eps: AdamEps, WeightDecay: c.WeightDecay}
	params, err := trainableParams(vs)
	if err != nil {
		return nil, err
	}
	err = torchx.NoGrad(func() error {
		for _, p := range params {
			p.Decay = !noDecay(p.Name, p.Shape)
			var err error
			if p.m, err = p.t.ZerosLike(false); err != nil {
				return torchx.Err("optimizer state for "+p.Name, err)
			}
			if kind != "sgd" {
				if p.v, err = p.t.ZerosLike(false); err != nil {
					return torchx.Err("optimizer state for "+p.Name, err)
				}
			}
			o.Params = append(o.Params, p)
		}
		return nil
	})
	if err != nil {
		o.Close()
		return nil, err
	}
	if len(o.Params) == 0 {
		return nil, fmt.Errorf("optimizer: the model has no trainable parameters")
	}
	return o, nil
}

// trainableParams lists the VarStore's tensors that require gradients, named by their
// VarStore paths and sorted by name.
func trainableParams(vs *nn.VarStore) ([]*Param, error) {
	names := map[unsafe.Pointer]string{}
	for name, t := range vs.Variables() {
		names[t.Ctensor()] = name
	}
	var params []*Param
	for _, t := range vs.TrainableVariables() {
		name, ok := names[t.Ctensor()]
		if !ok {
			return nil, fmt.Errorf("optimizer: a trainable tensor has no name in the VarStore")
		}
		shape, err := t.Size()
		if err != nil {
			return nil, torchx.Err("size of "+name, err)
		}
		n := int64(1)
		for _, d := range shape {
			n *= d
		}
		params = append(params, &Param{Name: name, Shape: shape, t: t, num: n})
	}
	sort.Slice(params, func(i, j int) bool { return params[i].Name < params[j].Name })
	return params, nil
}

// Close frees the optimizer's state tensors.
func (o *Optimizer) Close() {
	for _, p := range o.Params {
		for _, t := range []*ts.Tensor{p.m, p.v} {
			if t != nil {
				_ = t.Drop()
			}
		}
		p.m, p.v = nil, nil
	}
}

// Summary describes the parameter groups in one line, e.g.
// "adamw: 6 tensors (1.2M values) with weight decay 0.01, 10 tensors (3.1k values) without".
func (o *Optimizer) Summary() string {
	var td, tn, vd, vn int64
	for _, p := range o.Params {
		if p.Decay {
			td++
			vd += p.num
		} else {
			tn++
			vn += p.num
		}
	}
	return fmt.Sprintf("%s: %d tensors (%s values) with weight decay %g, %d tensors (%s values) without",
		o.Kind, td, humanCount(vd), o.WeightDecay, tn, humanCount(vn))
}

// Step updates every parameter that has a gradient, with learning rate lr. It runs without
// gradient recording and frees its temporaries.
func (o *Optimizer) Step(lr float64) error {
	return torchx.NoGrad(func() error {
		return torchx.WithScope(func(*torchx.Scope) error {
			for _, p := range o.Params {
				g, err := p.grad()
				if err != nil {
					return err
				}
				if g == nil {
					continue
				}
				p.Steps++
				if o.Kind == "sgd" {
					err = o.sgd(p, g, lr)
				} else {
					err = o.adam(p, g, lr)
				}
				if err != nil {
					return fmt.Errorf("%s step for %s: %w", o.Kind, p.Name, err)
				}
			}
			return nil
		})
	})
}

// adam is torch.optim.AdamW's (and, with coupled decay, Adam's) single-tensor update.
func (o *Optimizer) adam(p *Param, g *ts.Tensor, lr float64) error {
	var err error
	if p.Decay && o.WeightDecay != 0 {
		if o.Kind == "adamw" {
			// param.mul_(1 - lr*weight_decay)
			if err := torchx.MulScalarInPlace(p.t, 1-lr*o.WeightDecay); err != nil {
				return fmt.Errorf("decay: %w", err)
			}
		} else {
			// grad = grad.add(param, alpha=weight_decay)
			wp, err := p.t.MulScalar(ts.FloatScalar(o.WeightDecay), false)
			if err != nil {
				return torchx.Err("decay", err)
			}
			if g, err = g.Add(wp, false); err != nil {
				return torchx.Err("decay", err)
			}
		}
	}
	// exp_avg.lerp_(grad, 1 - beta1)
	if err := torchx.LerpInPlace(p.m, g, 1-o.Beta1); err != nil {
		return fmt.Errorf("first moment: %w", err)
	}
	// exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
	if err := torchx.MulScalarInPlace(p.v, o.Beta2); err != nil {
		return fmt.Errorf("second moment: %w", err)
	}
	gg, err := g.MulScalar(ts.FloatScalar(1-o.Beta2), false)
	if err != nil {
		return torchx.Err("second moment", err)
	}
	if gg, err = gg.Mul(g, false); err != nil {
		return torchx.Err("second moment", err)
	}
	if err := torchx.AddInPlace(p.v, gg); err != nil {
		return fmt.Errorf("second moment: %w", err)
	}
	// denom = (exp_avg_sq.sqrt() / sqrt(bias_correction2)).add_(eps)
	step := float64(p.Steps)
	bc1 := 1 - math.Pow(o.Beta1, step)
	bc2 := 1 - math.Pow(o.Beta2, step)
	denom, err := p.v.Sqrt(false)
	if err != nil {
		return torchx.Err("denominator", err)
	}
	if denom, err = denom.DivScalar(ts.FloatScalar(math.Sqrt(bc2)), false); err != nil {
		return torchx.Err("denominator", err)
	}
	if denom, err = denom.AddScalar(ts.FloatScalar(o.Eps), false); err != nil {
		return torchx.Err("denominator", err)
	}
	// param.addcdiv_(exp_avg, denom, value=-lr/bias_correction1), computed as
	// param + (value*exp_avg)/denom like ATen's addcdiv kernel.
	upd, err := p.m.MulScalar(ts.FloatScalar(-lr/bc1), false)
	if err != nil {
		return torchx.Err("update", err)
	}
	if upd, err = upd.Div(denom, false); err != nil {
		return torchx.Err("update", err)
	}
	if err := torchx.AddInPlace(p.t, upd); err != nil {
		return fmt.Errorf("update: %w", err)
	}
	return nil
}

// sgd is torch.optim.SGD's single-tensor update with momentum Beta1 (no dampening, no
// Nesterov) and L2 weight decay.
func (o *Optimizer) sgd(p *Param, g *ts.Tensor, lr float64) error {
	var err error
	if p.Decay && o.WeightDecay != 0 {
		wp, err := p.t.MulScalar(ts.FloatScalar(o.WeightDecay), false)
		if err != nil {
			return torchx.Err("decay", err)
		}
		if g, err = g.Add(wp, false); err != nil {
			return torchx.Err("decay", err)
		}
	}
	if o.Beta1 != 0 {
		if p.Steps == 1 {
			// buf = clone(d_p)
			if err := torchx.CopyInPlace(p.m, g); err != nil {
				return fmt.Errorf("momentum: %w", err)
			}
		} else {
			// buf.mul_(momentum).add_(d_p)
			if err := torchx.MulScalarInPlace(p.m, o.Beta1); err != nil {
				return fmt.Errorf("momentum: %w", err)
			}
			if err := torchx.AddInPlace(p.m, g); err != nil {
				return fmt.Errorf("momentum: %w", err)
			}
		}
		g = p.m
	}
	// param.add_(d_p, alpha=-lr)
	upd, err := g.MulScalar(ts.FloatScalar(-lr), false)
	if err != nil {
		return torchx.Err("update", err)
	}
	if err := torchx.AddInPlace(p.t, upd); err != nil {
		return fmt.Errorf("update: %w", err)
	}
	return nil
}

// grad returns the parameter's gradient, or nil when it has none yet.
func (p *Param) grad() (*ts.Tensor, error) {
	g, err := p.t.Grad(false)
	if err != nil {
		return nil, torchx.Err("gradient of "+p.Name, err)
	}
	ok, err := g.Defined()
	if err != nil {
		return nil, torchx.Err("gradient of "+p.Name, err)
	}
	if !ok {
		return nil, nil
	}
	return g, nil
}

// ZeroGrad sets every parameter's gradient to zeros (when it has one). Gradients are zeroed,
// not removed, so a parameter that once had a gradient keeps being updated (like PyTorch's
// zero_grad(set_to_none=False)).
func (o *Optimizer) ZeroGrad() error {
	return torchx.NoGrad(func() error {
		return torchx.WithScope(func(*torchx.Scope) error {
			for _, p := range o.Params {
				g, err := p.grad()
				if err != nil {
					return err
				}
				if g == nil {
					continue
				}
				if err := torchx.ZeroInPlace(g); err != nil {
					return fmt.Errorf("zero gradient of %s: %w", p.Name, err)
				}
			}
			return nil
		})
	})
}

// ClipGradNorm scales the gradients so that their global L2 norm is at most max (when max > 0),
// like torch.nn.utils.clip_grad_norm_: total = ‖(‖g₁‖, …, ‖gₙ‖)‖, coef = max/(total+1e-6)
// clamped to 1. It returns the norm before clipping; max <= 0 only measures it. gotch's own
// Optimizer.ClipGradNorm deadlocks and is not used.
func (o *Optimizer) ClipGradNorm(max float64) (float64, error) {
	var total float64
	err := torchx.NoGrad(func() error {
		return torchx.WithScope(func(*torchx.Scope) error {
			var grads, norms []*ts.Tensor
			var names []string
			for _, p := range o.Params {
				g, err := p.grad()
				if err != nil {
					return err
				}
				if g == nil {
					continue
				}
				n, err := g.Norm(false)
				if err != nil {
					return torchx.Err("norm of gradient of "+p.Name, err)
				}
				grads = append(grads, g)
				norms = append(norms, n)
				names = append(names, p.Name)
			}
			if len(grads) == 0 {
				return nil
			}
			stacked, err := ts.Stack(norms, 0)
			if err != nil {
				return torchx.Err("gradient norm", err)
			}
			tn, err := stacked.Norm(false)
			if err != nil {
				return torchx.Err("gradient norm", err)
			}
			if total, err = tn.Float64Value([]int64{}); err != nil {
				return torchx.Err("gradient norm", err)
			}
			if max <= 0 || math.IsNaN(total) || math.IsInf(total, 0) {
				return nil
			}
			// clip_coef = max_norm / (total_norm + 1e-6), which PyTorch evaluates as
			// reciprocal(total + 1e-6) * max_norm, then clamps to 1.
			coef, err := tn.AddScalar(ts.FloatScalar(1e-6), false)
			if err != nil {
				return torchx.Err("clip coefficient", err)
			}
			if coef, err = coef.Reciprocal(false); err != nil {
				return torchx.Err("clip coefficient", err)
			}
			if coef, err = coef.MulScalar(ts.FloatScalar(max), false); err != nil {
				return torchx.Err("clip coefficient", err)
			}
			c, err := coef.Float64Value([]int64{})
			if err != nil {
				return torchx.Err("clip coefficient", err)
			}
			if c >= 1 {
				return nil // multiplying by the clamped coefficient 1 changes nothing
			}
			for i, g := range grads {
				if err := torchx.MulInPlace(g, coef); err != nil {
					return fmt.Errorf("clip gradient of %s: %w", names[i], err)
				}
			}
			return nil
		})
	})
	return total, err
}

func humanCount(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.1fG", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1fk", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}
