package config

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// TestDropPathKey checks model.drop_path: default 0, values within [0, 1) for the BLIP families,
// and errors naming the key (with its YAML line) for values outside it and for the families that
// have no stochastic depth.
func TestDropPathKey(t *testing.T) {
	if d := Default().Model.DropPath; d != 0 {
		t.Errorf("default model.drop_path %v", d)
	}
	tests := []struct {
		arch, value string
		want        string // "" = valid
	}{
		{"blip_caption", "0.1", ""},
		{"blip_retrieval", "0.5", ""},
		{"blip_caption", "0", ""},
		{"vit_gpt2", "0", ""},
		{"vgg16_lstm", "0", ""},
		{"blip_caption", "1", ":3: model.drop_path: must be within [0, 1), got 1"},
		{"blip_retrieval", "-0.1", ":3: model.drop_path: must be within [0, 1), got -0.1"},
		{"blip_caption", "1.5", ":3: model.drop_path: must be within [0, 1), got 1.5"},
		{"blip_caption", ".nan", ":3: model.drop_path: must be within [0, 1), got NaN"},
		{"vit_gpt2", "0.1", ":3: model.drop_path: stochastic depth is implemented for the BLIP vision transformer only (blip_caption, blip_retrieval); vit_gpt2 would ignore it"},
		{"vgg16_lstm", "0.2", ":3: model.drop_path: stochastic depth is implemented for the BLIP vision transformer only (blip_caption, blip_retrieval); vgg16_lstm would ignore it"},
		{"vit_gpt2", "1", ":3: model.drop_path: must be within [0, 1), got 1"},
	}
	for _, tt := range tests {
		file := writeFile(t, "model:\n  arch: "+tt.arch+"\n  drop_path: "+tt.value+"\n")
		c, err := Load(Options{File: file})
		if tt.want == "" {
			if err != nil {
				t.Errorf("%s drop_path %s: %v", tt.arch, tt.value, err)
			} else if got := c.Model.DropPath; got < 0 || got >= 1 || (tt.value != "0") != (got > 0) {
				t.Errorf("%s drop_path %s: decoded %v", tt.arch, tt.value, got)
			}
			continue
		}
		var errs Errors
		if !errors.As(err, &errs) || len(errs) != 1 || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s drop_path %s: error %v, want one problem %q", tt.arch, tt.value, err, tt.want)
		}
	}
	// --set reaches the key too, with the same check.
	_, err := Load(Options{Sets: []string{"model.arch=vit_gpt2", "model.drop_path=0.1"}})
	if err == nil || !strings.Contains(err.Error(), "model.drop_path: stochastic depth") {
		t.Errorf("--set model.drop_path=0.1 with vit_gpt2: %v", err)
	}
}

// TestRepoDropPath checks the BLIP configs' model.drop_path against BLIP's create_vit:
// ViT-large 0.1 (captioning and retrieval fine-tuning), ViT-base pre-training 0.
func TestRepoDropPath(t *testing.T) {
	for file, want := range map[string]float64{
		"blip_large_coco_caption.yaml": 0.1,
		"blip_retrieval_coco.yaml":     0.1,
		"blip_pretrain.yaml":           0,
	} {
		c, err := Load(Options{File: filepath.Join("..", "configs", file)})
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if c.Model.DropPath != want {
			t.Errorf("%s: model.drop_path %v, want %v", file, c.Model.DropPath, want)
		}
	}
}
