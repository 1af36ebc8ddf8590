package vitgpt2

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/internal/reftest"
	"github.com/imgcap/imgcap/nn"
	"github.com/imgcap/imgcap/torchx"
	"github.com/imgcap/imgcap/weights"
)

// The reference fixture: a tiny random VisionEncoderDecoderModel(ViT, GPT-2) in Hugging Face's
// layout with what transformers 4.36.2 computed for it (see testdata/README.md).
const fixture = "testdata"

func fixturePath(name string) string { return filepath.Join(fixture, name) }

func loadFixture(t *testing.T) *Model {
	t.Helper()
	m, err := Load(fixture, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestParseConfigDefaults(t *testing.T) {
	data, err := os.ReadFile(fixturePath("config.json"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	if !c.HasProjection() || c.Decoder.Inner() != 4*c.Decoder.NEmbd || c.DecoderStartTokenID != 299 || c.EOSTokenID != 299 || c.PadTokenID != 299 {
		t.Errorf("config: %+v", c)
	}
	// Absent keys take the HF defaults.
	min := []byte(`{"model_type":"vision-encoder-decoder","encoder":{"model_type":"vit"},"decoder":{"model_type":"gpt2"}}`)
	c, err = ParseConfig(min)
	if err != nil {
		t.Fatal(err)
	}
	if c.Encoder.HiddenSize != 768 || c.Encoder.LayerNormEps != 1e-12 || c.Encoder.ImageSize != 224 ||
		c.Decoder.VocabSize != 50257 || c.Decoder.ActivationFunction != "gelu_new" || c.Decoder.LayerNormEpsilon != 1e-5 ||
		c.DecoderStartTokenID != 50256 || c.EOSTokenID != 50256 || c.PadTokenID != 50256 || c.HasProjection() {
		t.Errorf("defaults: %+v", c)
	}
	for _, bad := range []string{
		`{"model_type":"blip"}`,
		`{"encoder":{"model_type":"vit","hidden_size":10,"num_attention_heads":3},"decoder":{}}`,
		`{"encoder":{},"decoder":{"activation_function":"swish2"}}`,
		`{"encoder":{},"decoder":{"vocab_size":10},"decoder_start_token_id":10}`,
		`{"encoder":{"model_type":"deit"},"decoder":{}}`,
		`{"encoder":[1],"decoder":{}}`,
	} {
		if _, err := ParseConfig([]byte(bad)); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func TestForwardMatchesHF(t *testing.T) {
	m := loadFixture(t)
	err := torchx.NoGrad(func() error {
		return torchx.WithScope(func(s *torchx.Scope) error {
			pixels := reftest.Tensor(t, fixturePath("pixel_values.npy"))
			h, err := m.Encoder.Forward(pixels, false)
			if err != nil {
				return err
			}
			reftest.Close(t, "encoder_last_hidden_state", h, fixturePath("encoder_last_hidden_state.npy"), 1e-4)
			enc, err := m.Encode(pixels, false)
			if err != nil {
				return err
			}
			reftest.Close(t, "encoder_hidden_states_projected", enc, fixturePath("encoder_hidden_states_projected.npy"), 1e-4)
			labels := reftest.Tensor(t, fixturePath("labels.npy"))
			in, err := ShiftTokensRight(labels, m.Cfg.PadTokenID, m.Cfg.DecoderStartTokenID)
			if err != nil {
				return err
			}
			got, _ := torchx.Int64s(in)
			want := reftest.Int64Rows(t, fixturePath("decoder_input_ids.npy"))
			for i, w := range want {
				for j := range w {
					if got[i*len(w)+j] != w[j] {
						t.Fatalf("decoder_input_ids: got %v, want %v", got, want)
					}
				}
			}
			logits, err := m.Logits(pixels, in, false)
			if err != nil {
				return err
			}
			reftest.Close(t, "logits", logits, fixturePath("logits.npy"), 1e-4)
			loss, err := m.LossLabels(pixels, labels, false)
			if err != nil {
				return err
			}
			got1, want1 := reftest.Value(t, loss), reftest.Scalar(t, fixturePath("loss.npy"))
			if d := got1 - want1; d > 1e-5*want1 || d < -1e-5*want1 {
				t.Errorf("loss %.8f, want %.8f", got1, want1)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestConfigRoundTrip(t *testing.T) {
	data, err := os.ReadFile(fixturePath("config.json"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.MarshalHF()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseConfig(out)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, back) {
		t.Errorf("round trip:\n%+v\n%+v", c, back)
	}
}

// hfRows pads generated sequences the way Hugging Face's generate() returns them: prompt, new
// tokens, then pad up to the longest row.
func hfRows(prompts [][]int64, seqs []nn.Sequence, pad int64) [][]int64 {
	width := 0
	rows := make([][]int64, len(seqs))
	for i, s := range seqs {
		rows[i] = append(append([]int64(nil), prompts[i]...), s.Tokens...)
		width = max(width, len(rows[i]))
	}
	for i := range rows {
		for len(rows[i]) < width {
			rows[i] = append(rows[i], pad)
		}
	}
	return rows
}

func TestGenerateMatchesHF(t *testing.T) {
	m := loadFixture(t)
	pixels := reftest.Tensor(t, fixturePath("pixel_values.npy"))
	defer pixels.Drop()
	start := []int64{m.Cfg.DecoderStartTokenID}
	prompt := reftest.Int64Rows(t, fixturePath("decoder_prompt_ids.npy"))
	for _, c := range []struct {
		name    string
		prompts [][]int64
		beams   int
	}{
		{"gen_greedy", [][]int64{start, start}, 1},
		{"gen_beam3", [][]int64{start, start}, 3},
		{"gen_greedy_prompt", prompt, 1},
		{"gen_beam3_prompt", prompt, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := m.GenerateOptions(nn.GenerateOptions{NumBeams: c.beams, MaxNewTokens: 10, LengthPenalty: 1, OutputScores: true})
			seqs, err := m.Generate(context.Background(), pixels, c.prompts, o)
			if err != nil {
				t.Fatal(err)
			}
			got := hfRows(c.prompts, seqs, m.Cfg.PadTokenID)
			want := reftest.Int64Rows(t, fixturePath(c.name+".npy"))
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("ids\n got %v\nwant %v", got, want)
			}
			if c.beams > 1 {
				scores, _ := reftest.Float32s(t, fixturePath(c.name+"_sequence_scores.npy"))
				for i, s := range seqs {
					if d := math.Abs(s.Score - float64(scores[i])); d > 1e-4 {
						t.Errorf("row %d: sequence score %.6f, want %.6f", i, s.Score, scores[i])
					}
				}
				return
			}
			// Greedy: HF's per-step scores are the processed logits [steps, batch, vocab].
			want32, shape := reftest.Float32s(t, fixturePath(c.name+"_scores.npy"))
			steps, batch, vocab := shape[0], shape[1], shape[2]
			var worst, absMax float64
			for b, s := range seqs {
				if len(s.StepScores) < steps {
					t.Fatalf("row %d: %d step scores, want %d", b, len(s.StepScores), steps)
				}
				for st := 0; st < steps; st++ {
					d, m := reftest.Diff(s.StepScores[st], want32[(st*batch+b)*vocab:(st*batch+b+1)*vocab])
					worst, absMax = math.Max(worst, d), math.Max(absMax, m)
				}
			}
			if tol := 1e-4 * math.Max(1, absMax); worst > tol {
				t.Errorf("step scores: max |Δ| %.3g > %.3g", worst, tol)
			}
		})
	}
}

// TestLoadReportsKeys removes one tensor from the fixture checkpoint and adds a stray one: the
// load must fail naming the missing key; with the key back, the stray one is reported as
// unexpected and the model loads.
func TestLoadReportsKeys(t *testing.T) {
	st, err := weights.OpenSafetensors(fixturePath("model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tensors := map[string]*ts.Tensor{}
	for _, name := range st.Names() {
		if tensors[name], err = st.Tensor(name); err != nil {
			t.Fatal(err)
		}
	}
	const gone = "decoder.transformer.h.1.crossattention.q_attn.weight"
	stray, _ := ts.Zeros([]int64{2}, gotch.Float, gotch.CPU)
	dir := t.TempDir()
	for _, f := range []string{"config.json", "generation_config.json"} {
		b, _ := os.ReadFile(fixturePath(f))
		os.WriteFile(filepath.Join(dir, f), b, 0o644)
	}
	kept := tensors[gone]
	delete(tensors, gone)
	tensors["decoder.extra.weight"] = stray
	if err := weights.WriteSafetensors(filepath.Join(dir, "model.safetensors"), tensors, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir, gotch.CPU); err == nil || !strings.Contains(err.Error(), gone) {
		t.Fatalf("load without %s: %v", gone, err)
	}
	tensors[gone] = kept
	if err := weights.WriteSafetensors(filepath.Join(dir, "model.safetensors"), tensors, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	m, err := New(mustConfig(t), gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	unexpected, err := m.LoadWeights(dir)
	if err != nil || !slices.Equal(unexpected, []string{"decoder.extra.weight"}) {
		t.Errorf("unexpected = %v, err %v", unexpected, err)
	}
}

func mustConfig(t *testing.T) Config {
	t.Helper()
	c, err := ReadConfig(fixture)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
