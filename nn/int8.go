package nn

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"unsafe"

	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/torchx"
)

// Int8Report says what QuantizeInt8 did.
type Int8Report struct {
	Engine  string   // the libtorch quantized engine ("onednn", "fbgemm", ...)
	Layers  int      // layers now running in int8
	Params  int64    // weights held by those layers (also their int8 bytes)
	Skipped []string // paths of layers left in float32 by the skip function
}

// String summarises the report in one line.
func (r Int8Report) String() string {
	s := fmt.Sprintf("int8 (%s engine): %d linear layers, %.1fM weights (%.0f MB in int8)", r.Engine, r.Layers,
		float64(r.Params)/1e6, float64(r.Params)/1e6)
	if len(r.Skipped) > 0 {
		s += fmt.Sprintf("; %d left in float32", len(r.Skipped))
	}
	return s
}

// Int8Options tune QuantizeInt8.
type Int8Options struct {
	// Skip, when not nil, keeps the layers whose path (e.g. "Text.layers[3].Attn.Query") it
	// returns true for in float32.
	Skip func(path string) bool
	// ReleaseFloat frees the float32 weight of every quantized layer (about 4 bytes per weight;
	// BLIP-large: 1.8 GB). The model can then only run in int8: DequantizeInt8, export and
	// training no longer work on it. For processes that only caption.
	ReleaseFloat bool
}

// quantizable is a layer QuantizeInt8 can switch to int8.
type quantizable interface {
	quantizeInt8(release bool) (int64, error)
	dropInt8() error
}

// QuantizeInt8 switches every Linear and Conv1D layer reachable from model (a pointer to a
// model struct of this module; unexported fields included) to dynamic int8 inference, as PyTorch's
// torch.quantization.quantize_dynamic does for nn.Linear: weights become int8 with one scale per
// output row, inputs are quantized over their own range at each call. The float32 weights stay
// in place (export and DequantizeInt8 use them) unless o.ReleaseFloat. o.Skip keeps layers
// (see Int8Options) in float32. It is for CPU inference only: the packed layers have no
// gradients. Results differ from float32 by about 1% of each layer's output.
func QuantizeInt8(model any, o Int8Options) (Int8Report, error) {
	rep := Int8Report{Engine: torchx.Int8Engine()}
	if why := torchx.Int8Unavailable(); why != "" {
		return rep, errors.New("int8: " + why)
	}
	var done []quantizable
	err := walkLayers(model, func(path string, q quantizable) error {
		if o.Skip != nil && o.Skip(path) {
			rep.Skipped = append(rep.Skipped, path)
			return nil
		}
		n, err := q.quantizeInt8(o.ReleaseFloat)
		if err != nil {
			return fmt.Errorf("int8: %s: %w", path, err)
		}
		done = append(done, q)
		rep.Layers++
		rep.Params += n
		return nil
	})
	if err != nil {
		for _, q := range done {
			_ = q.dropInt8() // a released layer stays int8: the model is unusable in float32 anyway
		}
		return Int8Report{Engine: rep.Engine}, err
	}
	if rep.Layers == 0 {
		return rep, fmt.Errorf("int8: no linear layer found in %T", model)
	}
	return rep, nil
}

// DequantizeInt8 switches every layer reachable from model back to float32 and frees the int8
// weights. Layers whose float32 weights were released stay in int8, and the error names them.
func DequantizeInt8(model any) error {
	var stuck []string
	err := walkLayers(model, func(path string, q quantizable) error {
		if q.dropInt8() != nil {
			stuck = append(stuck, path)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(stuck) > 0 {
		return fmt.Errorf("int8: %d layers had their float32 weights released and stay int8 (%s, ...)", len(stuck), stuck[0])
	}
	return nil
}

// errReleased is dropInt8's error for a layer without float32 weights.
var errReleased = errors.New("float32 weights released")

// modulePrefix limits the walk to this module's types: gotch's own (tensors, var stores) hold
// nothing to quantize.
const modulePrefix = "github.com/imgcap/imgcap/"

// ours reports whether the walk looks inside values of type t: this module's types and
// unnamed ones (slices, arrays and struct literals of them).
func ours(t reflect.Type) bool {
	return t.Name() == "" || strings.HasPrefix(t.PkgPath(), modulePrefix)
}

// walkLayers calls visit for every Linear and Conv1D reachable from root, once each, in field
// order.
func walkLayers(root any, visit func(path string, q quantizable) error) error {
	v := reflect.ValueOf(root)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return fmt.Errorf("int8: want a pointer to a model, got %T", root)
	}
	seen := map[uintptr]bool{}
	var walk func(v reflect.Value, path string) error
	walk = func(v reflect.Value, path string) error {
		switch v.Kind() {
		case reflect.Pointer:
			if v.IsNil() || seen[v.Pointer()] {
				return nil
			}
			if q, ok := v.Interface().(quantizable); ok {
				seen[v.Pointer()] = true
				return visit(path, q)
			}
			if !ours(v.Type().Elem()) {
				return nil
			}
			seen[v.Pointer()] = true
			return walk(v.Elem(), path)
		case reflect.Interface:
			if v.IsNil() {
				return nil
			}
			return walk(v.Elem(), path)
		case reflect.Slice, reflect.Array:
			for i := 0; i < v.Len(); i++ {
				if err := walk(v.Index(i), fmt.Sprintf("%s[%d]", path, i)); err != nil {
					return err
				}
			}
		case reflect.Struct:
			if !ours(v.Type()) {
				return nil
			}
			for i := 0; i < v.NumField(); i++ {
				f := v.Field(i)
				if !f.CanInterface() {
					if !f.CanAddr() {
						continue
					}
					// An unexported field of an addressable struct: read it through its address.
					f = reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem()
				}
				name := v.Type().Field(i).Name
				if path != "" {
					name = path + "." + name
				}
				if err := walk(f, name); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return walk(v, "")
}

// cpuFloatWeight checks that w can be packed: a 2-D float tensor on the CPU.
func cpuFloatWeight(w *ts.Tensor) error {
	dev, err := w.Device()
	if err != nil {
		return torchx.Err("int8", err)
	}
	if dev.IsCuda() {
		return errors.New("int8 inference runs on the CPU only (this layer is on " + torchx.DeviceName(dev) + ")")
	}
	return nil
}

// int8Slot is the int8 state Linear and Conv1D share: the packed layer (nil: float32) and
// whether the float32 weight was released.
type int8Slot struct {
	q        *torchx.Int8Linear
	released bool
}

// pack quantizes weight (stored [in, out] when transposed, as Conv1D does; [out, in] otherwise)
// with bias, replacing any earlier packing, and frees weight's data when release is set. It
// returns the layer's weight count.
func (s *int8Slot) pack(weight, bias *ts.Tensor, transposed, release bool) (int64, error) {
	if s.released {
		out, in := s.q.Shape()
		return out * in, nil
	}
	if err := cpuFloatWeight(weight); err != nil {
		return 0, err
	}
	w := weight
	if transposed {
		// The engines take [out, in].
		wt, err := weight.T(false)
		if err != nil {
			return 0, torchx.Err("int8", err)
		}
		defer wt.Drop()
		if w, err = wt.Contiguous(false); err != nil {
			return 0, torchx.Err("int8", err)
		}
		defer w.Drop()
	}
	q, err := torchx.NewInt8Linear(w, bias)
	if err != nil {
		return 0, err
	}
	if s.q != nil {
		s.q.Drop()
	}
	s.q = q
	if release {
		if err := torchx.ReleaseStorage(weight); err != nil {
			return 0, err
		}
		s.released = true
	}
	out, in := q.Shape()
	return out * in, nil
}

// drop frees the packed layer, back to float32; a released layer stays int8 (errReleased).
func (s *int8Slot) drop() error {
	if s.released {
		return errReleased
	}
	if s.q != nil {
		s.q.Drop()
		s.q = nil
	}
	return nil
}

func (l *Linear) quantizeInt8(release bool) (int64, error) {
	return l.int8.pack(l.Weight, l.Bias, false, release)
}

func (l *Linear) dropInt8() error { return l.int8.drop() }

func (c *Conv1D) quantizeInt8(release bool) (int64, error) {
	return c.int8.pack(c.Weight, c.Bias, true, release)
}

func (c *Conv1D) dropInt8() error { return c.int8.drop() }
