package dist_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sugarme/gotch"

	"github.com/imgcap/imgcap/config"
	"github.com/imgcap/imgcap/data/synth"
	"github.com/imgcap/imgcap/dist"
	"github.com/imgcap/imgcap/runner"
	"github.com/imgcap/imgcap/torchx"
	"github.com/imgcap/imgcap/train"
	"github.com/imgcap/imgcap/weights"
)

// Environment of the "train" role.
const (
	configEnv = "IMGCAP_DIST_TEST_CONFIG"  // the YAML config file
	resumeEnv = "IMGCAP_DIST_TEST_RESUME"  // "1": resume
	stopEnv   = "IMGCAP_DIST_TEST_STOP_AT" // rank 0 is interrupted after this step's progress line
)

func init() {
	roles["train"] = trainWorker
}

// trainWorker trains the config of configEnv with runner.Train, as one process or as a rank of
// the group the torchrun variables describe, and prints "result step N" (or "interrupted step N").
func trainWorker() error {
	cfg, err := config.Load(config.Options{File: os.Getenv(configEnv)})
	if err != nil {
		return err
	}
	yml, err := config.YAML(cfg)
	if err != nil {
		return err
	}
	env := runner.Env{Device: gotch.CPU}
	dc, isWorker, err := dist.FromEnv()
	if err != nil {
		return err
	}
	if isWorker && dc.WorldSize > 1 {
		dc.Timeout = time.Minute
		g, err := dist.Init(dc)
		if err != nil {
			return err
		}
		defer g.Close()
		env.Dist = g
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if at := os.Getenv(stopEnv); at != "" && dc.Rank == 0 {
		env.Progress = &cancelOn{marker: []byte("step " + at + "/"), cancel: cancel}
	}
	res, err := runner.Train(ctx, cfg, yml, os.Getenv(resumeEnv) == "1", env)
	if errors.Is(err, train.ErrInterrupted) {
		fmt.Printf("interrupted step %d\n", res.Step)
		return nil
	}
	if err != nil {
		return err
	}
	fmt.Printf("result step %d\n", res.Step)
	return nil
}

// cancelOn is a progress writer that cancels a context once marker appears.
type cancelOn struct {
	marker []byte
	cancel context.CancelFunc
	seen   []byte
}

func (c *cancelOn) Write(p []byte) (int, error) {
	c.seen = append(c.seen, p...)
	if bytes.Contains(c.seen, c.marker) {
		c.cancel()
	}
	return len(p), nil
}

var synthOnce struct {
	sync.Once
	dir string
	err error
}

// synthData writes (once per test binary) a small synthetic Flickr8k-layout set.
func synthData(t testing.TB) string {
	t.Helper()
	synthOnce.Do(func() {
		synthOnce.dir, synthOnce.err = os.MkdirTemp("", "imgcap-dist-synth-")
		if synthOnce.err == nil {
			_, synthOnce.err = synth.Generate(synth.Options{Format: "flickr8k", N: 60, OutDir: synthOnce.dir, Seed: 7, Size: 32})
		}
	})
	if synthOnce.err != nil {
		t.Fatal(synthOnce.err)
	}
	return synthOnce.dir
}

// tinyConfig is a tiny VGG16+LSTM config on the synthetic set (as runner's tests train), with
// batch norm, dropout and augmentation on: all must match between the single-process and the
// data-parallel runs.
func tinyConfig(t testing.TB, outDir string, steps int) config.Config {
	t.Helper()
	ds := synthData(t)
	c := config.Default()
	c.Model.Arch = "vgg16_lstm"
	c.Model.ImageSize = 32
	c.Model.VGGWidth = 0.0625
	c.Model.VGGBatchNorm = true
	c.Model.EmbedDim, c.Model.HiddenDim = 32, 64
	c.Model.Dropout = 0.1
	c.Model.MaxLength = 16
	c.Data.Format = "flickr-token"
	c.Data.Annotations = filepath.Join(ds, "Flickr8k.token.txt")
	c.Data.Images = filepath.Join(ds, "Images")
	c.Data.SplitFiles = map[string]string{
		"train": filepath.Join(ds, "Flickr_8k.trainImages.txt"),
		"val":   filepath.Join(ds, "Flickr_8k.devImages.txt"),
		"test":  filepath.Join(ds, "Flickr_8k.testImages.txt"),
	}
	c.Data.Workers = 1
	c.Data.Augment.RandomResizedCrop = true
	c.Data.Augment.HFlip = 0.5
	c.Train.OutDir = outDir
	c.Train.Epochs, c.Train.MaxSteps = 0, steps
	c.Train.BatchSize = 8
	c.Train.LR = 3e-3
	c.Train.Schedule = "cosine"
	c.Train.WarmupSteps = 2
	c.Train.ClipGradNorm = 1
	c.Train.LogEvery = 1
	c.Eval.BatchSize = 16
	c.Eval.NumBeams = 1
	c.Eval.MaxNewTokens = 8
	c.Eval.Metrics = []string{"bleu"}
	if errs := config.Validate(c); len(errs) > 0 {
		t.Fatal(errs)
	}
	return c
}

// writeConfig writes c as a YAML file and returns its path.
func writeConfig(t testing.TB, c config.Config) string {
	t.Helper()
	b, err := config.YAML(c)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// runTrain runs the train role in world processes and returns their outputs.
func runTrain(t *testing.T, world int, cfgPath string, env ...string) []string {
	t.Helper()
	// With world 1, WORLD_SIZE=1 means one process without a group.
	ws := spawn(t, "train", world, append([]string{configEnv + "=" + cfgPath}, env...)...)
	waitAll(t, ws, 3*time.Minute)
	out := make([]string, world)
	for i, w := range ws {
		out[i] = w.out.String()
	}
	return out
}

// stepOf reads "result step N" or "interrupted step N" from a worker's output.
func stepOf(t *testing.T, out, word string) int {
	t.Helper()
	i := strings.LastIndex(out, word+" step ")
	if i < 0 {
		t.Fatalf("no %q in output:\n%s", word+" step", out)
	}
	n, err := strconv.Atoi(strings.Fields(out[i+len(word)+6:])[0])
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestDataParallelMatchesSingleProcess trains the tiny VGG16+LSTM model data-parallel in 2
// processes (batch 8 each, global batch 16), interrupts rank 0 after step 3, resumes the group,
// and compares the final weights with one process training batch 8 with grad_accum 2 on the
// same data: they must agree within 1e-5. Batch norm, dropout and augmentation are on: the
// ranks' micro-batches are exactly the single process's micro-batches. The trainer itself
// checks at every checkpoint that both ranks hold the same weights, bit for bit.
func TestDataParallelMatchesSingleProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a model in 3 processes")
	}
	const steps = 6
	dir := t.TempDir()

	single := tinyConfig(t, filepath.Join(dir, "single"), steps)
	single.Train.GradAccum = 2
	out := runTrain(t, 1, writeConfig(t, single))
	if n := stepOf(t, out[0], "result"); n != steps {
		t.Fatalf("single process trained %d steps", n)
	}

	group := tinyConfig(t, filepath.Join(dir, "group"), steps)
	path := writeConfig(t, group)
	out = runTrain(t, 2, path, stopEnv+"=3")
	// Rank 0 is interrupted after step 3; the group votes in step 4's exchange and stops after it.
	s0, s1 := stepOf(t, out[0], "interrupted"), stepOf(t, out[1], "interrupted")
	if s0 != 4 || s1 != 4 {
		t.Fatalf("interrupted at steps %d and %d, want both at 4\nrank 0:\n%s\nrank 1:\n%s", s0, s1, out[0], out[1])
	}
	out = runTrain(t, 2, path, resumeEnv+"=1")
	if s0, s1 := stepOf(t, out[0], "result"), stepOf(t, out[1], "result"); s0 != steps || s1 != steps {
		t.Fatalf("resumed group ended at steps %d and %d", s0, s1)
	}

	a := readWeights(t, filepath.Join(train.CheckpointDir(single.Train.OutDir, steps), train.ModelFile))
	b := readWeights(t, filepath.Join(train.CheckpointDir(group.Train.OutDir, steps), train.ModelFile))
	worst, worstName, compared := 0.0, "", 0
	for name, av := range a {
		if isBuffer(name) {
			continue // batch norm statistics: rank 0's own batches, not the group's
		}
		bv, ok := b[name]
		if !ok || len(bv) != len(av) {
			t.Fatalf("%s: missing or resized in the data-parallel checkpoint", name)
		}
		for i := range av {
			if d := math.Abs(float64(av[i] - bv[i])); d > worst {
				worst, worstName = d, name
			}
		}
		compared++
	}
	t.Logf("%d parameter tensors; largest difference %.3g (%s)", compared, worst, worstName)
	if compared == 0 || worst > 1e-5 {
		t.Errorf("data-parallel weights differ from the single-process run's by %.3g (%s), want <= 1e-5", worst, worstName)
	}
	st, err := os.ReadFile(filepath.Join(train.CheckpointDir(group.Train.OutDir, steps), train.StateFile))
	if err != nil {
		t.Fatal(err)
	}
	var state train.State
	if err := json.Unmarshal(st, &state); err != nil {
		t.Fatal(err)
	}
	if state.WorldSize != 2 || state.Samples != steps*16 {
		t.Errorf("group checkpoint state: world size %d, %d samples; want 2 and %d", state.WorldSize, state.Samples, steps*16)
	}
}

// isBuffer reports whether a VarStore name is a batch-norm buffer.
func isBuffer(name string) bool {
	return strings.HasSuffix(name, "running_mean") || strings.HasSuffix(name, "running_var") ||
		strings.HasSuffix(name, "num_batches_tracked")
}

// readWeights reads every tensor of a safetensors file as float32 values.
func readWeights(t *testing.T, path string) map[string][]float32 {
	t.Helper()
	out := map[string][]float32{}
	err := torchx.Locked(func() error {
		f, err := weights.OpenSafetensors(path)
		if err != nil {
			return err
		}
		defer f.Close()
		for _, name := range f.Names() {
			x, err := f.Tensor(name)
			if err != nil {
				return err
			}
			if out[name], err = torchx.Float32s(x); err != nil {
				return err
			}
			x.Drop()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDataParallelConfigMismatch: a rank whose training config differs from rank 0's refuses
// to start, and so does the whole group, each rank with an error that says why.
func TestDataParallelConfigMismatch(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 2 trainers")
	}
	dir := t.TempDir()
	c := tinyConfig(t, filepath.Join(dir, "run"), 2)
	p0 := writeConfig(t, c)
	c.Train.LR = 1e-3
	p1 := writeConfig(t, c)
	ws := spawnEach(t, "train", [][]string{{configEnv + "=" + p0}, {configEnv + "=" + p1}})
	for _, w := range ws {
		if err := w.wait(t, 2*time.Minute); err == nil {
			t.Errorf("rank %d started despite the mismatch:\n%s", w.rank, w.out.String())
		}
	}
	if out := ws[1].out.String(); !strings.Contains(out, "training config differs from rank 0's") || !strings.Contains(out, "lr") {
		t.Errorf("rank 1 does not name the difference:\n%s", out)
	}
	if out := ws[0].out.String(); !strings.Contains(out, "1 of 2 processes could not start") {
		t.Errorf("rank 0 does not say why it stopped:\n%s", out)
	}
}
