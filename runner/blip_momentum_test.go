package runner

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sugarme/gotch"

	"github.com/imgcap/imgcap/config"
	"github.com/imgcap/imgcap/data/tok"
	"github.com/imgcap/imgcap/models/blip"
	"github.com/imgcap/imgcap/torchx"
	"github.com/imgcap/imgcap/train"
	"github.com/imgcap/imgcap/weights"
)

// TestBLIPMomentumSettings checks model.hf_config.pretrain's momentum keys: absent (off), set,
// and rejected values, whose errors name the section and the key.
func TestBLIPMomentumSettings(t *testing.T) {
	tk, err := tok.Load(blipRetrievalDir)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		pretrain map[string]any
		want     blip.PretrainOptions // momentum fields only
		err      string
	}{
		{"off by default", map[string]any{}, blip.PretrainOptions{}, ""},
		{"BLIP's values", map[string]any{"momentum": 0.995, "queue_size": 57600, "alpha": 0.4, "alpha_ramp_steps": 4427},
			blip.PretrainOptions{Momentum: 0.995, QueueSize: 57600, Alpha: 0.4, AlphaRampSteps: 4427}, ""},
		{"momentum alone", map[string]any{"momentum": 0.9}, blip.PretrainOptions{Momentum: 0.9}, ""},
		{"momentum 1", map[string]any{"momentum": 1}, blip.PretrainOptions{}, "momentum"},
		{"queue without momentum", map[string]any{"queue_size": 64}, blip.PretrainOptions{}, "momentum > 0"},
		{"alpha without momentum", map[string]any{"alpha": 0.4}, blip.PretrainOptions{}, "momentum > 0"},
		{"alpha above 1", map[string]any{"momentum": 0.9, "alpha": 1.5}, blip.PretrainOptions{}, "alpha"},
		{"negative queue", map[string]any{"momentum": 0.9, "queue_size": -8}, blip.PretrainOptions{}, "queue_size"},
		{"fractional queue", map[string]any{"momentum": 0.9, "queue_size": 8.5}, blip.PretrainOptions{}, "queue_size"},
		{"negative ramp", map[string]any{"momentum": 0.9, "alpha_ramp_steps": -1}, blip.PretrainOptions{}, "alpha_ramp_steps"},
		{"momentum as text", map[string]any{"momentum": "high"}, blip.PretrainOptions{}, "momentum"},
		{"momentum without ITC", map[string]any{"momentum": 0.9, "weight_itc": 0}, blip.PretrainOptions{}, "ITC"},
	}
	for _, tt := range tests {
		c := config.Default()
		c.Model.HFConfig = map[string]any{"pretrain": tt.pretrain}
		o, err := blipPretrainOptions(c, tk)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), "model.hf_config.pretrain") || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: error %v, want one naming model.hf_config.pretrain and %q", tt.name, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		got := blip.PretrainOptions{Momentum: o.Momentum, QueueSize: o.QueueSize, Alpha: o.Alpha, AlphaRampSteps: o.AlphaRampSteps}
		if got != tt.want {
			t.Errorf("%s: %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

// TestBLIPMomentumConfigs checks that the BLIP recipes turn momentum distillation on with
// BLIP's values (and a queue that whole batches fill, as BLIP requires) and that the tiny CI
// config leaves it off.
func TestBLIPMomentumConfigs(t *testing.T) {
	tk, err := tok.Load(blipRetrievalDir)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		file string
		want blip.PretrainOptions
	}{
		{"blip_retrieval_coco.yaml", blip.PretrainOptions{Momentum: 0.995, QueueSize: 57600, Alpha: 0.4, AlphaRampSteps: 4427}},
		{"blip_pretrain.yaml", blip.PretrainOptions{Momentum: 0.995, QueueSize: 57600, Alpha: 0.4, AlphaRampSteps: 15112}},
		{"blip_retrieval_tiny.yaml", blip.PretrainOptions{}},
	}
	for _, tt := range tests {
		c, err := config.Load(config.Options{File: filepath.Join("..", "configs", tt.file)})
		if err != nil {
			t.Fatalf("%s: %v", tt.file, err)
		}
		o, err := blipPretrainOptions(c, tk)
		if err != nil {
			t.Errorf("%s: %v", tt.file, err)
			continue
		}
		got := blip.PretrainOptions{Momentum: o.Momentum, QueueSize: o.QueueSize, Alpha: o.Alpha, AlphaRampSteps: o.AlphaRampSteps}
		if got != tt.want {
			t.Errorf("%s: %+v, want %+v", tt.file, got, tt.want)
		}
		if o.QueueSize > 0 && o.QueueSize%int64(c.Train.BatchSize) != 0 {
			t.Errorf("%s: queue_size %d is not a multiple of batch_size %d", tt.file, o.QueueSize, c.Train.BatchSize)
		}
	}
}

// TestBLIPMomentumRun trains a tiny blip_retrieval model with momentum distillation and a queue
// that batches do not divide (so the enqueue wraps): the loss stays finite; a run stopped at
// step 3 and resumed ends bit for bit where an uninterrupted run does, momentum copies, queues,
// pointer and step count included; the optimizer holds none of that state; reopening the run
// restores it from the checkpoint; and exports (fp32, fp16) leave it out and load as
// BlipForImageTextRetrieval.
func TestBLIPMomentumRun(t *testing.T) {
	const steps, batch, queue = 6, 8, 20
	c := tinyBLIP(t, "blip_retrieval_tiny.yaml", 60, steps)
	c.Model.HFConfig["pretrain"] = map[string]any{"weight_itc": 1, "weight_itm": 1, "weight_lm": 0,
		"momentum": 0.9, "queue_size": queue, "alpha": 0.4, "alpha_ramp_steps": 4}
	c.Train.BatchSize, c.Train.SaveEvery = batch, 3
	env := Env{Device: gotch.CPU}
	yml, _ := config.YAML(c)
	whole := c
	whole.Train.OutDir = filepath.Join(t.TempDir(), "whole")
	res, err := Train(context.Background(), whole, yml, false, env)
	if err != nil {
		t.Fatal(err)
	}
	if res.Step != steps || math.IsNaN(res.Loss) || math.IsInf(res.Loss, 0) || res.Loss <= 0 {
		t.Fatalf("uninterrupted run: step %d, loss %v", res.Step, res.Loss)
	}
	first := c
	first.Train.MaxSteps = 3
	if _, err := Train(context.Background(), first, yml, false, env); err != nil {
		t.Fatal(err)
	}
	if _, err := Train(context.Background(), c, yml, true, env); err != nil {
		t.Fatal(err)
	}
	ckpt := func(dir string) string { return filepath.Join(train.CheckpointDir(dir, steps), train.ModelFile) }
	want := tensorValues(t, ckpt(whole.Train.OutDir))
	got := tensorValues(t, ckpt(c.Train.OutDir))
	var state []string
	for name, v := range want {
		if blip.IsMomentumState(name) {
			state = append(state, name)
		}
		if !slices.Equal(v, got[name]) {
			t.Errorf("%s differs between the resumed and the uninterrupted run", name)
		}
	}
	if len(got) != len(want) {
		t.Errorf("resumed checkpoint has %d tensors, uninterrupted %d", len(got), len(want))
	}
	for _, name := range []string{"vision_model_m.post_layernorm.weight", "text_encoder_m.embeddings.word_embeddings.weight",
		"vision_proj_m.weight", "text_proj_m.bias", "image_queue", "text_queue", "idx_queue", "queue_ptr", "momentum_steps"} {
		if _, ok := want[name]; !ok {
			t.Errorf("the checkpoint has no %s", name)
		}
	}
	if p := want["queue_ptr"]; !slices.Equal(p, []float32{steps * batch % queue}) {
		t.Errorf("queue_ptr %v, want %d", p, steps*batch%queue)
	}
	if s := want["momentum_steps"]; !slices.Equal(s, []float32{steps}) {
		t.Errorf("momentum_steps %v, want %d", s, steps)
	}
	if slices.Equal(want["vision_proj_m.weight"], want["vision_proj.weight"]) {
		t.Error("the momentum projection equals the trained one after training")
	}
	opt := tensorValues(t, filepath.Join(train.CheckpointDir(c.Train.OutDir, steps), train.OptimizerFile))
	for name := range opt {
		for _, s := range state {
			if strings.HasSuffix(name, "."+s) {
				t.Errorf("the optimizer state has %s", name)
			}
		}
	}
	// Reopened, the run holds its checkpoint's momentum state (the best one, as train.LoadWeights
	// picks it).
	opened := filepath.Join(c.Train.OutDir, train.BestLink, train.ModelFile)
	if _, err := os.Stat(opened); err != nil {
		opened = filepath.Join(c.Train.OutDir, train.LastLink, train.ModelFile)
	}
	saved := tensorValues(t, opened)
	b, err := OpenModel(c.Train.OutDir, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	m, err := b.retrievalModel()
	if err != nil {
		t.Fatal(err)
	}
	if m.pt == nil || m.pt.Opts.QueueSize != queue || m.pt.ImageQueue == nil {
		t.Fatalf("reopened run has no momentum state: %+v", m.pt)
	}
	for _, x := range []struct {
		name string
		got  func() ([]float32, error)
	}{
		{"image_queue", func() ([]float32, error) { return torchx.Float32s(m.pt.ImageQueue) }},
		{"queue_ptr", func() ([]float32, error) { return torchx.Float32s(m.pt.QueuePtr) }},
		{"idx_queue", func() ([]float32, error) { return torchx.Float32s(m.pt.IdxQueue) }},
	} {
		v, err := x.got()
		if err != nil || !slices.Equal(v, saved[x.name]) {
			t.Errorf("reopened %s differs from the checkpoint (%v)", x.name, err)
		}
	}
	// Exports leave the momentum state out and load as BlipForImageTextRetrieval.
	for _, dt := range []gotch.DType{gotch.Float, gotch.Half} {
		out := t.TempDir()
		if _, err := Export(c.Train.OutDir, ExportOptions{Out: out, DType: dt}, env); err != nil {
			t.Fatal(err)
		}
		st, err := weights.OpenSafetensors(filepath.Join(out, "model.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		names := st.Names()
		st.Close()
		for _, name := range names {
			if blip.IsMomentumState(name) {
				t.Errorf("%v export has %s", dt, name)
			}
		}
		if !slices.Contains(names, "vision_proj.weight") || !slices.Contains(names, "text_encoder.embeddings.word_embeddings.weight") {
			t.Errorf("%v export lacks the retrieval model (%d tensors)", dt, len(names))
		}
		if dt == gotch.Float {
			if _, err := blip.LoadRetrieval(out, gotch.CPU); err != nil {
				t.Errorf("the export does not load as BlipForImageTextRetrieval: %v", err)
			}
		}
	}
}
