package vgglstm

import (
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/sugarme/gotch/pickle"
	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/torchx"
	"github.com/imgcap/imgcap/weights"
)

// ignoredTorchvisionKey reports the keys of a torchvision vgg16/vgg16_bn state dict that the
// captioner has no use for: the ImageNet class layer (classifier.6) and BatchNorm's
// num_batches_tracked counters.
func ignoredTorchvisionKey(name string) bool {
	return strings.HasPrefix(name, "classifier.6.") || strings.HasSuffix(name, ".num_batches_tracked")
}

// LoadTorchvisionEncoder copies torchvision's vgg16 (or, for a BatchNorm model, vgg16_bn) weights
// into the encoder: a state dict saved with torch.save (.pth, .pt, .bin) or a .safetensors file.
// Names must match exactly (features.N.*, classifier.0.*, classifier.3.*) with equal shapes, so a
// full-width model (Width 1) is needed for ImageNet weights. Missing, unexpected and mis-shaped
// keys are all listed in the error. The decoder is left as it is.
func (m *Model) LoadTorchvisionEncoder(path string) error {
	src, err := readStateDict(path)
	if err != nil {
		return err
	}
	defer func() {
		for _, t := range src {
			t.Drop()
		}
	}()
	dst := map[string]*ts.Tensor{}
	vars := m.vs.Variables()
	for name := range vars {
		if isEncoderParam(name) {
			t := vars[name]
			dst[name] = &t
		}
	}
	var missing, unexpected, mismatched []string
	for name, t := range dst {
		s, ok := src[name]
		if !ok {
			missing = append(missing, name)
			continue
		}
		if a, b := torchx.SizeOrNil(t), torchx.SizeOrNil(s); !slices.Equal(a, b) {
			mismatched = append(mismatched, fmt.Sprintf("%s (model %v, file %v)", name, a, b))
		}
	}
	for name := range src {
		if _, ok := dst[name]; !ok && !ignoredTorchvisionKey(name) {
			unexpected = append(unexpected, name)
		}
	}
	if len(missing)+len(unexpected)+len(mismatched) > 0 {
		sort.Strings(missing)
		sort.Strings(unexpected)
		sort.Strings(mismatched)
		var parts []string
		if len(missing) > 0 {
			parts = append(parts, "missing: "+strings.Join(missing, ", "))
		}
		if len(unexpected) > 0 {
			parts = append(parts, "unexpected: "+strings.Join(unexpected, ", "))
		}
		if len(mismatched) > 0 {
			parts = append(parts, "wrong shape: "+strings.Join(mismatched, ", "))
		}
		return fmt.Errorf("%s: not a torchvision vgg16%s state dict for this model: %s", path, map[bool]string{true: "_bn"}[m.Cfg.BatchNorm], strings.Join(parts, "; "))
	}
	return torchx.NoGrad(func() error {
		for name, t := range dst {
			s, err := src[name].Totype(t.DType(), false)
			if err != nil {
				return torchx.Err(name, err)
			}
			// Shapes and dtypes agree (checked above), the one way gotch's Copy_ (which exits
			// the process on error) could fail.
			t.Copy_(s)
			s.Drop()
		}
		return nil
	})
}

// readStateDict reads every tensor of a safetensors file or a torch.save state dict.
func readStateDict(path string) (map[string]*ts.Tensor, error) {
	if strings.EqualFold(filepath.Ext(path), ".safetensors") {
		st, err := weights.OpenSafetensors(path)
		if err != nil {
			return nil, err
		}
		defer st.Close()
		out := map[string]*ts.Tensor{}
		for _, name := range st.Names() {
			t, err := st.Tensor(name)
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", path, name, err)
			}
			out[name] = t
		}
		return out, nil
	}
	sd, err := pickle.Decode(path)
	if err != nil {
		return nil, fmt.Errorf("%s: not a readable torch.save state dict: %w", path, err)
	}
	return sd, nil
}
