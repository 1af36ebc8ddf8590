// Package blip is Hugging Face's BLIP (transformers 4.36.2) on gotch: the vision transformer
// (vision_model.*), the BERT-style text encoder/decoder (text_encoder.*, text_decoder.bert.*,
// text_decoder.cls.*), the captioning model BlipForConditionalGeneration, the retrieval model
// BlipForImageTextRetrieval (ITM head and ITC projections), and BLIP's pre-training objectives
// (image-text contrastive, image-text matching with hard negatives, language modelling).
//
// Parameters are named exactly as the Hugging Face state_dict, so checkpoints load by name.
// Generation computes each image's cross-attention keys and values once and shares them between
// beams and steps (Hugging Face recomputes them for every token) and caches the self-attention
// keys and values. Captioner implements models.Captioner with the generation defaults Hugging
// Face's BLIP uses (text_config's; see ReadGenerationConfig). Retrieval also provides the
// pieces of BLIP's retrieval evaluation (EncodeImages, EncodeTexts, PairLogits); PreCaption and
// WriteVocab are BLIP's caption cleaning and a BLIP tokenizer for models trained from scratch.
package blip

import (
	"encoding/json"
	"fmt"

	"github.com/imgcap/imgcap/nn"
)

// TextConfig mirrors Hugging Face's BlipTextConfig (4.36.2); absent keys take its defaults.
type TextConfig struct {
	VocabSize                 int     `json:"vocab_size"`
	HiddenSize                int     `json:"hidden_size"`
	EncoderHiddenSize         int     `json:"encoder_hidden_size"`
	IntermediateSize          int     `json:"intermediate_size"`
	ProjectionDim             int     `json:"projection_dim"`
	NumHiddenLayers           int     `json:"num_hidden_layers"`
	NumAttentionHeads         int     `json:"num_attention_heads"`
	MaxPositionEmbeddings     int     `json:"max_position_embeddings"`
	HiddenAct                 string  `json:"hidden_act"`
	LayerNormEps              float64 `json:"layer_norm_eps"`
	HiddenDropoutProb         float64 `json:"hidden_dropout_prob"`
	AttentionProbsDropoutProb float64 `json:"attention_probs_dropout_prob"`
	InitializerRange          float64 `json:"initializer_range"`
	BOSTokenID                int64   `json:"bos_token_id"`
	EOSTokenID                int64   `json:"eos_token_id"`
	PadTokenID                int64   `json:"pad_token_id"`
	SepTokenID                int64   `json:"sep_token_id"`
	// IsDecoder decides whether the text layers have cross-attention (crossattention.*): HF builds
	// it only when is_decoder is true, the default, so even the retrieval text encoder has it.
	IsDecoder bool `json:"is_decoder"`
	// LabelSmoothing is the language-modelling loss's label smoothing when the config names it
	// (transformers after 4.36 read it from the config); nil means 4.36.2's fixed 0.1.
	LabelSmoothing *float64 `json:"label_smoothing"`
}

// VisionConfig mirrors Hugging Face's BlipVisionConfig (4.36.2); absent keys take its defaults.
type VisionConfig struct {
	HiddenSize        int     `json:"hidden_size"`
	IntermediateSize  int     `json:"intermediate_size"`
	ProjectionDim     int     `json:"projection_dim"`
	NumHiddenLayers   int     `json:"num_hidden_layers"`
	NumAttentionHeads int     `json:"num_attention_heads"`
	NumChannels       int     `json:"num_channels"`
	ImageSize         int     `json:"image_size"`
	PatchSize         int     `json:"patch_size"`
	HiddenAct         string  `json:"hidden_act"`
	LayerNormEps      float64 `json:"layer_norm_eps"`
	Dropout           float64 `json:"dropout"`
	AttentionDropout  float64 `json:"attention_dropout"`
	InitializerRange  float64 `json:"initializer_range"`
	// DropPathRate is the stochastic depth of the last layer in training (BLIP's ViT
	// drop_path_rate; layer i drops each residual branch with nn.DropPathRates(rate, layers)[i]).
	// Hugging Face's BlipVisionConfig has no such key, so it is a training setting, never read
	// from or written to config.json.
	DropPathRate float64 `json:"-"`
}

// Config mirrors Hugging Face's BlipConfig (4.36.2); absent keys take its defaults.
type Config struct {
	Architectures       []string     `json:"architectures"`
	Text                TextConfig   `json:"text_config"`
	Vision              VisionConfig `json:"vision_config"`
	ProjectionDim       int          `json:"projection_dim"`
	LogitScaleInitValue float64      `json:"logit_scale_init_value"`
	ImageTextHiddenSize int          `json:"image_text_hidden_size"`
	InitializerRange    float64      `json:"initializer_range"`
	InitializerFactor   float64      `json:"initializer_factor"`
	TieWordEmbeddings   bool         `json:"tie_word_embeddings"`
	ModelType           string       `json:"model_type"`
	// LabelSmoothingConfig is a top-level label_smoothing, when present (see LMLabelSmoothing).
	LabelSmoothingConfig *float64 `json:"label_smoothing,omitempty"`
}

// HFLabelSmoothing is the label smoothing transformers 4.36.2 hard-codes in BlipTextLMHeadModel's
// loss.
const HFLabelSmoothing = 0.1

// HFMaskValue is the additive value BLIP's text model gives masked self-attention positions:
// (1 − mask)·−10000, not −∞ or float32's lowest value.
const HFMaskValue = -10000.0

// DefaultTextConfig is BlipTextConfig().
func DefaultTextConfig() TextConfig {
	return TextConfig{
		VocabSize: 30524, HiddenSize: 768, EncoderHiddenSize: 768, IntermediateSize: 3072, ProjectionDim: 768,
		NumHiddenLayers: 12, NumAttentionHeads: 8, MaxPositionEmbeddings: 512, HiddenAct: "gelu",
		LayerNormEps: 1e-12, InitializerRange: 0.02, BOSTokenID: 30522, EOSTokenID: 2, PadTokenID: 0,
		SepTokenID: 102, IsDecoder: true,
	}
}

// DefaultVisionConfig is BlipVisionConfig().
func DefaultVisionConfig() VisionConfig {
	return VisionConfig{
		HiddenSize: 768, IntermediateSize: 3072, ProjectionDim: 512, NumHiddenLayers: 12, NumAttentionHeads: 12,
		NumChannels: 3, ImageSize: 384, PatchSize: 16, HiddenAct: "gelu", LayerNormEps: 1e-5,
		InitializerRange: 1e-10,
	}
}

// DefaultConfig is BlipConfig(): BLIP-base's sizes, with the text model's encoder_hidden_size set
// to the vision hidden size.
func DefaultConfig() Config {
	c := Config{
		Text: DefaultTextConfig(), Vision: DefaultVisionConfig(), ProjectionDim: 512,
		LogitScaleInitValue: 2.6592, ImageTextHiddenSize: 256, InitializerRange: 0.02, InitializerFactor: 1,
		TieWordEmbeddings: true, ModelType: "blip",
	}
	c.Text.EncoderHiddenSize = c.Vision.HiddenSize
	return c
}

// ParseConfig decodes a BLIP config.json over BlipConfig's defaults, as BlipConfig(**json) does:
// text_config and vision_config keys that are absent keep their defaults, and the text model's
// encoder_hidden_size is overwritten by the vision hidden size.
func ParseConfig(data []byte) (Config, error) {
	c := DefaultConfig()
	if err := json.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("blip config: %w", err)
	}
	if c.ModelType != "" && c.ModelType != "blip" {
		return c, fmt.Errorf("blip config: model_type %q is not blip", c.ModelType)
	}
	c.Text.EncoderHiddenSize = c.Vision.HiddenSize
	return c, c.Validate()
}

// Validate reports the first inconsistent value.
func (c Config) Validate() error {
	if err := c.Text.Validate(); err != nil {
		return err
	}
	if err := c.Vision.Validate(); err != nil {
		return err
	}
	if c.ImageTextHiddenSize <= 0 {
		return fmt.Errorf("blip config: image_text_hidden_size %d must be positive", c.ImageTextHiddenSize)
	}
	if c.Text.EncoderHiddenSize != c.Vision.HiddenSize {
		return fmt.Errorf("blip config: text encoder_hidden_size %d differs from vision hidden_size %d", c.Text.EncoderHiddenSize, c.Vision.HiddenSize)
	}
	return nil
}

// Validate reports the first inconsistent value.
func (c TextConfig) Validate() error {
	switch {
	case c.VocabSize <= 0 || c.HiddenSize <= 0 || c.IntermediateSize <= 0 || c.NumHiddenLayers < 0 ||
		c.NumAttentionHeads <= 0 || c.MaxPositionEmbeddings <= 0 || c.EncoderHiddenSize <= 0:
		return fmt.Errorf("blip text config: vocab_size %d, hidden_size %d, intermediate_size %d, num_hidden_layers %d, num_attention_heads %d, max_position_embeddings %d, encoder_hidden_size %d must be positive",
			c.VocabSize, c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers, c.NumAttentionHeads, c.MaxPositionEmbeddings, c.EncoderHiddenSize)
	case c.HiddenSize%c.NumAttentionHeads != 0:
		return fmt.Errorf("blip text config: hidden_size %d is not a multiple of num_attention_heads %d", c.HiddenSize, c.NumAttentionHeads)
	case c.LayerNormEps <= 0:
		return fmt.Errorf("blip text config: layer_norm_eps %g must be positive", c.LayerNormEps)
	case c.HiddenDropoutProb < 0 || c.HiddenDropoutProb >= 1 || c.AttentionProbsDropoutProb < 0 || c.AttentionProbsDropoutProb >= 1:
		return fmt.Errorf("blip text config: dropout probabilities %g, %g must be in [0, 1)", c.HiddenDropoutProb, c.AttentionProbsDropoutProb)
	case c.LabelSmoothing != nil && (*c.LabelSmoothing < 0 || *c.LabelSmoothing > 1):
		return fmt.Errorf("blip text config: label_smoothing %g must be in [0, 1]", *c.LabelSmoothing)
	}
	for name, id := range map[string]int64{"bos_token_id": c.BOSTokenID, "pad_token_id": c.PadTokenID, "sep_token_id": c.SepTokenID} {
		if id < 0 || id >= int64(c.VocabSize) {
			return fmt.Errorf("blip text config: %s %d outside the vocabulary of %d", name, id, c.VocabSize)
		}
	}
	if _, err := nn.Activation(c.HiddenAct); err != nil {
		return fmt.Errorf("blip text config: hidden_act: %w", err)
	}
	return nil
}

// Validate reports the first inconsistent value.
func (c VisionConfig) Validate() error {
	switch {
	case c.HiddenSize <= 0 || c.IntermediateSize <= 0 || c.NumHiddenLayers < 0 || c.NumAttentionHeads <= 0:
		return fmt.Errorf("blip vision config: hidden_size %d, intermediate_size %d, num_hidden_layers %d, num_attention_heads %d must be positive",
			c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers, c.NumAttentionHeads)
	case c.HiddenSize%c.NumAttentionHeads != 0:
		return fmt.Errorf("blip vision config: hidden_size %d is not a multiple of num_attention_heads %d", c.HiddenSize, c.NumAttentionHeads)
	case c.PatchSize <= 0 || c.ImageSize < c.PatchSize:
		return fmt.Errorf("blip vision config: image_size %d and patch_size %d do not make patches", c.ImageSize, c.PatchSize)
	case c.NumChannels <= 0:
		return fmt.Errorf("blip vision config: num_channels %d must be positive", c.NumChannels)
	case c.LayerNormEps <= 0:
		return fmt.Errorf("blip vision config: layer_norm_eps %g must be positive", c.LayerNormEps)
	case c.AttentionDropout < 0 || c.AttentionDropout >= 1:
		return fmt.Errorf("blip vision config: attention_dropout %g must be in [0, 1)", c.AttentionDropout)
	case !(c.DropPathRate >= 0 && c.DropPathRate < 1):
		return fmt.Errorf("blip vision config: drop path rate %g must be in [0, 1)", c.DropPathRate)
	}
	if _, err := nn.Activation(c.HiddenAct); err != nil {
		return fmt.Errorf("blip vision config: hidden_act: %w", err)
	}
	return nil
}

// NumPatches is the number of patch tokens ((image/patch)², the class token excluded).
func (c VisionConfig) NumPatches() int64 {
	n := int64(c.ImageSize / c.PatchSize)
	return n * n
}

// LMLabelSmoothing is the label smoothing of the captioning loss: text_config.label_smoothing, or
// a top-level label_smoothing, when the config has one; otherwise transformers 4.36.2's 0.1.
func (c Config) LMLabelSmoothing() float64 {
	switch {
	case c.Text.LabelSmoothing != nil:
		return *c.Text.LabelSmoothing
	case c.LabelSmoothingConfig != nil:
		return *c.LabelSmoothingConfig
	}
	return HFLabelSmoothing
}

// MarshalHF writes the config as a Hugging Face BlipConfig config.json (every key spelled out,
// the sub-configs with their model_type), which transformers and ReadConfig read back.
func (c Config) MarshalHF() ([]byte, error) {
	sub := func(v any, typ string) (map[string]any, error) {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		m := map[string]any{}
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, err
		}
		m["model_type"] = typ
		if m["label_smoothing"] == nil {
			delete(m, "label_smoothing") // absent: transformers' fixed 0.1
		}
		return m, nil
	}
	text, err := sub(c.Text, "blip_text_model")
	if err != nil {
		return nil, err
	}
	vision, err := sub(c.Vision, "blip_vision_model")
	if err != nil {
		return nil, err
	}
	out := map[string]any{
		"architectures": c.Architectures, "model_type": "blip", "text_config": text, "vision_config": vision,
		"projection_dim": c.ProjectionDim, "logit_scale_init_value": c.LogitScaleInitValue,
		"image_text_hidden_size": c.ImageTextHiddenSize, "initializer_range": c.InitializerRange,
		"initializer_factor": c.InitializerFactor, "tie_word_embeddings": c.TieWordEmbeddings,
		"torch_dtype": "float32", "transformers_version": "4.36.2",
	}
	if c.LabelSmoothingConfig != nil {
		out["label_smoothing"] = *c.LabelSmoothingConfig
	}
	return json.MarshalIndent(out, "", "  ")
}
