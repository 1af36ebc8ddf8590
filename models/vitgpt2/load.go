package vitgpt2

import (
	"fmt"

	"github.com/sugarme/gotch"

	"github.com/imgcap/imgcap/models/gpt2"
	"github.com/imgcap/imgcap/nn"
	"github.com/imgcap/imgcap/weights"
)

// Load builds the model described by dir/config.json and loads its weights (model.safetensors,
// sharded safetensors or pytorch_model.bin) by Hugging Face name. Missing or mis-shaped
// parameters are an error that lists them; unexpected checkpoint keys are returned in the
// report's Unexpected list by LoadWeights and ignored here.
func Load(dir string, device gotch.Device) (*Model, error) {
	cfg, err := ReadConfig(dir)
	if err != nil {
		return nil, err
	}
	m, err := New(cfg, device)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	// generation_config.json, else the generation keys of config.json, as Hugging Face reads them.
	gc, err := nn.LoadGenerationConfig(dir)
	if err != nil {
		return nil, err
	}
	m.Gen = *gc
	if _, err := m.LoadWeights(dir); err != nil {
		return nil, err
	}
	return m, nil
}

// LoadWeights loads the checkpoint of a model folder into the model, checking every name and
// shape first; it returns what the checkpoint holds that the model does not use.
func (m *Model) LoadWeights(dir string) (unexpected []string, err error) {
	src, file, err := weights.OpenDir(dir)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	rep, err := weights.LoadInto(m.vs, src, weights.LoadOptions{Ignore: ignoredKey})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return rep.Unexpected, nil
}

// ignoredKey reports checkpoint keys that are not parameters of this model (GPT-2's mask
// buffers and the tied LM head).
func ignoredKey(name string) bool {
	const p = "decoder."
	return len(name) > len(p) && name[:len(p)] == p && gpt2.IgnoredCheckpointKey(name[len(p):])
}
