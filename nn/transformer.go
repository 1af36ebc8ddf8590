package nn

import (
	"fmt"
	"math"

	"github.com/sugarme/gotch"
	gnn "github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/torchx"
)

// Layer is anything that maps a tensor to a tensor: Linear, Conv1D, a closure.
type Layer interface {
	Forward(x *ts.Tensor) (*ts.Tensor, error)
}

// LayerNorm normalises the last dimension, with PyTorch's parameter names weight and bias.
type LayerNorm struct {
	Weight, Bias *ts.Tensor
	Eps          float64
	dim          int64
}

// NewLayerNorm creates a LayerNorm over the last dimension (size dim) initialised to the identity.
func NewLayerNorm(p *gnn.Path, dim int64, eps float64) (*LayerNorm, error) {
	w, err := p.NewVar("weight", []int64{dim}, gnn.NewConstInit(1))
	if err != nil {
		return nil, err
	}
	b, err := p.NewVar("bias", []int64{dim}, gnn.NewConstInit(0))
	if err != nil {
		return nil, err
	}
	return &LayerNorm{Weight: w, Bias: b, Eps: eps, dim: dim}, nil
}

// Forward normalises x [..., dim].
func (l *LayerNorm) Forward(x *ts.Tensor) (*ts.Tensor, error) {
	out, err := ts.LayerNorm(x, []int64{l.dim}, l.Weight, l.Bias, l.Eps, false)
	return out, torchx.Err("layer norm", err)
}

// Conv1D is GPT-2's linear layer: y = x·W + b with weight stored [in, out], transposed with
// respect to Linear. It is the one place where that layout is handled, so GPT-2 checkpoints load
// by name without transposing anything.
type Conv1D struct {
	Weight, Bias *ts.Tensor
	int8         int8Slot // set by QuantizeInt8: Forward runs the int8 kernel
}

// NewConv1D creates a Conv1D with Hugging Face's GPT-2 initialisation (weight N(0, std²), bias 0).
func NewConv1D(p *gnn.Path, in, out int64, std float64) (*Conv1D, error) {
	w, err := p.NewVar("weight", []int64{in, out}, NormalInit(std))
	if err != nil {
		return nil, err
	}
	b, err := p.NewVar("bias", []int64{out}, gnn.NewConstInit(0))
	if err != nil {
		return nil, err
	}
	return &Conv1D{Weight: w, Bias: b}, nil
}

// Forward applies the layer to x [..., in].
func (c *Conv1D) Forward(x *ts.Tensor) (out *ts.Tensor, err error) {
	if c.int8.q != nil {
		return c.int8.q.Forward(x)
	}
	// linear(x, Wᵀ) multiplies by W itself; the transposed view costs no copy.
	wt, err := c.Weight.T(false)
	if err != nil {
		return nil, torchx.Err("conv1d", err)
	}
	defer wt.Drop()
	out, err = ts.Linear(x, wt, c.Bias)
	return out, torchx.Err("conv1d", err)
}

// NormalInit is N(0, std²), the initialisation Hugging Face uses for transformer weights. (gotch's
// own randn init draws a first tensor and overwrites it without freeing it, so building a model
// held every weight twice until Go's garbage collector ran: 4.5 GB for BLIP-large's 1.9 GB.)
// Like every gotch initialiser it cannot return an error: a libtorch failure panics with a
// *torchx.Error, which the model constructors' torchx.Catch turns back into an error.
func NormalInit(std float64) gnn.Init { return normalInit{std} }

type normalInit struct{ std float64 }

// InitTensor returns a new tensor of N(0, std²) values.
func (n normalInit) InitTensor(dims []int64, device gotch.Device, dtypeOpt ...gotch.DType) *ts.Tensor {
	dtype := gotch.DefaultDType
	if len(dtypeOpt) > 0 {
		dtype = dtypeOpt[0]
	}
	t := torchx.Must(ts.Randn(dims, dtype, device))
	torchx.MustOK(torchx.Err("normal init", t.MulScalar_(ts.FloatScalar(n.std))))
	return t
}

// Set overwrites t with N(0, std²) values.
func (n normalInit) Set(t *ts.Tensor) {
	torchx.MustOK(torchx.NoGrad(func() error {
		return torchx.Err("normal init", t.Normal_(0, n.std))
	}))
}

// ZeroInit is the constant 0 (Hugging Face's bias initialisation).
func ZeroInit() gnn.Init { return gnn.NewConstInit(0) }

// NewLinearStd creates a Linear layer initialised as Hugging Face transformers do: weight
// N(0, std²), bias 0.
func NewLinearStd(p *gnn.Path, in, out int64, bias bool, std float64) (*Linear, error) {
	var b gnn.Init
	if bias {
		b = ZeroInit()
	}
	return NewLinearInit(p, in, out, NormalInit(std), b)
}

// Activation returns the function Hugging Face configs name with hidden_act / activation_function:
// "gelu" (exact, erf), "gelu_new", "gelu_pytorch_tanh" and "gelu_fast" (tanh approximation),
// "quick_gelu", "relu", "tanh".
func Activation(name string) (func(*ts.Tensor) (*ts.Tensor, error), error) {
	switch name {
	case "gelu":
		return func(x *ts.Tensor) (*ts.Tensor, error) {
			out, err := x.Gelu("none", false)
			return out, torchx.Err("gelu", err)
		}, nil
	case "gelu_new", "gelu_pytorch_tanh", "gelu_fast":
		return func(x *ts.Tensor) (*ts.Tensor, error) {
			out, err := x.Gelu("tanh", false)
			return out, torchx.Err("gelu", err)
		}, nil
	case "quick_gelu":
		return func(x *ts.Tensor) (out *ts.Tensor, err error) {
			defer torchx.Catch(&err)
			s := torchx.Must(x.MulScalar(ts.FloatScalar(1.702), false))
			defer s.Drop()
			sig := torchx.Must(s.Sigmoid(false))
			defer sig.Drop()
			return x.Mul(sig, false)
		}, nil
	case "relu":
		return func(x *ts.Tensor) (*ts.Tensor, error) {
			out, err := x.Relu(false)
			return out, torchx.Err("relu", err)
		}, nil
	case "tanh":
		return func(x *ts.Tensor) (*ts.Tensor, error) {
			out, err := x.Tanh(false)
			return out, torchx.Err("tanh", err)
		}, nil
	}
	return nil, fmt.Errorf("unknown activation %q (known: gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, quick_gelu, relu, tanh)", name)
}

// Dropout applies dropout with probability p when train is true; otherwise it returns a shallow
// copy of x, so callers may always drop the result.
func Dropout(x *ts.Tensor, p float64, train bool) (*ts.Tensor, error) {
	if !train || p == 0 {
		out, err := x.ShallowClone()
		return out, torchx.Err("dropout", err)
	}
	out, err := ts.Dropout(x, p, true)
	return out, torchx.Err("dropout", err)
}

// MLP is the transformer feed-forward block: FC2(act(FC1(x))).
type MLP struct {
	FC1, FC2 Layer
	Act      func(*ts.Tensor) (*ts.Tensor, error)
}

// Forward applies the block to x [..., hidden].
func (m *MLP) Forward(x *ts.Tensor) (out *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	h := torchx.Must(m.FC1.Forward(x))
	defer h.Drop()
	a := torchx.Must(m.Act(h))
	defer a.Drop()
	return m.FC2.Forward(a)
}

// SplitHeads reshapes x [B, T, H·D] to [B, H, T, D].
func SplitHeads(x *ts.Tensor, heads int64) (out *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	s := torchx.MustSize(x)
	if len(s) != 3 || s[2]%heads != 0 {
		return nil, fmt.Errorf("split heads: shape %v is not [B, T, %d·D]", s, heads)
	}
	v := torchx.Must(x.View([]int64{s[0], s[1], heads, s[2] / heads}, false))
	defer v.Drop()
	return v.Transpose(1, 2, false)
}

// MergeHeads reshapes x [B, H, T, D] to [B, T, H·D].
func MergeHeads(x *ts.Tensor) (out *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	s := torchx.MustSize(x)
	t := torchx.Must(x.Transpose(1, 2, false))
	defer t.Drop()
	c := torchx.Must(t.Contiguous(false))
	defer c.Drop()
	return c.View([]int64{s[0], s[2], s[1] * s[3]}, false)
}

// Attend computes softmax(q·kᵀ·scale + mask)·v for q [R, H, Tq, D] and k, v [N, H, Tk, D].
// mask is additive (0 keeps, a large negative number removes), broadcastable to
// [R, H, Tq, Tk], or nil.
//
// When N < R, the R = N·G query rows are G consecutive rows per key/value row: beams of one image
// attending to that image's cross-attention keys and values, which are then computed and stored
// once per image. Their queries are stacked along the time axis for one matrix product per image
// (the cross-attention mask, if any, must then be [N, 1, 1, Tk]).
func Attend(q, k, v, mask *ts.Tensor, scale float64) (out *ts.Tensor, err error) {
	return attend(q, k, v, mask, scale, 0)
}

// attend is Attend with dropout p on the attention probabilities (training).
func attend(q, k, v, mask *ts.Tensor, scale, p float64) (out *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	qs, ks := torchx.MustSize(q), torchx.MustSize(k)
	if len(qs) != 4 || len(ks) != 4 || qs[1] != ks[1] || qs[3] != ks[3] || qs[0]%ks[0] != 0 {
		return nil, fmt.Errorf("attention: query %v and key %v do not fit", qs, ks)
	}
	R, H, Tq, D := qs[0], qs[1], qs[2], qs[3]
	N := ks[0]
	G := R / N
	if G > 1 {
		// [N·G, H, Tq, D] -> [N, G, H, Tq, D] -> [N, H, G, Tq, D] -> [N, H, G·Tq, D]
		q5 := torchx.Must(q.View([]int64{N, G, H, Tq, D}, false))
		defer q5.Drop()
		qp := torchx.Must(q5.Permute([]int64{0, 2, 1, 3, 4}, false))
		defer qp.Drop()
		qc := torchx.Must(qp.Contiguous(false))
		defer qc.Drop()
		qg := torchx.Must(qc.View([]int64{N, H, G * Tq, D}, false))
		defer qg.Drop()
		o := torchx.Must(attend(qg, k, v, mask, scale, p))
		defer o.Drop()
		o5 := torchx.Must(o.View([]int64{N, H, G, Tq, D}, false))
		defer o5.Drop()
		op := torchx.Must(o5.Permute([]int64{0, 2, 1, 3, 4}, false))
		defer op.Drop()
		oc := torchx.Must(op.Contiguous(false))
		defer oc.Drop()
		return oc.View([]int64{R, H, Tq, D}, false)
	}
	if p == 0 {
		// Inference on the CPU: imgcap's fused kernel (nil when it does not apply, e.g. on CUDA
		// or while recording gradients).
		out, err := torchx.FusedAttention(q, k, v, mask, scale)
		torchx.MustOK(err)
		if out != nil {
			return out, nil
		}
	}
	// Batched products of contiguous operands run twice as fast as on the head-split views of
	// the projections (measured at ViT-L size: 9.3 vs 19 ms per layer).
	qc := torchx.Must(q.Contiguous(false))
	defer qc.Drop()
	kc := torchx.Must(k.Contiguous(false))
	defer kc.Drop()
	kt := torchx.Must(kc.Transpose(2, 3, false))
	defer kt.Drop()
	var scores *ts.Tensor
	if frac, _ := math.Frexp(scale); frac == 0.5 {
		// A power of two (head sizes 4, 16, 64, 256): scaling q first is exact and touches
		// Tq·D values instead of Tq·Tk.
		qs := torchx.Must(qc.MulScalar(ts.FloatScalar(scale), false))
		defer qs.Drop()
		scores = torchx.Must(qs.Matmul(kt, false))
	} else {
		raw := torchx.Must(qc.Matmul(kt, false))
		defer raw.Drop()
		scores = torchx.Must(raw.MulScalar(ts.FloatScalar(scale), false))
	}
	defer scores.Drop()
	if mask != nil {
		masked := torchx.Must(scores.Add(mask, false))
		defer masked.Drop()
		scores = masked
	}
	probs := torchx.Must(scores.Softmax(-1, gotch.Float, false))
	defer probs.Drop()
	if p > 0 {
		dropped := torchx.Must(ts.Dropout(probs, p, true))
		defer dropped.Drop()
		probs = dropped
	}
	vc := torchx.Must(v.Contiguous(false))
	defer vc.Drop()
	return probs.Matmul(vc, false)
}

// MaskValue is the additive mask value for removed positions: float32's lowest value, as
// Hugging Face's newer models use (finfo(float32).min).
const MaskValue = -math.MaxFloat32

// AdditiveMask turns keep (any numeric tensor, 1 = attend, 0 = do not) into an additive float32
// mask: (1 − keep)·value, Hugging Face's extended attention mask.
func AdditiveMask(keep *ts.Tensor, value float64) (out *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	f := torchx.Must(keep.Totype(gotch.Float, false))
	defer f.Drop()
	inv := torchx.Must(f.MulScalar(ts.FloatScalar(-1), false))
	defer inv.Drop()
	one := torchx.Must(inv.AddScalar(ts.FloatScalar(1), false))
	defer one.Drop()
	return one.MulScalar(ts.FloatScalar(value), false)
}

// CausalKeep is the [1, 1, Tq, past+Tq] int64 keep-mask of Tq new positions following past
// cached ones: position i may see every cached position and new positions ≤ i.
func CausalKeep(past, tq int64, device gotch.Device) (out *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	keep := make([]int64, tq*(past+tq))
	for i := int64(0); i < tq; i++ {
		for j := int64(0); j <= past+i; j++ {
			keep[i*(past+tq)+j] = 1
		}
	}
	t := torchx.Must(ts.OfSlice(keep))
	defer t.Drop()
	v := torchx.Must(t.View([]int64{1, 1, tq, past + tq}, false))
	defer v.Drop()
	return v.To(device, false)
}

// KVCache holds one self-attention layer's keys and values [rows, H, T, D] of the positions
// decoded so far.
type KVCache struct {
	K, V *ts.Tensor
}

// Len is the number of cached positions.
func (c *KVCache) Len() int64 {
	if c == nil || c.K == nil {
		return 0
	}
	return torchx.MustSize(c.K)[2]
}

// Append adds the new positions' keys and values and returns the whole cache. The previous
// tensors are freed.
func (c *KVCache) Append(k, v *ts.Tensor) (K, V *ts.Tensor, err error) {
	if c.K == nil {
		if c.K, err = k.ShallowClone(); err != nil {
			return nil, nil, torchx.Err("kv cache", err)
		}
		if c.V, err = v.ShallowClone(); err != nil {
			return nil, nil, torchx.Err("kv cache", err)
		}
		return c.K, c.V, nil
	}
	nk, err := ts.Cat([]*ts.Tensor{c.K, k}, 2)
	if err != nil {
		return nil, nil, torchx.Err("kv cache", err)
	}
	nv, err := ts.Cat([]*ts.Tensor{c.V, v}, 2)
	if err != nil {
		nk.Drop()
		return nil, nil, torchx.Err("kv cache", err)
	}
	c.K.Drop()
	c.V.Drop()
	c.K, c.V = nk, nv
	return c.K, c.V, nil
}

// Reorder keeps the cache rows listed in idx (an int64 tensor on the cache's device).
func (c *KVCache) Reorder(idx *ts.Tensor) error {
	if c.K == nil {
		return nil
	}
	nk, err := c.K.IndexSelect(0, idx, false)
	if err != nil {
		return torchx.Err("kv cache", err)
	}
	nv, err := c.V.IndexSelect(0, idx, false)
	if err != nil {
		nk.Drop()
		return torchx.Err("kv cache", err)
	}
	c.K.Drop()
	c.V.Drop()
	c.K, c.V = nk, nv
	return nil
}

// Drop frees the cache.
func (c *KVCache) Drop() {
	if c.K != nil {
		c.K.Drop()
		c.V.Drop()
	}
	c.K, c.V = nil, nil
}

// DecoderState is a transformer decoder's incremental state for rows of generation: one
// self-attention cache per layer and each layer's cross-attention keys and values, computed once
// per image and shared by all of that image's rows.
type DecoderState struct {
	Caches []*KVCache
	Cross  []CrossKV
}

// Drop frees the caches and the cross-attention keys and values.
func (s *DecoderState) Drop() {
	for _, c := range s.Caches {
		c.Drop()
	}
	for i := range s.Cross {
		s.Cross[i].Drop()
	}
}

// Tensors lists the state's live tensors (to keep them out of a closing torchx scope).
func (s *DecoderState) Tensors() []*ts.Tensor {
	var out []*ts.Tensor
	for _, c := range s.Caches {
		if c.K != nil {
			out = append(out, c.K, c.V)
		}
	}
	for _, c := range s.Cross {
		if c.K != nil {
			out = append(out, c.K, c.V)
		}
	}
	return out
}

// Past is the number of cached positions.
func (s *DecoderState) Past() int64 {
	if s == nil || len(s.Caches) == 0 {
		return 0
	}
	return s.Caches[0].Len()
}

// Reorder keeps the cache rows listed in idx (int64 on the caches' device); the cross-attention
// keys and values are per image and stay.
func (s *DecoderState) Reorder(idx *ts.Tensor) error {
	for _, c := range s.Caches {
		if err := c.Reorder(idx); err != nil {
			return err
		}
	}
	return nil
}

// MultiHeadAttention projects queries, keys and values for scaled dot-product attention with
// Hugging Face's layouts: separate Query/Key/Value layers (ViT, BERT), one fused QKV layer whose
// output is [q | k | v] (BLIP vision, GPT-2 self-attention), or Query plus a fused KV layer
// [k | v] (GPT-2 cross-attention). The output projection is left to the caller, whose names and
// residual/LayerNorm arrangement differ per model.
type MultiHeadAttention struct {
	Query, Key, Value Layer
	QKV               Layer // fused [q | k | v]; Query/Key/Value unused when set
	KV                Layer // fused [k | v]; Key/Value unused when set
	Heads             int64
	Scale             float64 // usually head_dim^-0.5
	// DropoutP is the attention-probability dropout applied in training.
	DropoutP float64
}

func chunk(x *ts.Tensor, n int64) (parts []*ts.Tensor, err error) {
	s := torchx.MustSize(x)
	w := s[len(s)-1] / n
	for i := int64(0); i < n; i++ {
		p, err := x.Narrow(int64(len(s)-1), i*w, w, false)
		if err != nil {
			for _, q := range parts {
				q.Drop()
			}
			return nil, torchx.Err("attention split", err)
		}
		parts = append(parts, p)
	}
	return parts, nil
}

// project returns q, k, v [B, T, H·D] for self-attention on x.
func (a *MultiHeadAttention) project(x *ts.Tensor) (q, k, v *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	if a.QKV != nil {
		qkv := torchx.Must(a.QKV.Forward(x))
		defer qkv.Drop()
		p, err := chunk(qkv, 3)
		torchx.MustOK(err)
		return p[0], p[1], p[2], nil
	}
	q = torchx.Must(a.Query.Forward(x))
	k, v = torchx.Must2(a.projectKV(x))
	return q, k, v, nil
}

// projectKV returns k, v [B, T, H·D] of the states x.
func (a *MultiHeadAttention) projectKV(x *ts.Tensor) (k, v *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	if a.KV != nil {
		kv := torchx.Must(a.KV.Forward(x))
		defer kv.Drop()
		p, err := chunk(kv, 2)
		torchx.MustOK(err)
		return p[0], p[1], nil
	}
	return torchx.Must(a.Key.Forward(x)), torchx.Must(a.Value.Forward(x)), nil
}

// SelfAttention attends x [B, T, hidden] to itself (and, with a cache, to the cached positions,
// which it extends by T). mask is additive and broadcastable to [B, H, T, past+T], or nil. It
// returns the merged heads [B, T, H·D], before the output projection.
func (a *MultiHeadAttention) SelfAttention(x, mask *ts.Tensor, cache *KVCache, train bool) (out *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	q, k, v, err := a.project(x)
	torchx.MustOK(err)
	defer q.Drop()
	defer k.Drop()
	defer v.Drop()
	qh := torchx.Must(SplitHeads(q, a.Heads))
	defer qh.Drop()
	kh := torchx.Must(SplitHeads(k, a.Heads))
	defer kh.Drop()
	vh := torchx.Must(SplitHeads(v, a.Heads))
	defer vh.Drop()
	if cache != nil {
		K, V, err := cache.Append(kh, vh)
		torchx.MustOK(err)
		kh, vh = K, V // owned by the cache: the deferred drops above free the old heads only
		o := torchx.Must(a.attend(qh, kh, vh, mask, train))
		defer o.Drop()
		return MergeHeads(o)
	}
	o := torchx.Must(a.attend(qh, kh, vh, mask, train))
	defer o.Drop()
	return MergeHeads(o)
}

func (a *MultiHeadAttention) attend(q, k, v, mask *ts.Tensor, train bool) (*ts.Tensor, error) {
	p := 0.0
	if train {
		p = a.DropoutP
	}
	return attend(q, k, v, mask, a.Scale, p)
}

// CrossKV are one cross-attention layer's keys and values [N, H, Tk, D], computed once per image
// and shared by every beam and every generation step.
type CrossKV struct {
	K, V *ts.Tensor
}

// Drop frees the keys and values.
func (c *CrossKV) Drop() {
	if c.K != nil {
		c.K.Drop()
		c.V.Drop()
	}
	c.K, c.V = nil, nil
}

// CrossKeysValues projects encoder states [N, Tk, enc_hidden] to per-head keys and values.
func (a *MultiHeadAttention) CrossKeysValues(enc *ts.Tensor) (kv CrossKV, err error) {
	defer torchx.Catch(&err)
	k, v := torchx.Must2(a.projectKV(enc))
	defer k.Drop()
	defer v.Drop()
	// Stored contiguous: every generation step reads them, and a head-split view would be
	// copied again at each step (42 MB per token at BLIP-large size).
	kh := torchx.Must(SplitHeads(k, a.Heads))
	defer kh.Drop()
	vh := torchx.Must(SplitHeads(v, a.Heads))
	defer vh.Drop()
	kv.K = torchx.Must(kh.Contiguous(false))
	kv.V = torchx.Must(vh.Contiguous(false))
	return kv, nil
}

// CrossAttention attends x [R, T, hidden] to precomputed keys and values of N images, where the R
// rows are R/N consecutive rows per image. mask is additive [N, 1, 1, Tk] or nil. It returns the
// merged heads [R, T, H·D], before the output projection.
func (a *MultiHeadAttention) CrossAttention(x *ts.Tensor, kv CrossKV, mask *ts.Tensor, train bool) (out *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	q := torchx.Must(a.Query.Forward(x))
	defer q.Drop()
	qh := torchx.Must(SplitHeads(q, a.Heads))
	defer qh.Drop()
	o := torchx.Must(a.attend(qh, kv.K, kv.V, mask, train))
	defer o.Drop()
	return MergeHeads(o)
}

// BlockInput is what a transformer block needs besides its hidden states.
type BlockInput struct {
	Mask      *ts.Tensor // additive self-attention mask, or nil
	Cache     *KVCache   // self-attention cache for incremental decoding, or nil
	Cross     *CrossKV   // encoder keys and values for cross-attention, or nil to skip it
	CrossMask *ts.Tensor // additive cross-attention mask [N, 1, 1, Tk], or nil
	Train     bool       // dropout on
}

// PreLNBlock is a pre-LayerNorm transformer block (ViT, GPT-2, BLIP's vision model):
// x += Out(Attn(LN1(x))); x += CrossOut(Cross(LNCross(x))) when cross-attending;
// x += MLP(LN2(x)). Dropout (p = Dropout) follows each output projection in training, and
// stochastic depth (p = DropPath, see the DropPath function) drops each residual branch per
// sample.
type PreLNBlock struct {
	LN1      *LayerNorm
	Attn     *MultiHeadAttention
	AttnOut  Layer
	LNCross  *LayerNorm
	Cross    *MultiHeadAttention
	CrossOut Layer
	LN2      *LayerNorm
	MLP      *MLP
	Dropout  float64
	// DropPath is the probability, in training, of dropping a residual branch of a sample
	// (timm's and BLIP's DropPath; 0 = off, and nothing is computed for it at inference).
	DropPath float64
}

// residual returns x + DropPath(Dropout(out(f(norm(x))))): the branch is dropped per sample with
// probability dropPath in training (0: never, and nothing is computed for it).
func residual(x *ts.Tensor, norm *LayerNorm, f func(*ts.Tensor) (*ts.Tensor, error), out Layer, p, dropPath float64, train bool) (y *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	h := x
	if norm != nil {
		h = torchx.Must(norm.Forward(x))
		defer h.Drop()
	}
	a := torchx.Must(f(h))
	defer a.Drop()
	if out != nil {
		o := torchx.Must(out.Forward(a))
		defer o.Drop()
		a = o
	}
	d := torchx.Must(Dropout(a, p, train))
	defer d.Drop()
	if train && dropPath != 0 {
		k := torchx.Must(DropPath(d, dropPath, train))
		defer k.Drop()
		d = k
	}
	return x.Add(d, false)
}

// Forward applies the block to x [B, T, hidden].
func (b *PreLNBlock) Forward(x *ts.Tensor, in BlockInput) (out *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	h := torchx.Must(residual(x, b.LN1, func(t *ts.Tensor) (*ts.Tensor, error) {
		return b.Attn.SelfAttention(t, in.Mask, in.Cache, in.Train)
	}, b.AttnOut, b.Dropout, b.DropPath, in.Train))
	if in.Cross != nil {
		if b.Cross == nil {
			h.Drop()
			return nil, fmt.Errorf("block has no cross-attention")
		}
		c := torchx.Must(residual(h, b.LNCross, func(t *ts.Tensor) (*ts.Tensor, error) {
			return b.Cross.CrossAttention(t, *in.Cross, in.CrossMask, in.Train)
		}, b.CrossOut, b.Dropout, b.DropPath, in.Train))
		h.Drop()
		h = c
	}
	defer h.Drop()
	return residual(h, b.LN2, b.MLP.Forward, nil, b.Dropout, b.DropPath, in.Train)
}

// PostLNBlock is a post-LayerNorm (BERT) block: x = AttnLN(x + Out(Attn(x)));
// x = CrossLN(x + CrossOut(Cross(x))) when cross-attending; x = MLPLN(x + MLP(x)).
type PostLNBlock struct {
	Attn     *MultiHeadAttention
	AttnOut  Layer
	AttnLN   *LayerNorm
	Cross    *MultiHeadAttention
	CrossOut Layer
	CrossLN  *LayerNorm
	MLP      *MLP
	MLPLN    *LayerNorm
	Dropout  float64
}

// Forward applies the block to x [B, T, hidden].
func (b *PostLNBlock) Forward(x *ts.Tensor, in BlockInput) (out *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	post := func(x *ts.Tensor, f func(*ts.Tensor) (*ts.Tensor, error), o Layer, ln *LayerNorm) *ts.Tensor {
		r := torchx.Must(residual(x, nil, f, o, b.Dropout, 0, in.Train))
		defer r.Drop()
		return torchx.Must(ln.Forward(r))
	}
	h := post(x, func(t *ts.Tensor) (*ts.Tensor, error) {
		return b.Attn.SelfAttention(t, in.Mask, in.Cache, in.Train)
	}, b.AttnOut, b.AttnLN)
	defer h.Drop()
	if in.Cross != nil {
		if b.Cross == nil {
			return nil, fmt.Errorf("block has no cross-attention")
		}
		c := post(h, func(t *ts.Tensor) (*ts.Tensor, error) {
			return b.Cross.CrossAttention(t, *in.Cross, in.CrossMask, in.Train)
		}, b.CrossOut, b.CrossLN)
		defer c.Drop()
		h = c
	}
	return post(h, b.MLP.Forward, nil, b.MLPLN), nil
}

// PatchTokens is the ViT-style input of a vision transformer: the patches of a Conv2d with
// kernel = stride = patch size, flattened row-major, after a class token, plus position
// embeddings: [cls, patches] + pos, [B, 1+patches, hidden]. pixels are moved to the
// parameters' device and dtype first.
func PatchTokens(pixels *ts.Tensor, patch *Conv2d, cls, pos *ts.Tensor) (out *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	b := torchx.MustSize(pixels)[0]
	h := torchx.MustSize(cls)[2]
	px := pixels
	if dev, derr := cls.Device(); derr == nil {
		if pdev, perr := px.Device(); perr == nil && pdev != dev {
			px = torchx.Must(px.To(dev, false))
			defer px.Drop()
		}
	}
	if dt := cls.DType(); px.DType() != dt {
		px = torchx.Must(px.Totype(dt, false))
		defer px.Drop()
	}
	conv := torchx.Must(patch.Forward(px)) // [B, H, h', w']
	defer conv.Drop()
	flat := torchx.Must(conv.Flatten(2, -1, false)) // [B, H, N]
	defer flat.Drop()
	patches := torchx.Must(flat.Transpose(1, 2, false)) // [B, N, H]
	defer patches.Drop()
	c := torchx.Must(cls.Expand([]int64{b, 1, h}, false, false))
	defer c.Drop()
	tokens := torchx.Must(ts.Cat([]*ts.Tensor{c, patches}, 1))
	defer tokens.Drop()
	return tokens.Add(pos, false)
}
