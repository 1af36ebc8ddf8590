package torchx

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"unsafe"

	"github.com/sugarme/gotch/imgcapkern"
	lib "github.com/sugarme/gotch/libtch"
	"github.com/sugarme/gotch/ts"
)

// Int8Linear is a linear layer whose weight is stored as int8 (one scale per output row): the
// dynamic quantization of PyTorch's torch.quantization.quantize_dynamic on libtorch's
// fbgemm/oneDNN/QNNPACK kernels for inputs of many rows (quantized to 7 bits over their range at
// every call), and imgcap's weight-only product for a few rows (see Forward). It runs on the CPU,
// in float32 in and out, without gradients.
type Int8Linear struct {
	mu     sync.Mutex // one call at a time: the engines' packed weights are not documented as thread-safe
	packed unsafe.Pointer
	in     int64
	out    int64
}

// Int8Engine names the quantized engine the int8 layers use ("fbgemm", "onednn", "x86",
// "qnnpack"), or "" when this libtorch has none.
func Int8Engine() string { return imgcapkern.Engine() }

// Int8Unavailable says why int8 layers cannot be used with this build ("" when they can).
func Int8Unavailable() string { return int8Unavailable() }

// int8Unavailable asks the shim once: the build and the engine do not change while running.
var int8Unavailable = sync.OnceValue(func() string {
	if imgcapkern.Unavailable != "" {
		return imgcapkern.Unavailable
	}
	if Int8Engine() == "" {
		return "this libtorch has no quantized engine for this CPU"
	}
	return ""
})

// NewInt8Linear quantizes weight [out,in] (a float CPU tensor; the tensor itself is left as it
// is) and packs it with bias [out] (nil: none).
func NewInt8Linear(weight, bias *ts.Tensor) (*Int8Linear, error) {
	if why := Int8Unavailable(); why != "" {
		return nil, errors.New("int8: " + why)
	}
	if weight == nil {
		return nil, errors.New("int8 linear: no weight")
	}
	size, err := weight.Size()
	if err != nil {
		return nil, Err("int8 linear", err)
	}
	if len(size) != 2 {
		return nil, fmt.Errorf("int8 linear: weight must be [out, in], got %v", size)
	}
	var b unsafe.Pointer
	if bias != nil {
		b = bias.Ctensor()
	}
	p, err := imgcapkern.Pack(weight.Ctensor(), b)
	runtime.KeepAlive(weight)
	runtime.KeepAlive(bias)
	if err != nil {
		return nil, err
	}
	l := &Int8Linear{packed: p, out: size[0], in: size[1]}
	runtime.SetFinalizer(l, (*Int8Linear).Drop)
	return l, nil
}

// Forward computes x Wᵀ + b for x [..., in]. Up to 16 rows (token-by-token decoding) the float32
// input multiplies the int8 weight directly; more rows go through the engine's int8 GEMM with
// the input quantized to 7 bits over its range (PyTorch's reduce_range for x86, which keeps the
// int16 products of CPUs without VNNI from saturating).
func (l *Int8Linear) Forward(x *ts.Tensor) (*ts.Tensor, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.packed == nil {
		return nil, errors.New("int8 linear: layer was dropped")
	}
	out, err := imgcapkern.Forward(l.packed, x.Ctensor(), true)
	runtime.KeepAlive(x)
	if err != nil {
		return nil, err
	}
	return ts.New(lib.Ctensor(out)), nil
}

// Shape returns the layer's [out, in].
func (l *Int8Linear) Shape() (out, in int64) { return l.out, l.in }

// Drop frees the packed weight; the layer cannot be used afterwards. Safe to call twice.
func (l *Int8Linear) Drop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.packed != nil {
		imgcapkern.Free(l.packed)
		l.packed = nil
	}
}

// ReleaseStorage empties t in place (libtorch's set_() without gradient recording), freeing its
// data once no other tensor shares it; every handle of t then sees an empty tensor.
func ReleaseStorage(t *ts.Tensor) error {
	if why := imgcapkern.Unavailable; why != "" {
		return errors.New(why)
	}
	err := imgcapkern.ReleaseStorage(t.Ctensor())
	runtime.KeepAlive(t)
	return err
}

// FusedAttention computes softmax(q·kᵀ·scale + mask)·v for q [N, H, Tq, D] and k, v [N, H, Tk, D]
// (float32, CPU; mask additive, broadcastable, or nil) with imgcap's kernel: register-blocked
// products and a vectorised exp on AVX2 CPUs (any Tq, D a multiple of 8), one pass per query
// otherwise (Tq ≤ 16). It returns nil and no error when the inputs do not qualify (other
// shapes, dtypes or devices, gradients being recorded, or a build without the kernel), and the
// caller takes libtorch's general path.
func FusedAttention(q, k, v, mask *ts.Tensor, scale float64) (*ts.Tensor, error) {
	if imgcapkern.Unavailable != "" {
		return nil, nil
	}
	var m unsafe.Pointer
	if mask != nil {
		m = mask.Ctensor()
	}
	out, err := imgcapkern.FusedAttention(q.Ctensor(), k.Ctensor(), v.Ctensor(), m, scale)
	runtime.KeepAlive(q)
	runtime.KeepAlive(k)
	runtime.KeepAlive(v)
	runtime.KeepAlive(mask)
	if err != nil || out == nil {
		return nil, err
	}
	return ts.New(lib.Ctensor(out)), nil
}
