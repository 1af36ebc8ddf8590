// Package gpt2 is Hugging Face's GPT2LMHeadModel on gotch, with the optional cross-attention
// that VisionEncoderDecoder adds (add_cross_attention). Parameters are named exactly as its
// state_dict: transformer.{wte, wpe, h.N.{ln_1, attn.c_attn, attn.c_proj, ln_cross_attn,
// crossattention.{q_attn, c_attn, c_proj}, ln_2, mlp.c_fc, mlp.c_proj}, ln_f}. GPT-2's Conv1D
// layers keep their [in, out] weights (nn.Conv1D handles the layout), and lm_head.weight is
// transformer.wte.weight itself (tied), so it is neither a separate parameter nor in checkpoints.
package gpt2

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"github.com/sugarme/gotch"
	gnn "github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/nn"
	"github.com/imgcap/imgcap/torchx"
)

// Config mirrors Hugging Face's GPT2Config; absent keys take GPT2Config's defaults.
type Config struct {
	VocabSize                 int     `json:"vocab_size"`
	NPositions                int     `json:"n_positions"`
	NEmbd                     int     `json:"n_embd"`
	NLayer                    int     `json:"n_layer"`
	NHead                     int     `json:"n_head"`
	NInner                    *int    `json:"n_inner"` // null = 4·n_embd
	ActivationFunction        string  `json:"activation_function"`
	ResidPdrop                float64 `json:"resid_pdrop"`
	EmbdPdrop                 float64 `json:"embd_pdrop"`
	AttnPdrop                 float64 `json:"attn_pdrop"`
	LayerNormEpsilon          float64 `json:"layer_norm_epsilon"`
	InitializerRange          float64 `json:"initializer_range"`
	ScaleAttnWeights          bool    `json:"scale_attn_weights"`
	ScaleAttnByInverseLayerID bool    `json:"scale_attn_by_inverse_layer_idx"`
	ReorderAndUpcastAttn      bool    `json:"reorder_and_upcast_attn"`
	AddCrossAttention         bool    `json:"add_cross_attention"`
	BOSTokenID                *int64  `json:"bos_token_id"`
	EOSTokenID                *int64  `json:"eos_token_id"`
	PadTokenID                *int64  `json:"pad_token_id"`
	DecoderStartTokenID       *int64  `json:"decoder_start_token_id"`
}

func id(v int64) *int64 { return &v }

// DefaultConfig is GPT2Config() (GPT-2 small, 124M parameters).
func DefaultConfig() Config {
	return Config{
		VocabSize: 50257, NPositions: 1024, NEmbd: 768, NLayer: 12, NHead: 12,
		ActivationFunction: "gelu_new", ResidPdrop: 0.1, EmbdPdrop: 0.1, AttnPdrop: 0.1,
		LayerNormEpsilon: 1e-5, InitializerRange: 0.02, ScaleAttnWeights: true,
		BOSTokenID: id(50256), EOSTokenID: id(50256),
	}
}

// ParseConfig decodes a GPT-2 config (config.json, or the "decoder" object of a
// VisionEncoderDecoder config) over the defaults and validates it.
func ParseConfig(data []byte) (Config, error) {
	c := DefaultConfig()
	if err := json.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("gpt2 config: %w", err)
	}
	return c, c.Validate()
}

// Inner is the MLP width (n_inner, or 4·n_embd when null).
func (c Config) Inner() int {
	if c.NInner != nil && *c.NInner > 0 {
		return *c.NInner
	}
	return 4 * c.NEmbd
}

// Validate reports the first inconsistent value.
func (c Config) Validate() error {
	switch {
	case c.VocabSize <= 0 || c.NPositions <= 0 || c.NEmbd <= 0 || c.NLayer < 0 || c.NHead <= 0:
		return fmt.Errorf("gpt2 config: vocab_size %d, n_positions %d, n_embd %d, n_layer %d, n_head %d must be positive", c.VocabSize, c.NPositions, c.NEmbd, c.NLayer, c.NHead)
	case c.NEmbd%c.NHead != 0:
		return fmt.Errorf("gpt2 config: n_embd %d is not a multiple of n_head %d", c.NEmbd, c.NHead)
	case c.ReorderAndUpcastAttn:
		// Same math in float32 (it only changes the order of operations for fp16 stability).
	}
	if _, err := nn.Activation(c.ActivationFunction); err != nil {
		return fmt.Errorf("gpt2 config: activation_function: %w", err)
	}
	return nil
}

// Model is GPT2LMHeadModel.
type Model struct {
	Cfg    Config
	wte    *ts.Tensor
	wpe    *ts.Tensor
	blocks []*nn.PreLNBlock
	lnF    *nn.LayerNorm
}

// New builds the model under p (e.g. vs.Root().Sub("decoder")) with Hugging Face's
// initialisation: weights N(0, initializer_range²), c_proj weights scaled by 1/√(2·n_layer),
// biases 0, LayerNorms 1 and 0.
func New(p *gnn.Path, cfg Config) (m *Model, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	defer torchx.Catch(&err)
	e := int64(cfg.NEmbd)
	std := cfg.InitializerRange
	projStd := std / math.Sqrt(2*float64(cfg.NLayer))
	m = &Model{Cfg: cfg}
	tp := p.Sub("transformer")
	m.wte = torchx.Must(tp.Sub("wte").NewVar("weight", []int64{int64(cfg.VocabSize), e}, nn.NormalInit(std)))
	m.wpe = torchx.Must(tp.Sub("wpe").NewVar("weight", []int64{int64(cfg.NPositions), e}, nn.NormalInit(std)))
	act, err := nn.Activation(cfg.ActivationFunction)
	torchx.MustOK(err)
	conv := func(p *gnn.Path, in, out int64, std float64) *nn.Conv1D {
		c, err := nn.NewConv1D(p, in, out, std)
		torchx.MustOK(err)
		return c
	}
	for i := 0; i < cfg.NLayer; i++ {
		hp := tp.Sub("h").Sub(fmt.Sprint(i))
		ln := func(name string) *nn.LayerNorm {
			l, err := nn.NewLayerNorm(hp.Sub(name), e, cfg.LayerNormEpsilon)
			torchx.MustOK(err)
			return l
		}
		scale := 1.0
		if cfg.ScaleAttnWeights {
			scale = 1 / math.Sqrt(float64(e/int64(cfg.NHead)))
		}
		if cfg.ScaleAttnByInverseLayerID {
			scale /= float64(i + 1)
		}
		b := &nn.PreLNBlock{
			LN1: ln("ln_1"),
			Attn: &nn.MultiHeadAttention{
				QKV: conv(hp.Sub("attn").Sub("c_attn"), e, 3*e, std), Heads: int64(cfg.NHead),
				Scale: scale, DropoutP: cfg.AttnPdrop,
			},
			AttnOut: conv(hp.Sub("attn").Sub("c_proj"), e, e, projStd),
			LN2:     ln("ln_2"),
			MLP: &nn.MLP{
				FC1: conv(hp.Sub("mlp").Sub("c_fc"), e, int64(cfg.Inner()), std),
				FC2: conv(hp.Sub("mlp").Sub("c_proj"), int64(cfg.Inner()), e, projStd),
				Act: act,
			},
			Dropout: cfg.ResidPdrop,
		}
		if cfg.AddCrossAttention {
			cp := hp.Sub("crossattention")
			b.LNCross = ln("ln_cross_attn")
			b.Cross = &nn.MultiHeadAttention{
				Query: conv(cp.Sub("q_attn"), e, e, std),
				KV:    conv(cp.Sub("c_attn"), e, 2*e, std),
				Heads: int64(cfg.NHead), Scale: scale, DropoutP: cfg.AttnPdrop,
			}
			b.CrossOut = conv(cp.Sub("c_proj"), e, e, projStd)
		}
		m.blocks = append(m.blocks, b)
	}
	m.lnF, err = nn.NewLayerNorm(tp.Sub("ln_f"), e, cfg.LayerNormEpsilon)
	torchx.MustOK(err)
	return m, nil
}

// IgnoredCheckpointKey reports the keys older GPT-2 checkpoints carry that are not parameters:
// the causal-mask buffers attn.bias / attn.masked_bias, and lm_head.weight, which is the tied
// wte (HF writes it to pytorch_model.bin files).
func IgnoredCheckpointKey(name string) bool {
	return strings.HasSuffix(name, ".attn.bias") || strings.HasSuffix(name, ".attn.masked_bias") ||
		strings.HasSuffix(name, ".crossattention.bias") || strings.HasSuffix(name, ".crossattention.masked_bias") ||
		name == "lm_head.weight" || strings.HasSuffix(name, ".lm_head.weight")
}

// State is the decoder's incremental state for generation (nn.DecoderState).
type State = nn.DecoderState

// NewState prepares generation state: encoder [N, Tk, n_embd] (already projected to n_embd)
// gives each layer's cross-attention keys and values once; nil means no cross-attention.
func (m *Model) NewState(encoder *ts.Tensor) (s *State, err error) {
	defer torchx.Catch(&err)
	s = &State{}
	for range m.blocks {
		s.Caches = append(s.Caches, &nn.KVCache{})
	}
	if encoder != nil {
		for _, b := range m.blocks {
			if b.Cross == nil {
				s.Drop()
				return nil, fmt.Errorf("gpt2: encoder states given but the model has no cross-attention (add_cross_attention false)")
			}
			kv, err := b.Cross.CrossKeysValues(encoder)
			if err != nil {
				s.Drop()
				return nil, err
			}
			s.Cross = append(s.Cross, kv)
		}
	}
	return s, nil
}

// Forward returns the logits [B, T, vocab] for ids [B, T]. With a state, the ids continue the
// cached positions (positions past..past+T-1) and the caches grow; without one, the whole
// sequence is processed and encoder [B, Tk, n_embd] (or nil) is cross-attended. No padding mask
// is applied (as in VisionEncoderDecoder, where padding only follows real tokens).
func (m *Model) Forward(ids, encoder *ts.Tensor, st *State, train bool) (out *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	h := torchx.Must(m.Hidden(ids, encoder, st, train))
	defer h.Drop()
	return ts.Linear(h, m.wte, ts.None)
}

// Hidden is Forward without the LM head: ln_f's output [B, T, n_embd].
func (m *Model) Hidden(ids, encoder *ts.Tensor, st *State, train bool) (out *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	s := torchx.MustSize(ids)
	if len(s) != 2 {
		return nil, fmt.Errorf("gpt2: input ids %v, want [B, T]", s)
	}
	T := s[1]
	past := st.Past()
	if past+T > int64(m.Cfg.NPositions) {
		return nil, fmt.Errorf("gpt2: %d positions exceed n_positions %d", past+T, m.Cfg.NPositions)
	}
	dev, err := m.wte.Device()
	torchx.MustOK(err)
	tok := torchx.Must(ts.Embedding(m.wte, ids, -1, false, false))
	defer tok.Drop()
	posIDs := torchx.Must(ts.ArangeStart(ts.IntScalar(past), ts.IntScalar(past+T), gotch.Int64, dev))
	defer posIDs.Drop()
	pos := torchx.Must(ts.Embedding(m.wpe, posIDs, -1, false, false))
	defer pos.Drop()
	sum := torchx.Must(tok.Add(pos, false))
	defer sum.Drop()
	x := torchx.Must(nn.Dropout(sum, m.Cfg.EmbdPdrop, train))
	var mask *ts.Tensor
	if T > 1 {
		keep := torchx.Must(nn.CausalKeep(past, T, dev))
		defer keep.Drop()
		mask = torchx.Must(nn.AdditiveMask(keep, nn.MaskValue))
		defer mask.Drop()
	}
	var crossTrain []nn.CrossKV
	if st == nil && encoder != nil {
		// Training / full-sequence forward: project the encoder states per layer (with grad).
		for _, b := range m.blocks {
			if b.Cross == nil {
				return nil, fmt.Errorf("gpt2: encoder states given but the model has no cross-attention (add_cross_attention false)")
			}
			kv, err := b.Cross.CrossKeysValues(encoder)
			torchx.MustOK(err)
			crossTrain = append(crossTrain, kv)
		}
		defer func() {
			for i := range crossTrain {
				crossTrain[i].Drop()
			}
		}()
	}
	for i, b := range m.blocks {
		in := nn.BlockInput{Mask: mask, Train: train}
		if st != nil {
			in.Cache = st.Caches[i]
			if len(st.Cross) > 0 {
				in.Cross = &st.Cross[i]
			}
		} else if crossTrain != nil {
			in.Cross = &crossTrain[i]
		}
		y := torchx.Must(b.Forward(x, in))
		x.Drop()
		x = y
	}
	defer x.Drop()
	return m.lnF.Forward(x)
}

// WTE is the token embedding matrix [vocab, n_embd] (also the LM head).
func (m *Model) WTE() *ts.Tensor { return m.wte }
