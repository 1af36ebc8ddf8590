package torchx

import (
	lib "github.com/sugarme/gotch/libtch"
	"github.com/sugarme/gotch/ts"
)

// In-place operations. gotch's generated in-place methods (Mul_, Add_, Zero_, ...) point the
// receiver at a newly allocated C handle and never free the old one: each call leaks a handle
// (and a malloc(0) block), and a tensor dropped later keeps its storage alive through the leaked
// handle; its Copy_ exits the process on error. These call libtch directly, free the handle
// libtch returns, leave the tensor with its one handle and return libtorch's error.

func ctensor(t *ts.Tensor) lib.Ctensor { return lib.Ctensor(t.Ctensor()) }

// endInPlace reports libtorch's error for op and frees the extra handle an in-place op returns.
func endInPlace(op string, out lib.Ctensor) error {
	if err := Check(op); err != nil {
		return err
	}
	if out != nil {
		lib.AtFree(out)
	}
	return nil
}

// MulScalarInPlace is t.mul_(v).
func MulScalarInPlace(t *ts.Tensor, v float64) error {
	s := lib.AtsFloat(v)
	defer lib.AtsFree(s)
	var out lib.Ctensor
	lib.AtgMulScalar_(&out, ctensor(t), s)
	return endInPlace("mul_", out)
}

// MulInPlace is t.mul_(o).
func MulInPlace(t, o *ts.Tensor) error {
	var out lib.Ctensor
	lib.AtgMul_(&out, ctensor(t), ctensor(o))
	return endInPlace("mul_", out)
}

// AddInPlace is t.add_(o).
func AddInPlace(t, o *ts.Tensor) error {
	var out lib.Ctensor
	lib.AtgAdd_(&out, ctensor(t), ctensor(o))
	return endInPlace("add_", out)
}

// LerpInPlace is t.lerp_(end, w).
func LerpInPlace(t, end *ts.Tensor, w float64) error {
	s := lib.AtsFloat(w)
	defer lib.AtsFree(s)
	var out lib.Ctensor
	lib.AtgLerp_(&out, ctensor(t), ctensor(end), s)
	return endInPlace("lerp_", out)
}

// ZeroInPlace is t.zero_().
func ZeroInPlace(t *ts.Tensor) error {
	var out lib.Ctensor
	lib.AtgZero_(&out, ctensor(t))
	return endInPlace("zero_", out)
}

// FillInPlace is t.fill_(v) with an integer value.
func FillInPlace(t *ts.Tensor, v int64) error {
	s := lib.AtsInt(v)
	defer lib.AtsFree(s)
	var out lib.Ctensor
	lib.AtgFill_(&out, ctensor(t), s)
	return endInPlace("fill_", out)
}

// CopyInPlace is dst.copy_(src): src's values into dst (shapes broadcast, types convert).
func CopyInPlace(dst, src *ts.Tensor) error {
	lib.AtCopy_(ctensor(dst), ctensor(src))
	return Check("copy_")
}

// SetRequiresGrad is t.requires_grad_(on): for t's tensor, so for every handle to it.
func SetRequiresGrad(t *ts.Tensor, on bool) error {
	r := int32(0)
	if on {
		r = 1
	}
	var out lib.Ctensor
	lib.AtgSetRequiresGrad(&out, ctensor(t), r)
	return endInPlace("requires_grad_", out)
}
