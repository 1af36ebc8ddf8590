package nn

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func genI64p(v int64) *int64 { return &v }
func genIntp(v int) *int     { return &v }

func TestLoadGenerationConfigFixtures(t *testing.T) {
	tests := []struct {
		file                     string
		bos, pad, decStart       *int64
		eos                      []int64
		wantPadID                int64
		wantMaxNew, wantMaxLen20 int
	}{
		// Written by transformers 4.36.2 for the reference models.
		{"gen_vitgpt2_generation_config.json", genI64p(299), genI64p(299), genI64p(299), []int64{299}, 299, 19, 20},
		{"gen_blip_generation_config.json", genI64p(318), genI64p(0), nil, []int64{2}, 0, 19, 20},
		// config.json: top-level keys, and bos_token_id from the nested decoder config.
		{"gen_vitgpt2_config.json", genI64p(299), genI64p(299), genI64p(299), []int64{299}, 299, 19, 20},
		// BlipConfig's text_config spells out only bos_token_id; eos/pad are BlipTextConfig
		// defaults that only generation_config.json carries.
		{"gen_blip_config.json", genI64p(318), nil, nil, nil, 0, 19, 20},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			c, err := LoadGenerationConfig(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.BOSTokenID, tc.bos) || !reflect.DeepEqual(c.PadTokenID, tc.pad) ||
				!reflect.DeepEqual(c.DecoderStartTokenID, tc.decStart) || !reflect.DeepEqual(c.EOSTokenID, tc.eos) {
				t.Errorf("ids bos %v pad %v start %v eos %v", genDeref(c.BOSTokenID), genDeref(c.PadTokenID), genDeref(c.DecoderStartTokenID), c.EOSTokenID)
			}
			if c.MaxLength != tc.wantMaxLen20 || c.NumBeams != 1 || c.TopK != 50 || c.LengthPenalty != 1 {
				t.Errorf("defaults not applied: %+v", c)
			}
			o, err := c.Options(1)
			if err != nil {
				t.Fatal(err)
			}
			if o.MaxNewTokens != tc.wantMaxNew || o.PadID != tc.wantPadID || !reflect.DeepEqual(o.EOS, tc.eos) {
				t.Errorf("options %+v", o)
			}
		})
	}
}

func genDeref(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestLoadGenerationConfigDirectory(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("config.json", `{"num_beams": 4}`)
	c, err := LoadGenerationConfig(dir)
	if err != nil || c.NumBeams != 4 || c.Source != filepath.Join(dir, "config.json") {
		t.Fatalf("config.json fallback: %+v, %v", c, err)
	}
	write("generation_config.json", `{"num_beams": 2}`)
	c, err = LoadGenerationConfig(dir)
	if err != nil || c.NumBeams != 2 {
		t.Fatalf("generation_config.json first: %+v, %v", c, err)
	}
	if _, err := LoadGenerationConfig(filepath.Join(dir, "missing.json")); err == nil {
		t.Error("missing file: no error")
	}
}

func TestGenerationConfigOptions(t *testing.T) {
	tests := []struct {
		name      string
		json      string
		promptLen int
		mod       func(*GenerationConfig) // user overrides
		check     func(c *GenerationConfig, o GenerateOptions) bool
	}{
		{"defaults", `{}`, 1, nil, func(c *GenerationConfig, o GenerateOptions) bool {
			d := DefaultGenerationConfig()
			d.Source = c.Source
			return reflect.DeepEqual(*c, d) && reflect.DeepEqual(o, GenerateOptions{NumBeams: 1, MaxNewTokens: 19,
				LengthPenalty: 1, RepetitionPenalty: 1, Temperature: 1, TopK: 50, TopP: 1})
		}},
		{"eos list, pad falls back to eos[0]", `{"eos_token_id": [5, 3]}`, 2, nil, func(c *GenerationConfig, o GenerateOptions) bool {
			return reflect.DeepEqual(o.EOS, []int64{5, 3}) && o.PadID == 5
		}},
		{"null eos", `{"eos_token_id": null, "pad_token_id": 4}`, 1, nil, func(c *GenerationConfig, o GenerateOptions) bool {
			return o.EOS == nil && o.PadID == 4
		}},
		{"max_length counts the prompt", `{"max_length": 12}`, 3, nil, func(c *GenerationConfig, o GenerateOptions) bool {
			return o.MaxNewTokens == 9
		}},
		{"max_new_tokens wins", `{"max_length": 5, "max_new_tokens": 7}`, 3, nil, func(c *GenerationConfig, o GenerateOptions) bool {
			return o.MaxNewTokens == 7
		}},
		{"prompt longer than max_length: one token", `{"max_length": 3}`, 5, nil, func(c *GenerationConfig, o GenerateOptions) bool {
			return o.MaxNewTokens == 1
		}},
		{"min_length counts the prompt", `{"min_length": 6, "min_new_tokens": 2}`, 3, nil, func(c *GenerationConfig, o GenerateOptions) bool {
			return o.MinNewTokens == 3
		}},
		{"min_new_tokens", `{"min_length": 2, "min_new_tokens": 4}`, 3, nil, func(c *GenerationConfig, o GenerateOptions) bool {
			return o.MinNewTokens == 4
		}},
		{"early_stopping never", `{"early_stopping": "never", "num_beams": 3, "length_penalty": 0.5}`, 1, nil, func(c *GenerationConfig, o GenerateOptions) bool {
			return o.EarlyStoppingNever && !o.EarlyStopping && o.NumBeams == 3 && o.LengthPenalty == 0.5
		}},
		{"early_stopping true", `{"early_stopping": true, "no_repeat_ngram_size": 3, "repetition_penalty": 1.2}`, 1, nil, func(c *GenerationConfig, o GenerateOptions) bool {
			return o.EarlyStopping && !o.EarlyStoppingNever && o.NoRepeatNgram == 3 && o.RepetitionPenalty == 1.2
		}},
		{"null means off", `{"top_k": null, "temperature": null, "top_p": null, "min_length": null}`, 1, nil, func(c *GenerationConfig, o GenerateOptions) bool {
			return o.TopK == 0 && o.Temperature == 1 && o.TopP == 1 && o.MinNewTokens == 0
		}},
		{"sampling", `{"do_sample": true, "temperature": 0.7, "top_k": 0, "top_p": 0.9}`, 1, nil, func(c *GenerationConfig, o GenerateOptions) bool {
			return o.DoSample && o.Temperature == 0.7 && o.TopK == 0 && o.TopP == 0.9
		}},
		{"top_p 0 keeps the best token", `{"do_sample": true, "top_p": 0.0}`, 1, nil, func(c *GenerationConfig, o GenerateOptions) bool {
			return o.TopP > 0 && o.TopP < 1e-300
		}},
		{"user overrides on a copy", `{"num_beams": 4, "max_length": 30}`, 1, func(c *GenerationConfig) {
			c.NumBeams, c.MaxNewTokens = 2, genIntp(10)
		}, func(c *GenerationConfig, o GenerateOptions) bool {
			return o.NumBeams == 2 && o.MaxNewTokens == 10
		}},
		{"nested decoder fills defaults", `{"num_beams": 1, "decoder": {"eos_token_id": 5, "num_beams": 4, "bos_token_id": null}, "bos_token_id": 9}`, 1, nil,
			func(c *GenerationConfig, o GenerateOptions) bool {
				// num_beams 1 is the default, so the decoder's 4 wins (as in HF); bos 9 is not.
				return reflect.DeepEqual(o.EOS, []int64{5}) && o.NumBeams == 4 && *c.BOSTokenID == 9
			}},
		{"top level wins over nested", `{"eos_token_id": 7, "decoder": {"eos_token_id": 5}}`, 1, nil, func(c *GenerationConfig, o GenerateOptions) bool {
			return reflect.DeepEqual(o.EOS, []int64{7})
		}},
		{"decoder before text_config", `{"text_config": {"eos_token_id": 6}, "decoder": {"eos_token_id": 5}}`, 1, nil, func(c *GenerationConfig, o GenerateOptions) bool {
			return reflect.DeepEqual(o.EOS, []int64{5})
		}},
		{"unsupported keys at their off values", `{"num_return_sequences": 1, "forced_eos_token_id": null, "suppress_tokens": [], "typical_p": 0.5, "guidance_scale": 1.0}`, 1, nil,
			func(c *GenerationConfig, o GenerateOptions) bool { return true }},
		{"unknown keys are ignored", `{"architectures": ["X"], "hidden_size": 8, "use_cache": true}`, 1, nil,
			func(c *GenerationConfig, o GenerateOptions) bool { return o.NumBeams == 1 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseGenerationConfig([]byte(tc.json), "test.json")
			if err != nil {
				t.Fatal(err)
			}
			if tc.mod != nil {
				tc.mod(c)
			}
			o, err := c.Options(tc.promptLen)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c, o) {
				t.Errorf("config %+v gave options %+v", *c, o)
			}
		})
	}
}

func TestGenerationConfigErrors(t *testing.T) {
	tests := []struct {
		name, json string
		promptLen  int
		want       []string // substrings of the error
	}{
		{"bad json", `{"num_beams": `, 1, []string{"cfg.json"}},
		{"string for int", `{"num_beams": "3"}`, 1, []string{"cfg.json", `"num_beams"`}},
		{"float for int", `{"top_k": 5.5}`, 1, []string{"cfg.json", `"top_k"`, "5.5"}},
		{"null max_length", `{"max_length": null}`, 1, []string{"cfg.json", `"max_length"`, "null"}},
		{"bad eos", `{"eos_token_id": "x"}`, 1, []string{"cfg.json", `"eos_token_id"`}},
		{"bad early_stopping", `{"early_stopping": "sometimes"}`, 1, []string{"cfg.json", `"early_stopping"`, "never"}},
		{"bad nested", `{"decoder": {"num_beams": "x"}}`, 1, []string{"cfg.json", "decoder.num_beams"}},
		{"zero beams", `{"num_beams": 0}`, 1, []string{"cfg.json", "num_beams 0"}},
		{"zero max_new_tokens", `{"max_new_tokens": 0}`, 1, []string{"cfg.json", "max_new_tokens 0"}},
		{"beam sampling", `{"num_beams": 2, "do_sample": true}`, 1, []string{"cfg.json", "beam sampling"}},
		{"zero temperature", `{"do_sample": true, "temperature": 0.0}`, 1, []string{"cfg.json", "temperature"}},
		{"top_p above 1", `{"do_sample": true, "top_p": 1.5}`, 1, []string{"cfg.json", "top_p"}},
		{"repetition_penalty", `{"repetition_penalty": 0.0}`, 1, []string{"cfg.json", "repetition_penalty"}},
		{"negative eos", `{"eos_token_id": [-1]}`, 1, []string{"cfg.json", "eos_token_id -1"}},
		{"prompt length", `{}`, 0, []string{"cfg.json", "prompt length"}},
		{"unsupported", `{"num_return_sequences": 3, "forced_eos_token_id": 2}`, 1, []string{"cfg.json", "forced_eos_token_id = 2", "num_return_sequences = 3"}},
		{"unsupported nested", `{"decoder": {"bad_words_ids": [[1]]}}`, 1, []string{"bad_words_ids = [[1]]"}},
		{"sampling-only key when sampling", `{"do_sample": true, "typical_p": 0.9}`, 1, []string{"typical_p = 0.9"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseGenerationConfig([]byte(tc.json), "cfg.json")
			if err == nil {
				_, err = c.Options(tc.promptLen)
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// Options from the ViT-GPT2 fixture's config drive Generate to HF's greedy ids.
func TestGenerationConfigDrivesGenerate(t *testing.T) {
	c, err := LoadGenerationConfig("testdata/gen_vitgpt2_generation_config.json")
	if err != nil {
		t.Fatal(err)
	}
	c.MaxNewTokens = genIntp(10) // the fixture's generate(max_new_tokens=10)
	o, err := c.Options(1)
	if err != nil {
		t.Fatal(err)
	}
	if o.MaxNewTokens != 10 || o.NumBeams != 1 || math.Abs(o.LengthPenalty-1) > 0 {
		t.Fatalf("options %+v", o)
	}
	_, scores, _ := genReadNpy(t, "testdata/gen_vitgpt2_gen_greedy_scores.npy")
	_, _, ids := genReadNpy(t, "testdata/gen_vitgpt2_gen_greedy.npy")
	seqs := [][]int64{ids[:11], ids[11:]}
	prompts := [][]int64{{*c.DecoderStartTokenID}, {*c.DecoderStartTokenID}}
	got, err := Generate(t.Context(), &genReplayDecoder{t: t, scores: scores, seqs: seqs, vocab: 300}, prompts, o)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got[0].Tokens, seqs[0][1:]) || !reflect.DeepEqual(got[1].Tokens, seqs[1][1:4]) {
		t.Errorf("tokens %v %v, HF %v %v", got[0].Tokens, got[1].Tokens, seqs[0], seqs[1])
	}
}
