// Package train is imgcap's model-agnostic trainer. A model supplies Loss(batch); the trainer
// does the rest: AdamW/Adam/SGD with per-parameter weight decay, learning-rate schedules,
// global-norm clipping, gradient accumulation, periodic validation and caption metrics with
// best-checkpoint selection and early stopping, atomic checkpoints that resume exactly,
// clean stops on cancellation, a progress line, a JSONL metrics log and PNG plots.
//
// The loop, in nanoGPT's shape: for each optimizer step, grad_accum micro-batches each run
// forward and backward (loss / grad_accum); then the gradients are clipped, the optimizer
// steps with the scheduled learning rate and the gradients are zeroed. The training data is
// one stream of micro-batches across epochs, so an accumulation window may span an epoch
// boundary, and an epoch-based run lasts ⌊epochs·StepsPerEpoch/grad_accum⌋ steps.
//
// Exact resumption: a checkpoint holds the weights, the optimizer state, and the data
// position (epoch, micro-batch in epoch). libtorch's generator is reseeded from
// (seed, micro-batch index) before every training forward pass, so dropout does not depend on
// what ran before, and data order depends only on (seed, epoch) (see Source). A run stopped at
// step k and resumed therefore ends with the same weights, bit for bit, as an uninterrupted
// run on the same machine and build.
//
// Data-parallel training (Options.Group with more than one process) follows PyTorch's
// DistributedDataParallel: rank 0 broadcasts its initial weights and optimizer state (fresh or
// resumed), each rank reads its own part of every global batch (Sharder), and after the
// micro-batches of a step the gradients are averaged over the ranks in flat buckets, before
// clipping; every rank then takes the same optimizer step, so the weights stay identical (which
// is checked at every checkpoint). train.batch_size is per process: a step sees
// batch_size·grad_accum·world_size rows, and the result equals one process training with
// batch_size and grad_accum·world_size on the same data (dropout included: the micro-batch seeds
// follow the global micro-batch index). Rank 0 alone logs, evaluates and writes checkpoints; the
// other ranks follow its decisions (early stop, best checkpoint) and stop with it when any rank is
// interrupted.
package train

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
	"go.yaml.in/yaml/v3"

	"github.com/imgcap/imgcap/config"
	"github.com/imgcap/imgcap/dist"
	"github.com/imgcap/imgcap/internal/atomicfile"
	"github.com/imgcap/imgcap/models"
	"github.com/imgcap/imgcap/torchx"
)

// ErrInterrupted is returned (wrapped) by Run when its context is cancelled: the trainer
// finished the optimizer step in progress, saved a checkpoint, and stopped. Resume continues.
var ErrInterrupted = errors.New("training interrupted")

// Options configure Run.
type Options struct {
	// Model is trained; its VarStore's trainable variables are the parameters.
	Model models.Trainable
	// Train supplies training micro-batches (Config.BatchSize rows each, as the source makes them).
	Train Source
	// Val, when set, supplies validation batches; their mean loss is the val_loss metric.
	Val Source
	// Config is the training section of the resolved configuration.
	Config config.TrainConfig
	// RunDir is the run directory; "" means Config.OutDir.
	RunDir string
	// ConfigYAML is the resolved configuration, written to RunDir/config.yaml (nil: the
	// training section alone is written).
	ConfigYAML []byte
	// Resume continues from the newest checkpoint in RunDir. The training configuration may
	// differ from the checkpoint's only in max_steps, epochs and out_dir.
	Resume bool
	// Evaluate, when set, computes caption metrics (bleu4, cider, ...) every EvalEvery steps and
	// at the end. It runs on the trainer's OS thread, so it may use torch directly; libtorch's
	// generator is seeded from (seed, step) before it is called.
	Evaluate func(ctx context.Context, step int) (map[string]float64, error)
	// Progress receives the progress line (nil: none). On a terminal it is redrawn in place.
	Progress io.Writer
	// Logger receives events: start, resume, evaluations, checkpoints (nil: discarded).
	Logger *slog.Logger
	// KeepLast is how many recent checkpoints are kept besides the best (0: 2; < 0: all).
	KeepLast int
	// Group, with more than one process, trains data-parallel over it (see the package
	// documentation); Train must then implement Sharder. Every rank passes the same options:
	// Val and Evaluate run on rank 0 only, but the others must know that they exist. nil or a
	// group of one: one process.
	Group *dist.Group

	stepHook func(step int) error // tests: called after each optimizer step
}

// Result describes a finished (or interrupted) run.
type Result struct {
	// RunDir is the run directory.
	RunDir string
	// Step is the number of optimizer steps completed; Epoch the fractional epoch reached.
	Step  int
	Epoch float64
	// Loss is the mean training loss of the last logging interval.
	Loss float64
	// Stopped is max_steps, early_stop or interrupted.
	Stopped string
	// Checkpoint is the newest checkpoint directory, BestCheckpoint the best one ("" if none).
	Checkpoint     string
	BestCheckpoint string
	// BestMetric is the selection metric; BestValue its best value, at BestStep.
	BestMetric string
	BestValue  float64
	BestStep   int
	// Metrics are the results of the last evaluation.
	Metrics map[string]float64
}

// Random streams for stepSeed.
const (
	trainStream = 1
	evalStream  = 2
)

// Run trains o.Model until max_steps (or epochs) optimizer steps are done, early stopping
// triggers, or ctx is cancelled (then it saves a checkpoint and returns an error wrapping
// ErrInterrupted). All torch work runs on the calling goroutine, locked to its OS thread.
func Run(ctx context.Context, o Options) (Result, error) {
	var res Result
	err := torchx.Locked(func() error {
		return torchx.Recover("train", func() error {
			r, err := newRunner(o)
			if err != nil {
				return err
			}
			defer r.close()
			res, err = r.run(ctx)
			return err
		})
	})
	return res, err
}

type runner struct {
	o     Options
	c     config.TrainConfig
	dir   string
	vs    *nn.VarStore
	opt   *Optimizer
	sched Schedule
	st    *State
	total int
	spe   int
	accum int
	log   *slog.Logger
	mlog  *metricsLog
	prog  *progress

	// data-parallel training: group is nil for one process
	group       *dist.Group
	rank, world int

	it         Iterator
	dataCtx    context.Context
	cancelData context.CancelFunc

	dirty        bool   // state changed since the last checkpoint
	savedStopped string // State.Stopped of the last checkpoint
	checkpoint   string

	sessionStart time.Time
	sessionSteps int
	baseElapsed  float64

	// since the last log line
	lossSum   float64
	lossN     int
	trainTime time.Duration
	samples   int64
	lastLoss  float64
	gradNorm  float64
	ema       float64
	emaSteps  int
}

func newRunner(o Options) (*runner, error) {
	if o.Model == nil || o.Train == nil {
		return nil, errors.New("train: Options need a Model and a Train source")
	}
	r := &runner{o: o, c: o.Config, dir: o.RunDir, log: o.Logger}
	if r.dir == "" {
		r.dir = r.c.OutDir
	}
	if r.dir == "" {
		return nil, errors.New("train: no run directory (train.out_dir)")
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.c.BestMetric == "" {
		r.c.BestMetric = "val_loss"
	}
	if r.o.KeepLast == 0 {
		r.o.KeepLast = 2
	}
	r.accum = max(r.c.GradAccum, 1)
	r.world = 1
	if g := o.Group; g != nil && g.WorldSize() > 1 {
		r.group, r.rank, r.world = g, g.Rank(), g.WorldSize()
		sh, ok := o.Train.(Sharder)
		if !ok {
			return nil, errors.New("train: data-parallel training needs a training source that can be sharded (train.Sharder)")
		}
		src, err := sh.Shard(r.rank, r.world)
		if err != nil {
			return nil, fmt.Errorf("train: shard the training data for rank %d of %d: %w", r.rank, r.world, err)
		}
		r.o.Train = src
		if r.rank != 0 {
			// Rank 0 alone logs and reports progress.
			r.log = slog.New(slog.DiscardHandler)
			r.o.Progress = nil
		}
	}
	r.spe = r.o.Train.StepsPerEpoch()
	if r.spe <= 0 {
		return nil, fmt.Errorf("train: the training source has %d batches per epoch", r.spe)
	}
	switch {
	case r.c.MaxSteps > 0:
		r.total = r.c.MaxSteps
	case r.c.Epochs > 0:
		r.total = r.c.Epochs * r.spe / r.accum
		if r.total == 0 {
			return nil, fmt.Errorf("train: %d epoch(s) of %d batches make no optimizer step with grad_accum %d", r.c.Epochs, r.spe, r.accum)
		}
	default:
		return nil, errors.New("train: set train.max_steps or train.epochs")
	}
	var err error
	if r.sched, err = NewSchedule(r.c, r.total); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	r.vs = o.Model.VarStore()
	var noDecay func(string, []int64) bool
	if nd, ok := o.Model.(NoDecayer); ok {
		noDecay = func(name string, _ []int64) bool { return nd.NoDecay(name) }
	}
	if r.opt, err = NewOptimizer(r.vs, r.c, noDecay); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	return r, nil
}

func (r *runner) close() {
	if r.it != nil {
		_ = r.it.Close()
	}
	if r.cancelData != nil {
		r.cancelData()
	}
	if r.mlog != nil {
		_ = r.mlog.close()
	}
	r.opt.Close()
}

// start prepares the run: alone, or as a rank of a data-parallel group (startGroup).
func (r *runner) start() error {
	if r.group != nil {
		return r.startGroup()
	}
	return r.startLocal()
}

// startLocal prepares the run directory: a fresh run, or the state of the newest checkpoint.
func (r *runner) startLocal() error {
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		return err
	}
	if err := removeTemps(r.dir); err != nil {
		return err
	}
	ckpt, st, err := LatestCheckpoint(r.dir)
	if err != nil {
		return err
	}
	keep := -1
	if !r.o.Resume {
		if ckpt != "" {
			return fmt.Errorf("train: %s already holds checkpoints (newest %s); resume it or choose another out_dir", r.dir, ckpt)
		}
		r.st = &State{Seed: r.c.Seed, StepsPerEpoch: r.spe, BestMetric: r.c.BestMetric,
			ConfigHash: ConfigHash(r.c), Config: r.c}
		if r.world > 1 {
			r.st.WorldSize = r.world
		}
	} else {
		if ckpt == "" {
			return fmt.Errorf("train: nothing to resume: %s has no checkpoint", r.dir)
		}
		if st.ConfigHash != ConfigHash(r.c) {
			return fmt.Errorf("train: cannot resume %s: the training config changed (%v); only max_steps and epochs may change",
				ckpt, configDiff(st.Config, r.c))
		}
		if was := max(st.WorldSize, 1); was != r.world {
			return fmt.Errorf("train: cannot resume %s: the run was trained by %d process(es), not %d; resume it with as many (imgcap train --nproc)",
				ckpt, was, r.world)
		}
		if st.StepsPerEpoch != r.spe {
			return fmt.Errorf("train: cannot resume %s: the training data has %d batches per epoch, the run had %d", ckpt, r.spe, st.StepsPerEpoch)
		}
		if err := LoadWeights(r.vs, ckpt); err != nil {
			return fmt.Errorf("train: resume: %w", err)
		}
		if err := r.opt.loadState(filepath.Join(ckpt, OptimizerFile), st.ParamSteps); err != nil {
			return fmt.Errorf("train: resume: %w", err)
		}
		st.Config, st.ConfigHash = r.c, ConfigHash(r.c)
		r.st, r.checkpoint, r.savedStopped, keep = st, ckpt, st.Stopped, st.Step
		r.log.Info("resuming", "checkpoint", ckpt, "step", st.Step, "epoch", st.Epoch, "batch", st.Batch)
	}
	yml := r.o.ConfigYAML
	if yml == nil {
		if yml, err = yaml.Marshal(map[string]any{"train": r.c}); err != nil {
			return err
		}
	}
	if err := atomicfile.WriteFile(filepath.Join(r.dir, ConfigFile), yml); err != nil {
		return err
	}
	r.mlog, err = openMetrics(r.dir, keep)
	return err
}

func (r *runner) run(ctx context.Context) (Result, error) {
	if err := r.start(); err != nil {
		return Result{}, err
	}
	if r.st.Stopped == "early_stop" {
		r.log.Info("the run already stopped early", "step", r.st.Step)
		return r.result(), nil
	}
	r.st.Stopped = ""
	r.dataCtx, r.cancelData = context.WithCancel(context.WithoutCancel(ctx))
	r.baseElapsed = r.st.Elapsed
	r.sessionStart = time.Now()
	r.prog = newProgress(r.o.Progress, r.total, max(r.c.LogEvery, 1))
	defer r.prog.done()
	r.log.Info("training", "steps", r.total, "from_step", r.st.Step, "batches_per_epoch", r.spe, "processes", r.world,
		"grad_accum", r.accum, "optimizer", r.opt.Summary(), "schedule", r.sched.Kind, "run_dir", r.dir)
	if err := r.opt.ZeroGrad(); err != nil {
		return Result{}, err
	}

	// An evaluation that an interruption cut short runs again first.
	if r.evalDue() {
		improved, stop, err := r.evaluateAll(ctx)
		if err != nil {
			return r.stopOnError(ctx, err)
		}
		if improved || stop {
			if err := r.save(improved); err != nil {
				return Result{}, err
			}
		}
		if stop {
			return r.finish("early_stop")
		}
	}
	for r.st.Step < r.total {
		// A group stops together: an interruption of any rank is voted in the step's gradient
		// exchange, and all ranks stop after that step.
		if r.group == nil && ctx.Err() != nil {
			return r.interrupt()
		}
		interrupted, err := r.step(ctx)
		if err != nil {
			return Result{}, err
		}
		if r.o.stepHook != nil {
			if err := r.o.stepHook(r.st.Step); err != nil {
				return Result{}, err
			}
		}
		if interrupted {
			return r.interrupt()
		}
		improved, stop := false, false
		if r.evalDue() {
			var err error
			if improved, stop, err = r.evaluateAll(ctx); err != nil {
				return r.stopOnError(ctx, err)
			}
		}
		if improved || stop || (r.c.SaveEvery > 0 && r.st.Step%r.c.SaveEvery == 0) {
			if err := r.save(improved); err != nil {
				return Result{}, err
			}
		}
		if stop {
			return r.finish("early_stop")
		}
	}
	if (r.o.Val != nil || r.o.Evaluate != nil) && r.st.LastEvalStep != r.st.Step {
		improved, _, err := r.evaluateAll(ctx)
		if err != nil {
			return r.stopOnError(ctx, err)
		}
		if improved {
			if err := r.save(true); err != nil {
				return Result{}, err
			}
		}
	}
	return r.finish("max_steps")
}

// stopOnError handles an evaluation failure: an interruption (here, or of rank 0's evaluation)
// saves and stops, anything else is returned.
func (r *runner) stopOnError(ctx context.Context, err error) (Result, error) {
	if ctx.Err() != nil || errors.Is(err, errRank0Interrupted) {
		return r.interrupt()
	}
	return Result{}, err
}

func (r *runner) interrupt() (Result, error) {
	r.prog.message("interrupted at step %d/%d: saving a checkpoint", r.st.Step, r.total)
	r.st.Stopped = "interrupted"
	if r.dirty || r.checkpoint == "" {
		if err := r.save(false); err != nil {
			return Result{}, fmt.Errorf("interrupted at step %d, and saving failed: %w", r.st.Step, err)
		}
	}
	if err := r.mlog.plot(r.dir); err != nil {
		r.log.Warn("plots", "err", err)
	}
	return r.result(), fmt.Errorf("%w at step %d (checkpoint %s)", ErrInterrupted, r.st.Step, r.checkpoint)
}

func (r *runner) finish(reason string) (Result, error) {
	r.st.Stopped = reason
	if r.dirty || r.checkpoint == "" || r.savedStopped != reason {
		if err := r.save(false); err != nil {
			return Result{}, err
		}
	}
	if err := r.mlog.plot(r.dir); err != nil {
		return Result{}, err
	}
	r.prog.done()
	r.log.Info("training done", "reason", reason, "step", r.st.Step, "checkpoint", r.checkpoint)
	return r.result(), nil
}

func (r *runner) result() Result {
	res := Result{RunDir: r.dir, Step: r.st.Step, Epoch: r.epochFloat(), Loss: r.lastLoss,
		Stopped: r.st.Stopped, Checkpoint: r.checkpoint, BestMetric: r.st.BestMetric,
		BestStep: r.st.BestStep, Metrics: r.st.LastEval, BestValue: math.NaN()}
	if r.st.BestValue != nil {
		res.BestValue = *r.st.BestValue
		if s := linkedStep(r.dir, BestLink); s >= 0 {
			res.BestCheckpoint = CheckpointDir(r.dir, s)
		}
	}
	return res
}

func (r *runner) epochFloat() float64 { return float64(r.st.MicroStep) / float64(r.spe) }

func (r *runner) save(isBest bool) error {
	r.st.Elapsed = r.elapsed().Seconds()
	if r.group != nil {
		// Every rank comes here at the same points: check that the replicas still agree, and
		// let rank 0 alone write.
		if err := r.checkReplicas(); err != nil {
			return fmt.Errorf("checkpoint at step %d: %w", r.st.Step, err)
		}
		if r.rank != 0 {
			r.checkpoint, r.dirty, r.savedStopped = CheckpointDir(r.dir, r.st.Step), false, r.st.Stopped
			return nil
		}
	}
	dir, err := saveCheckpoint(r.dir, r.vs, r.opt, r.st, isBest, r.o.KeepLast)
	if err != nil {
		return fmt.Errorf("checkpoint at step %d: %w", r.st.Step, err)
	}
	r.checkpoint, r.dirty, r.savedStopped = dir, false, r.st.Stopped
	r.log.Info("checkpoint", "dir", dir, "best", isBest)
	return nil
}

func (r *runner) elapsed() time.Duration {
	return time.Duration(r.baseElapsed*float64(time.Second)) + time.Since(r.sessionStart)
}

// step runs one optimizer step: grad_accum micro-batches, (in a group) the gradient average,
// clipping, update, zeroing. In a group it reports whether any rank was interrupted (ctx).
func (r *runner) step(ctx context.Context) (interrupted bool, err error) {
	start := time.Now()
	var loss float64
	var rows int64
	for i := 0; i < r.accum; i++ {
		b, err := r.nextBatch()
		if err != nil {
			return false, err
		}
		l, n, err := r.micro(b)
		if err != nil {
			return false, err
		}
		loss += l / float64(r.accum)
		rows += n * int64(r.world)
	}
	if r.group != nil {
		if interrupted, loss, err = r.averageGradients(ctx.Err() != nil, loss); err != nil {
			return false, fmt.Errorf("step %d: %w", r.st.Step+1, err)
		}
	}
	lr := r.sched.At(r.st.Step)
	norm, err := r.opt.ClipGradNorm(r.c.ClipGradNorm)
	if err != nil {
		return false, fmt.Errorf("step %d: %w", r.st.Step+1, err)
	}
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		return false, fmt.Errorf("step %d: the gradient norm is %v; stopping before the weights are spoiled (last checkpoint: %s)",
			r.st.Step+1, norm, r.checkpoint)
	}
	if err := r.opt.Step(lr); err != nil {
		return false, fmt.Errorf("step %d: %w", r.st.Step+1, err)
	}
	if err := r.opt.ZeroGrad(); err != nil {
		return false, fmt.Errorf("step %d: %w", r.st.Step+1, err)
	}
	r.st.Step++
	r.dirty = true
	r.sessionSteps++

	r.lossSum += loss
	r.lossN++
	r.samples += rows
	r.trainTime += time.Since(start)
	r.gradNorm = norm
	r.emaSteps++
	if r.emaSteps == 1 {
		r.ema = loss
	} else {
		r.ema = 0.9*r.ema + 0.1*loss
	}
	logEvery := max(r.c.LogEvery, 1)
	rate := float64(rows) / time.Since(start).Seconds()
	if r.st.Step%logEvery == 0 || r.st.Step == r.total {
		rate = float64(r.samples) / r.trainTime.Seconds()
		r.lastLoss = r.lossSum / float64(r.lossN)
		rec := Record{"step": r.st.Step, "epoch": r.epochFloat(), "lr": lr, "loss": r.lastLoss,
			"grad_norm": norm, "samples_per_s": rate, "elapsed_s": r.elapsed().Seconds()}
		if err := r.mlog.write(rec); err != nil {
			return false, err
		}
		r.log.Debug("step", "step", r.st.Step, "loss", r.lastLoss, "lr", lr, "grad_norm", norm)
		r.lossSum, r.lossN, r.samples, r.trainTime = 0, 0, 0, 0
	}
	var eta time.Duration
	if r.sessionSteps > 0 {
		per := time.Since(r.sessionStart) / time.Duration(r.sessionSteps)
		eta = per * time.Duration(r.total-r.st.Step)
	}
	r.prog.update(progressInfo{step: r.st.Step, epoch: r.epochFloat(), loss: r.ema, lr: lr, rate: rate,
		eta: eta, elapsed: r.elapsed()}, false)
	return interrupted, nil
}

// nextBatch returns the next training micro-batch, moving to the next epoch after
// StepsPerEpoch batches.
func (r *runner) nextBatch() (*models.Batch, error) {
	if r.st.Batch >= r.spe {
		if r.it != nil {
			if err := r.it.Close(); err != nil {
				return nil, fmt.Errorf("training data, epoch %d: %w", r.st.Epoch, err)
			}
			r.it = nil
		}
		r.st.Epoch++
		r.st.Batch = 0
	}
	if r.it == nil {
		it, err := r.o.Train.Epoch(r.dataCtx, r.st.Epoch, r.st.Batch)
		if err != nil {
			return nil, fmt.Errorf("training data, epoch %d from batch %d: %w", r.st.Epoch, r.st.Batch, err)
		}
		r.it = it
	}
	b, err := r.it.Next()
	if err == io.EOF {
		return nil, fmt.Errorf("training data, epoch %d ended after %d batches, but the source promised %d per epoch",
			r.st.Epoch, r.st.Batch, r.spe)
	}
	if err != nil {
		return nil, fmt.Errorf("training data, epoch %d batch %d: %w", r.st.Epoch, r.st.Batch, err)
	}
	if b == nil {
		return nil, fmt.Errorf("training data, epoch %d batch %d: nil batch", r.st.Epoch, r.st.Batch)
	}
	r.st.Batch++
	return b, nil
}

// micro runs forward and backward on one micro-batch and drops it. It returns the batch's
// (unscaled) loss and row count.
func (r *runner) micro(b *models.Batch) (float64, int64, error) {
	defer b.Drop()
	rows := batchRows(b)
	// In a group, micro-batch m of rank r is global micro-batch m·world+r: its dropout is that of
	// the single-process run with grad_accum·world micro-batches per step.
	torchx.Seed(stepSeed(r.st.Seed, trainStream, r.st.MicroStep*int64(r.world)+int64(r.rank)))
	var loss float64
	err := torchx.WithGrad(func() error {
		return torchx.WithScope(func(*torchx.Scope) error {
			l, err := r.o.Model.Loss(b, true)
			if err != nil {
				return err
			}
			if loss, err = scalarValue(l); err != nil {
				return err
			}
			if math.IsNaN(loss) || math.IsInf(loss, 0) {
				return fmt.Errorf("the loss is %v", loss)
			}
			if r.accum > 1 {
				if l, err = l.DivScalar(ts.FloatScalar(float64(r.accum)), false); err != nil {
					return torchx.Err("scale loss", err)
				}
			}
			return torchx.Err("backward", l.Backward())
		})
	})
	if err != nil {
		return 0, 0, fmt.Errorf("step %d, epoch %d batch %d: %w (last checkpoint: %s)",
			r.st.Step+1, r.st.Epoch, r.st.Batch-1, err, r.checkpoint)
	}
	r.st.MicroStep++
	r.st.Samples += rows * int64(r.world)
	return loss, rows, nil
}

// scalarValue reads a one-element tensor.
func scalarValue(t *ts.Tensor) (float64, error) {
	shape, err := t.Size()
	if err != nil {
		return 0, torchx.Err("loss", err)
	}
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	if n != 1 {
		return 0, fmt.Errorf("the loss has shape %v; want a scalar", shape)
	}
	v, err := t.Float64Value(make([]int64, len(shape)))
	return v, torchx.Err("loss value", err)
}

// batchRows is the number of rows (images) in a batch.
func batchRows(b *models.Batch) int64 {
	for _, t := range []*ts.Tensor{b.Pixels, b.Features, b.InputIDs} {
		if t != nil {
			if shape, err := t.Size(); err == nil && len(shape) > 0 {
				return shape[0]
			}
		}
	}
	return int64(len(b.ImageIDs))
}

func (r *runner) evalDue() bool {
	return (r.o.Val != nil || r.o.Evaluate != nil) && r.c.EvalEvery > 0 && r.st.Step > 0 &&
		r.st.Step%r.c.EvalEvery == 0 && r.st.LastEvalStep != r.st.Step
}

// evaluate computes val_loss and the Evaluate metrics, logs them, updates the best value and
// the early-stopping count. It reports whether the best improved and whether to stop.
func (r *runner) evaluate(ctx context.Context) (improved, stop bool, err error) {
	start := time.Now()
	metrics := map[string]float64{}
	if r.o.Val != nil {
		vl, err := r.valLoss(ctx)
		if err != nil {
			return false, false, fmt.Errorf("validation at step %d: %w", r.st.Step, err)
		}
		metrics["val_loss"] = vl
	}
	if r.o.Evaluate != nil {
		torchx.Seed(stepSeed(r.st.Seed, evalStream, int64(r.st.Step)))
		m, err := r.o.Evaluate(ctx, r.st.Step)
		if err != nil {
			return false, false, fmt.Errorf("evaluation at step %d: %w", r.st.Step, err)
		}
		for k, v := range m {
			metrics[k] = v
		}
	}
	v, ok := metrics[r.st.BestMetric]
	if !ok {
		return false, false, fmt.Errorf("evaluation at step %d: best_metric %q was not computed (have %v)", r.st.Step, r.st.BestMetric, keys(metrics))
	}
	r.st.LastEvalStep, r.st.LastEval = r.st.Step, metrics
	r.dirty = true
	lower := r.st.BestMetric == "val_loss" || r.st.BestMetric == "loss"
	switch {
	case math.IsNaN(v):
	case r.st.BestValue == nil, lower && v < *r.st.BestValue, !lower && v > *r.st.BestValue:
		improved = true
	}
	if improved {
		r.st.BestValue, r.st.BestStep, r.st.BadEvals = &v, r.st.Step, 0
	} else {
		r.st.BadEvals++
	}
	stop = r.c.EarlyStopPatience > 0 && r.st.BadEvals >= r.c.EarlyStopPatience
	rec := Record{"eval": true, "step": r.st.Step, "epoch": r.epochFloat(), "elapsed_s": r.elapsed().Seconds()}
	for k, v := range metrics {
		rec[k] = v
	}
	if err := r.mlog.write(rec); err != nil {
		return false, false, err
	}
	if err := r.mlog.plot(r.dir); err != nil {
		r.log.Warn("plots", "err", err)
	}
	attrs := []any{"step", r.st.Step, "took", time.Since(start).Round(time.Millisecond), "best", *r.st.BestValue,
		"best_step", r.st.BestStep}
	for _, k := range keys(metrics) {
		attrs = append(attrs, k, metrics[k])
	}
	r.log.Info("evaluation", attrs...)
	r.prog.message("eval step %d: %s=%.4f (best %.4f at step %d)%s", r.st.Step, r.st.BestMetric, v,
		*r.st.BestValue, r.st.BestStep, map[bool]string{true: "; early stop", false: ""}[stop])
	return improved, stop, nil
}

// valLoss is the mean validation loss over rows (batch losses weighted by batch rows).
func (r *runner) valLoss(ctx context.Context) (float64, error) {
	it, err := r.o.Val.Epoch(ctx, 0, 0)
	if err != nil {
		return 0, err
	}
	defer it.Close()
	var sum float64
	var rows int64
	err = torchx.NoGrad(func() error {
		for {
			if err := ctx.Err(); err != nil {
				return err
			}
			b, err := it.Next()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			n := batchRows(b)
			err = torchx.WithScope(func(*torchx.Scope) error {
				l, err := r.o.Model.Loss(b, false)
				if err != nil {
					return err
				}
				v, err := scalarValue(l)
				sum += v * float64(n)
				return err
			})
			b.Drop()
			if err != nil {
				return err
			}
			rows += n
		}
	})
	if err != nil {
		return 0, err
	}
	if rows == 0 {
		return 0, errors.New("the validation source yielded no rows")
	}
	return sum / float64(rows), nil
}

func keys(m map[string]float64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
