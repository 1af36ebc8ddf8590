package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sugarme/gotch"
	gnn "github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/config"
	"github.com/imgcap/imgcap/data/image"
	"github.com/imgcap/imgcap/data/tok"
	"github.com/imgcap/imgcap/internal/atomicfile"
	"github.com/imgcap/imgcap/models"
	"github.com/imgcap/imgcap/models/blip"
)

// The BLIP families: blip_caption (BlipForConditionalGeneration: captioning, trained with BLIP's
// LM loss) and blip_retrieval (BlipForImageTextRetrieval: ITM and ITC scores, trained with
// BLIP's ITC + ITM losses, plus the LM loss of a text decoder for pre-training; see
// blipPretrainOptions).
func init() {
	families["blip_caption"] = &hfFamily{
		fromFolder: func(dir string, dev gotch.Device) (hfModel, error) {
			cfg, err := blip.ReadConfig(dir)
			if err != nil {
				return nil, err
			}
			m, err := blip.NewCaptioner(cfg, dev)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", dir, err)
			}
			if m.Gen, err = blip.ReadGenerationConfig(dir); err != nil {
				return nil, err
			}
			return &blipCaptioner{Captioner: m}, nil
		},
		forTraining: blipCaptionForTraining,
		image:       func(m hfModel) image.Config { return blipImageConfig(blipConfigOf(m)) },
		labels: func(m hfModel, t tok.Tokenizer, maxLen int) func(string) ([]int64, error) {
			prompt := ""
			if c, ok := m.(*blipCaptioner); ok {
				prompt = c.prompt
			}
			return blipLabels(t, prompt, maxLen)
		},
		pad:    func(m hfModel) int64 { return blipConfigOf(m).Text.PadTokenID },
		prompt: func(hfModel) func(tok.Tokenizer, string) ([]int64, error) { return blipPrompt },
		vocab:  blipVocab,
	}
	families["blip_retrieval"] = &hfFamily{
		fromFolder:  blipRetrievalFromFolder,
		forTraining: blipRetrievalForTraining,
		image:       func(m hfModel) image.Config { return blipImageConfig(blipConfigOf(m)) },
		labels: func(m hfModel, t tok.Tokenizer, maxLen int) func(string) ([]int64, error) {
			return blipLabels(t, "", maxLen)
		},
		pad:      func(m hfModel) int64 { return blipConfigOf(m).Text.PadTokenID },
		prompt:   func(hfModel) func(tok.Tokenizer, string) ([]int64, error) { return blipPrompt },
		vocab:    blipVocab,
		evaluate: evaluateRetrievalMetrics,
	}
}

// blipCaptioner is the blip_caption model with the training prompt its labels start with.
type blipCaptioner struct {
	*blip.Captioner
	prompt string // model.prompt while training ("" otherwise)
}

// blipRetrieval is the blip_retrieval model: a Hugging Face BlipForImageTextRetrieval (r alone),
// or a pre-training model (pt: training runs), whose retrieval part is r and whose text decoder,
// when it has one, captions.
type blipRetrieval struct {
	r   *blip.Retrieval
	pt  *blip.Pretrainer
	cap *blip.Captioner // pt's text decoder, when it has one
	// itmFirst replaces the first token of ITM texts when ≥ 0 (the original BLIP's [ENC]).
	itmFirst int64
}

// VarStore holds every parameter (the pre-training model's when there is one).
func (m *blipRetrieval) VarStore() *gnn.VarStore {
	if m.pt != nil {
		return m.pt.VarStore()
	}
	return m.r.VarStore()
}

// Loss is the pre-training model's weighted ITC + ITM (+ LM) loss.
func (m *blipRetrieval) Loss(b *models.Batch, train bool) (*ts.Tensor, error) {
	if m.pt == nil {
		return nil, errors.New("blip_retrieval: a Hugging Face retrieval model trains through a training run (model.pretrained), which adds the contrastive temperature")
	}
	return m.pt.Loss(b, train)
}

// Caption captions with the pre-training model's text decoder; retrieval models have none.
func (m *blipRetrieval) Caption(ctx context.Context, pixels *ts.Tensor, o models.GenerateOptions) ([]models.Caption, error) {
	if m.cap != nil {
		return m.cap.Caption(ctx, pixels, o)
	}
	return nil, errors.New("blip_retrieval: this model has no text decoder, so it matches images and texts (imgcap match, imgcap eval) but does not caption; use a blip_caption model (or pre-train with the LM objective)")
}

// LoadWeights loads a Hugging Face BLIP folder: all of a retrieval model, or the parts of the
// pre-training model a checkpoint has (see blip.Pretrainer.LoadWeights).
func (m *blipRetrieval) LoadWeights(dir string) ([]string, error) {
	if m.pt != nil {
		_, unexpected, err := m.pt.LoadWeights(dir)
		return unexpected, err
	}
	return m.r.LoadWeights(dir)
}

// blipConfigOf is the BLIP config of a family model.
func blipConfigOf(m hfModel) blip.Config {
	switch m := m.(type) {
	case *blipCaptioner:
		return m.Cfg
	case *blipRetrieval:
		return m.r.Cfg
	}
	return blip.DefaultConfig()
}

// blipImageConfig is BlipImageProcessor at the vision model's resolution.
func blipImageConfig(c blip.Config) image.Config {
	ic, _ := image.DefaultConfig("BlipImageProcessor")
	ic.Size = image.Size{Height: c.Vision.ImageSize, Width: c.Vision.ImageSize}
	return ic
}

// blipPrompt is what BLIP's generate() takes as a prompt: the tokenizer's [CLS] text [SEP].
func blipPrompt(t tok.Tokenizer, text string) ([]int64, error) {
	ids, err := tok.EncodeSpecial(t, text)
	return toInt64s(ids), err
}

// blipLabels encodes a training caption as BLIP's datasets and models do: prompt +
// pre_caption(caption, 30 words), tokenized as [CLS] … [SEP] and truncated to maxLen tokens
// (the [SEP] kept, as the tokenizer's truncation does).
func blipLabels(t tok.Tokenizer, prompt string, maxLen int) func(string) ([]int64, error) {
	return func(caption string) ([]int64, error) {
		ids, err := t.Encode(prompt + blip.PreCaption(caption, blip.MaxCaptionWords))
		if err != nil {
			return nil, err
		}
		if n := len(t.AddSpecial(nil)); maxLen > n && len(ids) > maxLen-n {
			ids = ids[:maxLen-n]
		}
		return toInt64s(t.AddSpecial(ids)), nil
	}
}

// blipVocab gives a BLIP run its tokenizer when the configuration names none: the tokenizer of
// model.pretrained (a folder or a hub id), else a WordPiece vocabulary built from the training
// captions (blip.WriteVocab: BERT's special tokens, [DEC] as bos, [ENC]).
func blipVocab(cfg config.Config, captions []string, dir string) (tok.Tokenizer, error) {
	if p := cfg.Model.Pretrained; p != "" {
		src, err := ResolveModel(p)
		if err != nil {
			return nil, fmt.Errorf("model.pretrained: %w", err)
		}
		t, err := loadTokenizer(src)
		if err != nil {
			return nil, err
		}
		if t == nil {
			return nil, fmt.Errorf("model.pretrained %s has no tokenizer files; set model.tokenizer", p)
		}
		return t, copyTokenizer(src, dir)
	}
	caps := make([]string, len(captions))
	for i, c := range captions {
		caps[i] = blip.PreCaption(c, blip.MaxCaptionWords)
	}
	if err := blip.WriteVocab(dir, caps, cfg.Model.MinWordCount); err != nil {
		return nil, err
	}
	return tok.Load(dir)
}

// blipBaseConfig is a BLIP run's model config: the run's own config.json (resuming or reopening),
// else model.pretrained's, else model.hf_config over BlipConfig's defaults with the tokenizer's
// vocabulary and special ids and model.image_size. pretrained is the resolved pretrained folder
// ("" when none).
func blipBaseConfig(mc config.ModelConfig, runDir string, t tok.Tokenizer) (c blip.Config, pretrained string, err error) {
	if mc.Pretrained != "" {
		if pretrained, err = ResolveModel(mc.Pretrained); err != nil {
			return c, "", fmt.Errorf("model.pretrained: %w", err)
		}
	}
	switch {
	case fileExists(filepath.Join(runDir, HFConfigFile)):
		c, err = blip.ReadConfig(runDir)
	case pretrained != "":
		if c, err = blip.ReadConfig(pretrained); err != nil {
			err = fmt.Errorf("model.pretrained: %w", err)
		}
	default:
		c, err = blipScratchConfig(mc, t)
	}
	return c, pretrained, err
}

// blipPretrainKey is the model.hf_config entry that configures the blip_retrieval training
// objectives; it is not a BlipConfig key and is removed before the config is parsed.
const blipPretrainKey = "pretrain"

// blipScratchConfig is a BlipConfig from model.hf_config over the defaults: text_config takes
// the tokenizer's vocabulary size and its [DEC] (bos), [PAD] and [SEP] ids; vision_config's
// image_size defaults to model.image_size.
func blipScratchConfig(mc config.ModelConfig, t tok.Tokenizer) (blip.Config, error) {
	raw, _, text := scratchConfigMaps(mc, "vision_config", "text_config", blipPretrainKey)
	sp := t.Special()
	if sp.BOS < 0 || sp.SEP < 0 || sp.PAD < 0 {
		return blip.Config{}, fmt.Errorf("the tokenizer lacks BLIP's special tokens (bos [DEC] %d, [SEP] %d, [PAD] %d; -1 = missing): use a BLIP tokenizer or let imgcap build one (no model.tokenizer)", sp.BOS, sp.SEP, sp.PAD)
	}
	text["vocab_size"] = t.VocabSize()
	text["bos_token_id"], text["pad_token_id"], text["sep_token_id"], text["eos_token_id"] = sp.BOS, sp.PAD, sp.SEP, sp.SEP
	data, err := json.Marshal(raw)
	if err != nil {
		return blip.Config{}, fmt.Errorf("model.hf_config: %w", err)
	}
	c, err := blip.ParseConfig(data)
	if err != nil {
		return c, fmt.Errorf("model.hf_config: %w", err)
	}
	return c, nil
}

// checkBLIPTokenizer checks that a BLIP text model fits the tokenizer and caption length.
func checkBLIPTokenizer(c blip.Config, t tok.Tokenizer, maxLen int) error {
	if c.Text.VocabSize < t.VocabSize() {
		return fmt.Errorf("the tokenizer has %d ids but text_config.vocab_size is %d", t.VocabSize(), c.Text.VocabSize)
	}
	if maxLen > c.Text.MaxPositionEmbeddings {
		return fmt.Errorf("model.max_length %d exceeds text_config.max_position_embeddings %d", maxLen, c.Text.MaxPositionEmbeddings)
	}
	return nil
}

// writeBLIPFolder writes a training run's config.json (architecture arch) unless the run has one
// (resuming). For generators, the eval section's generation settings go into text_config, where
// BLIP's generate() reads its defaults (see blip.ReadGenerationConfig), so that captioning the run
// uses them, here and in transformers.
func writeBLIPFolder(runDir string, c blip.Config, arch string, gen *config.EvalConfig) error {
	path := filepath.Join(runDir, HFConfigFile)
	if fileExists(path) {
		return nil
	}
	c.Architectures = []string{arch}
	data, err := c.MarshalHF()
	if err != nil {
		return err
	}
	if gen != nil {
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			return err
		}
		text := m["text_config"].(map[string]any)
		text["num_beams"], text["max_new_tokens"], text["length_penalty"] = gen.NumBeams, gen.MaxNewTokens, gen.LengthPenalty
		if gen.MinNewTokens > 0 {
			text["min_new_tokens"] = gen.MinNewTokens
		}
		if gen.NoRepeatNgram > 0 {
			text["no_repeat_ngram_size"] = gen.NoRepeatNgram
		}
		if data, err = json.MarshalIndent(m, "", "  "); err != nil {
			return err
		}
	}
	return atomicfile.WriteFile(path, append(data, '\n'))
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// blipCaptionForTraining builds the BlipForConditionalGeneration of a blip_caption run (see
// blipBaseConfig) with train.label_smoothing as its LM label smoothing and model.prompt's
// tokens excluded from the loss, and loads model.pretrained's weights unless resuming.
func blipCaptionForTraining(cfg config.Config, runDir string, t tok.Tokenizer, resume bool, env Env) (hfModel, error) {
	mc := cfg.Model
	c, pretrained, err := blipBaseConfig(mc, runDir, t)
	if err != nil {
		return nil, err
	}
	ls := cfg.Train.LabelSmoothing
	c.Text.LabelSmoothing = &ls
	c.Vision.DropPathRate = mc.DropPath // not a config.json key: written nowhere
	if err := checkBLIPTokenizer(c, t, mc.MaxLength); err != nil {
		return nil, err
	}
	m, err := blip.NewCaptioner(c, env.Device)
	if err != nil {
		return nil, err
	}
	if !resume && pretrained != "" {
		if arch, err := Arch(pretrained); err != nil || arch != "blip_caption" {
			return nil, fmt.Errorf("model.pretrained %s: a blip_caption run starts from a BlipForConditionalGeneration folder (got %q, %v)", mc.Pretrained, arch, err)
		}
		if _, err := m.LoadWeights(pretrained); err != nil {
			return nil, fmt.Errorf("model.pretrained: %w", err)
		}
		env.logger().Info("weights", "from", mc.Pretrained)
	}
	if mc.Prompt != "" {
		ids, err := t.Encode(mc.Prompt)
		if err != nil {
			return nil, fmt.Errorf("model.prompt: %w", err)
		}
		// BLIP: prompt_length = len(tokenizer(prompt).input_ids) - 1, i.e. [CLS] and the words.
		m.PromptLen = len(t.AddSpecial(ids)) - 1
	}
	if err := writeBLIPFolder(runDir, c, "BlipForConditionalGeneration", &cfg.Eval); err != nil {
		return nil, err
	}
	if m.Gen, err = blip.ReadGenerationConfig(runDir); err != nil {
		return nil, err
	}
	if err := blip.Freeze(m.VarStore(), mc.FreezeEncoder, mc.FreezeDecoder); err != nil {
		return nil, err
	}
	return &blipCaptioner{Captioner: m, prompt: mc.Prompt}, nil
}

// blipPretrainSettings is model.hf_config.pretrain: the blip_retrieval training objectives.
type blipPretrainSettings struct {
	WeightITC *float64 `json:"weight_itc"`
	WeightITM *float64 `json:"weight_itm"`
	WeightLM  *float64 `json:"weight_lm"`
	TempInit  *float64 `json:"temp_init"`
	TempMin   *float64 `json:"temp_min"`
	TempMax   *float64 `json:"temp_max"`
	// ITMFirstToken is a token (e.g. "[ENC]") or id that replaces [CLS] in ITM inputs.
	ITMFirstToken any `json:"itm_first_token"`
	// Momentum, QueueSize, Alpha and AlphaRampSteps turn on BLIP's momentum distillation (see
	// blip.PretrainOptions; off unless momentum > 0).
	Momentum       *float64 `json:"momentum"`
	QueueSize      *int64   `json:"queue_size"`
	Alpha          *float64 `json:"alpha"`
	AlphaRampSteps *int64   `json:"alpha_ramp_steps"`
}

// blipPretrainOptions are a blip_retrieval run's objectives: BLIP's retrieval fine-tuning (ITC +
// ITM, weights 1 and 1, no LM, no momentum distillation) unless model.hf_config.pretrain says
// otherwise; the LM label smoothing is train.label_smoothing.
func blipPretrainOptions(cfg config.Config, t tok.Tokenizer) (blip.PretrainOptions, error) {
	o := blip.DefaultPretrainOptions()
	o.WeightLM = 0
	o.LabelSmoothing = cfg.Train.LabelSmoothing
	raw, ok := cfg.Model.HFConfig[blipPretrainKey]
	if !ok {
		return o, nil
	}
	data, err := json.Marshal(raw)
	if err != nil {
		return o, fmt.Errorf("model.hf_config.%s: %w", blipPretrainKey, err)
	}
	var s blipPretrainSettings
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return o, fmt.Errorf("model.hf_config.%s: %w (keys: weight_itc, weight_itm, weight_lm, temp_init, temp_min, temp_max, itm_first_token, momentum, queue_size, alpha, alpha_ramp_steps)", blipPretrainKey, err)
	}
	for _, f := range []struct {
		src *float64
		dst *float64
	}{{s.WeightITC, &o.WeightITC}, {s.WeightITM, &o.WeightITM}, {s.WeightLM, &o.WeightLM},
		{s.TempInit, &o.TempInit}, {s.TempMin, &o.TempMin}, {s.TempMax, &o.TempMax},
		{s.Momentum, &o.Momentum}, {s.Alpha, &o.Alpha}} {
		if f.src != nil {
			*f.dst = *f.src
		}
	}
	if s.QueueSize != nil {
		o.QueueSize = *s.QueueSize
	}
	if s.AlphaRampSteps != nil {
		o.AlphaRampSteps = *s.AlphaRampSteps
	}
	switch v := s.ITMFirstToken.(type) {
	case nil:
	case float64:
		o.ITMFirstToken = int64(v)
	case string:
		id, ok := t.TokenToID(v)
		if !ok {
			return o, fmt.Errorf("model.hf_config.%s.itm_first_token: the tokenizer has no %q", blipPretrainKey, v)
		}
		o.ITMFirstToken = int64(id)
	default:
		return o, fmt.Errorf("model.hf_config.%s.itm_first_token: want a token or an id, got %v", blipPretrainKey, v)
	}
	if err := o.Validate(); err != nil {
		return o, fmt.Errorf("model.hf_config.%s: %w", blipPretrainKey, err)
	}
	return o, nil
}

// blipRetrievalForTraining builds the pre-training model of a blip_retrieval run (see
// blipBaseConfig; model.pretrained may be a retrieval or a captioning BLIP folder, each
// initialising its part) and writes config.json as BlipForImageTextRetrieval.
func blipRetrievalForTraining(cfg config.Config, runDir string, t tok.Tokenizer, resume bool, env Env) (hfModel, error) {
	mc := cfg.Model
	o, err := blipPretrainOptions(cfg, t)
	if err != nil {
		return nil, err
	}
	c, pretrained, err := blipBaseConfig(mc, runDir, t)
	if err != nil {
		return nil, err
	}
	c.Vision.DropPathRate = mc.DropPath // not a config.json key: written nowhere
	if o.ITMFirstToken >= int64(c.Text.VocabSize) {
		return nil, fmt.Errorf("model.hf_config.%s.itm_first_token %d outside the vocabulary of %d", blipPretrainKey, o.ITMFirstToken, c.Text.VocabSize)
	}
	if err := checkBLIPTokenizer(c, t, mc.MaxLength); err != nil {
		return nil, err
	}
	pt, err := blip.NewPretrainer(c, o, env.Device)
	if err != nil {
		return nil, err
	}
	if !resume && pretrained != "" {
		kept, _, err := pt.LoadWeights(pretrained)
		if err != nil {
			return nil, fmt.Errorf("model.pretrained: %w", err)
		}
		env.logger().Info("weights", "from", mc.Pretrained, "not_in_checkpoint", len(kept))
	}
	var gen *config.EvalConfig
	if o.WeightLM > 0 {
		gen = &cfg.Eval
	}
	if err := writeBLIPFolder(runDir, c, "BlipForImageTextRetrieval", gen); err != nil {
		return nil, err
	}
	m := &blipRetrieval{r: pt.Retrieval(), pt: pt, cap: pt.Captioner(), itmFirst: o.ITMFirstToken}
	if m.cap != nil {
		if m.cap.Gen, err = blip.ReadGenerationConfig(runDir); err != nil {
			return nil, err
		}
	}
	if err := blip.Freeze(pt.VarStore(), mc.FreezeEncoder, mc.FreezeDecoder); err != nil {
		return nil, err
	}
	return m, nil
}

// blipRetrievalFromFolder builds a BlipForImageTextRetrieval folder's model, or, for a
// blip_retrieval training run, the pre-training model its checkpoints hold (objectives from the
// run's config.yaml).
func blipRetrievalFromFolder(dir string, dev gotch.Device) (hfModel, error) {
	c, err := blip.ReadConfig(dir)
	if err != nil {
		return nil, err
	}
	if !isRunDir(dir) {
		r, err := blip.NewRetrieval(c, dev)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
		return &blipRetrieval{r: r, itmFirst: -1}, nil
	}
	cfg, err := config.Load(config.Options{File: filepath.Join(dir, "config.yaml")})
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", dir, err)
	}
	t, err := loadTokenizer(dir)
	if err != nil {
		return nil, err
	}
	if t == nil {
		return nil, fmt.Errorf("run %s has no tokenizer", dir)
	}
	o, err := blipPretrainOptions(cfg, t)
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", dir, err)
	}
	pt, err := blip.NewPretrainer(c, o, dev)
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", dir, err)
	}
	m := &blipRetrieval{r: pt.Retrieval(), pt: pt, cap: pt.Captioner(), itmFirst: o.ITMFirstToken}
	if m.cap != nil {
		if m.cap.Gen, err = blip.ReadGenerationConfig(dir); err != nil {
			return nil, err
		}
	}
	return m, nil
}
