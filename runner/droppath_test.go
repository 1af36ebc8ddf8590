package runner

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sugarme/gotch"

	"github.com/imgcap/imgcap/config"
	"github.com/imgcap/imgcap/data/tok"
	"github.com/imgcap/imgcap/models/blip"
)

// TestBLIPDropPathPlumbing builds the tiny BLIP captioning and retrieval training models with
// model.drop_path 0.2 and a 3-layer vision transformer, fresh and resumed from the run's
// config.json, and checks that the vision layers get linspace(0, 0.2, 3) while config.json stays
// free of it.
func TestBLIPDropPathPlumbing(t *testing.T) {
	tk, err := tok.Load(blipRetrievalDir) // BLIP's special tokens
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{0, 0.1, 0.2} // torch.linspace(0, 0.2, 3)
	tests := []struct {
		file  string
		build func(config.Config, string, tok.Tokenizer, bool, Env) (hfModel, error)
		arch  string
	}{
		{"blip_caption_tiny.yaml", blipCaptionForTraining, "blip_caption"},
		{"blip_retrieval_tiny.yaml", blipRetrievalForTraining, "blip_retrieval"},
	}
	for _, tt := range tests {
		c, err := config.Load(config.Options{File: filepath.Join("..", "configs", tt.file),
			Sets: []string{"model.drop_path=0.2"}})
		if err != nil {
			t.Fatalf("%s: %v", tt.file, err)
		}
		c.Model.HFConfig["vision_config"].(map[string]any)["num_hidden_layers"] = 3
		runDir := t.TempDir()
		for _, resume := range []bool{false, true} {
			m, err := tt.build(c, runDir, tk, resume, Env{Device: gotch.CPU})
			if err != nil {
				t.Fatalf("%s (resume %v): %v", tt.file, resume, err)
			}
			var v *blip.VisionModel
			switch m := m.(type) {
			case *blipCaptioner:
				v = m.Vision
			case *blipRetrieval:
				v = m.pt.Vision
				if m.r.Vision != v {
					t.Errorf("%s: the retrieval view has another vision model", tt.file)
				}
			default:
				t.Fatalf("%s: model %T", tt.file, m)
			}
			got := v.DropPathRates()
			if len(got) != len(want) {
				t.Fatalf("%s (resume %v): rates %v, want %v", tt.file, resume, got, want)
			}
			for i := range want {
				if math.Abs(got[i]-want[i]) > 1e-15 {
					t.Errorf("%s (resume %v): layer %d rate %v, want %v", tt.file, resume, i, got[i], want[i])
				}
			}
		}
		data, err := os.ReadFile(filepath.Join(runDir, HFConfigFile))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(data), "drop_path") {
			t.Errorf("%s: config.json holds the drop path rate:\n%s", tt.file, data)
		}
	}
}

// TestDropPathRefusedOutsideBLIP checks that the families without stochastic depth refuse a
// nonzero model.drop_path, naming the key, instead of ignoring it.
func TestDropPathRefusedOutsideBLIP(t *testing.T) {
	for _, file := range []string{"vit_gpt2_tiny.yaml", "vgg16_lstm_flickr8k.yaml"} {
		path := filepath.Join("..", "configs", file)
		if _, err := config.Load(config.Options{File: path}); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		_, err := config.Load(config.Options{File: path, Sets: []string{"model.drop_path=0.1"}})
		if err == nil || !strings.Contains(err.Error(), "model.drop_path: stochastic depth is implemented for the BLIP vision transformer only") {
			t.Errorf("%s with model.drop_path 0.1: %v", file, err)
		}
	}
}
