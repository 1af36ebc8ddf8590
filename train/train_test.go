package train

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image/png"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/imgcap/imgcap/config"
)

// baseConfig is a small AdamW run with cosine decay, warmup, clipping and weight decay.
func baseConfig() config.TrainConfig {
	c := config.Default().Train
	c.Seed = 3
	c.MaxSteps = 12
	c.Epochs = 0
	c.BatchSize = 4
	c.Optimizer = "adamw"
	c.LR = 0.02
	c.WeightDecay = 0.1
	c.Schedule = "cosine"
	c.WarmupSteps = 3
	c.MinLR = 0.001
	c.ClipGradNorm = 0.5
	c.LogEvery = 1
	return c
}

func readRecords(t *testing.T, dir string) []Record {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []Record
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("metrics.jsonl line %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

func TestLossDecreases(t *testing.T) {
	c := baseConfig()
	c.MaxSteps = 80
	c.ClipGradNorm = 1
	c.Schedule = "constant"
	m := newToy(t, 1, 8, 32, 4, 0)
	data := newToyData(64, 8, 4, 8, 1)
	var prog bytes.Buffer
	res, err := Run(context.Background(), Options{Model: m, Train: data, Config: c, RunDir: t.TempDir(), Progress: &prog})
	if err != nil {
		t.Fatal(err)
	}
	recs := readRecords(t, res.RunDir)
	first, last := recs[0]["loss"].(float64), recs[len(recs)-1]["loss"].(float64)
	t.Logf("loss %.4f -> %.4f", first, last)
	if !(last < 0.3*first) {
		t.Errorf("loss went from %.4f to %.4f; want a drop below 30%%", first, last)
	}
	if res.Stopped != "max_steps" || res.Step != 80 {
		t.Errorf("result %+v; want 80 steps, stopped at max_steps", res)
	}
	if !strings.Contains(prog.String(), "step 80/80") || !strings.Contains(prog.String(), "ETA") {
		t.Errorf("progress output lacks the final step line:\n%s", prog.String())
	}
}

var errCrash = errors.New("simulated crash")

// TestResumeIsExact trains K steps without a break, then again with a stop at step k and a
// resume to K, and requires every tensor of the final models to be bitwise equal.
func TestResumeIsExact(t *testing.T) {
	const K = 12
	cases := []struct {
		name     string
		accum    int
		dropout  float64
		optim    string
		schedule string
		stopAt   int
		how      string // cancel, crash (no checkpoint at the stop), max_steps
	}{
		{"cancel", 1, 0.3, "adamw", "cosine", 5, "cancel"},
		{"cancel accum2 across epochs", 2, 0.3, "adamw", "cosine", 7, "cancel"},
		{"crash with leftover temp dir", 2, 0.3, "adamw", "linear", 8, "crash"},
		{"max_steps then more", 1, 0.3, "sgd", "constant", 4, "max_steps"},
		{"adam step schedule", 2, 0, "adam", "step", 3, "cancel"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := baseConfig()
			c.GradAccum = tc.accum
			c.Optimizer = tc.optim
			c.Schedule = tc.schedule
			c.StepEvery = 4
			c.StepGamma = 0.5
			c.SaveEvery = 3
			if tc.optim == "sgd" {
				c.LR = 0.05
			}
			newData := func() *toyData { return newToyData(20, 8, 4, 4, 2) } // 5 batches per epoch

			// Uninterrupted.
			ref := newToy(t, 1, 8, 16, 4, tc.dropout)
			refRes, err := Run(context.Background(), Options{Model: ref, Train: newData(), Config: c, RunDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			want := snapshot(t, ref.vs)

			// Stopped at stopAt.
			dir := t.TempDir()
			first := newToy(t, 1, 8, 16, 4, tc.dropout)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			opts := Options{Model: first, Train: newData(), Config: c, RunDir: dir}
			switch tc.how {
			case "cancel":
				opts.stepHook = func(step int) error {
					if step == tc.stopAt {
						cancel()
					}
					return nil
				}
			case "crash":
				opts.stepHook = func(step int) error {
					if step == tc.stopAt {
						return errCrash
					}
					return nil
				}
			case "max_steps":
				opts.Config.MaxSteps = tc.stopAt
			}
			_, err = Run(ctx, opts)
			switch tc.how {
			case "cancel":
				if !errors.Is(err, ErrInterrupted) {
					t.Fatalf("stopped run: err %v, want ErrInterrupted", err)
				}
			case "crash":
				if !errors.Is(err, errCrash) {
					t.Fatalf("crashed run: err %v", err)
				}
				// A checkpoint write that died halfway.
				tmp := filepath.Join(dir, CheckpointsDir, ".tmp-step-000009-123")
				if err := os.MkdirAll(tmp, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(tmp, ModelFile), []byte("garbage"), 0o644); err != nil {
					t.Fatal(err)
				}
			default:
				if err != nil {
					t.Fatal(err)
				}
			}

			// Resumed into a model initialised differently, so that only loaded weights can match.
			second := newToy(t, 42, 8, 16, 4, tc.dropout)
			data := newToyData(20, 8, 4, 4, 2)
			res, err := Run(context.Background(), Options{Model: second, Train: data, Config: c, RunDir: dir, Resume: true})
			if err != nil {
				t.Fatalf("resume: %v", err)
			}
			if res.Step != K {
				t.Fatalf("resumed run ended at step %d, want %d", res.Step, K)
			}
			wantSkip := tc.stopAt * tc.accum % 5
			if tc.how == "crash" {
				wantSkip = 6 * tc.accum % 5 // the last checkpoint before the crash
			}
			if len(data.opened) == 0 || data.opened[0] != wantSkip {
				t.Errorf("resume opened the data with skips %v; want the first to be %d", data.opened, wantSkip)
			}
			if diff := sameTensors(t, want, snapshot(t, second.vs)); len(diff) > 0 {
				t.Errorf("after resume these tensors differ from the uninterrupted run: %v", diff)
			}
			if _, err := os.Stat(filepath.Join(dir, CheckpointsDir, ".tmp-step-000009-123")); !os.IsNotExist(err) {
				t.Errorf("leftover temporary checkpoint not removed: %v", err)
			}
			// The logs agree too: same losses at every step.
			a, b := readRecords(t, refRes.RunDir), readRecords(t, dir)
			if len(a) != len(b) {
				t.Fatalf("metrics.jsonl: %d lines uninterrupted, %d resumed", len(a), len(b))
			}
			for i := range a {
				if a[i]["step"] != b[i]["step"] || a[i]["loss"] != b[i]["loss"] || a[i]["lr"] != b[i]["lr"] {
					t.Errorf("metrics line %d: %v vs %v", i, a[i], b[i])
				}
			}
		})
	}
}

func TestResumeRefusesChangedConfig(t *testing.T) {
	c := baseConfig()
	c.MaxSteps = 2
	dir := t.TempDir()
	data := newToyData(16, 8, 4, 4, 2)
	if _, err := Run(context.Background(), Options{Model: newToy(t, 1, 8, 16, 4, 0), Train: data, Config: c, RunDir: dir}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		change  func(*config.TrainConfig)
		resume  bool
		wantErr string
	}{
		{"lr changed", func(c *config.TrainConfig) { c.LR = 0.5 }, true, "lr 0.02 -> 0.5"},
		{"seed changed", func(c *config.TrainConfig) { c.Seed = 9 }, true, "seed 3 -> 9"},
		{"fresh run over checkpoints", func(c *config.TrainConfig) {}, false, "already holds checkpoints"},
		{"max_steps may change", func(c *config.TrainConfig) { c.MaxSteps = 4 }, true, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cc := c
			tc.change(&cc)
			_, err := Run(context.Background(), Options{Model: newToy(t, 1, 8, 16, 4, 0), Train: data, Config: cc, RunDir: dir, Resume: tc.resume})
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v; want one mentioning %q", err, tc.wantErr)
			}
		})
	}
	if _, err := Run(context.Background(), Options{Model: newToy(t, 1, 8, 16, 4, 0), Train: data, Config: c,
		RunDir: t.TempDir(), Resume: true}); err == nil || !strings.Contains(err.Error(), "nothing to resume") {
		t.Errorf("resume of an empty directory: %v", err)
	}
}

func TestInterruptSavesCheckpoint(t *testing.T) {
	c := baseConfig()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	opts := Options{Model: newToy(t, 1, 8, 16, 4, 0), Train: newToyData(16, 8, 4, 4, 2), Config: c, RunDir: dir,
		stepHook: func(step int) error {
			if step == 4 {
				cancel()
			}
			return nil
		}}
	res, err := Run(ctx, opts)
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("err = %v; want ErrInterrupted", err)
	}
	if res.Step != 4 || res.Stopped != "interrupted" {
		t.Errorf("result %+v; want step 4, interrupted", res)
	}
	target, err := os.Readlink(filepath.Join(dir, LastLink))
	if err != nil || target != filepath.Join(CheckpointsDir, "step-000004") {
		t.Errorf("last -> %q (%v); want checkpoints/step-000004", target, err)
	}
	st, err := readState(filepath.Join(dir, target))
	if err != nil {
		t.Fatal(err)
	}
	// 4 steps of 4-row batches from 4 batches per epoch: the data position is epoch 0, batch 4.
	if st.Step != 4 || st.MicroStep != 4 || st.Epoch != 0 || st.Batch != 4 || st.Samples != 16 {
		t.Errorf("state %+v; want step 4, micro 4, epoch 0 batch 4, 16 samples", st)
	}
	for _, f := range []string{ModelFile, OptimizerFile, StateFile} {
		if _, err := os.Stat(filepath.Join(dir, target, f)); err != nil {
			t.Error(err)
		}
	}
}

// scripted is an Evaluate hook that returns fixed metrics per step.
func scripted(values map[int]float64) func(context.Context, int) (map[string]float64, error) {
	return func(_ context.Context, step int) (map[string]float64, error) {
		return map[string]float64{"bleu4": values[step], "cider": 2 * values[step]}, nil
	}
}

func TestBestCheckpointAndEarlyStopping(t *testing.T) {
	cases := []struct {
		name      string
		metric    string
		scores    map[int]float64
		patience  int
		wantStop  string
		wantStep  int
		wantBest  int
		wantKept  []int
		withVal   bool
		keepLast  int
		maxSteps  int
		evalEvery int
	}{
		{"bleu4 peaks then stalls", "bleu4", map[int]float64{2: 0.1, 4: 0.3, 6: 0.2, 8: 0.25, 10: 0.5}, 2,
			"early_stop", 8, 4, []int{4, 8}, false, 1, 12, 2},
		{"no patience runs to the end", "bleu4", map[int]float64{2: 0.1, 4: 0.3, 6: 0.2, 8: 0.25, 10: 0.5, 12: 0.4}, 0,
			"max_steps", 12, 10, []int{10, 12}, false, 1, 12, 2},
		{"val_loss lower is better", "val_loss", nil, 0, "max_steps", 9, -1, nil, true, 2, 9, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := baseConfig()
			c.MaxSteps = tc.maxSteps
			c.EvalEvery = tc.evalEvery
			c.BestMetric = tc.metric
			c.EarlyStopPatience = tc.patience
			c.Schedule = "constant"
			dir := t.TempDir()
			opts := Options{Model: newToy(t, 1, 8, 16, 4, 0), Train: newToyData(16, 8, 4, 4, 2), Config: c,
				RunDir: dir, KeepLast: tc.keepLast}
			if tc.scores != nil {
				opts.Evaluate = scripted(tc.scores)
			}
			if tc.withVal {
				val := newToyData(8, 8, 4, 4, 5)
				val.shuffle = false
				opts.Val = val
			}
			res, err := Run(context.Background(), opts)
			if err != nil {
				t.Fatal(err)
			}
			if res.Stopped != tc.wantStop || res.Step != tc.wantStep {
				t.Errorf("stopped %q at step %d; want %q at %d", res.Stopped, res.Step, tc.wantStop, tc.wantStep)
			}
			recs := readRecords(t, dir)
			var evals []Record
			for _, r := range recs {
				if r["eval"] == true {
					evals = append(evals, r)
				}
			}
			if tc.withVal {
				// The best is the evaluation with the lowest val_loss; checkpoints are saved at
				// each improvement and at the end, and the newest keepLast plus the best survive.
				best, bestStep := 1e300, -1
				saved := map[int]bool{tc.maxSteps: true}
				for _, r := range evals {
					if v := r["val_loss"].(float64); v < best {
						best, bestStep = v, int(r["step"].(float64))
						saved[bestStep] = true
					}
				}
				var all []int
				for s := range saved {
					all = append(all, s)
				}
				sort.Ints(all)
				kept := map[int]bool{bestStep: true}
				for _, s := range all[max(0, len(all)-tc.keepLast):] {
					kept[s] = true
				}
				tc.wantBest, tc.wantKept = bestStep, nil
				for _, s := range all {
					if kept[s] {
						tc.wantKept = append(tc.wantKept, s)
					}
				}
				if len(evals) != 3 {
					t.Errorf("%d evaluation lines; want 3 (steps 3, 6, 9)", len(evals))
				}
			}
			if res.BestStep != tc.wantBest {
				t.Errorf("best step %d; want %d", res.BestStep, tc.wantBest)
			}
			if s := linkedStep(dir, BestLink); s != tc.wantBest {
				t.Errorf("best -> step %d; want %d", s, tc.wantBest)
			}
			if s := linkedStep(dir, LastLink); s != tc.wantStep {
				t.Errorf("last -> step %d; want %d", s, tc.wantStep)
			}
			steps, _ := checkpointSteps(dir)
			if !sameInts(steps, tc.wantKept) {
				t.Errorf("kept checkpoints %v; want %v", steps, tc.wantKept)
			}
			if err := LoadWeights(newToy(t, 9, 8, 16, 4, 0).vs, dir); err != nil {
				t.Errorf("LoadWeights(run dir): %v", err)
			}
			plots := []string{LossPlot}
			if tc.scores != nil {
				plots = append(plots, MetricsPlot)
			}
			for _, name := range plots {
				f, err := os.Open(filepath.Join(dir, name))
				if err != nil {
					t.Fatal(err)
				}
				img, err := png.Decode(f)
				f.Close()
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if b := img.Bounds(); b.Dx() < 300 || b.Dy() < 200 {
					t.Errorf("%s is only %v", name, b)
				}
			}
		})
	}
}

func sameInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestMetricsLogContents(t *testing.T) {
	c := baseConfig()
	c.MaxSteps = 6
	c.LogEvery = 2
	c.EvalEvery = 3
	dir := t.TempDir()
	val := newToyData(8, 8, 4, 4, 5)
	yml := []byte("train:\n  lr: 0.02\n")
	_, err := Run(context.Background(), Options{Model: newToy(t, 1, 8, 16, 4, 0), Train: newToyData(16, 8, 4, 4, 2),
		Val: val, Config: c, RunDir: dir, ConfigYAML: yml,
		Evaluate: scripted(map[int]float64{3: 0.2, 6: 0.3})})
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil || !bytes.Equal(got, yml) {
		t.Errorf("config.yaml = %q, %v; want the resolved config", got, err)
	}
	recs := readRecords(t, dir)
	var kinds []string
	for _, r := range recs {
		step := int(r["step"].(float64))
		if r["eval"] == true {
			kinds = append(kinds, "eval")
			for _, k := range []string{"val_loss", "bleu4", "cider", "epoch", "elapsed_s"} {
				if _, ok := r[k].(float64); !ok {
					t.Errorf("eval line at step %d lacks %s: %v", step, k, r)
				}
			}
			continue
		}
		kinds = append(kinds, "train")
		for _, k := range []string{"epoch", "lr", "loss", "grad_norm", "samples_per_s", "elapsed_s"} {
			if _, ok := r[k].(float64); !ok {
				t.Errorf("train line at step %d lacks %s: %v", step, k, r)
			}
		}
		if e := r["epoch"].(float64); e != float64(step)/4 {
			t.Errorf("step %d: epoch %v; want %v", step, e, float64(step)/4)
		}
	}
	want := "train eval train train eval"
	if strings.Join(kinds, " ") != want {
		t.Errorf("line kinds %v; want %s", kinds, want)
	}
}
