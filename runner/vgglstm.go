package runner

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/imgcap/imgcap/config"
	"github.com/imgcap/imgcap/data"
	"github.com/imgcap/imgcap/data/image"
	"github.com/imgcap/imgcap/data/tok"
	"github.com/imgcap/imgcap/eval"
	"github.com/imgcap/imgcap/internal/atomicfile"
	"github.com/imgcap/imgcap/models"
	"github.com/imgcap/imgcap/models/vgglstm"
	"github.com/imgcap/imgcap/torchx"
	"github.com/imgcap/imgcap/train"
)

// Files a VGG16+LSTM run directory holds besides the trainer's.
const (
	VocabFile       = tok.WordVocabFile // the word vocabulary
	ModelConfigFile = "model.json"      // vgglstm.Config
)

// vggRun is a VGG16+LSTM model with its vocabulary and pipeline.
type vggRun struct {
	cfg   config.Config
	model *vgglstm.Model
	vocab *tok.WordVocab
	pipe  *vgglstm.Pipeline
}

// newVGGRun builds (or, with a run directory that has them, reloads) the vocabulary and the
// model for cfg. Training records build the vocabulary.
func newVGGRun(cfg config.Config, runDir string, trainRecs []data.Record, env Env) (*vggRun, error) {
	vocabPath := filepath.Join(runDir, VocabFile)
	var vocab *tok.WordVocab
	if _, err := os.Stat(vocabPath); err == nil {
		if vocab, err = tok.LoadWordVocab(vocabPath); err != nil {
			return nil, err
		}
	} else {
		var caps []string
		for _, r := range trainRecs {
			caps = append(caps, r.Captions...)
		}
		if len(caps) == 0 {
			return nil, errors.New("no training captions to build the vocabulary from")
		}
		vocab = tok.BuildWordVocabMinLength(caps, cfg.Model.MinWordCount, cfg.Model.MinWordLength)
		if err := os.MkdirAll(runDir, 0o755); err != nil {
			return nil, err
		}
		if err := vocab.Save(vocabPath); err != nil {
			return nil, err
		}
	}
	sp := vocab.Special()
	mc := vgglstm.Config{
		VocabSize: int64(vocab.VocabSize()), EmbedDim: int64(cfg.Model.EmbedDim), HiddenDim: int64(cfg.Model.HiddenDim),
		Dropout: cfg.Model.Dropout, ImageSize: int64(cfg.Model.ImageSize), Width: cfg.Model.VGGWidth, BatchNorm: cfg.Model.VGGBatchNorm,
		PadID: int64(sp.PAD), StartID: int64(sp.BOS), EndID: int64(sp.EOS), MaxLength: int64(cfg.Model.MaxLength),
	}
	mcPath := filepath.Join(runDir, ModelConfigFile)
	if b, err := os.ReadFile(mcPath); err == nil {
		var saved vgglstm.Config
		if err := json.Unmarshal(b, &saved); err != nil {
			return nil, fmt.Errorf("%s: %w", mcPath, err)
		}
		mc = saved
	} else {
		b, _ := json.MarshalIndent(mc, "", "  ")
		if err := atomicfile.WriteFile(mcPath, append(b, '\n')); err != nil {
			return nil, err
		}
	}
	// Initial weights depend on the run's seed only (a resumed run overwrites them).
	torchx.Seed(cfg.Train.Seed)
	model, err := vgglstm.New(mc, env.Device)
	if err != nil {
		return nil, err
	}
	if cfg.Model.FreezeEncoder {
		if err := model.FreezeEncoder(); err != nil {
			return nil, err
		}
	}
	pipe, err := vgglstm.NewPipeline(mc, vocab, trainAugment(cfg.Data.Augment), env.Device)
	if err != nil {
		return nil, err
	}
	return &vggRun{cfg: cfg, model: model, vocab: vocab, pipe: pipe}, nil
}

func (r *vggRun) loader(recs []data.Record, trainMode bool, shuffle bool, batch int) (*data.Loader[vgglstm.Item], error) {
	unit := data.PerCaption
	if !trainMode {
		unit = data.PerImage
	}
	return data.NewLoader(recs, data.LoaderOptions[vgglstm.Item]{
		Transform: r.pipe.Transform(trainMode), BatchSize: batch, Workers: r.cfg.Data.Workers,
		Prefetch: r.cfg.Data.Prefetch, Seed: uint64(r.cfg.Train.Seed), Shuffle: shuffle, Unit: unit,
	})
}

// captioner captions image files in batches on the calling (trainer or evaluator) thread.
func (r *vggRun) captioner(opts models.GenerateOptions) eval.Captioner {
	return func(ctx context.Context, paths []string) ([]string, error) {
		out := make([]string, 0, len(paths))
		err := torchx.WithScope(func(s *torchx.Scope) error {
			pixels := make([][]float32, len(paths))
			for i, p := range paths {
				px, err := r.pipe.Proc.PreprocessFile(p)
				if err != nil {
					return err
				}
				pixels[i] = px.Data
			}
			size := int64(r.pipe.Proc.Config().Size.Height)
			b, err := models.Collate(pixels, []int64{3, size, size}, nil, 0, nil, paths, r.pipe.Device)
			if err != nil {
				return err
			}
			defer b.Drop()
			caps, err := r.model.Caption(ctx, b.Pixels, opts)
			if err != nil {
				return err
			}
			for _, c := range caps {
				out = append(out, r.vocab.Decode(toInts(c.IDs), true))
			}
			return nil
		})
		return out, err
	}
}

func toInts(ids []int64) []int {
	out := make([]int, len(ids))
	for i, id := range ids {
		out[i] = int(id)
	}
	return out
}

func generateOptions(e config.EvalConfig) models.GenerateOptions {
	return models.GenerateOptions{NumBeams: e.NumBeams, MaxNewTokens: e.MaxNewTokens, MinNewTokens: e.MinNewTokens,
		LengthPenalty: e.LengthPenalty, NoRepeatNgram: e.NoRepeatNgram}
}

// Train trains the configured model. cfgYAML is the resolved configuration saved in the run.
func Train(ctx context.Context, cfg config.Config, cfgYAML []byte, resume bool, env Env) (train.Result, error) {
	if cfg.Model.Arch != "vgg16_lstm" {
		return trainHF(ctx, cfg, cfgYAML, resume, env)
	}
	trainRecs, valRecs, err := trainValSplits(cfg)
	if err != nil {
		return train.Result{}, err
	}
	runDir := cfg.Train.OutDir
	r, err := newVGGRun(cfg, runDir, trainRecs, env)
	if err != nil {
		return train.Result{}, err
	}
	if cfg.Model.Pretrained != "" && !resume {
		// A resumed run's checkpoint holds the weights; a fresh one starts from torchvision's.
		if err := r.model.LoadTorchvisionEncoder(cfg.Model.Pretrained); err != nil {
			return train.Result{}, fmt.Errorf("model.pretrained: %w", err)
		}
		env.logger().Info("encoder weights", "from", cfg.Model.Pretrained)
	}
	if cfg.Model.FreezeEncoder && FeatureCachePath(cfg) != "" {
		if _, err := os.Stat(FeatureCachePath(cfg)); err == nil {
			if r.pipe.Features, err = loadFeatureCache(cfg); err != nil {
				return train.Result{}, err
			}
			env.logger().Info("encoder features from cache", "file", FeatureCachePath(cfg), "images", len(r.pipe.Features))
		}
	}
	env.logger().Info("data", "train_images", len(trainRecs), "val_images", len(valRecs), "vocab", r.vocab.VocabSize())
	tl, err := r.loader(trainRecs, true, true, cfg.Train.BatchSize)
	if err != nil {
		return train.Result{}, err
	}
	opts := train.Options{
		Model: r.model, Train: &loaderSource[vgglstm.Item]{loader: tl, records: trainRecs, collate: r.pipe.Collate},
		Config: cfg.Train, RunDir: runDir, ConfigYAML: cfgYAML, Resume: resume,
		Progress: env.Progress, Logger: env.Logger, Group: env.Dist,
	}
	if len(valRecs) > 0 {
		vl, err := r.loader(valRecs, false, false, cfg.Eval.BatchSize)
		if err != nil {
			return train.Result{}, err
		}
		opts.Val = &loaderSource[vgglstm.Item]{loader: vl, records: valRecs, collate: r.pipe.Collate}
		if opts.Evaluate, err = evalHook(cfg, valRecs, r.captioner(generateOptions(cfg.Eval))); err != nil {
			return train.Result{}, err
		}
	}
	return train.Run(ctx, opts)
}

// openRun reloads a trained run directory: its saved configuration, vocabulary, model and
// weights (the best checkpoint, else the last), with int8 layers when env.Int8 is set.
func openRun(runDir string, env Env) (*vggRun, error) {
	cfg, err := config.Load(config.Options{File: filepath.Join(runDir, "config.yaml")})
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", runDir, err)
	}
	if cfg.Model.Arch != "vgg16_lstm" {
		return nil, notBuilt(cfg.Model.Arch, "inference", archIssue(cfg.Model.Arch))
	}
	if _, err := os.Stat(filepath.Join(runDir, VocabFile)); err != nil {
		return nil, fmt.Errorf("run %s: no %s: not a VGG16+LSTM run directory", runDir, VocabFile)
	}
	r, err := newVGGRun(cfg, runDir, nil, env)
	if err != nil {
		return nil, err
	}
	if err := train.LoadWeights(r.model.VarStore(), runDir); err != nil {
		return nil, fmt.Errorf("run %s: %w", runDir, err)
	}
	if err := quantize(r.model, env); err != nil {
		return nil, err
	}
	return r, nil
}

// CaptionFiles captions image files with a trained run.
func CaptionFiles(ctx context.Context, runDir string, paths []string, opts models.GenerateOptions, env Env) ([]string, error) {
	if _, err := os.Stat(filepath.Join(runDir, HFConfigFile)); err == nil {
		caps, err := CaptionModel(ctx, runDir, paths, CaptionOptions{Generate: opts}, env)
		if err != nil {
			return nil, err
		}
		out := make([]string, len(caps))
		for i, c := range caps {
			out[i] = c.Text
		}
		return out, nil
	}
	r, err := openRun(runDir, env)
	if err != nil {
		return nil, err
	}
	var caps []string
	err = torchx.NoGrad(func() error {
		var err error
		caps, err = r.captioner(opts)(ctx, paths)
		return err
	})
	return caps, err
}

// EvalOptions select what Evaluate scores.
type EvalOptions struct {
	Split     string // dataset split (default: the config's eval.split)
	MaxImages int    // 0 = all
	OutDir    string // where results and scores go (default: RUN/eval-SPLIT)
	Bootstrap int    // bootstrap resamples for confidence intervals (0 = none)
	Show      int    // print this many generated captions beside a reference
	Prompt    string // text every caption continues (transformer models)
}

// Evaluate captions a split with a trained run and scores the captions, writing COCO results and
// a score JSON.
func Evaluate(ctx context.Context, runDir string, o EvalOptions, env Env) (*eval.ScoreReport, error) {
	if _, err := os.Stat(filepath.Join(runDir, HFConfigFile)); err == nil {
		cfg, err := config.Load(config.Options{File: filepath.Join(runDir, "config.yaml")})
		if err != nil {
			return nil, fmt.Errorf("run %s: %w", runDir, err)
		}
		if o.MaxImages == 0 {
			o.MaxImages = cfg.Eval.MaxImages
		}
		if o.Prompt == "" {
			o.Prompt = cfg.Model.Prompt
		}
		return EvaluateModel(ctx, runDir, cfg.Data, cfg.Eval, o, env)
	}
	r, err := openRun(runDir, env)
	if err != nil {
		return nil, err
	}
	if o.MaxImages == 0 {
		o.MaxImages = r.cfg.Eval.MaxImages
	}
	if o.OutDir == "" {
		o.OutDir = filepath.Join(runDir, "eval-"+cmp.Or(o.Split, r.cfg.Eval.Split))
	}
	return scoreSplit(ctx, r.cfg.Data, r.cfg.Eval, r.cfg.Train.Seed, r.captioner(generateOptions(r.cfg.Eval)), o, env)
}

// scoreSplit captions a dataset split (o.Split, else ec.Split; at most o.MaxImages images) with
// captioner and scores it, writing results.json and scores.json into o.OutDir.
func scoreSplit(ctx context.Context, dc config.DataConfig, ec config.EvalConfig, seed int64, captioner eval.Captioner, o EvalOptions, env Env) (*eval.ScoreReport, error) {
	split := cmp.Or(o.Split, ec.Split)
	ds, err := LoadDataset(dc, seed)
	if err != nil {
		return nil, err
	}
	recs := ds.Split(split)
	if len(recs) == 0 {
		return nil, fmt.Errorf("split %q has no images (splits: %v)", split, ds.Splits())
	}
	if o.MaxImages > 0 && len(recs) > o.MaxImages {
		recs = recs[:o.MaxImages]
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, err
	}
	metrics, err := eval.ParseMetrics(strings.Join(ec.Metrics, ","))
	if err != nil {
		return nil, err
	}
	refs, paths := References(recs)
	var rep *eval.ScoreReport
	err = torchx.NoGrad(func() error {
		ev := &eval.Evaluator{
			Captioner: captioner, Refs: refs, Paths: paths, BatchSize: ec.BatchSize,
			Options:     eval.Options{Metrics: metrics, Bootstrap: o.Bootstrap, Seed: uint64(seed)},
			ResultsPath: filepath.Join(o.OutDir, "results.json"), ScoresPath: filepath.Join(o.OutDir, "scores.json"),
			Out: env.Out,
		}
		var err error
		rep, err = ev.Run(ctx)
		return err
	})
	if err != nil {
		return rep, err
	}
	return rep, showCaptions(env.out(), o.OutDir, refs, paths, o.Show)
}

// evalHook is the trainer's periodic evaluation: captions for (at most eval.max_images of) the
// validation records, scored with the configured metrics.
func evalHook(cfg config.Config, valRecs []data.Record, captioner eval.Captioner) (func(context.Context, int) (map[string]float64, error), error) {
	if cfg.Eval.MaxImages > 0 && len(valRecs) > cfg.Eval.MaxImages {
		valRecs = valRecs[:cfg.Eval.MaxImages]
	}
	refs, paths := References(valRecs)
	metrics, err := eval.ParseMetrics(strings.Join(cfg.Eval.Metrics, ","))
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, step int) (map[string]float64, error) {
		ev := &eval.Evaluator{Captioner: captioner, Refs: refs, Paths: paths,
			BatchSize: cfg.Eval.BatchSize, Options: eval.Options{Metrics: metrics}}
		rep, err := ev.Run(ctx)
		if err != nil && !errors.Is(err, eval.ErrMetricUnavailable) {
			return nil, err
		}
		return trainerMetrics(rep.Result.Corpus), nil
	}, nil
}

// trainValSplits loads the dataset and returns its training split (which must not be empty)
// and its validation split.
func trainValSplits(cfg config.Config) (trainRecs, valRecs []data.Record, err error) {
	ds, err := LoadDataset(cfg.Data, cfg.Train.Seed)
	if err != nil {
		return nil, nil, err
	}
	trainRecs, valRecs = ds.Split(cfg.Data.TrainSplit), ds.Split(cfg.Data.ValSplit)
	if len(trainRecs) == 0 {
		return nil, nil, fmt.Errorf("split %q has no images (splits: %v)", cfg.Data.TrainSplit, ds.Splits())
	}
	return trainRecs, valRecs, nil
}

// trainAugment is the data.augment section as image augmentation (nil when it asks for none). Every model
// family's training loader takes its augmentation from here.
func trainAugment(a config.AugmentConfig) *image.Augment {
	ra := a.RandAugment
	if !a.RandomResizedCrop && a.HFlip <= 0 && ra.N <= 0 {
		return nil
	}
	out := &image.Augment{RandomResizedCrop: a.RandomResizedCrop, Scale: [2]float64{a.Scale[0], a.Scale[1]},
		Ratio: [2]float64{3.0 / 4, 4.0 / 3}, HFlip: a.HFlip}
	if ra.N > 0 {
		out.RandAugment = image.RandAugment{N: ra.N, M: ra.M, Ops: append([]string(nil), ra.Ops...)}
	}
	return out
}

// showCaptions prints the first n generated captions of outDir/results.json beside a human one.
func showCaptions(w io.Writer, outDir string, refs *eval.References, paths map[string]string, n int) error {
	if n <= 0 {
		return nil
	}
	cands, err := eval.ReadCOCOResults(filepath.Join(outDir, "results.json"))
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%-24s  %-44s  %s\n", "image", "generated", "a human caption")
	for i, c := range cands {
		if i == n {
			break
		}
		ref := ""
		if r := refs.Captions[c.ImageID]; len(r) > 0 {
			ref = r[0]
		}
		fmt.Fprintf(w, "%-24s  %-44s  %s\n", filepath.Base(paths[c.ImageID]), c.Caption, ref)
	}
	return nil
}
