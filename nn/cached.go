package nn

import (
	"fmt"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/torchx"
)

// CachedDecoder is the Decoder that Generate drives for a transformer decoder whose
// incremental state is a DecoderState: each Step turns the rows' new tokens into an id tensor on
// Device and runs LastLogits inside a scope that keeps only the state's tensors; Reorder
// reorders the self-attention caches (the cross-attention keys and values are per image).
type CachedDecoder struct {
	State  *DecoderState
	Device gotch.Device
	Vocab  int
	// LastLogits runs ids [rows, n] through the decoder, extending State, and returns the
	// logits of each row's last position, [rows, Vocab].
	LastLogits func(ids *ts.Tensor) (*ts.Tensor, error)
}

// Step implements Decoder.
func (d *CachedDecoder) Step(tokens [][]int64) (logits []float32, vocab int, err error) {
	if len(tokens) == 0 || len(tokens[0]) == 0 {
		return nil, 0, fmt.Errorf("decoder: empty step")
	}
	err = torchx.WithScope(func(s *torchx.Scope) (err error) {
		defer torchx.Catch(&err)
		defer func() { s.Keep(d.State.Tensors()...) }()
		rows, n := int64(len(tokens)), int64(len(tokens[0]))
		flat := make([]int64, 0, rows*n)
		for _, t := range tokens {
			if int64(len(t)) != n {
				return fmt.Errorf("decoder: rows of %d and %d tokens in one step", n, len(t))
			}
			flat = append(flat, t...)
		}
		ids := torchx.Must(ts.OfSlice(flat))
		ids = torchx.Must(ids.View([]int64{rows, n}, false))
		if d.Device != gotch.CPU {
			ids = torchx.Must(ids.To(d.Device, false))
		}
		out := torchx.Must(d.LastLogits(ids))
		logits, err = torchx.Float32s(out)
		return err
	})
	return logits, d.Vocab, err
}

// Reorder implements Decoder.
func (d *CachedDecoder) Reorder(rows []int64) error {
	return torchx.WithScope(func(s *torchx.Scope) (err error) {
		defer torchx.Catch(&err)
		defer func() { s.Keep(d.State.Tensors()...) }()
		idx := torchx.Must(ts.OfSlice(rows))
		if d.Device != gotch.CPU {
			idx = torchx.Must(idx.To(d.Device, false))
		}
		return d.State.Reorder(idx)
	})
}
