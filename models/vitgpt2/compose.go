package vitgpt2

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/models/gpt2"
	"github.com/imgcap/imgcap/models/vit"
	"github.com/imgcap/imgcap/weights"
)

// renamed presents a checkpoint under other names: name(key) is the model name of a checkpoint
// key ("" drops the key).
type renamed struct {
	weights.Source
	to   map[string]string // model name -> checkpoint key
	keys []string
}

func rename(src weights.Source, name func(string) string) *renamed {
	r := &renamed{Source: src, to: map[string]string{}}
	for _, k := range src.Names() {
		if n := name(k); n != "" {
			if _, dup := r.to[n]; !dup {
				r.to[n] = k
				r.keys = append(r.keys, n)
			}
		}
	}
	return r
}

func (r *renamed) Names() []string { return r.keys }

func (r *renamed) Info(name string) (gotch.DType, []int64, bool) {
	k, ok := r.to[name]
	if !ok {
		return 0, nil, false
	}
	return r.Source.Info(k)
}

func (r *renamed) Tensor(name string) (*ts.Tensor, error) {
	k, ok := r.to[name]
	if !ok {
		return nil, fmt.Errorf("no tensor %q", name)
	}
	return r.Source.Tensor(k)
}

// readModelConfig reads a folder's config.json, returning the raw bytes and its model_type.
func readModelConfig(dir string) ([]byte, string, error) {
	path := filepath.Join(dir, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, "", err
	}
	var c struct {
		ModelType string `json:"model_type"`
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, "", fmt.Errorf("%s: %w", path, err)
	}
	return data, c.ModelType, nil
}

// FromPretrained builds a VisionEncoderDecoder from a ViT folder (ViTModel or
// ViTForImageClassification, e.g. google/vit-base-patch16-224-in21k) and a GPT-2 folder (e.g.
// gpt2), as Hugging Face's from_encoder_decoder_pretrained does: both checkpoints are loaded, the
// new cross-attention layers (and enc_to_dec_proj when the widths differ) keep their fresh
// initialisation, decoder_start_token_id is GPT-2's bos and padding uses its eos.
func FromPretrained(encDir, decDir string, device gotch.Device) (*Model, error) {
	encData, encType, err := readModelConfig(encDir)
	if err != nil {
		return nil, err
	}
	if encType != "vit" {
		return nil, fmt.Errorf("%s: model_type %q, want vit", encDir, encType)
	}
	decData, decType, err := readModelConfig(decDir)
	if err != nil {
		return nil, err
	}
	if decType != "gpt2" {
		return nil, fmt.Errorf("%s: model_type %q, want gpt2", decDir, decType)
	}
	var cfg Config
	if cfg.Encoder, err = vit.ParseConfig(encData); err != nil {
		return nil, fmt.Errorf("%s: %w", encDir, err)
	}
	if cfg.Decoder, err = gpt2.ParseConfig(decData); err != nil {
		return nil, fmt.Errorf("%s: %w", decDir, err)
	}
	cfg.Decoder.AddCrossAttention = true
	if cfg.Decoder.BOSTokenID == nil || cfg.Decoder.EOSTokenID == nil {
		return nil, fmt.Errorf("%s: GPT-2 config without bos_token_id/eos_token_id", decDir)
	}
	cfg.DecoderStartTokenID, cfg.EOSTokenID, cfg.PadTokenID = *cfg.Decoder.BOSTokenID, *cfg.Decoder.EOSTokenID, *cfg.Decoder.EOSTokenID
	m, err := New(cfg, device)
	if err != nil {
		return nil, err
	}
	// ViTForImageClassification checkpoints have no pooler: ours then keeps its initialisation.
	if err := m.loadPart(encDir, encoderName, func(name string) bool {
		return strings.HasPrefix(name, "encoder.")
	}); err != nil {
		return nil, err
	}
	fresh := func(name string) bool {
		return !strings.Contains(name, ".crossattention.") && !strings.Contains(name, ".ln_cross_attn.")
	}
	if err := m.loadPart(decDir, decoderName, func(name string) bool {
		return strings.HasPrefix(name, "decoder.") && fresh(name)
	}); err != nil {
		return nil, err
	}
	return m, nil
}

// encoderName maps a ViTModel / ViTForImageClassification key to this model's name.
func encoderName(k string) string {
	k = strings.TrimPrefix(k, "vit.")
	if strings.HasPrefix(k, "classifier.") {
		return ""
	}
	return "encoder." + k
}

// decoderName maps a GPT2Model / GPT2LMHeadModel key to this model's name.
func decoderName(k string) string {
	if gpt2.IgnoredCheckpointKey(k) {
		return ""
	}
	if !strings.HasPrefix(k, "transformer.") {
		k = "transformer." + k
	}
	return "decoder." + k
}

// loadPart loads the variables `only` selects from the checkpoint of dir, whose keys name maps.
func (m *Model) loadPart(dir string, name func(string) string, only func(string) bool) error {
	src, file, err := weights.OpenDir(dir)
	if err != nil {
		return err
	}
	defer src.Close()
	r := rename(src, name)
	if _, ok := r.to["encoder.pooler.dense.weight"]; !ok {
		sel := only
		only = func(n string) bool { return sel(n) && !strings.HasPrefix(n, "encoder.pooler.") }
	}
	if _, err := weights.LoadInto(m.vs, r, weights.LoadOptions{Only: only}); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	return nil
}
