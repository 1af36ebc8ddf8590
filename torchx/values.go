package torchx

import (
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Float32s copies a tensor's values to a Go slice (converting to float32 on the CPU first).
func Float32s(t *ts.Tensor) ([]float32, error) {
	c, err := t.To(gotch.CPU, false)
	if err != nil {
		return nil, Err("to cpu", err)
	}
	defer c.Drop()
	f, err := c.Totype(gotch.Float, false)
	if err != nil {
		return nil, Err("to float32", err)
	}
	defer f.Drop()
	g, err := f.Contiguous(false)
	if err != nil {
		return nil, Err("contiguous", err)
	}
	defer g.Drop()
	out := make([]float32, g.Numel())
	if err := g.CopyData(out, uint(len(out))); err != nil {
		return nil, Err("copy data", err)
	}
	return out, nil
}

// Int64s copies a tensor's values to a Go slice (converting to int64 on the CPU first).
func Int64s(t *ts.Tensor) ([]int64, error) {
	c, err := t.To(gotch.CPU, false)
	if err != nil {
		return nil, Err("to cpu", err)
	}
	defer c.Drop()
	f, err := c.Totype(gotch.Int64, false)
	if err != nil {
		return nil, Err("to int64", err)
	}
	defer f.Drop()
	g, err := f.Contiguous(false)
	if err != nil {
		return nil, Err("contiguous", err)
	}
	defer g.Drop()
	out := make([]int64, g.Numel())
	if err := g.CopyData(out, uint(len(out))); err != nil {
		return nil, Err("copy data", err)
	}
	return out, nil
}
