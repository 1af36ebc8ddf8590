package runner

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/sugarme/gotch"

	"github.com/imgcap/imgcap/config"
	"github.com/imgcap/imgcap/internal/reftest"
	"github.com/imgcap/imgcap/models/vitgpt2"
	"github.com/imgcap/imgcap/torchx"
	"github.com/imgcap/imgcap/train"
	"github.com/imgcap/imgcap/weights"
)

var vitgpt2Fixture = filepath.Join("..", "models", "vitgpt2", "testdata")

// tensorBytes reads every tensor of a safetensors file as raw float32 values.
func tensorValues(t *testing.T, path string) map[string][]float32 {
	t.Helper()
	st, err := weights.OpenSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	out := map[string][]float32{}
	for _, name := range st.Names() {
		x, err := st.Tensor(name)
		if err != nil {
			t.Fatal(err)
		}
		if out[name], err = torchx.Float32s(x); err != nil {
			t.Fatal(err)
		}
		x.Drop()
	}
	return out
}

// TestExportRoundTrip exports the imported ViT+GPT-2 fixture and checks that the exported
// folder holds the fixture's tensors bit for bit under the same names (no lm_head: it is tied),
// and that importing the export gives the same logits. fp16 exports load and stay close.
func TestExportRoundTrip(t *testing.T) {
	out := t.TempDir()
	files, err := Export(vitgpt2Fixture, ExportOptions{Out: out, DType: gotch.Float}, Env{Device: gotch.CPU})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"model.safetensors", HFConfigFile, HFGenerationFile, HFPreprocessorFile} {
		if !slices.Contains(files, f) {
			t.Errorf("export wrote %v, no %s", files, f)
		}
	}
	want := tensorValues(t, filepath.Join(vitgpt2Fixture, "model.safetensors"))
	got := tensorValues(t, filepath.Join(out, "model.safetensors"))
	if len(got) != len(want) {
		t.Errorf("%d tensors exported, fixture has %d", len(got), len(want))
	}
	for name, w := range want {
		if !slices.Equal(got[name], w) {
			t.Errorf("%s differs from the fixture", name)
		}
	}
	logits := func(dir string) []float32 {
		m, err := vitgpt2.Load(dir, gotch.CPU)
		if err != nil {
			t.Fatal(err)
		}
		var vals []float32
		err = torchx.NoGrad(func() error {
			return torchx.WithScope(func(s *torchx.Scope) error {
				px := reftest.Tensor(t, filepath.Join(vitgpt2Fixture, "pixel_values.npy"))
				ids := reftest.Tensor(t, filepath.Join(vitgpt2Fixture, "decoder_input_ids.npy"))
				l, err := m.Logits(px, ids, false)
				if err != nil {
					return err
				}
				vals, err = torchx.Float32s(l)
				return err
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		return vals
	}
	ref := logits(vitgpt2Fixture)
	if !slices.Equal(logits(out), ref) {
		t.Error("logits of the exported model differ from the original's")
	}
	half := t.TempDir()
	if _, err := Export(vitgpt2Fixture, ExportOptions{Out: half, DType: gotch.Half}, Env{Device: gotch.CPU}); err != nil {
		t.Fatal(err)
	}
	if d, m := reftest.Diff(logits(half), ref); d > 0.05*max(1, m) || d == 0 {
		t.Errorf("fp16 export: logits differ by %.3g (max %.3g): want a small non-zero rounding difference", d, m)
	}
	fi16, _ := os.Stat(filepath.Join(half, "model.safetensors"))
	fi32, _ := os.Stat(filepath.Join(out, "model.safetensors"))
	if fi16.Size()*3 > fi32.Size()*2 {
		t.Errorf("fp16 file %d bytes is not about half of %d", fi16.Size(), fi32.Size())
	}
}

// TestExportVGG exports a (briefly trained) VGG16+LSTM run: weights under torchvision names,
// the model config and the vocabulary, and the weights load back into the model.
func TestExportVGG(t *testing.T) {
	c := synthConfig(t, 40, 2)
	c.Train.BatchSize = 8
	yml, _ := configYAML(t, c)
	if _, err := Train(t.Context(), c, yml, false, Env{Device: gotch.CPU}); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	files, err := Export(c.Train.OutDir, ExportOptions{Out: out, DType: gotch.Float}, Env{Device: gotch.CPU})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(files, []string{"model.safetensors", ModelConfigFile, VocabFile}) {
		t.Errorf("exported %v", files)
	}
	names := tensorValues(t, filepath.Join(out, "model.safetensors"))
	if _, ok := names["features.0.weight"]; !ok {
		t.Errorf("no torchvision-named encoder weight in %d tensors", len(names))
	}
	r, err := openRun(c.Train.OutDir, Env{Device: gotch.CPU})
	if err != nil {
		t.Fatal(err)
	}
	if err := train.LoadWeights(r.model.VarStore(), filepath.Join(out, "model.safetensors")); err != nil {
		t.Errorf("exported weights do not load back: %v", err)
	}
}

func configYAML(t *testing.T, c config.Config) ([]byte, error) {
	t.Helper()
	return config.YAML(c)
}

// TestExportBLIPRoundTrip exports the imported BLIP fixtures (captioner and retrieval) and checks
// that every tensor comes back bit for bit under the same names, the untied decoder weight
// included and no separate decoder.bias, as transformers stores them.
func TestExportBLIPRoundTrip(t *testing.T) {
	for _, dir := range []string{filepath.Join("testdata", "blip", "caption"), filepath.Join("testdata", "blip", "retrieval")} {
		out := t.TempDir()
		if _, err := Export(dir, ExportOptions{Out: out, DType: gotch.Float}, Env{Device: gotch.CPU}); err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		want := tensorValues(t, filepath.Join(dir, "model.safetensors"))
		got := tensorValues(t, filepath.Join(out, "model.safetensors"))
		for name, w := range want {
			if !slices.Equal(got[name], w) {
				t.Errorf("%s: %s differs from the fixture", dir, name)
			}
		}
		for name := range got {
			if _, ok := want[name]; !ok {
				t.Errorf("%s: export adds %s, which the Hugging Face checkpoint does not have", dir, name)
			}
		}
		if _, err := OpenModel(out, gotch.CPU); err != nil {
			t.Errorf("%s: the export does not open: %v", dir, err)
		}
	}
}
