package blip

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/sugarme/gotch"
	gnn "github.com/sugarme/gotch/nn"

	"github.com/imgcap/imgcap/nn"
	"github.com/imgcap/imgcap/weights"
)

// ReadConfig reads dir/config.json over BlipConfig's defaults (see ParseConfig).
func ReadConfig(dir string) (Config, error) {
	c := DefaultConfig()
	if err := weights.ReadConfigJSON(dir, "config.json", &c); err != nil {
		return c, err
	}
	if c.ModelType != "" && c.ModelType != "blip" {
		return c, fmt.Errorf("%s/config.json: model_type %q is not blip", dir, c.ModelType)
	}
	c.Text.EncoderHiddenSize = c.Vision.HiddenSize
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("%s/config.json: %w", dir, err)
	}
	return c, nil
}

// LoadCaptioner builds the BlipForConditionalGeneration described by dir/config.json on device
// and loads its weights (model.safetensors, sharded safetensors or pytorch_model.bin) by
// Hugging Face name. Missing or mis-shaped parameters are an error that lists them; checkpoint
// keys the model does not use are ignored (LoadWeights reports them).
func LoadCaptioner(dir string, device gotch.Device) (*Captioner, error) {
	cfg, err := ReadConfig(dir)
	if err != nil {
		return nil, err
	}
	m, err := NewCaptioner(cfg, device)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	if m.Gen, err = ReadGenerationConfig(dir); err != nil {
		return nil, err
	}
	if _, err := m.LoadWeights(dir); err != nil {
		return nil, err
	}
	return m, nil
}

// ReadGenerationConfig reads the generation defaults BLIP's captioning uses: the generation keys
// of config.json's text_config. In transformers 4.36.2 BlipForConditionalGeneration.generate()
// calls text_decoder.generate(), and the text decoder's generation config comes from
// text_config (GenerationConfig.from_model_config), not from the folder's generation_config.json,
// which BLIP's generation therefore ignores. (It ends on sep_token_id whatever eos_token_id
// says; see OptionsFrom.)
func ReadGenerationConfig(dir string) (nn.GenerationConfig, error) {
	path := filepath.Join(dir, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return nn.GenerationConfig{}, err
	}
	var c struct {
		Text json.RawMessage `json:"text_config"`
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return nn.GenerationConfig{}, fmt.Errorf("%s: %w", path, err)
	}
	if len(c.Text) == 0 || string(c.Text) == "null" {
		return nn.DefaultGenerationConfig(), nil
	}
	gc, err := nn.ParseGenerationConfig(c.Text, path+" text_config")
	if err != nil {
		return nn.GenerationConfig{}, err
	}
	return *gc, nil
}

// LoadWeights loads the checkpoint of a model folder into the captioner, checking every name
// and shape before copying anything; it returns the checkpoint keys the model does not use.
func (m *Captioner) LoadWeights(dir string) (unexpected []string, err error) {
	return loadDir(m.vs, dir)
}

// LoadRetrieval builds the BlipForImageTextRetrieval described by dir/config.json on device and
// loads its weights by Hugging Face name (see LoadCaptioner).
func LoadRetrieval(dir string, device gotch.Device) (*Retrieval, error) {
	cfg, err := ReadConfig(dir)
	if err != nil {
		return nil, err
	}
	m, err := NewRetrieval(cfg, device)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	if _, err := m.LoadWeights(dir); err != nil {
		return nil, err
	}
	return m, nil
}

// LoadWeights loads the checkpoint of a model folder into the retrieval model, checking every
// name and shape before copying anything; it returns the checkpoint keys the model does not use.
func (m *Retrieval) LoadWeights(dir string) (unexpected []string, err error) {
	return loadDir(m.vs, dir)
}

// IgnoredCheckpointKey reports checkpoint keys that are no parameters of the BLIP models: the
// LM head's decoder.bias (cls.predictions.bias itself; torch.save files list it under both
// names) and the position_ids buffers older transformers versions saved.
func IgnoredCheckpointKey(key string) bool {
	return strings.HasSuffix(key, "cls.predictions.decoder.bias") || strings.HasSuffix(key, "embeddings.position_ids")
}

func loadDir(vs *gnn.VarStore, dir string) ([]string, error) {
	src, file, err := weights.OpenDir(dir)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	rep, err := weights.LoadInto(vs, src, weights.LoadOptions{Ignore: IgnoredCheckpointKey})
	var le *weights.LoadError
	if errors.As(err, &le) {
		return nil, err // names the file already
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return rep.Unexpected, nil
}

// LoadWeights initialises the pre-training model from a BLIP checkpoint folder: a
// BlipForConditionalGeneration checkpoint fills vision_model.* and text_decoder.*, a
// BlipForImageTextRetrieval one vision_model.*, text_encoder.*, vision_proj, text_proj and
// itm_head. Variables the checkpoint lacks keep their values and are returned in kept; the
// checkpoint must provide the whole vision model. Shapes are checked before anything is copied.
// The momentum encoders, if any, then start again as copies of the loaded weights (BLIP's
// copy_params); the queues are left as they are (Hugging Face folders have none).
func (m *Pretrainer) LoadWeights(dir string) (kept, unexpected []string, err error) {
	src, file, err := weights.OpenDir(dir)
	if err != nil {
		return nil, nil, err
	}
	defer src.Close()
	has := func(name string) bool { _, _, ok := src.Info(name); return ok }
	for name := range m.vs.Variables() {
		if !has(name) && !IsMomentumState(name) {
			if strings.HasPrefix(name, "vision_model.") {
				return nil, nil, fmt.Errorf("%s: not a BLIP checkpoint: no %s", file, name)
			}
			kept = append(kept, name)
		}
	}
	sort.Strings(kept)
	rep, err := weights.LoadInto(m.vs, src, weights.LoadOptions{Only: has, Ignore: IgnoredCheckpointKey})
	var le *weights.LoadError
	if errors.As(err, &le) {
		return nil, nil, err
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", file, err)
	}
	if err := m.syncMomentum(); err != nil {
		return nil, nil, fmt.Errorf("%s: momentum encoders: %w", file, err)
	}
	return kept, rep.Unexpected, nil
}

// Freeze stops the gradients of the vision model (vision_model.*) and/or of the text decoder
// (text_decoder.*, its cross-attention layers excepted, so that the decoder can still learn to
// read new image features) of any BLIP model's parameters.
func Freeze(vs *gnn.VarStore, vision, decoder bool) error {
	for name, t := range vs.Variables() {
		frozen := vision && strings.HasPrefix(name, "vision_model.") ||
			decoder && strings.HasPrefix(name, "text_decoder.") && !strings.Contains(name, ".crossattention.")
		if !frozen {
			continue
		}
		tt := t
		if _, err := tt.SetRequiresGrad(false, false); err != nil {
			return fmt.Errorf("freeze %s: %w", name, err)
		}
	}
	return nil
}
