package vgglstm

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/sugarme/gotch"

	"github.com/imgcap/imgcap/data"
	"github.com/imgcap/imgcap/data/image"
	"github.com/imgcap/imgcap/data/tok"
	"github.com/imgcap/imgcap/models"
)

// ImageNet mean and std (torchvision's normalisation for VGG16's pretrained weights).
var (
	imagenetMean = [3]float64{0.485, 0.456, 0.406}
	imagenetStd  = [3]float64{0.229, 0.224, 0.225}
)

// ImageConfig is the preprocessing VGG16 expects: bilinear resize to size×size, RGB in [0,1],
// ImageNet mean/std.
func ImageConfig(size int) image.Config {
	return image.Config{
		Type: "VGG16", DoConvertRGB: true, DoResize: true, Size: image.Size{Height: size, Width: size},
		Resample: image.Bilinear, DoRescale: true, RescaleFactor: 1.0 / 255, DoNormalize: true,
		ImageMean: imagenetMean, ImageStd: imagenetStd,
	}
}

// Item is one preprocessed training or evaluation sample.
type Item struct {
	Pixels   []float32 // C×H×W, or nil when Features is set
	Features []float32 // cached encoder features (frozen encoder), or nil
	IDs      []int64   // startseq … endseq (nil when the sample has no caption)
}

// Pipeline turns dataset records into model inputs.
type Pipeline struct {
	Proc      *image.Processor
	Vocab     *tok.WordVocab
	Augment   *image.Augment // training augmentation; nil = none
	MaxLength int            // tokens per caption, startseq and endseq included
	Device    gotch.Device
	// Features, when set, replaces image decoding by cached encoder features (keyed by the
	// record's image id; see FeatureCache).
	Features map[int64][]float32
}

// NewPipeline prepares the image processor for cfg.
func NewPipeline(cfg Config, vocab *tok.WordVocab, aug *image.Augment, device gotch.Device) (*Pipeline, error) {
	proc, err := image.NewProcessor(ImageConfig(int(cfg.ImageSize)), image.DecodeOptions{})
	if err != nil {
		return nil, err
	}
	return &Pipeline{Proc: proc, Vocab: vocab, Augment: aug, MaxLength: int(cfg.MaxLength), Device: device}, nil
}

// EncodeCaption returns startseq ids endseq, truncated to MaxLength tokens.
func (p *Pipeline) EncodeCaption(caption string) ([]int64, error) {
	ids, err := p.Vocab.Encode(caption)
	if err != nil {
		return nil, err
	}
	if p.MaxLength > 2 && len(ids) > p.MaxLength-2 {
		ids = ids[:p.MaxLength-2]
	}
	full := p.Vocab.AddSpecial(ids)
	out := make([]int64, len(full))
	for i, id := range full {
		out[i] = int64(id)
	}
	return out, nil
}

// Transform returns the loader's per-item function; train applies augmentation.
func (p *Pipeline) Transform(train bool) data.TransformFunc[Item] {
	return func(ctx context.Context, rec *data.Record, s data.Sample, rng *rand.Rand) (Item, error) {
		if p.Features != nil {
			f, ok := p.Features[rec.ID]
			if !ok {
				return Item{}, fmt.Errorf("%s: image id %d is not in the feature cache: run imgcap features again", rec.Path, rec.ID)
			}
			it := Item{Features: f}
			if s.Caption >= 0 && s.Caption < len(rec.Captions) {
				var err error
				if it.IDs, err = p.EncodeCaption(rec.Captions[s.Caption]); err != nil {
					return Item{}, fmt.Errorf("%s caption %d: %w", rec.Path, s.Caption, err)
				}
			}
			return it, nil
		}
		m, err := image.DecodeFile(rec.Path, image.DecodeOptions{})
		if err != nil {
			return Item{}, err
		}
		var px image.Pixels
		if train && p.Augment != nil {
			px, err = p.Proc.PreprocessTrain(m, *p.Augment, rng)
		} else {
			px, err = p.Proc.Preprocess(m)
		}
		if err != nil {
			return Item{}, fmt.Errorf("%s: %w", rec.Path, err)
		}
		it := Item{Pixels: px.Data}
		if s.Caption >= 0 && s.Caption < len(rec.Captions) {
			if it.IDs, err = p.EncodeCaption(rec.Captions[s.Caption]); err != nil {
				return Item{}, fmt.Errorf("%s caption %d: %w", rec.Path, s.Caption, err)
			}
		}
		return it, nil
	}
}

// Collate turns a loader batch into a model batch on the pipeline's device.
func (p *Pipeline) Collate(b data.Batch[Item], records []data.Record) (*models.Batch, error) {
	pixels := make([][]float32, len(b.Items))
	features := len(b.Items) > 0 && b.Items[0].Features != nil
	var ids [][]int64
	imageIDs := make([]int64, len(b.Items))
	paths := make([]string, len(b.Items))
	for i, it := range b.Items {
		pixels[i] = it.Pixels
		if features {
			pixels[i] = it.Features
		}
		if it.IDs != nil {
			ids = append(ids, it.IDs)
		}
		rec := records[b.Samples[i].Record]
		imageIDs[i], paths[i] = rec.ID, rec.Path
	}
	if len(ids) != 0 && len(ids) != len(b.Items) {
		return nil, fmt.Errorf("collate: %d of %d samples have a caption", len(ids), len(b.Items))
	}
	if features {
		mb, err := models.Collate(pixels, []int64{int64(len(pixels[0]))}, ids, 0, imageIDs, paths, p.Device)
		if err != nil {
			return nil, err
		}
		mb.Features, mb.Pixels = mb.Pixels, nil
		return mb, nil
	}
	size := int64(p.Proc.Config().Size.Height)
	return models.Collate(pixels, []int64{3, size, size}, ids, 0, imageIDs, paths, p.Device)
}
