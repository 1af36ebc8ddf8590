// Package vit is Hugging Face's ViTModel (An Image is Worth 16x16 Words) on gotch, with
// parameters named exactly as its state_dict: embeddings.{cls_token, position_embeddings,
// patch_embeddings.projection}, encoder.layer.N.{layernorm_before, attention.attention.{query,
// key,value}, attention.output.dense, layernorm_after, intermediate.dense, output.dense},
// layernorm, pooler.dense.
package vit

import (
	"encoding/json"
	"fmt"
	"math"

	gnn "github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/nn"
	"github.com/imgcap/imgcap/torchx"
)

// Config mirrors Hugging Face's ViTConfig; absent keys take ViTConfig's defaults.
type Config struct {
	HiddenSize                int     `json:"hidden_size"`
	NumHiddenLayers           int     `json:"num_hidden_layers"`
	NumAttentionHeads         int     `json:"num_attention_heads"`
	IntermediateSize          int     `json:"intermediate_size"`
	HiddenAct                 string  `json:"hidden_act"`
	HiddenDropoutProb         float64 `json:"hidden_dropout_prob"`
	AttentionProbsDropoutProb float64 `json:"attention_probs_dropout_prob"`
	InitializerRange          float64 `json:"initializer_range"`
	LayerNormEps              float64 `json:"layer_norm_eps"`
	ImageSize                 int     `json:"image_size"`
	PatchSize                 int     `json:"patch_size"`
	NumChannels               int     `json:"num_channels"`
	QKVBias                   bool    `json:"qkv_bias"`
	// AddPoolingLayer is not a config.json key: ViTModel(add_pooling_layer=True) is the default and
	// what VisionEncoderDecoder builds, so checkpoints carry pooler.dense.
	AddPoolingLayer bool `json:"-"`
}

// DefaultConfig is ViTConfig() (ViT-Base/16 at 224²).
func DefaultConfig() Config {
	return Config{
		HiddenSize: 768, NumHiddenLayers: 12, NumAttentionHeads: 12, IntermediateSize: 3072,
		HiddenAct: "gelu", InitializerRange: 0.02, LayerNormEps: 1e-12, ImageSize: 224,
		PatchSize: 16, NumChannels: 3, QKVBias: true, AddPoolingLayer: true,
	}
}

// ParseConfig decodes a ViT config (config.json, or the "encoder" object of a
// VisionEncoderDecoder config) over the defaults and validates it.
func ParseConfig(data []byte) (Config, error) {
	c := DefaultConfig()
	if err := json.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("vit config: %w", err)
	}
	return c, c.Validate()
}

// Validate reports the first inconsistent value.
func (c Config) Validate() error {
	switch {
	case c.HiddenSize <= 0 || c.NumHiddenLayers < 0 || c.NumAttentionHeads <= 0 || c.IntermediateSize <= 0:
		return fmt.Errorf("vit config: hidden_size %d, num_hidden_layers %d, num_attention_heads %d, intermediate_size %d must be positive", c.HiddenSize, c.NumHiddenLayers, c.NumAttentionHeads, c.IntermediateSize)
	case c.HiddenSize%c.NumAttentionHeads != 0:
		return fmt.Errorf("vit config: hidden_size %d is not a multiple of num_attention_heads %d", c.HiddenSize, c.NumAttentionHeads)
	case c.PatchSize <= 0 || c.ImageSize < c.PatchSize:
		return fmt.Errorf("vit config: image_size %d and patch_size %d do not make patches", c.ImageSize, c.PatchSize)
	case c.NumChannels <= 0:
		return fmt.Errorf("vit config: num_channels %d must be positive", c.NumChannels)
	}
	if _, err := nn.Activation(c.HiddenAct); err != nil {
		return fmt.Errorf("vit config: hidden_act: %w", err)
	}
	return nil
}

// NumPatches is the number of patch tokens ((image/patch)², the class token excluded).
func (c Config) NumPatches() int64 {
	n := int64(c.ImageSize / c.PatchSize)
	return n * n
}

// Model is ViTModel.
type Model struct {
	Cfg       Config
	cls, pos  *ts.Tensor
	patch     *nn.Conv2d
	layers    []*nn.PreLNBlock
	layernorm *nn.LayerNorm
	pooler    *nn.Linear
}

// New builds the model's parameters under p (e.g. vs.Root().Sub("encoder")), initialised as
// Hugging Face does (normal with initializer_range instead of its truncated normal; LayerNorm 1
// and 0; biases 0).
func New(p *gnn.Path, cfg Config) (m *Model, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	defer torchx.Catch(&err)
	h := int64(cfg.HiddenSize)
	std := cfg.InitializerRange
	m = &Model{Cfg: cfg}
	emb := p.Sub("embeddings")
	m.cls = torchx.Must(emb.NewVar("cls_token", []int64{1, 1, h}, nn.NormalInit(std)))
	m.pos = torchx.Must(emb.NewVar("position_embeddings", []int64{1, cfg.NumPatches() + 1, h}, nn.NormalInit(std)))
	ps := int64(cfg.PatchSize)
	m.patch, err = nn.NewConv2dInit(emb.Sub("patch_embeddings").Sub("projection"), int64(cfg.NumChannels), h, ps, ps, 0, nn.NormalInit(std), nn.ZeroInit())
	torchx.MustOK(err)
	act, err := nn.Activation(cfg.HiddenAct)
	torchx.MustOK(err)
	enc := p.Sub("encoder").Sub("layer")
	for i := 0; i < cfg.NumHiddenLayers; i++ {
		lp := enc.Sub(fmt.Sprint(i))
		att := lp.Sub("attention")
		self := att.Sub("attention")
		lin := func(p *gnn.Path, in, out int64, bias bool) *nn.Linear {
			l, err := nn.NewLinearStd(p, in, out, bias, std)
			torchx.MustOK(err)
			return l
		}
		ln := func(name string) *nn.LayerNorm {
			l, err := nn.NewLayerNorm(lp.Sub(name), h, cfg.LayerNormEps)
			torchx.MustOK(err)
			return l
		}
		inter := int64(cfg.IntermediateSize)
		m.layers = append(m.layers, &nn.PreLNBlock{
			LN1: ln("layernorm_before"),
			Attn: &nn.MultiHeadAttention{
				Query: lin(self.Sub("query"), h, h, cfg.QKVBias),
				Key:   lin(self.Sub("key"), h, h, cfg.QKVBias),
				Value: lin(self.Sub("value"), h, h, cfg.QKVBias),
				Heads: int64(cfg.NumAttentionHeads),
				Scale: 1 / math.Sqrt(float64(h/int64(cfg.NumAttentionHeads))), DropoutP: cfg.AttentionProbsDropoutProb,
			},
			AttnOut: lin(att.Sub("output").Sub("dense"), h, h, true),
			LN2:     ln("layernorm_after"),
			MLP: &nn.MLP{
				FC1: lin(lp.Sub("intermediate").Sub("dense"), h, inter, true),
				FC2: lin(lp.Sub("output").Sub("dense"), inter, h, true),
				Act: act,
			},
			Dropout: cfg.HiddenDropoutProb,
		})
	}
	m.layernorm, err = nn.NewLayerNorm(p.Sub("layernorm"), h, cfg.LayerNormEps)
	torchx.MustOK(err)
	if cfg.AddPoolingLayer {
		m.pooler, err = nn.NewLinearStd(p.Sub("pooler").Sub("dense"), h, h, true, std)
		torchx.MustOK(err)
	}
	return m, nil
}

// Forward returns last_hidden_state [B, 1+patches, hidden] for pixel_values [B, C, H, W] of the
// configured image size.
func (m *Model) Forward(pixels *ts.Tensor, train bool) (out *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	s := torchx.MustSize(pixels)
	if len(s) != 4 || s[1] != int64(m.Cfg.NumChannels) || s[2] != int64(m.Cfg.ImageSize) || s[3] != int64(m.Cfg.ImageSize) {
		return nil, fmt.Errorf("vit: pixel_values %v, want [B, %d, %d, %d]", s, m.Cfg.NumChannels, m.Cfg.ImageSize, m.Cfg.ImageSize)
	}
	x := torchx.Must(m.embed(pixels, train))
	for _, l := range m.layers {
		y := torchx.Must(l.Forward(x, nn.BlockInput{Train: train}))
		x.Drop()
		x = y
	}
	defer x.Drop()
	return m.layernorm.Forward(x)
}

// embed is [cls, patches (row-major)] + position_embeddings, then dropout.
func (m *Model) embed(pixels *ts.Tensor, train bool) (out *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	x := torchx.Must(nn.PatchTokens(pixels, m.patch, m.cls, m.pos))
	defer x.Drop()
	return nn.Dropout(x, m.Cfg.HiddenDropoutProb, train)
}

// Pool is ViTPooler: tanh(dense(hidden[:, 0])). VisionEncoderDecoder does not use it.
func (m *Model) Pool(hidden *ts.Tensor) (out *ts.Tensor, err error) {
	if m.pooler == nil {
		return nil, fmt.Errorf("vit: model built without a pooling layer")
	}
	defer torchx.Catch(&err)
	first := torchx.Must(hidden.Select(1, 0, false))
	defer first.Drop()
	d := torchx.Must(m.pooler.Forward(first))
	defer d.Drop()
	return d.Tanh(false)
}
