// Package nn holds imgcap's building blocks on gotch: layers whose parameters are named like
// PyTorch's state_dict (so Hugging Face and torchvision weights load by name), forward passes
// that return errors instead of exiting, losses and generation helpers. Nothing here knows a model.
package nn

import (
	"math"

	gnn "github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/torchx"
)

// Linear is y = x Wᵀ + b with PyTorch's parameter names weight [out,in] and bias [out].
type Linear struct {
	Weight, Bias *ts.Tensor
	int8         int8Slot // set by QuantizeInt8: Forward runs the int8 kernel
}

// pytorchUniform is PyTorch's default initialisation of Linear and Conv layers: Kaiming-uniform
// with a=√5 for the weight and uniform ±1/√fan_in for the bias, which both come to U(±1/√fan_in).
// (gotch's own KaimingUniform init draws from N(0,1) instead, so it is not used.)
func pytorchUniform(fanIn int64) gnn.Init {
	bound := 1 / math.Sqrt(float64(fanIn))
	return gnn.NewUniformInit(-bound, bound)
}

// NewLinear creates a Linear layer under p with PyTorch's default initialisation.
func NewLinear(p *gnn.Path, in, out int64, bias bool) (*Linear, error) {
	var b gnn.Init
	if bias {
		b = pytorchUniform(in)
	}
	return NewLinearInit(p, in, out, pytorchUniform(in), b)
}

// NewLinearInit creates a Linear layer with the given initialisers (bias nil = no bias).
func NewLinearInit(p *gnn.Path, in, out int64, weight, bias gnn.Init) (*Linear, error) {
	w, err := p.NewVar("weight", []int64{out, in}, weight)
	if err != nil {
		return nil, err
	}
	l := &Linear{Weight: w}
	if bias != nil {
		if l.Bias, err = p.NewVar("bias", []int64{out}, bias); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// Forward applies the layer to x [..., in].
func (l *Linear) Forward(x *ts.Tensor) (*ts.Tensor, error) {
	if l.int8.q != nil {
		return l.int8.q.Forward(x)
	}
	out, err := ts.Linear(x, l.Weight, l.biasOrNone())
	return out, torchx.Err("linear", err)
}

func (l *Linear) biasOrNone() *ts.Tensor {
	if l.Bias == nil {
		return ts.None
	}
	return l.Bias
}

// Conv2d is a 2-D convolution with PyTorch's parameter names weight [out,in,k,k] and bias [out].
type Conv2d struct {
	Weight, Bias    *ts.Tensor
	Stride, Padding int64
}

// NewConv2d creates a square-kernel convolution with PyTorch's default initialisation.
func NewConv2d(p *gnn.Path, in, out, kernel, stride, padding int64, bias bool) (*Conv2d, error) {
	fanIn := in * kernel * kernel
	var b gnn.Init
	if bias {
		b = pytorchUniform(fanIn)
	}
	return NewConv2dInit(p, in, out, kernel, stride, padding, pytorchUniform(fanIn), b)
}

// NewConv2dInit creates a square-kernel convolution with the given initialisers (bias nil = no
// bias).
func NewConv2dInit(p *gnn.Path, in, out, kernel, stride, padding int64, weight, bias gnn.Init) (*Conv2d, error) {
	w, err := p.NewVar("weight", []int64{out, in, kernel, kernel}, weight)
	if err != nil {
		return nil, err
	}
	c := &Conv2d{Weight: w, Stride: stride, Padding: padding}
	if bias != nil {
		if c.Bias, err = p.NewVar("bias", []int64{out}, bias); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// KaimingNormalFanOut is He initialisation for a layer followed by ReLU, computed over the
// output fan (torchvision's VGG init): N(0, 2/fanOut).
func KaimingNormalFanOut(fanOut int64) gnn.Init {
	return gnn.NewRandnInit(0, math.Sqrt(2/float64(fanOut)))
}

// Forward applies the convolution to x [B,in,H,W].
func (c *Conv2d) Forward(x *ts.Tensor) (*ts.Tensor, error) {
	bias := c.Bias
	if bias == nil {
		bias = ts.None
	}
	out, err := ts.Conv2d(x, c.Weight, bias, []int64{c.Stride, c.Stride}, []int64{c.Padding, c.Padding}, []int64{1, 1}, 1)
	return out, torchx.Err("conv2d", err)
}

// Embedding maps ids to vectors; parameter weight [num, dim].
type Embedding struct {
	Weight     *ts.Tensor
	PaddingIdx int64 // -1 = none; otherwise that row starts at zero and gets no gradient
}

// NewEmbedding creates an embedding table initialised N(0,1) like PyTorch, with the padding row
// zeroed.
func NewEmbedding(p *gnn.Path, num, dim, paddingIdx int64) (*Embedding, error) {
	w, err := p.NewVar("weight", []int64{num, dim}, gnn.NewRandnInit(0, 1))
	if err != nil {
		return nil, err
	}
	if paddingIdx >= 0 {
		err = torchx.NoGrad(func() error {
			row, err := w.Narrow(0, paddingIdx, 1, false)
			if err != nil {
				return err
			}
			defer row.Drop()
			return row.Zero_()
		})
		if err != nil {
			return nil, torchx.Err("embedding padding row", err)
		}
	}
	return &Embedding{Weight: w, PaddingIdx: paddingIdx}, nil
}

// Forward looks up ids (int64, any shape) and returns [..., dim].
func (e *Embedding) Forward(ids *ts.Tensor) (*ts.Tensor, error) {
	out, err := ts.Embedding(e.Weight, ids, e.PaddingIdx, false, false)
	return out, torchx.Err("embedding", err)
}

// LSTM is a single-direction multi-layer LSTM with PyTorch's parameter names
// (weight_ih_l{k} [4h,in], weight_hh_l{k} [4h,h], bias_ih_l{k}, bias_hh_l{k}); inputs are
// batch-first [B,T,in].
type LSTM struct {
	Hidden, Layers int64
	Dropout        float64
	params         []*ts.Tensor
}

// NewLSTM creates an LSTM initialised like PyTorch: every parameter uniform in ±1/√hidden.
func NewLSTM(p *gnn.Path, in, hidden, layers int64, dropout float64) (*LSTM, error) {
	init := pytorchUniform(hidden)
	l := &LSTM{Hidden: hidden, Layers: layers, Dropout: dropout}
	for k := int64(0); k < layers; k++ {
		inDim := in
		if k > 0 {
			inDim = hidden
		}
		for _, spec := range []struct {
			name string
			dims []int64
		}{
			{"weight_ih_l", []int64{4 * hidden, inDim}},
			{"weight_hh_l", []int64{4 * hidden, hidden}},
			{"bias_ih_l", []int64{4 * hidden}},
			{"bias_hh_l", []int64{4 * hidden}},
		} {
			t, err := p.NewVar(spec.name+itoa(k), spec.dims, init)
			if err != nil {
				return nil, err
			}
			l.params = append(l.params, t)
		}
	}
	return l, nil
}

// LSTMState is the hidden and cell state, each [layers, B, hidden].
type LSTMState struct{ H, C *ts.Tensor }

// ZeroState returns a zero state for batch size b, matching the parameters' dtype and device.
func (l *LSTM) ZeroState(b int64) (LSTMState, error) {
	w := l.params[0]
	dev, err := w.Device()
	if err != nil {
		return LSTMState{}, torchx.Err("lstm state", err)
	}
	h, err := ts.Zeros([]int64{l.Layers, b, l.Hidden}, w.DType(), dev)
	if err != nil {
		return LSTMState{}, torchx.Err("lstm state", err)
	}
	c, err := ts.Zeros([]int64{l.Layers, b, l.Hidden}, w.DType(), dev)
	if err != nil {
		return LSTMState{}, torchx.Err("lstm state", err)
	}
	return LSTMState{H: h, C: c}, nil
}

// Forward runs the LSTM over x [B,T,in] from state s and returns outputs [B,T,hidden] and the
// final state.
func (l *LSTM) Forward(x *ts.Tensor, s LSTMState, train bool) (*ts.Tensor, LSTMState, error) {
	out, h, c, err := ts.Lstm(x, []*ts.Tensor{s.H, s.C}, l.params, true, l.Layers, l.Dropout, train, false, true)
	if err != nil {
		return nil, LSTMState{}, torchx.Err("lstm", err)
	}
	return out, LSTMState{H: h, C: c}, nil
}

func itoa(k int64) string {
	if k < 10 {
		return string(rune('0' + k))
	}
	return itoa(k/10) + string(rune('0'+k%10))
}

// BatchNorm2d normalises [B,C,H,W] per channel with PyTorch's parameter names: weight and bias
// (trainable), running_mean and running_var (buffers, saved but not trained). PyTorch's
// num_batches_tracked counter is not kept (it only matters with momentum=None).
type BatchNorm2d struct {
	Weight, Bias, RunningMean, RunningVar *ts.Tensor
	Momentum, Eps                         float64
}

// NewBatchNorm2d creates a batch norm over c channels (weight 1, bias 0, mean 0, var 1).
func NewBatchNorm2d(p *gnn.Path, c int64) (*BatchNorm2d, error) {
	bn := &BatchNorm2d{Momentum: 0.1, Eps: 1e-5}
	var err error
	if bn.Weight, err = p.NewVar("weight", []int64{c}, gnn.NewConstInit(1)); err != nil {
		return nil, err
	}
	if bn.Bias, err = p.NewVar("bias", []int64{c}, gnn.NewConstInit(0)); err != nil {
		return nil, err
	}
	if bn.RunningMean, err = p.ZerosNoTrain("running_mean", []int64{c}); err != nil {
		return nil, err
	}
	if bn.RunningVar, err = p.OnesNoTrain("running_var", []int64{c}); err != nil {
		return nil, err
	}
	return bn, nil
}

// Forward normalises with batch statistics (updating the running ones) when train is set, and
// with the running statistics otherwise.
func (bn *BatchNorm2d) Forward(x *ts.Tensor, train bool) (*ts.Tensor, error) {
	out, err := ts.BatchNorm(x, bn.Weight, bn.Bias, bn.RunningMean, bn.RunningVar, train, bn.Momentum, bn.Eps, false)
	return out, torchx.Err("batch norm", err)
}
