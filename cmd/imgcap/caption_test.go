package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/sugarme/gotch"

	"github.com/imgcap/imgcap/data/synth"
	"github.com/imgcap/imgcap/data/tok"
	"github.com/imgcap/imgcap/internal/reftest"
	"github.com/imgcap/imgcap/models/vitgpt2"
	"github.com/imgcap/imgcap/weights"
)

// The ViT+GPT-2 reference fixture (models/vitgpt2/testdata): a Hugging Face model folder without
// tokenizer files, with pixel values and the ids transformers generated for them.
var vitgpt2Fixture = filepath.Join("..", "..", "models", "vitgpt2", "testdata")

func TestCaptionModelPixelValues(t *testing.T) {
	// HF's rows are padded with pad = eos (299); ours end with the end token.
	hfRows := func(name string, promptLen int) [][]int64 {
		var out [][]int64
		for _, r := range reftest.Int64Rows(t, filepath.Join(vitgpt2Fixture, name)) {
			for i := promptLen; i < len(r); i++ {
				if r[i] == 299 {
					r = r[:i+1]
					break
				}
			}
			out = append(out, r)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		args []string
		want [][]int64 // HF's generate() rows, start token included
	}{
		{"greedy", []string{"--num-beams", "1"}, hfRows("gen_greedy.npy", 1)},
		{"beam3", []string{"--num-beams", "3"}, hfRows("gen_beam3.npy", 1)},
		{"prompt", []string{"--num-beams", "1", "--prompt-ids", "299,17,250"}, hfRows("gen_greedy_prompt.npy", 3)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"caption", "--model", vitgpt2Fixture, "--pixel-values", filepath.Join(vitgpt2Fixture, "pixel_values.npy"),
				"--max-new-tokens", "10", "--json"}, tc.args...)
			out, errOut, code := runCLI(t, "", args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			var rows []struct {
				Image    string  `json:"image"`
				IDs      []int64 `json:"ids"`
				Sequence []int64 `json:"sequence"`
				Score    float64 `json:"score"`
			}
			if err := json.Unmarshal([]byte(out), &rows); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			var got [][]int64
			for _, r := range rows {
				got = append(got, r.Sequence)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("sequences %v, want %v", got, tc.want)
			}
			if !strings.Contains(errOut, "no tokenizer") {
				t.Errorf("stderr does not say that text needs a tokenizer: %q", errOut)
			}
		})
	}
}

func TestCaptionModelErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"caption", "--model", vitgpt2Fixture}, "no images"},
		{[]string{"caption", "--model", vitgpt2Fixture, "--run", "x", "a.jpg"}, "exactly one of --run and --model"},
		{[]string{"caption", "--model", vitgpt2Fixture, "--prompt", "a dog", "a.jpg"}, "no tokenizer"},
		{[]string{"caption", "--model", vitgpt2Fixture, "--prompt-ids", "1,x", "a.jpg"}, "not a token id"},
		{[]string{"caption", "--model", vitgpt2Fixture, "--prompt-ids", "299,5000", "--pixel-values", filepath.Join(vitgpt2Fixture, "pixel_values.npy")}, "outside the vocabulary"},
		{[]string{"caption", "--model", vitgpt2Fixture, "missing.jpg"}, "missing.jpg"},
		{[]string{"caption", "--model", filepath.Join(vitgpt2Fixture, "nope"), "a.jpg"}, "nope"},
	} {
		_, errOut, code := runCLI(t, "", tc.args...)
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want failure mentioning %q", tc.args, code, errOut, tc.want)
		}
	}
}

// tinyModelFolder writes a randomly initialised ViT+GPT-2 as a Hugging Face model folder with a
// word vocabulary built from the synthetic captions of dataDir.
func tinyModelFolder(t *testing.T, captions []string) string {
	t.Helper()
	dir := t.TempDir()
	vocab := tok.BuildWordVocabMinLength(captions, 1, 1)
	if err := vocab.Save(filepath.Join(dir, tok.WordVocabFile)); err != nil {
		t.Fatal(err)
	}
	sp := vocab.Special()
	cfg, err := vitgpt2.ParseConfig([]byte(fmt.Sprintf(`{"encoder":{"hidden_size":32,"num_hidden_layers":1,"num_attention_heads":2,"intermediate_size":64,"image_size":32,"patch_size":16},
		"decoder":{"n_embd":32,"n_layer":1,"n_head":2,"n_positions":32,"vocab_size":%d},
		"decoder_start_token_id":%d,"eos_token_id":%d,"pad_token_id":%d}`, vocab.VocabSize(), sp.BOS, sp.EOS, sp.PAD)))
	if err != nil {
		t.Fatal(err)
	}
	m, err := vitgpt2.New(cfg, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	if err := weights.SaveVarStore(filepath.Join(dir, "model.safetensors"), m.VarStore(), nil); err != nil {
		t.Fatal(err)
	}
	b, err := cfg.MarshalHF()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestEvalModelFolder(t *testing.T) {
	data := t.TempDir()
	res, err := synth.Generate(synth.Options{Format: "flickr8k", N: 20, OutDir: data, Seed: 3, Size: 32})
	if err != nil {
		t.Fatal(err)
	}
	var caps []string
	for _, s := range res.Scenes {
		caps = append(caps, s.Captions...)
	}
	model := tinyModelFolder(t, caps)
	out := t.TempDir()
	stdout, errOut, code := runCLI(t, "", "eval", "--model", model, "--data", filepath.Join(data, "Flickr8k.token.txt"),
		"--images", filepath.Join(data, "Images"), "--split-file", "test="+filepath.Join(data, "Flickr_8k.testImages.txt"),
		"--split", "test", "--max-new-tokens", "8", "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(stdout, "Bleu_4") {
		t.Errorf("no score table:\n%s", stdout)
	}
	for _, f := range []string{"results.json", "scores.json"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	_, errOut, code = runCLI(t, "", "eval", "--model", model)
	if code == 0 || !strings.Contains(errOut, "--data") {
		t.Errorf("eval --model without data: exit %d, %q", code, errOut)
	}
}

func TestExportCommand(t *testing.T) {
	out := filepath.Join(t.TempDir(), "exported")
	stdout, errOut, code := runCLI(t, "", "export", "--model", vitgpt2Fixture, "--out", out, "--dtype", "bf16")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(stdout, "model.safetensors") {
		t.Errorf("stdout: %s", stdout)
	}
	// The export is a model folder imgcap captions with.
	_, errOut, code = runCLI(t, "", "caption", "--model", out, "--pixel-values", filepath.Join(vitgpt2Fixture, "pixel_values.npy"), "--max-new-tokens", "3")
	if code != 0 {
		t.Fatalf("caption with the export: exit %d: %s", code, errOut)
	}
	for _, bad := range [][]string{{"export", "--model", vitgpt2Fixture}, {"export", "--model", vitgpt2Fixture, "--out", out, "--dtype", "int8"}, {"export", "--model", vitgpt2Fixture, "--out", out, "--format", "onnx"}} {
		if _, _, code := runCLI(t, "", bad...); code != 2 {
			t.Errorf("%v: exit %d, want 2 (usage)", bad, code)
		}
	}
}

// TestCaptionHubID captions with a hub id whose snapshot is already in the Hugging Face cache
// (laid out as huggingface_hub writes it), offline: --model resolves hub ids everywhere.
func TestCaptionHubID(t *testing.T) {
	cache := t.TempDir()
	const commit = "0123456789abcdef0123456789abcdef01234567"
	repo := filepath.Join(cache, "models--imgcap--tiny-vit-gpt2")
	snap := filepath.Join(repo, "snapshots", commit)
	if err := os.MkdirAll(snap, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"config.json", "generation_config.json", "preprocessor_config.json", "model.safetensors"} {
		b, err := os.ReadFile(filepath.Join(vitgpt2Fixture, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(snap, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(repo, "refs"), 0o755)
	if err := os.WriteFile(filepath.Join(repo, "refs", "main"), []byte(commit), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HF_HUB_CACHE", cache)
	t.Setenv("HF_HUB_OFFLINE", "1")
	out, errOut, code := runCLI(t, "", "caption", "--model", "imgcap/tiny-vit-gpt2", "--pixel-values",
		filepath.Join(vitgpt2Fixture, "pixel_values.npy"), "--max-new-tokens", "3")
	if code != 0 || !strings.Contains(out, "ids [") {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, out, errOut)
	}
	out, errOut, code = runCLI(t, "", "pull", "imgcap/tiny-vit-gpt2")
	if code != 0 || strings.TrimSpace(out) != snap {
		t.Errorf("pull offline: exit %d, stdout %q (want %s), stderr %q", code, out, snap, errOut)
	}
	_, errOut, code = runCLI(t, "", "caption", "--model", "imgcap/not-cached", "x.jpg")
	if code == 0 || !strings.Contains(errOut, "not-cached") {
		t.Errorf("uncached hub id offline: exit %d, %q", code, errOut)
	}
}

// TestCaptionInt8 captions the fixture's pixels with --int8: the command reports the quantized
// layers and prints one caption of ids per image.
func TestCaptionInt8(t *testing.T) {
	out, errOut, code := runCLI(t, "", "caption", "--int8", "--model", vitgpt2Fixture, "--pixel-values",
		filepath.Join(vitgpt2Fixture, "pixel_values.npy"), "--max-new-tokens", "6", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(errOut, "linear layers") || !strings.Contains(errOut, "int8") {
		t.Errorf("stderr does not report the int8 layers: %q", errOut)
	}
	var rows []struct {
		IDs []int64 `json:"ids"`
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(rows) != 2 {
		t.Fatalf("%d captions, want 2:\n%s", len(rows), out)
	}
	for i, r := range rows {
		if len(r.IDs) == 0 || len(r.IDs) > 6 {
			t.Errorf("caption %d: %d ids, want 1–6", i, len(r.IDs))
		}
	}
}
