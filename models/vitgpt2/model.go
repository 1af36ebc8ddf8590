// Package vitgpt2 is Hugging Face's VisionEncoderDecoderModel with a ViT encoder and a GPT-2
// decoder (e.g. nlpconnect/vit-gpt2-image-captioning): parameters encoder.* (models/vit),
// decoder.* (models/gpt2) and, when the encoder and decoder widths differ, enc_to_dec_proj.
//
// Generation computes the image's cross-attention keys and values once per layer and shares them
// between beams and steps (Hugging Face recomputes them for every token), and caches the
// self-attention keys and values.
package vitgpt2

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/sugarme/gotch"
	gnn "github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/models"
	"github.com/imgcap/imgcap/models/gpt2"
	"github.com/imgcap/imgcap/models/vit"
	"github.com/imgcap/imgcap/nn"
	"github.com/imgcap/imgcap/torchx"
)

// Config is a VisionEncoderDecoderConfig with a ViT encoder and a GPT-2 decoder.
type Config struct {
	Encoder vit.Config
	Decoder gpt2.Config
	// DecoderStartTokenID starts every caption (HF decoder_start_token_id; GPT-2's bos by default).
	DecoderStartTokenID int64
	// PadTokenID replaces -100 in shifted labels and pads finished generations.
	PadTokenID int64
	// EOSTokenID ends a caption.
	EOSTokenID int64
}

// rawConfig is config.json as written by Hugging Face.
type rawConfig struct {
	ModelType           string          `json:"model_type"`
	Encoder             json.RawMessage `json:"encoder"`
	Decoder             json.RawMessage `json:"decoder"`
	DecoderStartTokenID *int64          `json:"decoder_start_token_id"`
	PadTokenID          *int64          `json:"pad_token_id"`
	EOSTokenID          *int64          `json:"eos_token_id"`
}

// ParseConfig decodes a VisionEncoderDecoder config.json, applying the ViT and GPT-2 defaults to
// absent keys; token ids absent at the top level come from the decoder config, as in
// Hugging Face's generation.
func ParseConfig(data []byte) (Config, error) {
	var raw rawConfig
	if err := json.Unmarshal(data, &raw); err != nil {
		return Config{}, err
	}
	if raw.ModelType != "" && raw.ModelType != "vision-encoder-decoder" {
		return Config{}, fmt.Errorf("model_type %q is not vision-encoder-decoder", raw.ModelType)
	}
	if raw.Encoder == nil || raw.Decoder == nil {
		return Config{}, fmt.Errorf("config has no encoder/decoder objects")
	}
	var c Config
	var err error
	if c.Encoder, err = vit.ParseConfig(raw.Encoder); err != nil {
		return c, fmt.Errorf("encoder: %w", err)
	}
	if c.Decoder, err = gpt2.ParseConfig(raw.Decoder); err != nil {
		return c, fmt.Errorf("decoder: %w", err)
	}
	var mt struct {
		ModelType                string `json:"model_type"`
		CrossAttentionHiddenSize *int   `json:"cross_attention_hidden_size"`
	}
	_ = json.Unmarshal(raw.Encoder, &mt)
	if mt.ModelType != "" && mt.ModelType != "vit" {
		return c, fmt.Errorf("encoder model_type %q: only vit is supported", mt.ModelType)
	}
	mt.ModelType = ""
	_ = json.Unmarshal(raw.Decoder, &mt)
	if mt.ModelType != "" && mt.ModelType != "gpt2" {
		return c, fmt.Errorf("decoder model_type %q: only gpt2 is supported", mt.ModelType)
	}
	if mt.CrossAttentionHiddenSize != nil && *mt.CrossAttentionHiddenSize != c.Decoder.NEmbd {
		return c, fmt.Errorf("decoder cross_attention_hidden_size %d: GPT-2 cross-attention reads n_embd (%d) features", *mt.CrossAttentionHiddenSize, c.Decoder.NEmbd)
	}
	c.Decoder.AddCrossAttention = true
	first := func(vals ...*int64) (int64, bool) {
		for _, v := range vals {
			if v != nil {
				return *v, true
			}
		}
		return 0, false
	}
	var ok bool
	if c.DecoderStartTokenID, ok = first(raw.DecoderStartTokenID, c.Decoder.DecoderStartTokenID, c.Decoder.BOSTokenID); !ok {
		return c, fmt.Errorf("no decoder_start_token_id (nor decoder bos_token_id)")
	}
	if c.EOSTokenID, ok = first(raw.EOSTokenID, c.Decoder.EOSTokenID); !ok {
		return c, fmt.Errorf("no eos_token_id")
	}
	if c.PadTokenID, ok = first(raw.PadTokenID, c.Decoder.PadTokenID); !ok {
		c.PadTokenID = c.EOSTokenID // HF generation falls back to eos for padding
	}
	for name, v := range map[string]int64{"decoder_start_token_id": c.DecoderStartTokenID, "eos_token_id": c.EOSTokenID, "pad_token_id": c.PadTokenID} {
		if v < 0 || v >= int64(c.Decoder.VocabSize) {
			return c, fmt.Errorf("%s %d outside the vocabulary of %d", name, v, c.Decoder.VocabSize)
		}
	}
	return c, nil
}

// HasProjection reports whether the model has enc_to_dec_proj (encoder and decoder widths
// differ).
func (c Config) HasProjection() bool { return c.Encoder.HiddenSize != c.Decoder.NEmbd }

// Model is VisionEncoderDecoderModel(ViTModel, GPT2LMHeadModel).
type Model struct {
	Cfg Config
	// Gen holds the generation defaults: generation_config.json of the model folder (else
	// the generation keys of config.json, else Hugging Face's defaults).
	Gen     nn.GenerationConfig
	vs      *gnn.VarStore
	Encoder *vit.Model
	Decoder *gpt2.Model
	proj    *nn.Linear
}

// New builds a randomly initialised model on device.
func New(cfg Config, device gotch.Device) (m *Model, err error) {
	vs := gnn.NewVarStore(device)
	root := vs.Root()
	m = &Model{Cfg: cfg, vs: vs, Gen: nn.DefaultGenerationConfig()}
	cfg.Decoder.AddCrossAttention = true
	if m.Encoder, err = vit.New(root.Sub("encoder"), cfg.Encoder); err != nil {
		return nil, fmt.Errorf("encoder: %w", err)
	}
	if m.Decoder, err = gpt2.New(root.Sub("decoder"), cfg.Decoder); err != nil {
		return nil, fmt.Errorf("decoder: %w", err)
	}
	if cfg.HasProjection() {
		// nn.Linear's PyTorch default init, as HF leaves this layer (it is not a PreTrainedModel's).
		if m.proj, err = nn.NewLinear(root.Sub("enc_to_dec_proj"), int64(cfg.Encoder.HiddenSize), int64(cfg.Decoder.NEmbd), true); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// VarStore holds every parameter, named like the Hugging Face state_dict.
func (m *Model) VarStore() *gnn.VarStore { return m.vs }

// Device is where the parameters live.
func (m *Model) Device() gotch.Device { return m.vs.Device() }

// Encode returns the encoder states the decoder cross-attends, [B, 1+patches, n_embd]
// (ViT's last_hidden_state, through enc_to_dec_proj when present).
func (m *Model) Encode(pixels *ts.Tensor, train bool) (out *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	h := torchx.Must(m.Encoder.Forward(pixels, train))
	if m.proj == nil {
		return h, nil
	}
	defer h.Drop()
	return m.proj.Forward(h)
}

// Logits runs the decoder on decoder_input_ids [B, T] conditioned on the images.
func (m *Model) Logits(pixels, decoderInputIDs *ts.Tensor, train bool) (out *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	enc := torchx.Must(m.Encode(pixels, train))
	defer enc.Drop()
	return m.Decoder.Forward(decoderInputIDs, enc, nil, train)
}

// ShiftTokensRight is HF's shift_tokens_right: [start, labels[:-1]] with -100 replaced by pad.
func ShiftTokensRight(labels *ts.Tensor, pad, start int64) (out *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	s := torchx.MustSize(labels)
	if len(s) != 2 || s[1] == 0 {
		return nil, fmt.Errorf("labels %v, want [B, T>0]", s)
	}
	dev, err := labels.Device()
	torchx.MustOK(err)
	head := torchx.Must(ts.Full([]int64{s[0], 1}, ts.IntScalar(start), gotch.Int64, dev))
	defer head.Drop()
	body := torchx.Must(labels.Narrow(1, 0, s[1]-1, false))
	defer body.Drop()
	shifted := torchx.Must(ts.Cat([]*ts.Tensor{head, body}, 1))
	defer shifted.Drop()
	ign := torchx.Must(shifted.Eq(ts.IntScalar(nn.IgnoreIndex), false))
	defer ign.Drop()
	return shifted.MaskedFill(ign, ts.IntScalar(pad), false)
}

// LossLabels is VisionEncoderDecoder's loss for labels [B, T] (-100 = ignored): the decoder reads
// the labels shifted right and the mean cross-entropy is taken over the non-ignored labels, with
// no label smoothing.
func (m *Model) LossLabels(pixels, labels *ts.Tensor, train bool) (loss *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	in := torchx.Must(ShiftTokensRight(labels, m.Cfg.PadTokenID, m.Cfg.DecoderStartTokenID))
	defer in.Drop()
	logits := torchx.Must(m.Logits(pixels, in, train))
	defer logits.Drop()
	return nn.SequenceCrossEntropy(logits, labels, nn.IgnoreIndex, 0)
}

// Loss is the training loss of a batch whose InputIDs are caption ids ending with EOS,
// right-padded (AttentionMask 0 marks padding, which becomes -100).
func (m *Model) Loss(b *models.Batch, train bool) (loss *ts.Tensor, err error) {
	if b.Pixels == nil || b.InputIDs == nil || b.AttentionMask == nil {
		return nil, fmt.Errorf("vit-gpt2 loss needs pixels, input ids and an attention mask")
	}
	defer torchx.Catch(&err)
	pad := torchx.Must(b.AttentionMask.Eq(ts.IntScalar(0), false))
	defer pad.Drop()
	labels := torchx.Must(b.InputIDs.MaskedFill(pad, ts.IntScalar(nn.IgnoreIndex), false))
	defer labels.Drop()
	return m.LossLabels(b.Pixels, labels, train)
}

// MarshalHF writes the config as a Hugging Face VisionEncoderDecoder config.json, which
// transformers and Load read back.
func (c Config) MarshalHF() ([]byte, error) {
	withType := func(v any, typ string, extra map[string]any) (map[string]any, error) {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		m := map[string]any{}
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, err
		}
		m["model_type"] = typ
		for k, v := range extra {
			m[k] = v
		}
		return m, nil
	}
	enc, err := withType(c.Encoder, "vit", nil)
	if err != nil {
		return nil, err
	}
	dec, err := withType(c.Decoder, "gpt2", map[string]any{"add_cross_attention": true, "is_decoder": true})
	if err != nil {
		return nil, err
	}
	return json.MarshalIndent(map[string]any{
		"architectures":          []string{"VisionEncoderDecoderModel"},
		"model_type":             "vision-encoder-decoder",
		"is_encoder_decoder":     true,
		"tie_word_embeddings":    false,
		"encoder":                enc,
		"decoder":                dec,
		"decoder_start_token_id": c.DecoderStartTokenID,
		"pad_token_id":           c.PadTokenID,
		"eos_token_id":           c.EOSTokenID,
	}, "", "  ")
}

// Freeze stops gradients for the encoder and/or the decoder. A frozen decoder keeps its new
// parts trainable: cross-attention, its LayerNorm and enc_to_dec_proj.
func (m *Model) Freeze(encoder, decoder bool) error {
	for name, t := range m.vs.Variables() {
		frozen := encoder && strings.HasPrefix(name, "encoder.") ||
			decoder && strings.HasPrefix(name, "decoder.") && !strings.Contains(name, ".crossattention.") && !strings.Contains(name, ".ln_cross_attn.")
		if !frozen {
			continue
		}
		tt := t
		if _, err := tt.SetRequiresGrad(false, false); err != nil {
			return torchx.Err("freeze "+name, err)
		}
	}
	return nil
}

// ReadConfig reads dir/config.json.
func ReadConfig(dir string) (Config, error) {
	path := filepath.Join(dir, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return cfg, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}
