package runner

import (
	"bytes"
	"context"
	"log/slog"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/config"
	"github.com/imgcap/imgcap/models/vgglstm"
	"github.com/imgcap/imgcap/torchx"
	"github.com/imgcap/imgcap/weights"
)

// TestFeatureCache writes "pretrained" encoder weights, extracts the feature cache, checks a
// cached vector against the encoder, then trains a frozen-encoder model from the cache and
// from images: the runs see the same features, so their losses agree.
func TestFeatureCache(t *testing.T) {
	c := synthConfig(t, 40, 4)
	dir := t.TempDir()
	c.Data.CacheDir = filepath.Join(dir, "cache")
	c.Model.FreezeEncoder = true
	c.Train.BatchSize = 8
	c.Train.LogEvery = 1

	// Stand-in for torchvision's weights: a randomly initialised encoder of the same shape.
	mc := vgglstm.Config{VocabSize: 4, EmbedDim: 1, HiddenDim: 1, ImageSize: int64(c.Model.ImageSize),
		Width: c.Model.VGGWidth, BatchNorm: c.Model.VGGBatchNorm, MaxLength: 2}
	torchx.Seed(9)
	src, err := vgglstm.New(mc, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	sd := map[string]*ts.Tensor{}
	vars := src.VarStore().Variables()
	for name := range vars {
		if strings.HasPrefix(name, "features.") || strings.HasPrefix(name, "classifier.") {
			v := vars[name]
			sd[name] = &v
		}
	}
	c.Model.Pretrained = filepath.Join(dir, "vgg.safetensors")
	if err := weights.WriteSafetensors(c.Model.Pretrained, sd, nil); err != nil {
		t.Fatal(err)
	}

	path, n, err := ExtractFeatures(context.Background(), c, Env{Device: gotch.CPU})
	if err != nil {
		t.Fatal(err)
	}
	if n != 40 {
		t.Errorf("features of %d images, want 40", n)
	}
	cache, err := loadFeatureCache(c)
	if err != nil {
		t.Fatal(err)
	}
	ds, _ := LoadDataset(c.Data, c.Train.Seed)
	rec := ds.Records[3]
	pipe, _ := vgglstm.NewPipeline(mc, nil, nil, gotch.CPU)
	px, err := pipe.Proc.PreprocessFile(rec.Path)
	if err != nil {
		t.Fatal(err)
	}
	x, _ := ts.OfSlice(px.Data)
	x, _ = x.View([]int64{1, 3, int64(c.Model.ImageSize), int64(c.Model.ImageSize)}, true)
	var want []float32
	torchx.NoGrad(func() error {
		f, err := src.Encode(x, false)
		if err != nil {
			t.Fatal(err)
		}
		want, err = torchx.Float32s(f)
		return err
	})
	got := cache[rec.ID]
	if len(got) != len(want) {
		t.Fatalf("cached feature has %d values, want %d", len(got), len(want))
	}
	for i := range want {
		if math.Abs(float64(got[i]-want[i])) > 1e-5 {
			t.Fatalf("feature %d: cache %v, encoder %v", i, got[i], want[i])
		}
	}

	// A cache made for another encoder is refused.
	other := c
	other.Model.ImageSize = 48
	if _, err := loadFeatureCache(other); err == nil || !strings.Contains(err.Error(), "image_size") {
		t.Errorf("stale cache accepted: %v", err)
	}

	losses := map[string]float64{}
	for _, useCache := range []bool{true, false} {
		cc := c
		cc.Train.OutDir = filepath.Join(dir, map[bool]string{true: "cached", false: "images"}[useCache])
		if !useCache {
			cc.Data.CacheDir = filepath.Join(dir, "empty")
		}
		yml, _ := config.YAML(cc)
		var log bytes.Buffer
		res, err := Train(context.Background(), cc, yml, false, Env{Device: gotch.CPU, Logger: slog.New(slog.NewTextHandler(&log, nil))})
		if err != nil {
			t.Fatalf("cache %v: %v", useCache, err)
		}
		if used := strings.Contains(log.String(), "encoder features from cache"); used != useCache {
			t.Errorf("cache %v: run used the cache = %v", useCache, used)
		}
		losses[map[bool]string{true: "cached", false: "images"}[useCache]] = res.Loss
	}
	if d := math.Abs(losses["cached"] - losses["images"]); d > 1e-4 || math.IsNaN(d) {
		t.Errorf("loss with cached features %v, from images %v", losses["cached"], losses["images"])
	}
	if filepath.Base(path) != FeatureCacheFile {
		t.Errorf("cache written to %s", path)
	}
}
