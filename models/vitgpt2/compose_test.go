package vitgpt2

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/torchx"
	"github.com/imgcap/imgcap/weights"
)

// writeFolder writes config.json and model.safetensors of a model folder.
func writeFolder(t *testing.T, config map[string]any, tensors map[string]*ts.Tensor) string {
	t.Helper()
	dir := t.TempDir()
	b, _ := json.Marshal(config)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := weights.WriteSafetensors(filepath.Join(dir, "model.safetensors"), tensors, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestFromPretrained builds the two halves' checkpoints in the layouts the hub serves them
// (google/vit-base-patch16-224-in21k: a ViTModel with pooler; gpt2: GPT2Model keys without
// "transformer.", with the attn.bias mask buffers) from a reference model, composes a new model
// from them and checks that every pretrained tensor arrived while cross-attention kept its
// fresh initialisation.
func TestFromPretrained(t *testing.T) {
	ref := loadFixture(t)
	enc, dec := map[string]*ts.Tensor{}, map[string]*ts.Tensor{}
	for name, v := range ref.vs.Variables() {
		x := v
		switch {
		case strings.HasPrefix(name, "encoder."):
			enc[strings.TrimPrefix(name, "encoder.")] = &x
		case strings.HasPrefix(name, "decoder.transformer.") && !strings.Contains(name, "cross"):
			dec[strings.TrimPrefix(name, "decoder.transformer.")] = &x
		}
	}
	mask, _ := ts.Ones([]int64{1, 1, 4, 4}, gotch.Float, gotch.CPU)
	dec["h.0.attn.bias"] = mask
	raw := func(v any) map[string]any {
		b, _ := json.Marshal(v)
		var m map[string]any
		json.Unmarshal(b, &m)
		return m
	}
	ec, dc := raw(ref.Cfg.Encoder), raw(ref.Cfg.Decoder)
	ec["model_type"], dc["model_type"] = "vit", "gpt2"
	dc["add_cross_attention"] = false
	encDir, decDir := writeFolder(t, ec, enc), writeFolder(t, dc, dec)

	m, err := FromPretrained(encDir, decDir, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	if m.Cfg.DecoderStartTokenID != *ref.Cfg.Decoder.BOSTokenID || m.Cfg.PadTokenID != *ref.Cfg.Decoder.EOSTokenID {
		t.Errorf("token ids %+v", m.Cfg)
	}
	want, got := ref.vs.Variables(), m.vs.Variables()
	for name, w := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("%s missing from the composed model", name)
			continue
		}
		a, _ := torchx.Float32s(&g)
		b, _ := torchx.Float32s(&w)
		same := slices.Equal(a, b)
		fresh := strings.Contains(name, "crossattention") || strings.Contains(name, "ln_cross_attn") || strings.HasPrefix(name, "enc_to_dec_proj")
		if fresh == same && !(fresh && strings.Contains(name, "ln_cross_attn")) {
			t.Errorf("%s: equal to the reference = %v, want %v", name, same, !fresh)
		}
	}
	// Variables returns copies of the tensor structs: the models must outlive them.
	runtime.KeepAlive(ref)
	runtime.KeepAlive(m)
	// A decoder folder that is not GPT-2 is refused by name.
	bad := writeFolder(t, map[string]any{"model_type": "bert"}, map[string]*ts.Tensor{"x": mask})
	if _, err := FromPretrained(encDir, bad, gotch.CPU); err == nil || !strings.Contains(err.Error(), "bert") {
		t.Errorf("bert decoder: %v", err)
	}
}
