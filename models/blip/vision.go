package blip

import (
	"fmt"
	"math"

	gnn "github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/nn"
	"github.com/imgcap/imgcap/torchx"
)

// VisionModel is BlipVisionModel: embeddings.{class_embedding, patch_embedding, position_embedding},
// encoder.layers.N.{layer_norm1, self_attn.qkv, self_attn.projection, layer_norm2, mlp.fc1,
// mlp.fc2}, post_layernorm.
type VisionModel struct {
	Cfg      VisionConfig
	cls, pos *ts.Tensor
	patch    *nn.Conv2d
	layers   []*nn.PreLNBlock
	postLN   *nn.LayerNorm
}

// NewVisionModel builds the vision model under p (e.g. root.Sub("vision_model")) with
// BlipPreTrainedModel's initialisation: Linear and Conv weights N(0, std²) with std the top-level
// initializer_range, biases 0, LayerNorms 1 and 0, class and position embeddings
// N(0, vision initializer_range²) (HF truncates that normal at ±2, which at its tiny default std
// changes nothing). Layer i's stochastic depth is nn.DropPathRates(cfg.DropPathRate, layers)[i],
// BLIP's VisionTransformer rule.
func NewVisionModel(p *gnn.Path, cfg VisionConfig, std float64) (m *VisionModel, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	defer torchx.Catch(&err)
	h := int64(cfg.HiddenSize)
	m = &VisionModel{Cfg: cfg}
	emb := p.Sub("embeddings")
	m.cls = torchx.Must(emb.NewVar("class_embedding", []int64{1, 1, h}, nn.NormalInit(cfg.InitializerRange)))
	m.pos = torchx.Must(emb.NewVar("position_embedding", []int64{1, cfg.NumPatches() + 1, h}, nn.NormalInit(cfg.InitializerRange)))
	ps := int64(cfg.PatchSize)
	m.patch, err = nn.NewConv2dInit(emb.Sub("patch_embedding"), int64(cfg.NumChannels), h, ps, ps, 0, nn.NormalInit(std), nn.ZeroInit())
	torchx.MustOK(err)
	act, err := nn.Activation(cfg.HiddenAct)
	torchx.MustOK(err)
	heads := int64(cfg.NumAttentionHeads)
	inter := int64(cfg.IntermediateSize)
	dropPath := nn.DropPathRates(cfg.DropPathRate, cfg.NumHiddenLayers)
	for i := 0; i < cfg.NumHiddenLayers; i++ {
		lp := p.Sub("encoder").Sub("layers").Sub(fmt.Sprint(i))
		ln := func(name string) *nn.LayerNorm {
			l, err := nn.NewLayerNorm(lp.Sub(name), h, cfg.LayerNormEps)
			torchx.MustOK(err)
			return l
		}
		m.layers = append(m.layers, &nn.PreLNBlock{
			LN1: ln("layer_norm1"),
			Attn: &nn.MultiHeadAttention{
				QKV:   linear(lp.Sub("self_attn").Sub("qkv"), h, 3*h, std),
				Heads: heads, Scale: 1 / math.Sqrt(float64(h/heads)), DropoutP: cfg.AttentionDropout,
			},
			AttnOut: linear(lp.Sub("self_attn").Sub("projection"), h, h, std),
			LN2:     ln("layer_norm2"),
			MLP: &nn.MLP{
				FC1: linear(lp.Sub("mlp").Sub("fc1"), h, inter, std),
				FC2: linear(lp.Sub("mlp").Sub("fc2"), inter, h, std),
				Act: act,
			},
			// BlipEncoderLayer has no dropout on its residual branches (config.dropout is unused).
			// BLIP's own ViT drops them per sample in training (stochastic depth; Hugging Face
			// has no such layer, and at inference it is the identity).
			DropPath: dropPath[i],
		})
	}
	m.postLN, err = nn.NewLayerNorm(p.Sub("post_layernorm"), h, cfg.LayerNormEps)
	torchx.MustOK(err)
	return m, nil
}

// Forward returns last_hidden_state [B, 1+patches, hidden] (post_layernorm applied to every
// token: BLIP's image_embeds) for pixel_values [B, C, H, W] at the configured image size.
func (m *VisionModel) Forward(pixels *ts.Tensor, train bool) (out *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	s := torchx.MustSize(pixels)
	c := m.Cfg
	if len(s) != 4 || s[0] == 0 || s[1] != int64(c.NumChannels) || s[2] != int64(c.ImageSize) || s[3] != int64(c.ImageSize) {
		return nil, fmt.Errorf("blip vision: pixel_values %v, want [B>0, %d, %d, %d]", s, c.NumChannels, c.ImageSize, c.ImageSize)
	}
	x := torchx.Must(m.embed(pixels))
	for _, l := range m.layers {
		y, err := l.Forward(x, nn.BlockInput{Train: train})
		x.Drop()
		torchx.MustOK(err)
		x = y
	}
	defer x.Drop()
	return m.postLN.Forward(x)
}

// DropPathRates are the layers' stochastic-depth probabilities in training (see
// VisionConfig.DropPathRate).
func (m *VisionModel) DropPathRates() []float64 {
	rates := make([]float64, len(m.layers))
	for i, l := range m.layers {
		rates[i] = l.DropPath
	}
	return rates
}

// Pool is BlipVisionModel's pooler_output: post_layernorm applied a second time to token 0 of
// last_hidden_state [B, T, hidden].
func (m *VisionModel) Pool(last *ts.Tensor) (out *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	first := torchx.Must(last.Select(1, 0, false))
	defer first.Drop()
	return m.postLN.Forward(first)
}

// embed is [class_embedding, patches (row-major)] + position_embedding.
func (m *VisionModel) embed(pixels *ts.Tensor) (out *ts.Tensor, err error) {
	return nn.PatchTokens(pixels, m.patch, m.cls, m.pos)
}
