package torchx

import (
	"slices"
	"testing"

	"github.com/sugarme/gotch/ts"
)

// TestInPlaceOps checks each in-place helper's values on a small tensor, that it changes the
// tensor itself (a second handle to it sees the result), and that bad operands are errors.
func TestInPlaceOps(t *testing.T) {
	vec := func(v ...float32) *ts.Tensor {
		x, err := ts.OfSlice(v)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	for _, c := range []struct {
		name string
		op   func(x *ts.Tensor) error
		want []float32
	}{
		{"mul scalar", func(x *ts.Tensor) error { return MulScalarInPlace(x, 2) }, []float32{2, -4, 6}},
		{"mul", func(x *ts.Tensor) error { return MulInPlace(x, vec(3, 2, 1)) }, []float32{3, -4, 3}},
		{"add", func(x *ts.Tensor) error { return AddInPlace(x, vec(1, 1, 1)) }, []float32{2, -1, 4}},
		{"lerp", func(x *ts.Tensor) error { return LerpInPlace(x, vec(3, 2, 3), 0.5) }, []float32{2, 0, 3}},
		{"zero", ZeroInPlace, []float32{0, 0, 0}},
		{"fill", func(x *ts.Tensor) error { return FillInPlace(x, 7) }, []float32{7, 7, 7}},
		{"copy", func(x *ts.Tensor) error { return CopyInPlace(x, vec(9, 8, 7)) }, []float32{9, 8, 7}},
	} {
		x := vec(1, -2, 3)
		alias, err := x.ShallowClone()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.op(x); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		got, err := Float32s(alias)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	if err := AddInPlace(vec(1, 2, 3), vec(1, 2)); err == nil {
		t.Error("add of sizes 3 and 2: no error")
	}
	if err := CopyInPlace(vec(1, 2, 3), vec(1, 2)); err == nil {
		t.Error("copy of size 2 into size 3: no error")
	}
	w := vec(1, 2)
	for _, on := range []bool{true, false} {
		if err := SetRequiresGrad(w, on); err != nil {
			t.Fatal(err)
		}
		if got, err := w.RequiresGrad(); err != nil || got != on {
			t.Errorf("SetRequiresGrad(%v): requires grad %v (%v)", on, got, err)
		}
	}
}
