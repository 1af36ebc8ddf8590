package runner

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sugarme/gotch"

	"github.com/imgcap/imgcap/config"
	"github.com/imgcap/imgcap/data/image"
	"github.com/imgcap/imgcap/data/tok"
	"github.com/imgcap/imgcap/internal/atomicfile"
	"github.com/imgcap/imgcap/models/vitgpt2"
)

func init() {
	families["vit_gpt2"] = &hfFamily{
		fromFolder: func(dir string, dev gotch.Device) (hfModel, error) {
			cfg, err := vitgpt2.ReadConfig(dir)
			if err != nil {
				return nil, err
			}
			return vitgpt2.New(cfg, dev)
		},
		forTraining: vitGPT2ForTraining,
		image: func(m hfModel) image.Config {
			c, _ := image.DefaultConfig("ViTImageProcessor")
			s := m.(*vitgpt2.Model).Cfg.Encoder.ImageSize
			c.Size = image.Size{Height: s, Width: s}
			return c
		},
		labels: func(m hfModel, t tok.Tokenizer, maxLen int) func(string) ([]int64, error) {
			eos := m.(*vitgpt2.Model).Cfg.EOSTokenID
			return func(caption string) ([]int64, error) {
				ids, err := t.Encode(caption)
				if err != nil {
					return nil, err
				}
				if maxLen > 1 && len(ids) > maxLen-1 {
					ids = ids[:maxLen-1]
				}
				return append(toInt64s(ids), eos), nil
			}
		},
		pad: func(m hfModel) int64 { return m.(*vitgpt2.Model).Cfg.PadTokenID },
		prompt: func(m hfModel) func(tok.Tokenizer, string) ([]int64, error) {
			start := m.(*vitgpt2.Model).Cfg.DecoderStartTokenID
			return func(t tok.Tokenizer, text string) ([]int64, error) {
				ids, err := t.Encode(text)
				return append([]int64{start}, toInt64s(ids)...), err
			}
		},
	}
}

// vitGPT2ForTraining builds the model of a vit_gpt2 run: the run's own config.json when it has
// one (resuming), else model.pretrained (a VisionEncoderDecoder folder), else
// encoder_pretrained + decoder_pretrained (ViT and GPT-2 folders), else model.hf_config from
// scratch with the tokenizer's vocabulary and special ids.
func vitGPT2ForTraining(cfg config.Config, runDir string, t tok.Tokenizer, resume bool, env Env) (hfModel, error) {
	mc := cfg.Model
	var m *vitgpt2.Model
	var err error
	runConfig := filepath.Join(runDir, HFConfigFile)
	_, statErr := os.Stat(runConfig)
	switch {
	case statErr == nil:
		c, err := vitgpt2.ReadConfig(runDir)
		if err != nil {
			return nil, err
		}
		if m, err = vitgpt2.New(c, env.Device); err != nil {
			return nil, err
		}
		if !resume && mc.Pretrained != "" {
			if _, err := m.LoadWeights(mc.Pretrained); err != nil {
				return nil, fmt.Errorf("model.pretrained: %w", err)
			}
		}
	case mc.Pretrained != "":
		if m, err = vitgpt2.Load(mc.Pretrained, env.Device); err != nil {
			return nil, fmt.Errorf("model.pretrained: %w", err)
		}
		env.logger().Info("weights", "from", mc.Pretrained)
	case mc.EncoderPretrained != "" || mc.DecoderPretrained != "":
		if mc.EncoderPretrained == "" || mc.DecoderPretrained == "" {
			return nil, fmt.Errorf("model.encoder_pretrained and model.decoder_pretrained go together (got %q and %q)", mc.EncoderPretrained, mc.DecoderPretrained)
		}
		if m, err = vitgpt2.FromPretrained(mc.EncoderPretrained, mc.DecoderPretrained, env.Device); err != nil {
			return nil, err
		}
		env.logger().Info("weights", "encoder", mc.EncoderPretrained, "decoder", mc.DecoderPretrained)
	default:
		c, err := scratchConfig(mc, t)
		if err != nil {
			return nil, err
		}
		if m, err = vitgpt2.New(c, env.Device); err != nil {
			return nil, err
		}
	}
	if int(m.Cfg.Decoder.VocabSize) < t.VocabSize() {
		return nil, fmt.Errorf("the tokenizer has %d ids but the decoder's vocab_size is %d", t.VocabSize(), m.Cfg.Decoder.VocabSize)
	}
	if mc.MaxLength+1 > m.Cfg.Decoder.NPositions {
		return nil, fmt.Errorf("model.max_length %d does not fit the decoder's n_positions %d", mc.MaxLength, m.Cfg.Decoder.NPositions)
	}
	if statErr != nil {
		data, err := m.Cfg.MarshalHF()
		if err != nil {
			return nil, err
		}
		if err := atomicfile.WriteFile(runConfig, append(data, '\n')); err != nil {
			return nil, err
		}
	}
	if err := m.Freeze(mc.FreezeEncoder, mc.FreezeDecoder); err != nil {
		return nil, err
	}
	return m, nil
}

// scratchConfig is a VisionEncoderDecoder config from model.hf_config over the HF defaults, with
// the tokenizer's vocabulary and special ids and model.image_size.
func scratchConfig(mc config.ModelConfig, t tok.Tokenizer) (vitgpt2.Config, error) {
	raw, _, dec := scratchConfigMaps(mc, "encoder", "decoder")
	raw["model_type"] = "vision-encoder-decoder"
	sp := t.Special()
	start, eos, pad := sp.BOS, sp.EOS, sp.PAD
	if eos < 0 {
		return vitgpt2.Config{}, fmt.Errorf("the tokenizer has no end-of-sequence token")
	}
	if start < 0 {
		start = eos
	}
	if pad < 0 {
		pad = eos
	}
	dec["vocab_size"] = t.VocabSize()
	dec["bos_token_id"], dec["eos_token_id"], dec["pad_token_id"] = start, eos, pad
	raw["decoder_start_token_id"], raw["eos_token_id"], raw["pad_token_id"] = start, eos, pad
	data, err := json.Marshal(raw)
	if err != nil {
		return vitgpt2.Config{}, fmt.Errorf("model.hf_config: %w", err)
	}
	c, err := vitgpt2.ParseConfig(data)
	if err != nil {
		return c, fmt.Errorf("model.hf_config: %w", err)
	}
	return c, nil
}
