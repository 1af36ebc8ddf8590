package config

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// Archs are the model families imgcap builds.
var Archs = []string{"vgg16_lstm", "vit_gpt2", "blip_caption", "blip_retrieval"}

// Formats are the dataset annotation formats the data package reads (data.Formats).
var Formats = []string{"auto", "flickr-token", "flickr8k-csv", "flickr30k-csv", "karpathy", "coco"}

// Metrics are the caption metric names accepted by eval.metrics.
var Metrics = []string{"bleu", "meteor", "rouge", "cider"}

// Validate checks the values of a decoded configuration and returns every problem.
func Validate(c Config) Errors {
	var p Errors
	add := func(key, format string, args ...any) {
		p = append(p, Problem{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	oneOf := func(key, val string, allowed []string) {
		for _, a := range allowed {
			if val == a {
				return
			}
		}
		add(key, "%q is not one of %s", val, strings.Join(allowed, ", "))
	}
	positive := func(key string, v int) {
		if v <= 0 {
			add(key, "must be positive, got %d", v)
		}
	}
	nonNeg := func(key string, v float64) {
		if v < 0 || math.IsNaN(v) {
			add(key, "must be >= 0, got %v", v)
		}
	}
	prob := func(key string, v float64) {
		if !(v >= 0 && v <= 1) {
			add(key, "must be within [0, 1], got %v", v)
		}
	}

	m := c.Model
	oneOf("model.arch", m.Arch, Archs)
	positive("model.image_size", m.ImageSize)
	positive("model.embed_dim", m.EmbedDim)
	positive("model.hidden_dim", m.HiddenDim)
	positive("model.max_length", m.MaxLength)
	positive("model.min_word_count", m.MinWordCount)
	positive("model.min_word_length", m.MinWordLength)
	if !(m.Dropout >= 0 && m.Dropout < 1) {
		add("model.dropout", "must be within [0, 1), got %v", m.Dropout)
	}
	if !(m.DropPath >= 0 && m.DropPath < 1) {
		add("model.drop_path", "must be within [0, 1), got %v", m.DropPath)
	} else if m.DropPath > 0 && m.Arch != "blip_caption" && m.Arch != "blip_retrieval" && slices.Contains(Archs, m.Arch) {
		add("model.drop_path", "stochastic depth is implemented for the BLIP vision transformer only (blip_caption, blip_retrieval); %s would ignore it: set 0", m.Arch)
	}
	if !(m.VGGWidth > 0 && m.VGGWidth <= 1) {
		add("model.vgg_width", "must be within (0, 1], got %v", m.VGGWidth)
	}
	oneOf("model.dtype", m.DType, []string{"float32", "bfloat16", "float16"})
	if m.DType == "bfloat16" || m.DType == "float16" {
		add("model.dtype", "%s compute is not implemented yet: models run in float32 (export can store fp16/bf16 weights)", m.DType)
	}

	d := c.Data
	oneOf("data.format", d.Format, Formats)
	if d.Workers < 0 {
		add("data.workers", "must be >= 0 (0 = one per core), got %d", d.Workers)
	}
	if d.Prefetch < 0 {
		add("data.prefetch", "must be >= 0, got %d", d.Prefetch)
	}
	if len(d.SplitFractions) != 3 {
		add("data.split_fractions", "want 3 fractions (train, val, test), got %d", len(d.SplitFractions))
	} else {
		sum := 0.0
		for _, f := range d.SplitFractions {
			if f < 0 {
				add("data.split_fractions", "fractions must be >= 0, got %v", d.SplitFractions)
			}
			sum += f
		}
		if math.Abs(sum-1) > 1e-9 {
			add("data.split_fractions", "fractions must sum to 1, got %v (sum %v)", d.SplitFractions, sum)
		}
	}
	for _, s := range []struct{ key, val string }{{"data.train_split", d.TrainSplit}, {"data.val_split", d.ValSplit}, {"data.test_split", d.TestSplit}} {
		if s.val == "" {
			add(s.key, "must name a split")
		}
	}
	if len(d.Augment.Scale) != 2 || d.Augment.Scale[0] <= 0 || d.Augment.Scale[0] > d.Augment.Scale[1] || d.Augment.Scale[1] > 1 {
		add("data.augment.scale", "want [min, max] with 0 < min <= max <= 1, got %v", d.Augment.Scale)
	}
	prob("data.augment.hflip", d.Augment.HFlip)
	ra := d.Augment.RandAugment
	if ra.N < 0 {
		add("data.augment.rand_augment.n", "must be >= 0 (0 = off), got %d", ra.N)
	}
	if !(ra.M >= 0 && ra.M <= 10) {
		add("data.augment.rand_augment.m", "must be within [0, 10], got %v", ra.M)
	}
	var unknownOps []string
	for _, op := range ra.Ops {
		known := false
		for _, k := range RandAugmentOps {
			known = known || strings.EqualFold(k, op)
		}
		if !known {
			unknownOps = append(unknownOps, fmt.Sprintf("%q", op))
		}
	}
	if len(unknownOps) > 0 {
		add("data.augment.rand_augment.ops", "unknown op(s) %s: want names from %s", strings.Join(unknownOps, ", "), strings.Join(RandAugmentOps, ", "))
	} else if ra.N > 0 && len(ra.Ops) == 0 {
		add("data.augment.rand_augment.ops", "n > 0 needs at least one op (BLIP's: %s)", strings.Join(BLIPRandAugmentOps(), ", "))
	}

	t := c.Train
	if t.OutDir == "" {
		add("train.out_dir", "must name a run directory")
	}
	if t.Epochs <= 0 && t.MaxSteps <= 0 {
		add("train.epochs", "set epochs or max_steps to a positive number")
	}
	if t.Epochs < 0 {
		add("train.epochs", "must be >= 0, got %d", t.Epochs)
	}
	if t.MaxSteps < 0 {
		add("train.max_steps", "must be >= 0, got %d", t.MaxSteps)
	}
	positive("train.batch_size", t.BatchSize)
	positive("train.grad_accum", t.GradAccum)
	oneOf("train.optimizer", t.Optimizer, []string{"adamw", "adam", "sgd"})
	if !(t.LR > 0) {
		add("train.lr", "must be positive, got %v", t.LR)
	}
	nonNeg("train.weight_decay", t.WeightDecay)
	if !(t.Beta1 >= 0 && t.Beta1 < 1) {
		add("train.beta1", "must be within [0, 1), got %v", t.Beta1)
	}
	if !(t.Beta2 >= 0 && t.Beta2 < 1) {
		add("train.beta2", "must be within [0, 1), got %v", t.Beta2)
	}
	oneOf("train.schedule", t.Schedule, []string{"constant", "cosine", "linear", "step"})
	if t.WarmupSteps < 0 {
		add("train.warmup_steps", "must be >= 0, got %d", t.WarmupSteps)
	}
	nonNeg("train.min_lr", t.MinLR)
	if t.Schedule == "step" && t.StepEvery <= 0 {
		add("train.step_every", "schedule step needs step_every > 0, got %d", t.StepEvery)
	}
	nonNeg("train.clip_grad_norm", t.ClipGradNorm)
	if !(t.LabelSmoothing >= 0 && t.LabelSmoothing < 1) {
		add("train.label_smoothing", "must be within [0, 1), got %v", t.LabelSmoothing)
	}
	for _, s := range []struct {
		key string
		v   int
	}{{"train.log_every", t.LogEvery}, {"train.eval_every", t.EvalEvery}, {"train.save_every", t.SaveEvery}, {"train.early_stop_patience", t.EarlyStopPatience}} {
		if s.v < 0 {
			add(s.key, "must be >= 0, got %d", s.v)
		}
	}
	oneOf("train.best_metric", t.BestMetric, []string{"val_loss", "bleu1", "bleu4", "rouge_l", "cider", "meteor"})

	e := c.Eval
	if e.Split == "" {
		add("eval.split", "must name a split")
	}
	positive("eval.batch_size", e.BatchSize)
	if e.MaxImages < 0 {
		add("eval.max_images", "must be >= 0 (0 = all), got %d", e.MaxImages)
	}
	for _, name := range e.Metrics {
		oneOf("eval.metrics", name, Metrics)
	}
	positive("eval.num_beams", e.NumBeams)
	positive("eval.max_new_tokens", e.MaxNewTokens)
	if e.MinNewTokens < 0 || e.MinNewTokens > e.MaxNewTokens {
		add("eval.min_new_tokens", "must be within [0, max_new_tokens=%d], got %d", e.MaxNewTokens, e.MinNewTokens)
	}
	if e.NoRepeatNgram < 0 {
		add("eval.no_repeat_ngram", "must be >= 0, got %d", e.NoRepeatNgram)
	}

	s := c.Serve
	if !strings.Contains(s.Addr, ":") {
		add("serve.addr", "want host:port, got %q", s.Addr)
	}
	positive("serve.max_batch", s.MaxBatch)
	if s.MaxWaitMS < 0 {
		add("serve.max_wait_ms", "must be >= 0, got %d", s.MaxWaitMS)
	}
	if !(s.TimeoutS > 0) {
		add("serve.timeout_s", "must be positive, got %v", s.TimeoutS)
	}
	if s.MaxUploadBytes <= 0 {
		add("serve.max_upload_bytes", "must be positive, got %d", s.MaxUploadBytes)
	}
	if s.MaxPixels <= 0 {
		add("serve.max_pixels", "must be positive, got %d", s.MaxPixels)
	}
	return p
}
