package nn

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	gnn "github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/internal/reftest"
	"github.com/imgcap/imgcap/torchx"
)

// int8Outputs runs layer on x and returns its values.
func int8Outputs(t *testing.T, layer Layer, x *ts.Tensor) ([]float32, []int64) {
	t.Helper()
	y, err := layer.Forward(x)
	if err != nil {
		t.Fatal(err)
	}
	defer y.Drop()
	v, err := torchx.Float32s(y)
	if err != nil {
		t.Fatal(err)
	}
	s, err := y.Size()
	if err != nil {
		t.Fatal(err)
	}
	return v, s
}

// TestInt8LayersMatchFloat checks Linear (with and without bias) and Conv1D in int8 against
// their float32 outputs, on both kernels: the few-row weight-only product (≤ 16 rows) and the
// engine's int8 GEMM (more rows), for 2-D and 3-D inputs, and that DequantizeInt8 restores the
// float32 result exactly.
func TestInt8LayersMatchFloat(t *testing.T) {
	if why := torchx.Int8Unavailable(); why != "" {
		t.Skip(why)
	}
	torchx.Seed(1)
	vs := gnn.NewVarStore(gotch.CPU)
	root := vs.Root()
	withBias, err := NewLinear(root.Sub("a"), 72, 40, true)
	if err != nil {
		t.Fatal(err)
	}
	noBias, err := NewLinear(root.Sub("b"), 72, 40, false)
	if err != nil {
		t.Fatal(err)
	}
	conv, err := NewConv1D(root.Sub("c"), 72, 40, 0.2)
	if err != nil {
		t.Fatal(err)
	}
	// Conv1D starts with a zero bias: give it one so that the bias path is checked.
	if conv.Bias, err = ts.Randn([]int64{40}, gotch.Float, gotch.CPU); err != nil {
		t.Fatal(err)
	}
	layers := []struct {
		name  string
		layer Layer
	}{{"linear", withBias}, {"linear without bias", noBias}, {"conv1d", conv}}
	shapes := [][]int64{{1, 72}, {3, 72}, {16, 72}, {17, 72}, {2, 5, 72}, {2, 60, 72}}
	for _, l := range layers {
		for _, shape := range shapes {
			x, err := ts.Randn(shape, gotch.Float, gotch.CPU)
			if err != nil {
				t.Fatal(err)
			}
			want, wantShape := int8Outputs(t, l.layer, x)
			model := &struct{ L Layer }{l.layer}
			rep, err := QuantizeInt8(model, Int8Options{})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Layers != 1 || rep.Params != 72*40 {
				t.Errorf("%s: report %+v, want 1 layer of %d weights", l.name, rep, 72*40)
			}
			got, gotShape := int8Outputs(t, l.layer, x)
			if !slices.Equal(gotShape, wantShape) {
				t.Fatalf("%s %v: int8 shape %v, want %v", l.name, shape, gotShape, wantShape)
			}
			// Weight-only int8 is within ~0.5% here; the engine's GEMM also rounds the input
			// to 7 bits (~1.5%).
			if d := reftest.RelRMS(got, want); d > 0.03 || d == 0 {
				t.Errorf("%s %v: int8 differs from float32 by %.4f (relative RMS), want (0, 0.03]", l.name, shape, d)
			}
			DequantizeInt8(model)
			back, _ := int8Outputs(t, l.layer, x)
			if !slices.Equal(back, want) {
				t.Errorf("%s %v: after DequantizeInt8 the output is not the float32 one", l.name, shape)
			}
			x.Drop()
		}
	}
}

// int8Tree is a model-like graph for the walker: exported and unexported fields, interfaces,
// slices, a shared layer and nils.
type int8Tree struct {
	Head   *Linear
	blocks []*int8Block
	Out    Layer
	shared *Linear
	none   *Linear
	Name   string
	weight *ts.Tensor
}

type int8Block struct {
	MLP  *MLP
	proj *Conv1D
}

func TestQuantizeInt8Walk(t *testing.T) {
	if why := torchx.Int8Unavailable(); why != "" {
		t.Skip(why)
	}
	vs := gnn.NewVarStore(gotch.CPU)
	root := vs.Root()
	lin := func(name string) *Linear {
		l, err := NewLinear(root.Sub(name), 8, 8, true)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	c, err := NewConv1D(root.Sub("proj"), 8, 8, 0.02)
	if err != nil {
		t.Fatal(err)
	}
	shared := lin("shared")
	m := &int8Tree{
		Head: lin("head"),
		blocks: []*int8Block{
			{MLP: &MLP{FC1: lin("fc1"), FC2: shared}, proj: c},
			{MLP: &MLP{FC1: lin("fc1b"), FC2: lin("fc2b")}},
		},
		Out:    shared,
		shared: shared,
		Name:   "tree",
	}
	rep, err := QuantizeInt8(m, Int8Options{Skip: func(path string) bool { return strings.HasSuffix(path, "FC1") }})
	if err != nil {
		t.Fatal(err)
	}
	// head, shared (once), proj, fc2b; the two FC1 layers skipped.
	if rep.Layers != 4 || rep.Params != 4*64 {
		t.Errorf("report %+v: want 4 layers, 256 weights", rep)
	}
	wantSkipped := []string{"blocks[0].MLP.FC1", "blocks[1].MLP.FC1"}
	if !slices.Equal(rep.Skipped, wantSkipped) {
		t.Errorf("skipped %v, want %v", rep.Skipped, wantSkipped)
	}
	for name, q := range map[string]bool{"head": m.Head.int8.q != nil, "shared": shared.int8.q != nil, "proj": c.int8.q != nil,
		"fc1 (skipped)": m.blocks[0].MLP.FC1.(*Linear).int8.q == nil} {
		if !q {
			t.Errorf("%s: wrong state after QuantizeInt8", name)
		}
	}
	DequantizeInt8(m)
	if m.Head.int8.q != nil || shared.int8.q != nil || c.int8.q != nil {
		t.Error("DequantizeInt8 left int8 layers")
	}
	if _, err := QuantizeInt8(&struct{ Name string }{"x"}, Int8Options{}); err == nil || !strings.Contains(err.Error(), "no linear layer") {
		t.Errorf("model without layers: error %v", err)
	}
	if _, err := QuantizeInt8(int8Tree{}, Int8Options{}); err == nil {
		t.Error("non-pointer model: no error")
	}
}

// TestInt8RejectsBadInput checks that a quantized layer reports wrong inputs as errors.
func TestInt8RejectsBadInput(t *testing.T) {
	if why := torchx.Int8Unavailable(); why != "" {
		t.Skip(why)
	}
	vs := gnn.NewVarStore(gotch.CPU)
	l, err := NewLinear(vs.Root(), 8, 4, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := QuantizeInt8(&struct{ L *Linear }{l}, Int8Options{}); err != nil {
		t.Fatal(err)
	}
	defer DequantizeInt8(&struct{ L *Linear }{l})
	for _, c := range []struct {
		name  string
		shape []int64
		dtype gotch.DType
		want  string
	}{
		{"wrong width", []int64{2, 7}, gotch.Float, "does not end in 8"},
		{"float64", []int64{2, 8}, gotch.Double, "float32"},
	} {
		x, err := ts.Zeros(c.shape, c.dtype, gotch.CPU)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Forward(x); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one mentioning %q", c.name, err, c.want)
		}
	}
}

// TestInt8ReleaseFloat checks that ReleaseFloat frees the float32 weights, that the int8 layer
// still computes the same outputs, and that DequantizeInt8 then refuses.
func TestInt8ReleaseFloat(t *testing.T) {
	if why := torchx.Int8Unavailable(); why != "" {
		t.Skip(why)
	}
	vs := gnn.NewVarStore(gotch.CPU)
	l, err := NewLinear(vs.Root().Sub("l"), 32, 24, true)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewConv1D(vs.Root().Sub("c"), 32, 24, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	x, err := ts.Randn([]int64{3, 32}, gotch.Float, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	model := &struct {
		L *Linear
		C *Conv1D
	}{l, c}
	if _, err := QuantizeInt8(model, Int8Options{}); err != nil {
		t.Fatal(err)
	}
	keptL, _ := int8Outputs(t, l, x)
	keptC, _ := int8Outputs(t, c, x)
	if err := DequantizeInt8(model); err != nil {
		t.Fatal(err)
	}
	rep, err := QuantizeInt8(model, Int8Options{ReleaseFloat: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Layers != 2 {
		t.Errorf("%d layers, want 2", rep.Layers)
	}
	for name, w := range map[string]*ts.Tensor{"linear": l.Weight, "conv1d": c.Weight} {
		if n := w.Numel(); n != 0 {
			t.Errorf("%s weight still holds %d values after ReleaseFloat", name, n)
		}
	}
	gotL, _ := int8Outputs(t, l, x)
	gotC, _ := int8Outputs(t, c, x)
	if !slices.Equal(gotL, keptL) || !slices.Equal(gotC, keptC) {
		t.Error("int8 outputs changed when the float32 weights were released")
	}
	if err := DequantizeInt8(model); err == nil || !strings.Contains(err.Error(), "released") {
		t.Errorf("DequantizeInt8 after ReleaseFloat: error %v", err)
	}
	if _, err := l.Forward(x); err != nil {
		t.Errorf("a released layer stopped working after DequantizeInt8: %v", err)
	}
}

// TestInt8FewRowsIsWeightOnly checks the few-row kernel exactly: up to 16 rows, the output is
// x·(scale ⊙ round(W/scale))ᵀ + b with scale = max|row|/127, computed here in Go. The shapes
// take both of its weight layouts (inputs a multiple of 8 or not) and a last block of output
// rows that is only partly filled.
func TestInt8FewRowsIsWeightOnly(t *testing.T) {
	if why := torchx.Int8Unavailable(); why != "" {
		t.Skip(why)
	}
	for _, shape := range []struct{ in, out int }{{72, 40}, {72, 38}, {69, 37}, {8, 1}} {
		t.Run(fmt.Sprintf("%dx%d", shape.in, shape.out), func(t *testing.T) {
			checkFewRowsWeightOnly(t, shape.in, shape.out)
		})
	}
}

// checkFewRowsWeightOnly is TestInt8FewRowsIsWeightOnly for one layer shape.
func checkFewRowsWeightOnly(t *testing.T, in, out int) {
	torchx.Seed(7)
	vs := gnn.NewVarStore(gotch.CPU)
	l, err := NewLinear(vs.Root(), int64(in), int64(out), true)
	if err != nil {
		t.Fatal(err)
	}
	w, err := torchx.Float32s(l.Weight)
	if err != nil {
		t.Fatal(err)
	}
	b, err := torchx.Float32s(l.Bias)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := QuantizeInt8(&struct{ L *Linear }{l}, Int8Options{}); err != nil {
		t.Fatal(err)
	}
	for _, rows := range []int64{1, 2, 5, 16} {
		x, err := ts.Randn([]int64{rows, int64(in)}, gotch.Float, gotch.CPU)
		if err != nil {
			t.Fatal(err)
		}
		xs, err := torchx.Float32s(x)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := int8Outputs(t, l, x)
		var worst float64
		for r := 0; r < int(rows); r++ {
			for o := 0; o < out; o++ {
				row := w[o*in : (o+1)*in]
				var mx float32
				for _, v := range row {
					mx = max(mx, float32(math.Abs(float64(v))))
				}
				scale := float64(mx / 127)
				var acc float64
				for i, v := range row {
					q := math.Max(-128, math.Min(127, math.RoundToEven(float64(v)/scale)))
					acc += float64(xs[r*in+i]) * q
				}
				want := acc*float64(float32(scale)) + float64(b[o])
				worst = math.Max(worst, math.Abs(float64(got[r*out+o])-want))
			}
		}
		if worst > 1e-4 {
			t.Errorf("%d rows: max |Δ| %.3g from the weight-only product, want ≤ 1e-4", rows, worst)
		}
	}
}

// checkFused requires torchx.FusedAttention (scale 0.3) to take the inputs and to agree with
// libtorch's general path within 1e-5.
func checkFused(t *testing.T, name string, q, k, v, mask *ts.Tensor) {
	t.Helper()
	got, err := torchx.FusedAttention(q, k, v, mask, 0.3)
	if err != nil || got == nil {
		t.Fatalf("%s: FusedAttention = %v, %v; want a result", name, got, err)
	}
	vals, err := torchx.Float32s(got)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := reftest.Diff(vals, refAttend(t, q, k, v, mask, 0.3)); d > 1e-5 {
		t.Errorf("%s: max |Δ| %.3g from the general path", name, d)
	}
}

// refAttend is softmax(q·kᵀ·scale + mask)·v through libtorch's general ops.
func refAttend(t *testing.T, q, k, v, mask *ts.Tensor, scale float64) []float32 {
	t.Helper()
	var out []float32
	err := torchx.WithScope(func(*torchx.Scope) (err error) {
		defer torchx.Catch(&err)
		kt := torchx.Must(k.Transpose(2, 3, false))
		s := torchx.Must(torchx.Must(q.Matmul(kt, false)).MulScalar(ts.FloatScalar(scale), false))
		if mask != nil {
			s = torchx.Must(s.Add(mask, false))
		}
		p := torchx.Must(s.Softmax(-1, gotch.Float, false))
		out, err = torchx.Float32s(torchx.Must(p.Matmul(v, false)))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestFusedAttentionMatchesGeneral checks the fused few-query attention against libtorch's general
// path, with and without broadcast masks, and that it declines what it does not handle.
func TestFusedAttentionMatchesGeneral(t *testing.T) {
	if why := torchx.Int8Unavailable(); why != "" {
		t.Skip(why)
	}
	randn := func(s ...int64) *ts.Tensor {
		x, err := ts.Randn(s, gotch.Float, gotch.CPU)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	for _, c := range []struct {
		name        string
		n, h, tq, d int64
		tk          int64
		mask        []int64 // nil: none
	}{
		{"one query", 2, 3, 1, 16, 9, nil},
		{"beams stacked, padding mask", 2, 4, 3, 8, 577, []int64{2, 1, 1, 577}},
		{"causal-style mask", 1, 2, 4, 12, 6, []int64{1, 1, 4, 6}},
		{"head size not a multiple of 8", 1, 2, 2, 6, 5, nil},
		{"encoder-sized, blocked", 1, 3, 577, 64, 577, nil},
		{"many queries, padding mask, head 24", 2, 2, 37, 24, 21, []int64{2, 1, 1, 21}},
		{"many queries, full mask, head 8", 1, 2, 18, 8, 35, []int64{1, 2, 18, 35}},
		{"decoding, head 64, padding mask", 2, 3, 1, 64, 577, []int64{2, 1, 1, 577}},
		{"decoding, head 64, keys not a multiple of 8", 1, 2, 3, 64, 13, []int64{1, 1, 3, 13}},
		{"decoding, head 64, one mask value per query", 1, 2, 2, 64, 20, []int64{1, 2, 2, 1}},
		{"many queries, head 64, rows not a multiple of 6", 1, 2, 41, 64, 29, []int64{1, 1, 1, 29}},
		{"many queries, one mask value per query", 1, 1, 23, 16, 19, []int64{1, 1, 23, 1}},
	} {
		q, k, v := randn(c.n, c.h, c.tq, c.d), randn(c.n, c.h, c.tk, c.d), randn(c.n, c.h, c.tk, c.d)
		var mask *ts.Tensor
		if c.mask != nil {
			m := randn(c.mask...)
			var err error
			if mask, err = m.MulScalar(ts.FloatScalar(3), false); err != nil {
				t.Fatal(err)
			}
		}
		checkFused(t, c.name, q, k, v, mask)
	}
	// A mask whose keys are not adjacent in memory (a transposed view): read element by element.
	for _, tq := range []int64{1, 41} {
		q, k, v := randn(1, 2, tq, 64), randn(1, 2, 29, 64), randn(1, 2, 29, 64)
		mask, err := randn(1, 1, 29, tq).Transpose(2, 3, false)
		if err != nil {
			t.Fatal(err)
		}
		checkFused(t, fmt.Sprintf("%d queries, strided mask", tq), q, k, v, mask)
	}
	// More than 16 queries with a head size the blocked kernel does not take, or float64: not
	// handled (nil, no error).
	k := randn(1, 1, 4, 6)
	if got, err := torchx.FusedAttention(randn(1, 1, 17, 6), k, k, nil, 1); got != nil || err != nil {
		t.Errorf("17 queries of size 6: FusedAttention = %v, %v; want nil, nil", got, err)
	}
	q64, err := ts.Randn([]int64{1, 1, 1, 8}, gotch.Double, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := torchx.FusedAttention(q64, q64, q64, nil, 1); got != nil || err != nil {
		t.Errorf("float64: FusedAttention = %v, %v; want nil, nil", got, err)
	}
}
