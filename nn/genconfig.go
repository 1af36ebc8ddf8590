package nn

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
)

// GenerationConfig is Hugging Face's GenerationConfig (transformers 4.36.2), the keys that
// Generate honours, read from generation_config.json or from a model's config.json (which in
// 4.36 may carry the same keys). Absent keys take HF's defaults (DefaultGenerationConfig). To
// override a value, as HF's generate(**kwargs) does, set the field on a copy and call Options.
type GenerationConfig struct {
	MaxLength          int     // max_length (20): prompt + new tokens
	MaxNewTokens       *int    // max_new_tokens (null); when set, MaxLength is ignored
	MinLength          int     // min_length (0): EOS is forbidden while prompt + new tokens < MinLength
	MinNewTokens       *int    // min_new_tokens (null)
	DoSample           bool    // do_sample (false)
	EarlyStopping      bool    // early_stopping true (default false)
	EarlyStoppingNever bool    // early_stopping "never"
	NumBeams           int     // num_beams (1)
	Temperature        float64 // temperature (1.0)
	TopK               int     // top_k (50; 0 = off)
	TopP               float64 // top_p (1.0)
	RepetitionPenalty  float64 // repetition_penalty (1.0)
	LengthPenalty      float64 // length_penalty (1.0)
	NoRepeatNgramSize  int     // no_repeat_ngram_size (0)
	BOSTokenID         *int64  // bos_token_id (null)
	EOSTokenID         []int64 // eos_token_id (null): an int or a list
	PadTokenID         *int64  // pad_token_id (null)
	// DecoderStartTokenID is decoder_start_token_id (null), the prompt of encoder-decoder models.
	DecoderStartTokenID *int64
	// Source names the file the config was read from, for error messages.
	Source string

	unsupported map[string]string // key -> JSON value of settings Generate cannot honour
}

// DefaultGenerationConfig returns HF's GenerationConfig defaults.
func DefaultGenerationConfig() GenerationConfig {
	return GenerationConfig{
		MaxLength: 20, NumBeams: 1, Temperature: 1, TopK: 50, TopP: 1,
		RepetitionPenalty: 1, LengthPenalty: 1,
	}
}

// genUnsupported lists the HF generation keys that change results and that Generate does not
// implement, with the values that mean "off". Another value makes Options fail.
var genUnsupported = map[string]struct {
	off          []any // decoded JSON values
	samplingOnly bool  // only used when do_sample
}{
	"num_return_sequences":             {off: []any{nil, 1.0}},
	"num_beam_groups":                  {off: []any{nil, 1.0}},
	"diversity_penalty":                {off: []any{nil, 0.0}},
	"penalty_alpha":                    {off: []any{nil, 0.0}},
	"encoder_repetition_penalty":       {off: []any{nil, 1.0}},
	"encoder_no_repeat_ngram_size":     {off: []any{nil, 0.0}},
	"bad_words_ids":                    {off: []any{nil, []any{}}},
	"force_words_ids":                  {off: []any{nil, []any{}}},
	"constraints":                      {off: []any{nil, []any{}}},
	"sequence_bias":                    {off: []any{nil, map[string]any{}}},
	"forced_bos_token_id":              {off: []any{nil}},
	"forced_eos_token_id":              {off: []any{nil}},
	"forced_decoder_ids":               {off: []any{nil, []any{}}},
	"suppress_tokens":                  {off: []any{nil, []any{}}},
	"begin_suppress_tokens":            {off: []any{nil, []any{}}},
	"exponential_decay_length_penalty": {off: []any{nil}},
	"guidance_scale":                   {off: []any{nil, 1.0}},
	"renormalize_logits":               {off: []any{nil, false}},
	"remove_invalid_values":            {off: []any{nil, false}},
	"max_time":                         {off: []any{nil}},
	"typical_p":                        {off: []any{nil, 1.0}, samplingOnly: true},
	"epsilon_cutoff":                   {off: []any{nil, 0.0}, samplingOnly: true},
	"eta_cutoff":                       {off: []any{nil, 0.0}, samplingOnly: true},
}

// LoadGenerationConfig reads a generation_config.json or a model's config.json. Given a
// directory, it reads generation_config.json there, or config.json when that is absent (as
// HF's from_pretrained falls back to GenerationConfig.from_model_config).
func LoadGenerationConfig(path string) (*GenerationConfig, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		gen := filepath.Join(path, "generation_config.json")
		if _, err := os.Stat(gen); err == nil {
			path = gen
		} else if errors.Is(err, fs.ErrNotExist) {
			path = filepath.Join(path, "config.json")
		} else {
			return nil, fmt.Errorf("generation config: %w", err)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("generation config: %w", err)
	}
	return ParseGenerationConfig(data, path)
}

// ParseGenerationConfig decodes generation_config.json or config.json content; source names it
// in errors. Keys it does not know are ignored. Like HF's from_model_config, a key still at its
// default takes the value of the nested "decoder", "generator" or "text_config" object when that
// object spells it out (the nested model class's own defaults are not known here, so prefer
// generation_config.json when a model has one).
func ParseGenerationConfig(data []byte, source string) (*GenerationConfig, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	c := DefaultGenerationConfig()
	c.Source = source
	for _, key := range slices.Sorted(maps.Keys(raw)) {
		if err := c.set(key, raw[key]); err != nil {
			return nil, fmt.Errorf("%s: key %q: %w", source, key, err)
		}
	}
	for _, name := range []string{"decoder", "generator", "text_config"} {
		var sub map[string]json.RawMessage
		if json.Unmarshal(raw[name], &sub) != nil || sub == nil {
			continue
		}
		for _, key := range slices.Sorted(maps.Keys(sub)) {
			if !c.isDefault(key) {
				continue
			}
			if err := c.set(key, sub[key]); err != nil {
				return nil, fmt.Errorf("%s: key %s.%s: %w", source, name, key, err)
			}
		}
	}
	return &c, nil
}

// genDecode decodes raw into dst; JSON null gives nullVal, or an error when !nullOK.
func genDecode[T any](raw json.RawMessage, dst *T, nullOK bool, nullVal T) error {
	if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		if !nullOK {
			return errors.New("must not be null")
		}
		*dst = nullVal
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return fmt.Errorf("cannot use %s as %T", bytes.TrimSpace(raw), *dst)
	}
	return nil
}

// set decodes one key; unknown keys are ignored.
func (c *GenerationConfig) set(key string, raw json.RawMessage) error {
	switch key {
	case "max_length":
		return genDecode(raw, &c.MaxLength, false, 0)
	case "max_new_tokens":
		return genDecode(raw, &c.MaxNewTokens, true, nil)
	case "min_length":
		return genDecode(raw, &c.MinLength, true, 0)
	case "min_new_tokens":
		return genDecode(raw, &c.MinNewTokens, true, nil)
	case "do_sample":
		return genDecode(raw, &c.DoSample, true, false)
	case "num_beams":
		return genDecode(raw, &c.NumBeams, false, 0)
	case "temperature":
		return genDecode(raw, &c.Temperature, true, 1)
	case "top_k":
		return genDecode(raw, &c.TopK, true, 0)
	case "top_p":
		return genDecode(raw, &c.TopP, true, 1)
	case "repetition_penalty":
		return genDecode(raw, &c.RepetitionPenalty, true, 1)
	case "length_penalty":
		return genDecode(raw, &c.LengthPenalty, false, 0)
	case "no_repeat_ngram_size":
		return genDecode(raw, &c.NoRepeatNgramSize, true, 0)
	case "bos_token_id":
		return genDecode(raw, &c.BOSTokenID, true, nil)
	case "pad_token_id":
		return genDecode(raw, &c.PadTokenID, true, nil)
	case "decoder_start_token_id":
		return genDecode(raw, &c.DecoderStartTokenID, true, nil)
	case "eos_token_id":
		var one int64
		if genDecode(raw, &one, false, 0) == nil {
			c.EOSTokenID = []int64{one}
			return nil
		}
		if err := genDecode(raw, &c.EOSTokenID, true, nil); err != nil {
			return fmt.Errorf("cannot use %s as an id or a list of ids", bytes.TrimSpace(raw))
		}
		return nil
	case "early_stopping":
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return err
		}
		switch v {
		case true, false:
			c.EarlyStopping, c.EarlyStoppingNever = v == true, false
		case "never":
			c.EarlyStopping, c.EarlyStoppingNever = false, true
		default:
			return fmt.Errorf("want true, false or \"never\", got %s", bytes.TrimSpace(raw))
		}
		return nil
	}
	if u, ok := genUnsupported[key]; ok {
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return err
		}
		off := slices.ContainsFunc(u.off, func(x any) bool { return reflect.DeepEqual(x, v) })
		if off {
			delete(c.unsupported, key)
		} else {
			if c.unsupported == nil {
				c.unsupported = map[string]string{}
			}
			c.unsupported[key] = string(bytes.TrimSpace(raw))
		}
	}
	return nil
}

// isDefault reports whether key still has HF's default value in c.
func (c *GenerationConfig) isDefault(key string) bool {
	if _, ok := genUnsupported[key]; ok {
		_, set := c.unsupported[key]
		return !set
	}
	// Compare c with a default config that has c's value for this key only.
	d, def := DefaultGenerationConfig(), DefaultGenerationConfig()
	switch key {
	case "max_length":
		d.MaxLength = c.MaxLength
	case "max_new_tokens":
		d.MaxNewTokens = c.MaxNewTokens
	case "min_length":
		d.MinLength = c.MinLength
	case "min_new_tokens":
		d.MinNewTokens = c.MinNewTokens
	case "do_sample":
		d.DoSample = c.DoSample
	case "early_stopping":
		d.EarlyStopping, d.EarlyStoppingNever = c.EarlyStopping, c.EarlyStoppingNever
	case "num_beams":
		d.NumBeams = c.NumBeams
	case "temperature":
		d.Temperature = c.Temperature
	case "top_k":
		d.TopK = c.TopK
	case "top_p":
		d.TopP = c.TopP
	case "repetition_penalty":
		d.RepetitionPenalty = c.RepetitionPenalty
	case "length_penalty":
		d.LengthPenalty = c.LengthPenalty
	case "no_repeat_ngram_size":
		d.NoRepeatNgramSize = c.NoRepeatNgramSize
	case "bos_token_id":
		d.BOSTokenID = c.BOSTokenID
	case "eos_token_id":
		d.EOSTokenID = c.EOSTokenID
	case "pad_token_id":
		d.PadTokenID = c.PadTokenID
	case "decoder_start_token_id":
		d.DecoderStartTokenID = c.DecoderStartTokenID
	default:
		return false // not a generation key
	}
	return reflect.DeepEqual(d, def)
}

// Options turns the config into GenerateOptions for prompts of promptLen tokens (the decoder
// prompt, e.g. 1 for [decoder_start_token_id]), the way HF's generate() does:
//   - max_length counts the prompt: MaxNewTokens = max_new_tokens if set, else
//     max_length - promptLen (at least 1: HF warns and still generates one token);
//   - MinNewTokens = max(min_new_tokens, min_length - promptLen);
//   - PadID = pad_token_id, else eos_token_id[0] (HF's open-end fallback);
//   - early_stopping, length_penalty, no_repeat_ngram_size, repetition_penalty, sampling
//     settings are copied (top_p 0 keeps only the best token, as in HF).
//
// Seed and OutputScores are left for the caller. Settings that Generate does not implement
// (num_return_sequences > 1, bad_words_ids, forced_eos_token_id, …) are errors, not silently
// ignored.
func (c GenerationConfig) Options(promptLen int) (GenerateOptions, error) {
	var bad []string
	check := func(ok bool, format string, args ...any) {
		if !ok {
			bad = append(bad, fmt.Sprintf(format, args...))
		}
	}
	check(promptLen >= 1, "prompt length %d < 1", promptLen)
	maxNew := max(1, c.MaxLength-promptLen)
	if c.MaxNewTokens != nil {
		maxNew = *c.MaxNewTokens
		check(maxNew >= 1, "max_new_tokens %d < 1", maxNew)
	}
	minNew := c.MinLength - promptLen
	if c.MinNewTokens != nil {
		minNew = max(minNew, *c.MinNewTokens)
	}
	check(c.NumBeams >= 1, "num_beams %d < 1", c.NumBeams)
	check(!(c.DoSample && c.NumBeams > 1), "do_sample with num_beams %d (beam sampling) is not supported", c.NumBeams)
	check(c.NoRepeatNgramSize >= 0, "no_repeat_ngram_size %d < 0", c.NoRepeatNgramSize)
	check(c.RepetitionPenalty > 0, "repetition_penalty %v must be > 0", c.RepetitionPenalty)
	check(!math.IsNaN(c.LengthPenalty) && !math.IsInf(c.LengthPenalty, 0), "length_penalty %v is not finite", c.LengthPenalty)
	for _, e := range c.EOSTokenID {
		check(e >= 0, "eos_token_id %d < 0", e)
	}
	if c.DoSample {
		check(c.Temperature > 0, "temperature %v must be > 0 with do_sample", c.Temperature)
		check(c.TopK >= 0, "top_k %d < 0", c.TopK)
		check(c.TopP >= 0 && c.TopP <= 1, "top_p %v outside [0, 1]", c.TopP)
	}
	for _, key := range slices.Sorted(maps.Keys(c.unsupported)) {
		if c.DoSample || !genUnsupported[key].samplingOnly {
			bad = append(bad, fmt.Sprintf("%s = %s is not supported", key, c.unsupported[key]))
		}
	}
	if len(bad) > 0 {
		src := c.Source
		if src == "" {
			src = "generation config"
		}
		return GenerateOptions{}, fmt.Errorf("%s: %s", src, strings.Join(bad, "; "))
	}
	o := GenerateOptions{
		NumBeams:           c.NumBeams,
		MaxNewTokens:       maxNew,
		MinNewTokens:       max(0, minNew),
		LengthPenalty:      c.LengthPenalty,
		EarlyStopping:      c.EarlyStopping,
		EarlyStoppingNever: c.EarlyStoppingNever,
		NoRepeatNgram:      c.NoRepeatNgramSize,
		RepetitionPenalty:  c.RepetitionPenalty,
		EOS:                slices.Clone(c.EOSTokenID),
		DoSample:           c.DoSample,
		Temperature:        c.Temperature,
		TopK:               c.TopK,
		TopP:               c.TopP,
	}
	switch {
	case c.PadTokenID != nil:
		o.PadID = *c.PadTokenID
	case len(c.EOSTokenID) > 0:
		o.PadID = c.EOSTokenID[0]
	}
	if c.TopP == 0 {
		// HF's TopPLogitsWarper(0) removes every token but the best; our 0 means off.
		o.TopP = math.SmallestNonzeroFloat64
	}
	return o, nil
}
