package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/config"
	"github.com/imgcap/imgcap/models"
	"github.com/imgcap/imgcap/models/vgglstm"
	"github.com/imgcap/imgcap/torchx"
	"github.com/imgcap/imgcap/weights"
)

// FeatureCacheFile is the name of the encoder-feature cache inside data.cache_dir.
const FeatureCacheFile = "vgg16_features.safetensors"

// featureMeta identifies the encoder a feature cache was computed with.
func featureMeta(cfg config.Config) map[string]string {
	return map[string]string{
		"format":         "pt",
		"imgcap":         "vgg16 fc2 features",
		"pretrained":     cfg.Model.Pretrained,
		"image_size":     strconv.Itoa(cfg.Model.ImageSize),
		"vgg_width":      strconv.FormatFloat(cfg.Model.VGGWidth, 'g', -1, 64),
		"vgg_batch_norm": strconv.FormatBool(cfg.Model.VGGBatchNorm),
	}
}

// FeatureCachePath is where `imgcap features` writes the cache for cfg ("" without
// data.cache_dir).
func FeatureCachePath(cfg config.Config) string {
	if cfg.Data.CacheDir == "" {
		return ""
	}
	return filepath.Join(cfg.Data.CacheDir, FeatureCacheFile)
}

// ExtractFeatures runs the frozen VGG16 encoder (model.pretrained) once over every image of the
// dataset and writes its fc2 features, keyed by image id, to data.cache_dir — the notebook's
// features.pkl, as safetensors. Training with model.freeze_encoder then reads them instead of
// images. It returns the file and the number of images.
func ExtractFeatures(ctx context.Context, cfg config.Config, env Env) (string, int, error) {
	if cfg.Model.Arch != "vgg16_lstm" {
		return "", 0, fmt.Errorf("model.arch %s: feature caches are for vgg16_lstm", cfg.Model.Arch)
	}
	path := FeatureCachePath(cfg)
	if path == "" {
		return "", 0, errors.New("data.cache_dir: set a folder for the feature cache")
	}
	if cfg.Model.Pretrained == "" {
		return "", 0, errors.New("model.pretrained: features of a randomly initialised encoder are useless; name torchvision vgg16 weights")
	}
	ds, err := LoadDataset(cfg.Data, cfg.Train.Seed)
	if err != nil {
		return "", 0, err
	}
	mc := vgglstm.Config{VocabSize: 4, EmbedDim: 1, HiddenDim: 1, ImageSize: int64(cfg.Model.ImageSize),
		Width: cfg.Model.VGGWidth, BatchNorm: cfg.Model.VGGBatchNorm, MaxLength: 2}
	model, err := vgglstm.New(mc, env.Device)
	if err != nil {
		return "", 0, err
	}
	if err := model.LoadTorchvisionEncoder(cfg.Model.Pretrained); err != nil {
		return "", 0, fmt.Errorf("model.pretrained: %w", err)
	}
	pipe, err := vgglstm.NewPipeline(mc, nil, nil, env.Device)
	if err != nil {
		return "", 0, err
	}
	bs := max(cfg.Eval.BatchSize, 1)
	size := int64(cfg.Model.ImageSize)
	feats := map[string]*ts.Tensor{}
	recs := ds.Records
	err = torchx.NoGrad(func() error {
		for start := 0; start < len(recs); start += bs {
			if err := ctx.Err(); err != nil {
				return err
			}
			end := min(start+bs, len(recs))
			pixels := make([][]float32, 0, end-start)
			for _, r := range recs[start:end] {
				px, err := pipe.Proc.PreprocessFile(r.Path)
				if err != nil {
					return err
				}
				pixels = append(pixels, px.Data)
			}
			b, err := models.Collate(pixels, []int64{3, size, size}, nil, 0, nil, nil, env.Device)
			if err != nil {
				return err
			}
			f, err := model.Encode(b.Pixels, false)
			b.Drop()
			if err != nil {
				return err
			}
			for i, r := range recs[start:end] {
				row, err := f.Get(i)
				if err != nil {
					return torchx.Err("features", err)
				}
				feats[strconv.FormatInt(r.ID, 10)] = row
			}
			if env.Progress != nil {
				fmt.Fprintf(env.Progress, "\rfeatures %d/%d", end, len(recs))
			}
		}
		return nil
	})
	if env.Progress != nil {
		fmt.Fprintln(env.Progress)
	}
	if err != nil {
		return "", 0, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", 0, err
	}
	if err := weights.WriteSafetensors(path, feats, featureMeta(cfg)); err != nil {
		return "", 0, err
	}
	return path, len(feats), nil
}

// loadFeatureCache reads the cache for cfg, checking that it was made with the same encoder.
func loadFeatureCache(cfg config.Config) (map[int64][]float32, error) {
	path := FeatureCachePath(cfg)
	st, err := weights.OpenSafetensors(path)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	for k, want := range featureMeta(cfg) {
		if got := st.Metadata[k]; got != want {
			return nil, fmt.Errorf("%s was made with %s=%q, the config has %q: run imgcap features again", path, k, got, want)
		}
	}
	out := map[int64][]float32{}
	for _, name := range st.Names() {
		id, err := strconv.ParseInt(name, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: tensor %q is not an image id", path, name)
		}
		t, err := st.Tensor(name)
		if err != nil {
			return nil, err
		}
		v, err := torchx.Float32s(t)
		t.Drop()
		if err != nil {
			return nil, err
		}
		out[id] = v
	}
	return out, nil
}
