package runner

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/config"
	"github.com/imgcap/imgcap/data"
	"github.com/imgcap/imgcap/data/image"
	"github.com/imgcap/imgcap/data/tok"
	"github.com/imgcap/imgcap/eval"
	"github.com/imgcap/imgcap/internal/atomicfile"
	"github.com/imgcap/imgcap/models"
	"github.com/imgcap/imgcap/torchx"
	"github.com/imgcap/imgcap/train"
)

// Files of a Hugging Face model folder, which a transformer training run also writes so that the
// run directory is itself a loadable model folder.
const (
	HFConfigFile       = "config.json"
	HFPreprocessorFile = "preprocessor_config.json"
	HFGenerationFile   = "generation_config.json"
)

// tokenizerFiles are the files a tokenizer may consist of; they are copied into run directories.
var tokenizerFiles = []string{
	"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
	"vocab.json", "merges.txt", "vocab.txt", "encoder.json", "vocab.bpe", tok.WordVocabFile,
}

// hfModel is what the runner needs of a transformer captioning family.
type hfModel interface {
	models.Trainable
	models.Captioner
	// LoadWeights loads a Hugging Face model folder's checkpoint by name and returns the
	// checkpoint keys the model does not use.
	LoadWeights(dir string) ([]string, error)
}

// hfBundle is a transformer captioner with its tokenizer and image processor.
type hfBundle struct {
	arch  string
	model hfModel
	tok   tok.Tokenizer // nil: the folder has no tokenizer, captions are ids only
	proc  *image.Processor
	dev   gotch.Device
	// labels turns a caption into the training token ids (the model's special tokens included).
	labels func(caption string) ([]int64, error)
	pad    int64
	// prompt tokenizes a text prompt as the model's generate() expects it.
	prompt func(t tok.Tokenizer, text string) ([]int64, error)
}

// Arch names a model folder's family from its config.json: "architectures" (or model_type).
func Arch(dir string) (string, error) {
	path := filepath.Join(dir, HFConfigFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var c struct {
		Architectures []string `json:"architectures"`
		ModelType     string   `json:"model_type"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	names := append(c.Architectures, c.ModelType)
	for _, n := range names {
		switch n {
		case "VisionEncoderDecoderModel", "vision-encoder-decoder":
			return "vit_gpt2", nil
		case "BlipForConditionalGeneration":
			return "blip_caption", nil
		case "BlipForImageTextRetrieval":
			return "blip_retrieval", nil
		}
	}
	return "", fmt.Errorf("%s: architectures %v / model_type %q: not a model imgcap knows (VisionEncoderDecoderModel, BlipForConditionalGeneration, BlipForImageTextRetrieval)", path, c.Architectures, c.ModelType)
}

// loadTokenizer loads the tokenizer files of dir, or returns nil when there are none.
func loadTokenizer(dir string) (tok.Tokenizer, error) {
	for _, f := range tokenizerFiles {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return tok.Load(dir)
		}
	}
	return nil, nil
}

// loadProcessor reads dir's preprocessor_config.json, or falls back to def.
func loadProcessor(dir string, def image.Config) (*image.Processor, error) {
	c := def
	path := filepath.Join(dir, HFPreprocessorFile)
	if _, err := os.Stat(path); err == nil {
		if c, err = image.LoadConfig(path); err != nil {
			return nil, err
		}
	}
	return image.NewProcessor(c, image.DecodeOptions{})
}

// OpenModel opens a Hugging Face model folder, or a transformer training run (whose directory is
// also a model folder; weights come from its best checkpoint, else the last).
func OpenModel(ref string, dev gotch.Device) (*hfBundle, error) {
	dir, err := ResolveModel(ref)
	if err != nil {
		return nil, err
	}
	arch, err := Arch(dir)
	if err != nil {
		return nil, err
	}
	b, err := buildFromFolder(arch, dir, dev)
	if err != nil {
		return nil, err
	}
	var unexpected []string
	if isRunDir(dir) {
		err = train.LoadWeights(b.model.VarStore(), dir)
	} else {
		unexpected, err = b.model.LoadWeights(dir)
	}
	if err != nil {
		return nil, err
	}
	if len(unexpected) > 0 {
		slog.Warn("checkpoint keys the model does not use", "folder", dir, "count", len(unexpected), "keys", strings.Join(unexpected[:min(len(unexpected), 10)], ", "))
	}
	return b, nil
}

// isRunDir reports whether dir holds training checkpoints.
func isRunDir(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, train.CheckpointsDir))
	return err == nil
}

// CaptionOptions select how CaptionModel captions.
type CaptionOptions struct {
	Generate models.GenerateOptions
	// PixelValues is a .npy file of preprocessed pixels [B, C, H, W] captioned instead of image
	// files (for debugging and checks against reference implementations).
	PixelValues string
}

// CaptionModel captions image files (or the rows of o.PixelValues) with a Hugging Face model
// folder or a transformer run. Without a tokenizer in the folder, captions carry ids only and
// a prompt must be given as ids.
func CaptionModel(ctx context.Context, dir string, paths []string, o CaptionOptions, env Env) ([]models.Caption, error) {
	b, err := openInference(dir, env)
	if err != nil {
		return nil, err
	}
	if o.Generate.Prompt != "" {
		if o.Generate.PromptIDs, err = b.promptIDs(o.Generate.Prompt); err != nil {
			return nil, err
		}
	}
	if o.PixelValues != "" {
		return b.captionNPY(ctx, o.PixelValues, o.Generate)
	}
	var out []models.Caption
	err = torchx.NoGrad(func() error {
		const batch = 8
		for i := 0; i < len(paths); i += batch {
			caps, err := b.captionFiles(ctx, paths[i:min(i+batch, len(paths))], o.Generate)
			if err != nil {
				return err
			}
			out = append(out, caps...)
		}
		return nil
	})
	return out, err
}

// scratchConfigMaps copies model.hf_config (without the skip keys) for a model built from
// scratch and returns it with its vision and text sub-objects (created when absent); the vision
// one gets model.image_size unless it sets image_size itself.
func scratchConfigMaps(mc config.ModelConfig, visionKey, textKey string, skip ...string) (raw, vision, text map[string]any) {
	raw = map[string]any{}
	for k, v := range mc.HFConfig {
		if !slices.Contains(skip, k) {
			raw[k] = v
		}
	}
	sub := func(name string) map[string]any {
		m, ok := raw[name].(map[string]any)
		if !ok {
			m = map[string]any{}
			raw[name] = m
		}
		return m
	}
	vision, text = sub(visionKey), sub(textKey)
	if _, ok := vision["image_size"]; !ok {
		vision["image_size"] = mc.ImageSize
	}
	return raw, vision, text
}

func toInt64s(ids []int) []int64 {
	out := make([]int64, len(ids))
	for i, id := range ids {
		out[i] = int64(id)
	}
	return out
}

// promptIDs tokenizes a text prompt into the ids the model's generate() takes as its prompt.
func (b *hfBundle) promptIDs(text string) ([]int64, error) {
	if b.tok == nil {
		return nil, errors.New("the model folder has no tokenizer files: give the prompt as ids (--prompt-ids)")
	}
	ids, err := b.prompt(b.tok, text)
	if err != nil {
		return nil, fmt.Errorf("prompt %q: %w", text, err)
	}
	return ids, nil
}

// captionNPY captions preprocessed pixels read from a .npy file.
func (b *hfBundle) captionNPY(ctx context.Context, path string, o models.GenerateOptions) (caps []models.Caption, err error) {
	a, err := image.ReadNPYFile(path)
	if err != nil {
		return nil, err
	}
	if a.Dtype != "float32" || len(a.Shape) != 4 {
		return nil, fmt.Errorf("%s: %s %v, want float32 [B, C, H, W]", path, a.Dtype, a.Shape)
	}
	shape := make([]int64, 4)
	for i, d := range a.Shape {
		shape[i] = int64(d)
	}
	err = torchx.NoGrad(func() error {
		return torchx.WithScope(func(s *torchx.Scope) error {
			x, err := ts.OfSlice(a.F32)
			if err != nil {
				return err
			}
			if x, err = x.View(shape, true); err != nil {
				return err
			}
			if b.dev != gotch.CPU {
				if x, err = x.To(b.dev, true); err != nil {
					return err
				}
			}
			caps, err = b.captionPixels(ctx, x, o)
			return err
		})
	})
	return caps, err
}

// captionFiles preprocesses image files and captions them.
func (b *hfBundle) captionFiles(ctx context.Context, paths []string, o models.GenerateOptions) (caps []models.Caption, err error) {
	err = torchx.WithScope(func(s *torchx.Scope) error {
		pixels := make([][]float32, len(paths))
		var chw []int64
		for i, p := range paths {
			px, err := b.proc.PreprocessFile(p)
			if err != nil {
				return err
			}
			pixels[i] = px.Data
			chw = []int64{int64(px.C), int64(px.H), int64(px.W)}
		}
		mb, err := models.Collate(pixels, chw, nil, 0, nil, paths, b.dev)
		if err != nil {
			return err
		}
		defer mb.Drop()
		caps, err = b.captionPixels(ctx, mb.Pixels, o)
		return err
	})
	return caps, err
}

// captionPixels generates and decodes captions for preprocessed pixels.
func (b *hfBundle) captionPixels(ctx context.Context, pixels *ts.Tensor, o models.GenerateOptions) ([]models.Caption, error) {
	caps, err := b.model.Caption(ctx, pixels, o)
	if err != nil {
		return nil, err
	}
	if b.tok != nil {
		for i := range caps {
			caps[i].Text = strings.TrimSpace(b.tok.Decode(toInts(caps[i].IDs), true))
		}
	}
	return caps, nil
}

// captioner adapts the bundle to the evaluator (text captions; a tokenizer is required).
func (b *hfBundle) captioner(o models.GenerateOptions) eval.Captioner {
	return func(ctx context.Context, paths []string) ([]string, error) {
		if b.tok == nil {
			return nil, errors.New("the model folder has no tokenizer: captions cannot be scored as text")
		}
		caps, err := b.captionFiles(ctx, paths, o)
		if err != nil {
			return nil, err
		}
		out := make([]string, len(caps))
		for i, c := range caps {
			out[i] = c.Text
		}
		return out, nil
	}
}

// hfItem is one preprocessed sample of a transformer family.
type hfItem struct {
	Pixels []float32
	CHW    [3]int64
	IDs    []int64
}

// transform returns the loader's per-item function.
func (b *hfBundle) transform(aug *image.Augment) data.TransformFunc[hfItem] {
	return func(ctx context.Context, rec *data.Record, s data.Sample, rng *rand.Rand) (hfItem, error) {
		m, err := image.DecodeFile(rec.Path, image.DecodeOptions{})
		if err != nil {
			return hfItem{}, err
		}
		var px image.Pixels
		if aug != nil {
			px, err = b.proc.PreprocessTrain(m, *aug, rng)
		} else {
			px, err = b.proc.Preprocess(m)
		}
		if err != nil {
			return hfItem{}, fmt.Errorf("%s: %w", rec.Path, err)
		}
		it := hfItem{Pixels: px.Data, CHW: [3]int64{int64(px.C), int64(px.H), int64(px.W)}}
		if s.Caption >= 0 && s.Caption < len(rec.Captions) {
			if it.IDs, err = b.labels(rec.Captions[s.Caption]); err != nil {
				return hfItem{}, fmt.Errorf("%s caption %d: %w", rec.Path, s.Caption, err)
			}
		}
		return it, nil
	}
}

// collate turns a loader batch into a model batch.
func (b *hfBundle) collate(batch data.Batch[hfItem], records []data.Record) (*models.Batch, error) {
	pixels := make([][]float32, len(batch.Items))
	var ids [][]int64
	imageIDs := make([]int64, len(batch.Items))
	paths := make([]string, len(batch.Items))
	for i, it := range batch.Items {
		pixels[i] = it.Pixels
		if it.IDs != nil {
			ids = append(ids, it.IDs)
		}
		rec := records[batch.Samples[i].Record]
		imageIDs[i], paths[i] = rec.ID, rec.Path
	}
	if len(ids) != 0 && len(ids) != len(batch.Items) {
		return nil, fmt.Errorf("collate: %d of %d samples have a caption", len(ids), len(batch.Items))
	}
	if len(batch.Items) == 0 {
		return nil, errors.New("collate: empty batch")
	}
	return models.Collate(pixels, batch.Items[0].CHW[:], ids, b.pad, imageIDs, paths, b.dev)
}

// copyTokenizer copies the tokenizer files of src into dir.
func copyTokenizer(src, dir string) error {
	for _, f := range tokenizerFiles {
		data, err := os.ReadFile(filepath.Join(src, f))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if err := atomicfile.WriteFile(filepath.Join(dir, f), data); err != nil {
			return err
		}
	}
	return nil
}

// trainTokenizer picks a training run's tokenizer: model.tokenizer, else the pretrained
// folder's, else a word vocabulary built from the training captions. It is copied (or saved)
// into the run directory.
func trainTokenizer(cfg config.Config, runDir string, folders []string, trainRecs []data.Record) (tok.Tokenizer, error) {
	if t, err := loadTokenizer(runDir); t != nil || err != nil {
		return t, err
	}
	if p := cfg.Model.Tokenizer; p != "" {
		t, err := tok.Load(p)
		if err != nil {
			return nil, fmt.Errorf("model.tokenizer: %w", err)
		}
		dir := p
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			dir = filepath.Dir(p)
		}
		return t, copyTokenizer(dir, runDir)
	}
	for _, f := range folders {
		if f == "" {
			continue
		}
		t, err := loadTokenizer(f)
		if err != nil {
			return nil, err
		}
		if t != nil {
			return t, copyTokenizer(f, runDir)
		}
	}
	var caps []string
	for _, r := range trainRecs {
		caps = append(caps, r.Captions...)
	}
	if len(caps) == 0 {
		return nil, errors.New("no tokenizer given and no training captions to build a word vocabulary from")
	}
	if f := families[cfg.Model.Arch]; f != nil && f.vocab != nil {
		return f.vocab(cfg, caps, runDir)
	}
	v := tok.BuildWordVocabMinLength(caps, cfg.Model.MinWordCount, cfg.Model.MinWordLength)
	return v, v.Save(filepath.Join(runDir, tok.WordVocabFile))
}

// hfFamily builds one transformer family for the runner.
type hfFamily struct {
	// fromFolder builds the model of a model folder (config.json) without loading weights.
	fromFolder func(dir string, dev gotch.Device) (hfModel, error)
	// forTraining builds a model for a training run and writes its config.json into runDir:
	// from model.pretrained's config, from encoder/decoder_pretrained, or from model.hf_config
	// with sizes from the tokenizer. It loads pretrained weights unless resume is set.
	forTraining func(cfg config.Config, runDir string, t tok.Tokenizer, resume bool, env Env) (hfModel, error)
	// image is the default preprocessing when a folder has no preprocessor_config.json.
	image func(m hfModel) image.Config
	// labels returns the training-caption encoder for a tokenizer.
	labels func(m hfModel, t tok.Tokenizer, maxLen int) func(string) ([]int64, error)
	// pad is the id that pads training captions.
	pad func(m hfModel) int64
	// prompt tokenizes a text prompt into the ids the model's generate() takes (e.g. ViT+GPT-2:
	// decoder_start_token_id + the text's ids; BLIP: [CLS] ids [SEP]).
	prompt func(m hfModel) func(t tok.Tokenizer, text string) ([]int64, error)
	// vocab, when set, builds the family's tokenizer in dir from the training captions when the
	// configuration gives none (nil: a word vocabulary). BLIP: a WordPiece vocabulary.
	vocab func(cfg config.Config, captions []string, dir string) (tok.Tokenizer, error)
	// evaluate, when set, replaces caption scoring for models that do not caption (BLIP
	// retrieval): it scores recs, for the trainer (o zero) and for EvaluateModel (o.OutDir set).
	evaluate func(ctx context.Context, b *hfBundle, recs []data.Record, ec config.EvalConfig, o EvalOptions, env Env) (*eval.ScoreReport, error)
}

// families maps model.arch to its transformer family.
var families = map[string]*hfFamily{}

// buildFromFolder builds the family model of a folder with its tokenizer and processor.
func buildFromFolder(arch, dir string, dev gotch.Device) (*hfBundle, error) {
	f := families[arch]
	if f == nil {
		return nil, notBuilt(arch, "inference", archIssue(arch))
	}
	m, err := f.fromFolder(dir, dev)
	if err != nil {
		return nil, err
	}
	return bundle(arch, f, m, dir, dev, 0)
}

func bundle(arch string, f *hfFamily, m hfModel, dir string, dev gotch.Device, maxLen int) (*hfBundle, error) {
	t, err := loadTokenizer(dir)
	if err != nil {
		return nil, err
	}
	proc, err := loadProcessor(dir, f.image(m))
	if err != nil {
		return nil, err
	}
	b := &hfBundle{arch: arch, model: m, tok: t, proc: proc, dev: dev, pad: f.pad(m), prompt: f.prompt(m)}
	if t != nil {
		b.labels = f.labels(m, t, maxLen)
	}
	return b, nil
}

// trainHF trains a transformer family with the shared trainer.
func trainHF(ctx context.Context, cfg config.Config, cfgYAML []byte, resume bool, env Env) (train.Result, error) {
	f := families[cfg.Model.Arch]
	if f == nil {
		return train.Result{}, notBuilt(cfg.Model.Arch, "training", archIssue(cfg.Model.Arch))
	}
	trainRecs, valRecs, err := trainValSplits(cfg)
	if err != nil {
		return train.Result{}, err
	}
	// Hub ids (org/name) resolve to cached snapshots; local folders stay as they are.
	for key, ref := range map[string]*string{"model.pretrained": &cfg.Model.Pretrained,
		"model.encoder_pretrained": &cfg.Model.EncoderPretrained, "model.decoder_pretrained": &cfg.Model.DecoderPretrained} {
		if *ref == "" {
			continue
		}
		dir, err := ResolveModel(*ref)
		if err != nil {
			return train.Result{}, fmt.Errorf("%s: %w", key, err)
		}
		*ref = dir
	}
	runDir := cfg.Train.OutDir
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return train.Result{}, err
	}
	t, err := trainTokenizer(cfg, runDir, []string{cfg.Model.Pretrained, cfg.Model.DecoderPretrained}, trainRecs)
	if err != nil {
		return train.Result{}, err
	}
	// Initial weights depend on the run's seed only (a resumed run overwrites them).
	torchx.Seed(cfg.Train.Seed)
	m, err := f.forTraining(cfg, runDir, t, resume, env)
	if err != nil {
		return train.Result{}, err
	}
	maxLen := cfg.Model.MaxLength
	b, err := bundle(cfg.Model.Arch, f, m, runDir, env.Device, maxLen)
	if err != nil {
		return train.Result{}, err
	}
	if _, err := os.Stat(filepath.Join(runDir, HFPreprocessorFile)); err != nil {
		pc, err := b.proc.Config().MarshalHF()
		if err != nil {
			return train.Result{}, err
		}
		if err := atomicfile.WriteFile(filepath.Join(runDir, HFPreprocessorFile), append(pc, '\n')); err != nil {
			return train.Result{}, err
		}
	}
	aug := trainAugment(cfg.Data.Augment)
	env.logger().Info("data", "train_images", len(trainRecs), "val_images", len(valRecs), "vocab", t.VocabSize())
	loader := func(recs []data.Record, aug *image.Augment, shuffle bool, unit data.Unit, batch int) (*data.Loader[hfItem], error) {
		return data.NewLoader(recs, data.LoaderOptions[hfItem]{
			Transform: b.transform(aug), BatchSize: batch, Workers: cfg.Data.Workers,
			Prefetch: cfg.Data.Prefetch, Seed: uint64(cfg.Train.Seed), Shuffle: shuffle, Unit: unit,
		})
	}
	tl, err := loader(trainRecs, aug, true, data.PerCaption, cfg.Train.BatchSize)
	if err != nil {
		return train.Result{}, err
	}
	opts := train.Options{
		Model: m, Train: &loaderSource[hfItem]{loader: tl, records: trainRecs, collate: b.collate},
		Config: cfg.Train, RunDir: runDir, ConfigYAML: cfgYAML, Resume: resume,
		Progress: env.Progress, Logger: env.Logger, Group: env.Dist,
	}
	if len(valRecs) > 0 {
		vl, err := loader(valRecs, nil, false, data.PerImage, cfg.Eval.BatchSize)
		if err != nil {
			return train.Result{}, err
		}
		opts.Val = &loaderSource[hfItem]{loader: vl, records: valRecs, collate: b.collate}
		gen, err := runGenerateOptions(cfg, b)
		if err != nil {
			return train.Result{}, err
		}
		if f.evaluate != nil {
			opts.Evaluate = familyEvalHook(f, b, cfg, valRecs, env)
		} else if opts.Evaluate, err = evalHook(cfg, valRecs, b.captioner(gen)); err != nil {
			return train.Result{}, err
		}
	}
	return train.Run(ctx, opts)
}

// runGenerateOptions are the eval section's generation settings with the model prompt.
func runGenerateOptions(cfg config.Config, b *hfBundle) (models.GenerateOptions, error) {
	o := generateOptions(cfg.Eval)
	if p := cfg.Model.Prompt; p != "" {
		ids, err := b.promptIDs(p)
		if err != nil {
			return o, fmt.Errorf("model.prompt: %w", err)
		}
		o.Prompt, o.PromptIDs = p, ids
	}
	return o, nil
}

// EvaluateModel captions a dataset split with a model folder or transformer run and scores it.
func EvaluateModel(ctx context.Context, dir string, dc config.DataConfig, ec config.EvalConfig, o EvalOptions, env Env) (*eval.ScoreReport, error) {
	b, err := openInference(dir, env)
	if err != nil {
		return nil, err
	}
	if b.tok == nil {
		return nil, fmt.Errorf("%s has no tokenizer files: captions cannot be scored as text", dir)
	}
	if o.OutDir == "" {
		o.OutDir = filepath.Join(dir, "eval-"+cmp.Or(o.Split, ec.Split))
		if !isRunDir(dir) {
			o.OutDir = filepath.Join("runs", "eval-"+filepath.Base(filepath.Clean(dir))+"-"+cmp.Or(o.Split, ec.Split))
		}
	}
	if f := families[b.arch]; f != nil && f.evaluate != nil {
		return evaluateFamily(ctx, f, b, dc, ec, o, env)
	}
	gen := generateOptions(ec)
	if o.Prompt != "" {
		if gen.PromptIDs, err = b.promptIDs(o.Prompt); err != nil {
			return nil, err
		}
		gen.Prompt = o.Prompt
	}
	return scoreSplit(ctx, dc, ec, 0, b.captioner(gen), o, env)
}
