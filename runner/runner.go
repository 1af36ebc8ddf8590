// Package runner turns a YAML configuration into a running job: it reads the dataset, builds
// the model family named by model.arch with its data pipeline, and drives the shared trainer,
// the evaluator and caption generation. The CLI's train, eval and caption commands are thin
// wrappers around it.
package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strconv"

	"github.com/sugarme/gotch"

	"github.com/imgcap/imgcap/config"
	"github.com/imgcap/imgcap/data"
	"github.com/imgcap/imgcap/dist"
	"github.com/imgcap/imgcap/eval"
	"github.com/imgcap/imgcap/models"
	"github.com/imgcap/imgcap/train"
)

// ErrNotImplemented marks model families whose training or inference is not built yet.
var ErrNotImplemented = errors.New("not implemented yet")

// Env is what every job needs besides its configuration.
type Env struct {
	Device   gotch.Device
	Progress io.Writer // progress lines (nil: none)
	Out      io.Writer // tables and results (nil: discarded)
	Logger   *slog.Logger
	Dist     *dist.Group // data-parallel training group (nil: one process)
	// Int8 runs inference with int8 linear layers (nn.QuantizeInt8; CPU only). Training
	// ignores it.
	Int8 bool
}

func (e Env) out() io.Writer {
	if e.Out == nil {
		return io.Discard
	}
	return e.Out
}

func (e Env) logger() *slog.Logger {
	if e.Logger == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return e.Logger
}

// notBuilt is the error for an architecture without the requested job.
func notBuilt(arch, job, issue string) error {
	return fmt.Errorf("%s: %s is %w (tracked in issue %s); only vgg16_lstm trains and captions today", arch, job, ErrNotImplemented, issue)
}

func archIssue(arch string) string {
	switch arch {
	case "vit_gpt2":
		return "#6"
	case "blip_caption", "blip_retrieval":
		return "#7"
	}
	return "?"
}

// LoadDataset reads the annotations named by the data section.
func LoadDataset(c config.DataConfig, seed int64) (*data.Dataset, error) {
	if c.Annotations == "" {
		return nil, errors.New("data.annotations: no annotation file given")
	}
	f, err := data.ParseFormat(c.Format)
	if err != nil {
		return nil, fmt.Errorf("data.format: %w", err)
	}
	opts := data.LoadOptions{
		Format: f, Annotations: []string{c.Annotations}, ImagesDir: c.Images,
		CheckImages: c.Images != "", SkipBad: c.SkipBad, Seed: uint64(seed),
	}
	names := make([]string, 0, len(c.SplitFiles))
	for name := range c.SplitFiles {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		opts.SplitFiles = append(opts.SplitFiles, name+"="+c.SplitFiles[name])
	}
	if len(opts.SplitFiles) == 0 {
		for i, name := range []string{c.TrainSplit, c.ValSplit, c.TestSplit} {
			if i < len(c.SplitFractions) && c.SplitFractions[i] > 0 {
				opts.SplitFractions = append(opts.SplitFractions, data.SplitFraction{Name: name, Fraction: c.SplitFractions[i]})
			}
		}
	}
	return data.Load(opts)
}

// References builds evaluation references from dataset records (image ids are Record.ID) and
// the image path of each id.
func References(recs []data.Record) (*eval.References, map[string]string) {
	refs := &eval.References{Captions: map[string][]string{}, FileNames: map[string]string{}}
	paths := map[string]string{}
	for _, r := range recs {
		id := strconv.FormatInt(r.ID, 10)
		refs.ImageIDs = append(refs.ImageIDs, id)
		refs.Captions[id] = r.Captions
		refs.FileNames[id] = r.Name
		paths[id] = r.Path
	}
	return refs, paths
}

// metricKey maps train.best_metric names to the evaluator's score keys.
var metricKey = map[string]string{
	"bleu1": eval.KeyBleu1, "bleu4": eval.KeyBleu4, "rouge_l": eval.KeyROUGEL,
	"cider": eval.KeyCIDEr, "meteor": eval.KeyMETEOR,
}

// trainerMetrics renames evaluator scores to the trainer's metric names.
func trainerMetrics(corpus map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for name, key := range metricKey {
		if v, ok := corpus[key]; ok {
			out[name] = v
		}
	}
	return out
}

// loaderSource adapts a data.Loader to train.Source: one epoch of the loader's endless
// iteration at a time, each batch collated into tensors.
type loaderSource[T any] struct {
	loader  *data.Loader[T]
	records []data.Record
	collate func(data.Batch[T], []data.Record) (*models.Batch, error)
}

func (s *loaderSource[T]) StepsPerEpoch() int { return s.loader.BatchesPerEpoch() }

// Shard gives rank its part of every batch of a data-parallel group (train.Sharder).
func (s *loaderSource[T]) Shard(rank, world int) (train.Source, error) {
	l, err := s.loader.Shard(rank, world)
	if err != nil {
		return nil, err
	}
	return &loaderSource[T]{loader: l, records: s.records, collate: s.collate}, nil
}

func (s *loaderSource[T]) Epoch(ctx context.Context, epoch, skip int) (train.Iterator, error) {
	ctx, cancel := context.WithCancel(ctx)
	it := s.loader.Iter(ctx, data.Position{Epoch: epoch, Batch: skip})
	return &loaderIter[T]{src: s, it: it, epoch: epoch, cancel: cancel}, nil
}

type loaderIter[T any] struct {
	src    *loaderSource[T]
	it     *data.Iterator[T]
	epoch  int
	cancel context.CancelFunc
}

func (l *loaderIter[T]) Next() (*models.Batch, error) {
	b, err := l.it.Next()
	if err != nil {
		return nil, err
	}
	if b.Epoch != l.epoch {
		return nil, io.EOF
	}
	return l.src.collate(b, l.src.records)
}

func (l *loaderIter[T]) Close() error {
	l.cancel()
	return l.it.Close()
}
