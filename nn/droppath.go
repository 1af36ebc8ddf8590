package nn

import (
	"fmt"

	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/torchx"
)

// DropPath is stochastic depth (Huang et al., 2016) as timm's drop_path applies it to a residual
// branch: in training each sample (index of the first dimension) of x is zeroed with probability
// p and the kept samples are scaled by 1/(1−p), so the expectation is unchanged. When train is
// false or p is 0 it returns a shallow copy of x, with no computation, so callers may always
// drop the result. p outside [0, 1) is an error.
func DropPath(x *ts.Tensor, p float64, train bool) (out *ts.Tensor, err error) {
	if !(p >= 0 && p < 1) {
		return nil, fmt.Errorf("drop path: probability %v must be within [0, 1)", p)
	}
	if !train || p == 0 {
		out, err := x.ShallowClone()
		return out, torchx.Err("drop path", err)
	}
	defer torchx.Catch(&err)
	s := torchx.MustSize(x)
	if len(s) == 0 {
		return nil, fmt.Errorf("drop path: a scalar has no sample dimension")
	}
	// One Bernoulli(1−p) draw per sample, shaped [B, 1, …, 1] to broadcast over the rest.
	shape := make([]int64, len(s))
	for i := range shape {
		shape[i] = 1
	}
	shape[0] = s[0]
	dev, err := x.Device()
	torchx.MustOK(torchx.Err("drop path", err))
	keep := 1 - p
	mask := torchx.Must(ts.Empty(shape, x.DType(), dev))
	defer mask.Drop()
	torchx.MustOK(torchx.Err("drop path", mask.BernoulliFloat_(keep)))
	torchx.MustOK(torchx.Err("drop path", mask.DivScalar_(ts.FloatScalar(keep))))
	return x.Mul(mask, false)
}

// DropPathRates are the per-layer stochastic-depth probabilities of a depth-layer transformer
// whose last layer drops with probability rate: linspace(0, rate, depth), the "stochastic depth
// decay rule" of timm's and BLIP's VisionTransformer (one layer gets 0, as torch.linspace(0, r, 1)).
func DropPathRates(rate float64, depth int) []float64 {
	rates := make([]float64, max(depth, 0))
	for i := 1; i < depth; i++ {
		rates[i] = rate * float64(i) / float64(depth-1)
	}
	return rates
}
