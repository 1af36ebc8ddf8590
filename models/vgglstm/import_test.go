package vgglstm

import (
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/torchx"
	"github.com/imgcap/imgcap/weights"
)

// encoderStateDict returns m's encoder tensors plus the keys a torchvision state dict has
// beyond them.
func encoderStateDict(t *testing.T, m *Model) map[string]*ts.Tensor {
	t.Helper()
	out := map[string]*ts.Tensor{}
	vars := m.VarStore().Variables()
	for name := range vars {
		if isEncoderParam(name) {
			v := vars[name]
			out[name] = &v
		}
	}
	extra, err := ts.Ones([]int64{10, m.Cfg.FeatureDim()}, gotch.Float, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	out["classifier.6.weight"] = extra
	return out
}

func TestLoadTorchvisionEncoder(t *testing.T) {
	cfg := tinyConfig()
	cfg.BatchNorm = true
	torchx.Seed(1)
	src, err := New(cfg, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "vgg16_bn.safetensors")
	if err := weights.WriteSafetensors(path, encoderStateDict(t, src), nil); err != nil {
		t.Fatal(err)
	}
	torchx.Seed(2)
	dst, err := New(cfg, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	if err := dst.LoadTorchvisionEncoder(path); err != nil {
		t.Fatal(err)
	}
	sv, dv := src.VarStore().Variables(), dst.VarStore().Variables()
	for name := range sv {
		a, b := sv[name], dv[name]
		eq, err := a.Equal(&b, false)
		if err != nil {
			t.Fatal(err)
		}
		if isEncoderParam(name) != eq {
			t.Errorf("%s: equal after import = %v, want %v", name, eq, isEncoderParam(name))
		}
	}
	// Variables returns struct copies that share the models' C tensors; keep the models (whose
	// finalizers free those tensors) alive until the comparisons are done.
	runtime.KeepAlive(src)
	runtime.KeepAlive(dst)

	// A plain vgg16 model cannot take vgg16_bn weights: every problem is named.
	plain := tinyConfig()
	m, err := New(plain, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	err = m.LoadTorchvisionEncoder(path)
	if err == nil || !strings.Contains(err.Error(), "unexpected: features.1.bias") || !strings.Contains(err.Error(), "wrong shape") {
		t.Errorf("vgg16_bn weights into vgg16: %v", err)
	}
	if err := m.LoadTorchvisionEncoder(filepath.Join(dir, "missing.pth")); err == nil {
		t.Error("missing file accepted")
	}
}
