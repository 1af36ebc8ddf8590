package runner

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/imgcap/imgcap/config"
	"github.com/imgcap/imgcap/data"
	"github.com/imgcap/imgcap/data/image"
	"github.com/imgcap/imgcap/internal/atomicfile"
	"github.com/imgcap/imgcap/models"
	"github.com/imgcap/imgcap/models/blip"
	"github.com/imgcap/imgcap/torchx"
)

// CapFilt is BLIP's dataset bootstrapping (Li et al. 2022, §3.3): a captioner writes synthetic
// captions for the images of a (noisy, web) dataset by nucleus sampling, and a filter, BLIP's ITM
// head, removes every caption, web or synthetic, that it does not judge a match for its image.

// CapFilt defaults, as in BLIP's captioner (generate(sample=True, top_p=0.9,
// repetition_penalty=1.1), BLIP models/blip.py) and filter (a text is noise when the ITM head
// predicts "no match", i.e. match probability below 0.5).
const (
	CapFiltTopP              = 0.9
	CapFiltRepetitionPenalty = 1.1
	CapFiltThreshold         = 0.5
)

// CapFiltOptions configure CapFilt.
type CapFiltOptions struct {
	// Captioner is any captioning model folder, hub id or run (BLIP's is a BLIP captioner).
	Captioner string
	// Filter is a BLIP retrieval model folder, hub id or blip_retrieval run.
	Filter string
	// Data names the annotations and images; Split picks one split ("" = every image).
	Data  config.DataConfig
	Split string
	// Threshold is the ITM match probability a caption needs to be kept (BLIP: CapFiltThreshold;
	// 0 keeps every caption).
	Threshold float64
	// Samples is the number of synthetic captions per image (0 means 1).
	Samples int
	// Prompt is the text the captioner continues (BLIP's captioner: "a picture of "); the
	// synthetic captions exclude it.
	Prompt string
	// TopP is the nucleus sampling mass (0 means CapFiltTopP).
	TopP float64
	// RepetitionPenalty applies to BLIP captioners (0 means CapFiltRepetitionPenalty).
	RepetitionPenalty float64
	// MaxNewTokens and MinNewTokens bound the synthetic captions (0: the captioner's defaults).
	MaxNewTokens, MinNewTokens int
	// Seed makes the sampling reproducible.
	Seed int64
	// BatchSize is the number of images per batch (0 means 8).
	BatchSize int
	// MaxImages stops after this many images (0 = all).
	MaxImages int
	// OutDir receives annotations.json (COCO-style captions that passed) and report.json.
	OutDir string
}

// CapFiltCaption is one caption and the filter's verdict.
type CapFiltCaption struct {
	Text string `json:"caption"`
	// Source is "web" (the dataset's caption) or "synthetic" (the captioner's).
	Source string `json:"source"`
	// Prob is the ITM head's match probability.
	Prob float64 `json:"match_prob"`
	Kept bool    `json:"kept"`
}

// CapFiltImage is one image's captions.
type CapFiltImage struct {
	ImageID  int64            `json:"image_id"`
	File     string           `json:"file_name"`
	Captions []CapFiltCaption `json:"captions"`
}

// CapFiltCounts counts captions by source.
type CapFiltCounts struct {
	Web       int `json:"web"`
	Synthetic int `json:"synthetic"`
}

// CapFiltReport is what CapFilt did, image by image.
type CapFiltReport struct {
	Captioner   string         `json:"captioner"`
	Filter      string         `json:"filter"`
	Annotations string         `json:"annotations"`
	Threshold   float64        `json:"threshold"`
	Samples     int            `json:"samples"`
	TopP        float64        `json:"top_p"`
	Prompt      string         `json:"prompt,omitempty"`
	Seed        int64          `json:"seed"`
	Kept        CapFiltCounts  `json:"kept"`
	Dropped     CapFiltCounts  `json:"dropped"`
	Images      []CapFiltImage `json:"images"`
	// Output is the annotations file written.
	Output string `json:"output"`
}

// CapFilt generates synthetic captions for a dataset's images with o.Captioner, scores the web
// and synthetic captions with o.Filter's ITM head, and writes the captions whose match
// probability reaches o.Threshold as a COCO-style annotations file (o.OutDir/annotations.json:
// images with their file names and the kept captions; an image without kept captions stays,
// with none) and the whole verdict as o.OutDir/report.json.
func CapFilt(ctx context.Context, o CapFiltOptions, env Env) (*CapFiltReport, error) {
	o.Samples = cmp.Or(o.Samples, 1)
	o.TopP = cmp.Or(o.TopP, CapFiltTopP)
	o.RepetitionPenalty = cmp.Or(o.RepetitionPenalty, CapFiltRepetitionPenalty)
	o.BatchSize = cmp.Or(o.BatchSize, 8)
	switch {
	case o.Captioner == "" || o.Filter == "":
		return nil, fmt.Errorf("capfilt: both a captioner and a filter model are needed")
	case o.OutDir == "":
		return nil, fmt.Errorf("capfilt: no output folder")
	case o.Threshold < 0 || o.Threshold > 1:
		return nil, fmt.Errorf("capfilt: threshold %g outside [0, 1]", o.Threshold)
	case o.Samples < 0 || o.BatchSize < 0 || o.MaxImages < 0 || o.MaxNewTokens < 0 || o.MinNewTokens < 0:
		return nil, fmt.Errorf("capfilt: samples, batch size, max images and token counts must not be negative")
	case o.TopP <= 0 || o.TopP > 1:
		return nil, fmt.Errorf("capfilt: top_p %g outside (0, 1]", o.TopP)
	}
	ds, err := LoadDataset(o.Data, 0)
	if err != nil {
		return nil, err
	}
	recs := ds.Records
	if o.Split != "" {
		if recs = ds.Split(o.Split); len(recs) == 0 {
			return nil, fmt.Errorf("split %q has no images (splits: %v)", o.Split, ds.Splits())
		}
	}
	if o.MaxImages > 0 && len(recs) > o.MaxImages {
		recs = recs[:o.MaxImages]
	}
	capt, err := openInference(o.Captioner, env)
	if err != nil {
		return nil, fmt.Errorf("captioner: %w", err)
	}
	if capt.tok == nil {
		return nil, fmt.Errorf("captioner %s has no tokenizer: its captions would be ids only", o.Captioner)
	}
	filt, err := openInference(o.Filter, env)
	if err != nil {
		return nil, fmt.Errorf("filter: %w", err)
	}
	fm, err := filt.retrievalModel()
	if err != nil {
		return nil, fmt.Errorf("filter: %w", err)
	}
	if c, ok := capt.model.(*blipCaptioner); ok {
		c.Gen.RepetitionPenalty = o.RepetitionPenalty
	}
	gen := models.GenerateOptions{DoSample: true, TopP: o.TopP, MaxNewTokens: o.MaxNewTokens, MinNewTokens: o.MinNewTokens, Prompt: o.Prompt}
	if o.Prompt != "" {
		if gen.PromptIDs, err = capt.promptIDs(o.Prompt); err != nil {
			return nil, fmt.Errorf("captioner: %w", err)
		}
	}
	rep := &CapFiltReport{Captioner: o.Captioner, Filter: o.Filter, Annotations: o.Data.Annotations, Threshold: o.Threshold,
		Samples: o.Samples, TopP: o.TopP, Prompt: o.Prompt, Seed: o.Seed}
	maxLen := fm.r.Cfg.Text.MaxPositionEmbeddings
	err = torchx.NoGrad(func() error {
		for i0 := 0; i0 < len(recs); i0 += o.BatchSize {
			if err := ctx.Err(); err != nil {
				return err
			}
			batch := recs[i0:min(i0+o.BatchSize, len(recs))]
			imgs, err := capfiltBatch(ctx, capt, filt, fm, batch, gen, o, int64(i0), maxLen)
			if err != nil {
				return err
			}
			rep.Images = append(rep.Images, imgs...)
			if env.Progress != nil {
				fmt.Fprintf(env.Progress, "capfilt: %d/%d images\n", i0+len(batch), len(recs))
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, im := range rep.Images {
		for _, c := range im.Captions {
			n := &rep.Dropped
			if c.Kept {
				n = &rep.Kept
			}
			if c.Source == "web" {
				n.Web++
			} else {
				n.Synthetic++
			}
		}
	}
	if err := writeCapFilt(o.OutDir, rep); err != nil {
		return rep, err
	}
	fmt.Fprintf(env.out(), "capfilt: %d images; kept %d web + %d synthetic captions, dropped %d web + %d synthetic (ITM match probability < %g); wrote %s\n",
		len(rep.Images), rep.Kept.Web, rep.Kept.Synthetic, rep.Dropped.Web, rep.Dropped.Synthetic, o.Threshold, rep.Output)
	return rep, nil
}

// capfiltBatch captions and filters one batch of records. first is the batch's position (it
// varies the sampling seed).
func capfiltBatch(ctx context.Context, capt, filt *hfBundle, fm *blipRetrieval, recs []data.Record, gen models.GenerateOptions, o CapFiltOptions, first int64, maxLen int) ([]CapFiltImage, error) {
	decoded := make([]*image.RGB, len(recs))
	for i, r := range recs {
		m, err := image.DecodeFile(r.Path, image.DecodeOptions{})
		if err != nil {
			return nil, err
		}
		decoded[i] = m
	}
	out := make([]CapFiltImage, len(recs))
	for i, r := range recs {
		out[i] = CapFiltImage{ImageID: r.ID, File: r.Name}
		for _, c := range r.Captions {
			out[i].Captions = append(out[i].Captions, CapFiltCaption{Text: c, Source: "web"})
		}
	}
	// Synthetic captions.
	err := torchx.WithScope(func(*torchx.Scope) error {
		pb, err := pixelsOf(capt, decoded)
		if err != nil {
			return err
		}
		defer pb.Drop()
		for s := 0; s < o.Samples; s++ {
			g := gen
			g.Seed = o.Seed + first*1_000_003 + int64(s)*7_919
			caps, err := capt.captionPixels(ctx, pb.Pixels, g)
			if err != nil {
				return fmt.Errorf("captioner: %w", err)
			}
			for i, c := range caps {
				out[i].Captions = append(out[i].Captions, CapFiltCaption{Text: c.Text, Source: "synthetic"})
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// ITM match probabilities, image by image (cross-attention keys and values once per image).
	err = torchx.WithScope(func(*torchx.Scope) error {
		pb, err := pixelsOf(filt, decoded)
		if err != nil {
			return err
		}
		defer pb.Drop()
		embeds, feats, err := fm.r.EncodeImages(pb.Pixels)
		if err != nil {
			return err
		}
		defer embeds.Drop()
		defer feats.Drop()
		for i := range out {
			texts := make([]string, len(out[i].Captions))
			for j, c := range out[i].Captions {
				texts[j] = c.Text
			}
			if len(texts) == 0 {
				continue
			}
			err := torchx.WithScope(func(*torchx.Scope) error {
				tb, err := filt.encodeTexts(texts, maxLen, fm.itmFirst)
				if err != nil {
					return err
				}
				defer tb.Drop()
				img, err := embeds.Narrow(0, int64(i), 1, false)
				if err != nil {
					return torchx.Err("capfilt image", err)
				}
				logits, err := fm.r.PairLogits(img, tb.InputIDs, tb.AttentionMask)
				if err != nil {
					return fmt.Errorf("filter: %w", err)
				}
				for j, l := range logits {
					p := blip.MatchProb(l)
					out[i].Captions[j].Prob = p
					out[i].Captions[j].Kept = p >= o.Threshold
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// pixelsOf preprocesses decoded images with a model's processor into one batch.
func pixelsOf(b *hfBundle, imgs []*image.RGB) (*models.Batch, error) {
	pixels := make([][]float32, len(imgs))
	var chw []int64
	for i, m := range imgs {
		px, err := b.proc.Preprocess(m)
		if err != nil {
			return nil, err
		}
		pixels[i] = px.Data
		chw = []int64{int64(px.C), int64(px.H), int64(px.W)}
	}
	return models.Collate(pixels, chw, nil, 0, nil, nil, b.dev)
}

// writeCapFilt writes annotations.json (COCO captions format: the images and their kept
// captions) and report.json into dir.
func writeCapFilt(dir string, rep *CapFiltReport) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	type cocoImage struct {
		ID       int64  `json:"id"`
		FileName string `json:"file_name"`
	}
	type cocoAnn struct {
		ImageID int64  `json:"image_id"`
		ID      int64  `json:"id"`
		Caption string `json:"caption"`
	}
	ann := struct {
		Info        map[string]any `json:"info"`
		Images      []cocoImage    `json:"images"`
		Annotations []cocoAnn      `json:"annotations"`
	}{Info: map[string]any{"description": "imgcap capfilt: web and synthetic captions kept by the ITM filter",
		"captioner": rep.Captioner, "filter": rep.Filter, "threshold": rep.Threshold, "source": rep.Annotations},
		Images: []cocoImage{}, Annotations: []cocoAnn{}}
	id := int64(0)
	for _, im := range rep.Images {
		ann.Images = append(ann.Images, cocoImage{ID: im.ImageID, FileName: im.File})
		for _, c := range im.Captions {
			if c.Kept {
				id++
				ann.Annotations = append(ann.Annotations, cocoAnn{ImageID: im.ImageID, ID: id, Caption: c.Text})
			}
		}
	}
	rep.Output = filepath.Join(dir, "annotations.json")
	for name, v := range map[string]any{"annotations.json": ann, "report.json": rep} {
		data, err := json.MarshalIndent(v, "", " ")
		if err != nil {
			return err
		}
		if err := atomicfile.WriteFile(filepath.Join(dir, name), append(data, '\n')); err != nil {
			return err
		}
	}
	return nil
}
