package train

import (
	"bytes"
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/models"
)

// nanAfter is a toy model whose loss becomes NaN from a given call on.
type nanAfter struct {
	*toyModel
	calls, from int
}

func (m *nanAfter) Loss(b *models.Batch, train bool) (*ts.Tensor, error) {
	m.calls++
	l, err := m.toyModel.Loss(b, train)
	if err != nil || m.calls < m.from {
		return l, err
	}
	return l.MulScalar(ts.FloatScalar(math.NaN()), true)
}

// lyingData promises more batches per epoch than it yields.
type lyingData struct{ *toyData }

func (d lyingData) StepsPerEpoch() int { return d.toyData.StepsPerEpoch() + 1 }

func TestRunErrors(t *testing.T) {
	cases := []struct {
		name  string
		model func() models.Trainable
		data  func() Source
		edit  func(*Options)
		want  string
	}{
		{"NaN loss", func() models.Trainable { return &nanAfter{toyModel: newToy(t, 1, 8, 16, 4, 0), from: 3} },
			func() Source { return newToyData(16, 8, 4, 4, 2) }, nil, "step 3, epoch 0 batch 2: the loss is NaN"},
		{"short epoch", func() models.Trainable { return newToy(t, 1, 8, 16, 4, 0) },
			func() Source { return lyingData{newToyData(16, 8, 4, 4, 2)} }, nil, "epoch 0 ended after 4 batches, but the source promised 5"},
		{"best metric from Evaluate", func() models.Trainable { return newToy(t, 1, 8, 16, 4, 0) },
			func() Source { return newToyData(16, 8, 4, 4, 2) },
			func(o *Options) { o.Config.EvalEvery, o.Config.BestMetric, o.Evaluate = 2, "cider", scripted(nil) },
			""},
		{"val_loss without a validation source", func() models.Trainable { return newToy(t, 1, 8, 16, 4, 0) },
			func() Source { return newToyData(16, 8, 4, 4, 2) },
			func(o *Options) { o.Config.EvalEvery, o.Evaluate = 2, scripted(nil) }, `best_metric "val_loss" was not computed`},
		{"too few batches for one step", func() models.Trainable { return newToy(t, 1, 8, 16, 4, 0) },
			func() Source { return newToyData(4, 8, 4, 4, 2) },
			func(o *Options) { o.Config.MaxSteps, o.Config.Epochs, o.Config.GradAccum = 0, 1, 2 }, "make no optimizer step"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{Model: tc.model(), Train: tc.data(), Config: baseConfig(), RunDir: t.TempDir()}
			o.Config.MaxSteps = 6
			if tc.edit != nil {
				tc.edit(&o)
			}
			_, err := Run(context.Background(), o)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v; want one containing %q", err, tc.want)
			}
		})
	}
}

// TestInterruptedEvaluationRunsAgain cancels the run inside an evaluation: the checkpoint is
// saved without it, and the resumed run evaluates that step first.
func TestInterruptedEvaluationRunsAgain(t *testing.T) {
	c := baseConfig()
	c.MaxSteps = 6
	c.EvalEvery = 3
	c.BestMetric = "bleu4"
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var evals []int
	eval := func(ctx context.Context, step int) (map[string]float64, error) {
		if step == 3 && len(evals) == 0 {
			evals = append(evals, -step)
			cancel()
			return nil, ctx.Err()
		}
		evals = append(evals, step)
		return map[string]float64{"bleu4": float64(step)}, nil
	}
	_, err := Run(ctx, Options{Model: newToy(t, 1, 8, 16, 4, 0), Train: newToyData(16, 8, 4, 4, 2), Config: c, RunDir: dir, Evaluate: eval})
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("err = %v; want ErrInterrupted", err)
	}
	res, err := Run(context.Background(), Options{Model: newToy(t, 1, 8, 16, 4, 0), Train: newToyData(16, 8, 4, 4, 2), Config: c,
		RunDir: dir, Evaluate: eval, Resume: true})
	if err != nil {
		t.Fatal(err)
	}
	if !sameInts(evals, []int{-3, 3, 6}) {
		t.Errorf("evaluations %v; want the interrupted one (-3), its rerun (3), then 6", evals)
	}
	if res.BestStep != 6 || res.BestValue != 6 {
		t.Errorf("best %v at %d; want 6 at 6", res.BestValue, res.BestStep)
	}
	// A run that stopped early stays stopped when resumed.
	c.MaxSteps, c.EarlyStopPatience = 12, 1
	dir2 := t.TempDir()
	flat := func(context.Context, int) (map[string]float64, error) { return map[string]float64{"bleu4": 1}, nil }
	res, err = Run(context.Background(), Options{Model: newToy(t, 1, 8, 16, 4, 0), Train: newToyData(16, 8, 4, 4, 2), Config: c, RunDir: dir2, Evaluate: flat})
	if err != nil || res.Stopped != "early_stop" || res.Step != 6 {
		t.Fatalf("first run: %+v, %v; want an early stop at step 6", res, err)
	}
	res, err = Run(context.Background(), Options{Model: newToy(t, 1, 8, 16, 4, 0), Train: newToyData(16, 8, 4, 4, 2), Config: c, RunDir: dir2, Evaluate: flat, Resume: true})
	if err != nil || res.Stopped != "early_stop" || res.Step != 6 {
		t.Errorf("resumed: %+v, %v; want it still stopped at step 6", res, err)
	}
}

func TestProgressLine(t *testing.T) {
	info := progressInfo{step: 30, epoch: 1.5, loss: 2.25, lr: 3e-4, rate: 123.4, eta: 95 * time.Second, elapsed: 3700 * time.Second}
	cases := []struct {
		name string
		tty  bool
		step int
		want string // "" = no output
	}{
		{"plain line on a log step", false, 30, "step 30/120  epoch 1.50  loss 2.2500  lr 0.0003  123.4 samples/s  elapsed 1h01m  ETA 1m35s\n"},
		{"plain, between log steps", false, 31, ""},
		{"terminal bar", true, 30, "\r[======>                 ]  25% step 30/120"},
	}
	for _, tc := range cases {
		var buf bytes.Buffer
		p := newProgress(&buf, 120, 10)
		p.tty = tc.tty
		in := info
		in.step = tc.step
		p.update(in, false)
		got := buf.String()
		if tc.want == "" && got != "" || tc.want != "" && !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: wrote %q; want %q", tc.name, got, tc.want)
		}
	}
}
