package vgglstm

import (
	"fmt"
	"strings"

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
// keys are all listed in the error, and then nothing is loaded. The decoder is left as it is.
// The file is read one tensor at a time.
func (m *Model) LoadTorchvisionEncoder(path string) error {
	src, err := weights.Open(path)
	if err != nil {
		return err
	}
	defer src.Close()
	_, err = weights.LoadInto(m.vs, src, weights.LoadOptions{
		Only:   isEncoderParam,
		Ignore: ignoredTorchvisionKey,
		Strict: true, // a key the encoder does not know means another architecture
	})
	if err != nil {
		return fmt.Errorf("not a torchvision vgg16%s state dict for this model: %w", map[bool]string{true: "_bn"}[m.Cfg.BatchNorm], err)
	}
	return nil
}
