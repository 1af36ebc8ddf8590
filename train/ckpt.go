package train

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/config"
	"github.com/imgcap/imgcap/torchx"
	"github.com/imgcap/imgcap/weights"
)

// A run directory holds:
//
//	config.yaml                       the resolved configuration
//	metrics.jsonl, loss.png, metrics.png
//	checkpoints/step-000120/          one directory per checkpoint:
//	    model.safetensors             every VarStore variable, by name
//	    optimizer.safetensors         optimizer state by parameter name (exp_avg.NAME, ...)
//	    trainer_state.json            State
//	last -> checkpoints/step-000120   symlink to the newest checkpoint
//	best -> checkpoints/step-000080   symlink to the best one by best_metric
//
// A checkpoint is written into checkpoints/.tmp-step-NNNNNN-*, synced, then renamed, so a
// step-* directory is always complete; leftovers of a crash are .tmp-* directories, which
// resuming removes.
const (
	// CheckpointsDir is the run subdirectory holding the step-NNNNNN checkpoints.
	CheckpointsDir = "checkpoints"
	// ModelFile holds every VarStore variable of a checkpoint, by name.
	ModelFile = "model.safetensors"
	// OptimizerFile holds the optimizer state of a checkpoint, by parameter name.
	OptimizerFile = "optimizer.safetensors"
	// StateFile holds a checkpoint's State as JSON.
	StateFile = "trainer_state.json"
	// LastLink is the run directory's symlink to its newest checkpoint.
	LastLink = "last"
	// BestLink is the run directory's symlink to its best checkpoint by best_metric.
	BestLink = "best"

	stepPrefix = "step-"
	tmpPrefix  = ".tmp-"
)

// State is the trainer's position, saved with every checkpoint as trainer_state.json. With the
// weights and optimizer state it is all a run needs to continue exactly: libtorch's random
// generator is reseeded from (Seed, MicroStep) before every forward pass, and data order
// depends only on (seed, epoch), so neither generator's internal state has to be saved.
type State struct {
	// Version is the layout version of this file.
	Version int `json:"version"`
	// Step counts completed optimizer steps.
	Step int `json:"step"`
	// MicroStep counts micro-batches consumed since the start of the run.
	MicroStep int64 `json:"micro_step"`
	// Epoch is the epoch of the next micro-batch and Batch how many of its micro-batches
	// are already consumed.
	Epoch int `json:"epoch"`
	Batch int `json:"batch"`
	// StepsPerEpoch is the training source's micro-batches per epoch when the run started.
	StepsPerEpoch int `json:"steps_per_epoch"`
	// Samples counts training rows consumed (by all processes of a data-parallel group).
	Samples int64 `json:"samples"`
	// WorldSize is the number of data-parallel processes of the run (omitted for one).
	WorldSize int `json:"world_size,omitempty"`
	// Seed is the run's seed (train.seed).
	Seed int64 `json:"seed"`
	// BestMetric, BestValue and BestStep describe the best evaluation so far (BestValue is
	// null before the first evaluation).
	BestMetric string   `json:"best_metric"`
	BestValue  *float64 `json:"best_value"`
	BestStep   int      `json:"best_step"`
	// BadEvals counts evaluations since the last improvement (for early stopping).
	BadEvals int `json:"bad_evals"`
	// LastEvalStep is the step of the latest completed evaluation and LastEval its results.
	LastEvalStep int                `json:"last_eval_step"`
	LastEval     map[string]float64 `json:"last_eval,omitempty"`
	// ParamSteps counts each parameter's optimizer updates (Adam's bias correction uses it).
	ParamSteps map[string]int `json:"param_steps"`
	// Optimizer is the optimizer kind.
	Optimizer string `json:"optimizer"`
	// Elapsed is the training time so far, in seconds, over all sessions.
	Elapsed float64 `json:"elapsed_s"`
	// Stopped says why the run ended ("" while it goes on): max_steps, early_stop, interrupted.
	Stopped string `json:"stopped,omitempty"`
	// ConfigHash and Config record the training configuration (see ConfigHash).
	ConfigHash string             `json:"config_hash"`
	Config     config.TrainConfig `json:"config"`
	// SavedAt is when the checkpoint was written.
	SavedAt time.Time `json:"saved_at"`
}

const stateVersion = 1

// resumableFields are the TrainConfig fields (by JSON name) that may change on resume.
// max_steps and epochs move the end of the run (and so the horizon of a cosine or linear
// schedule); out_dir may change when a run directory is moved.
var resumableFields = map[string]bool{"max_steps": true, "epochs": true, "out_dir": true}

// ConfigHash fingerprints the parts of a training configuration that must not change when a
// run is resumed.
func ConfigHash(c config.TrainConfig) string {
	b, _ := json.Marshal(fixedFields(c))
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

func fixedFields(c config.TrainConfig) map[string]any {
	out := map[string]any{}
	v := reflect.ValueOf(c)
	for i := 0; i < v.NumField(); i++ {
		name := strings.Split(v.Type().Field(i).Tag.Get("json"), ",")[0]
		if !resumableFields[name] {
			out[name] = v.Field(i).Interface()
		}
	}
	return out
}

// configDiff lists the fields that differ between two configurations, except resumable ones.
func configDiff(old, cur config.TrainConfig) []string {
	a, b := fixedFields(old), fixedFields(cur)
	var diffs []string
	for k, va := range a {
		if !reflect.DeepEqual(va, b[k]) {
			diffs = append(diffs, fmt.Sprintf("%s %v -> %v", k, va, b[k]))
		}
	}
	sort.Strings(diffs)
	return diffs
}

// CheckpointDir is the directory name of the checkpoint at step.
func CheckpointDir(runDir string, step int) string {
	return filepath.Join(runDir, CheckpointsDir, fmt.Sprintf("%s%06d", stepPrefix, step))
}

// saveCheckpoint writes weights, optimizer state and st atomically as the checkpoint of
// st.Step, points `last` (and `best` when isBest) at it, and prunes older checkpoints beyond
// keepLast, sparing the best. It returns the checkpoint directory.
func saveCheckpoint(runDir string, vs *nn.VarStore, opt *Optimizer, st *State, isBest bool, keepLast int) (string, error) {
	root := filepath.Join(runDir, CheckpointsDir)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", err
	}
	final := CheckpointDir(runDir, st.Step)
	tmp, err := os.MkdirTemp(root, tmpPrefix+filepath.Base(final)+"-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp) // no-op after the rename
	vars := vs.Variables()
	model := make(map[string]*ts.Tensor, len(vars))
	for name := range vars {
		t := vars[name]
		model[name] = &t
	}
	err = weights.WriteSafetensors(filepath.Join(tmp, ModelFile), model, map[string]string{"format": "pt"})
	// Variables returns copies of the tensor values, which do not keep the VarStore's tensors
	// (and their finalizers) at bay: vs must stay reachable while they are used.
	runtime.KeepAlive(vs)
	if err != nil {
		return "", err
	}
	if err := weights.WriteSafetensors(filepath.Join(tmp, OptimizerFile), opt.stateTensors(),
		map[string]string{"optimizer": opt.Kind}); err != nil {
		return "", err
	}
	st.ParamSteps = map[string]int{}
	for _, p := range opt.Params {
		st.ParamSteps[p.Name] = p.Steps
	}
	st.Optimizer = opt.Kind
	st.Version = stateVersion
	st.SavedAt = time.Now().UTC()
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return "", err
	}
	if err := writeFileSync(filepath.Join(tmp, StateFile), append(b, '\n')); err != nil {
		return "", err
	}
	if err := syncDir(tmp); err != nil {
		return "", err
	}
	// A checkpoint of the same step exists when a resumed run is stopped again before its
	// first step: move it aside, then replace it.
	if _, err := os.Stat(final); err == nil {
		old := filepath.Join(root, fmt.Sprintf("%s%s-old-%d", tmpPrefix, filepath.Base(final), time.Now().UnixNano()))
		if err := os.Rename(final, old); err != nil {
			return "", err
		}
		defer os.RemoveAll(old)
	}
	if err := os.Rename(tmp, final); err != nil {
		return "", err
	}
	if err := syncDir(root); err != nil {
		return "", err
	}
	rel := filepath.Join(CheckpointsDir, filepath.Base(final))
	if err := pointLink(runDir, LastLink, rel); err != nil {
		return "", err
	}
	if isBest {
		if err := pointLink(runDir, BestLink, rel); err != nil {
			return "", err
		}
	}
	return final, pruneCheckpoints(runDir, keepLast)
}

// pointLink atomically makes runDir/name a symlink to target (relative to runDir).
func pointLink(runDir, name, target string) error {
	tmp := filepath.Join(runDir, fmt.Sprintf("%s%s-%d", tmpPrefix, name, time.Now().UnixNano()))
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(runDir, name)); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(runDir)
}

// checkpointSteps lists the steps of the complete checkpoints in runDir, ascending.
func checkpointSteps(runDir string) ([]int, error) {
	entries, err := os.ReadDir(filepath.Join(runDir, CheckpointsDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var steps []int
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), stepPrefix) {
			continue
		}
		if n, err := strconv.Atoi(strings.TrimPrefix(e.Name(), stepPrefix)); err == nil && n >= 0 {
			steps = append(steps, n)
		}
	}
	sort.Ints(steps)
	return steps, nil
}

// linkedStep is the step a pointer link names, or -1.
func linkedStep(runDir, name string) int {
	target, err := os.Readlink(filepath.Join(runDir, name))
	if err != nil {
		return -1
	}
	n, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(target), stepPrefix))
	if err != nil {
		return -1
	}
	return n
}

// pruneCheckpoints deletes all but the newest keep checkpoints, sparing the one `best` names.
func pruneCheckpoints(runDir string, keep int) error {
	if keep <= 0 {
		return nil
	}
	steps, err := checkpointSteps(runDir)
	if err != nil {
		return err
	}
	best := linkedStep(runDir, BestLink)
	for i := 0; i < len(steps)-keep; i++ {
		if steps[i] == best {
			continue
		}
		if err := os.RemoveAll(CheckpointDir(runDir, steps[i])); err != nil {
			return err
		}
	}
	return nil
}

// removeTemps deletes the .tmp-* leftovers of an interrupted checkpoint write.
func removeTemps(runDir string) error {
	for _, dir := range []string{runDir, filepath.Join(runDir, CheckpointsDir)} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), tmpPrefix) {
				if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// readState reads a checkpoint's trainer_state.json.
func readState(dir string) (*State, error) {
	b, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil {
		return nil, err
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, StateFile), err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("%s: state version %d, this trainer reads %d", filepath.Join(dir, StateFile), st.Version, stateVersion)
	}
	return &st, nil
}

// LatestCheckpoint finds the newest complete checkpoint of a run directory and reads its
// state. It returns "" and a nil state when the run has no checkpoint.
func LatestCheckpoint(runDir string) (string, *State, error) {
	steps, err := checkpointSteps(runDir)
	if err != nil {
		return "", nil, err
	}
	if len(steps) == 0 {
		return "", nil, nil
	}
	dir := CheckpointDir(runDir, steps[len(steps)-1])
	st, err := readState(dir)
	if err != nil {
		return "", nil, fmt.Errorf("newest checkpoint is unreadable: %w", err)
	}
	return dir, st, nil
}

// LoadWeights loads model weights into vs by name, strictly: every variable of vs must be
// present with its shape and dtype, and the file may hold no other tensor. path is a
// .safetensors file, a checkpoint directory, or a run directory (its `best` checkpoint when
// there is one, else `last`).
func LoadWeights(vs *nn.VarStore, path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		switch {
		case exists(filepath.Join(path, ModelFile)):
			path = filepath.Join(path, ModelFile)
		case exists(filepath.Join(path, BestLink, ModelFile)):
			path = filepath.Join(path, BestLink, ModelFile)
		case exists(filepath.Join(path, LastLink, ModelFile)):
			path = filepath.Join(path, LastLink, ModelFile)
		default:
			return fmt.Errorf("%s: no %s, best/ or last/ checkpoint", path, ModelFile)
		}
	}
	vars := vs.Variables()
	targets := make(map[string]*ts.Tensor, len(vars))
	for name := range vars {
		t := vars[name]
		targets[name] = &t
	}
	err = loadInto(path, targets)
	runtime.KeepAlive(vs) // targets are copies of values owned by vs
	return err
}

// loadInto copies the tensors of a safetensors file into targets by name, checking that the
// names match exactly and that shapes and dtypes agree.
func loadInto(path string, targets map[string]*ts.Tensor) error {
	st, err := weights.OpenSafetensors(path)
	if err != nil {
		return err
	}
	defer st.Close()
	var missing, unexpected, mismatched []string
	for name, t := range targets {
		dt, shape, ok := st.Info(name)
		if !ok {
			missing = append(missing, name)
			continue
		}
		want, err := t.Size()
		if err != nil {
			return torchx.Err("size of "+name, err)
		}
		if dt != t.DType() || !slices.Equal(shape, want) {
			mismatched = append(mismatched, fmt.Sprintf("%s: file %v %v, model %v %v", name, dt, shape, t.DType(), want))
		}
	}
	for _, name := range st.Names() {
		if _, ok := targets[name]; !ok {
			unexpected = append(unexpected, name)
		}
	}
	if len(missing)+len(unexpected)+len(mismatched) > 0 {
		sort.Strings(missing)
		sort.Strings(mismatched)
		var parts []string
		if len(missing) > 0 {
			parts = append(parts, fmt.Sprintf("missing %s", limitList(missing)))
		}
		if len(unexpected) > 0 {
			parts = append(parts, fmt.Sprintf("unexpected %s", limitList(unexpected)))
		}
		if len(mismatched) > 0 {
			parts = append(parts, fmt.Sprintf("mismatched %s", limitList(mismatched)))
		}
		return fmt.Errorf("%s does not match the model: %s", path, strings.Join(parts, "; "))
	}
	return torchx.NoGrad(func() error {
		for name, t := range targets {
			err := torchx.WithScope(func(*torchx.Scope) error {
				src, err := st.Tensor(name)
				if err != nil {
					return err
				}
				if err := torchx.CopyInPlace(t, src); err != nil {
					return fmt.Errorf("%s: %s: %w", path, name, err)
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
}

func limitList(s []string) string {
	const max = 8
	if len(s) > max {
		return strings.Join(s[:max], ", ") + fmt.Sprintf(" and %d more", len(s)-max)
	}
	return strings.Join(s, ", ")
}

// stateTensors names the optimizer's state tensors as they are saved.
func (o *Optimizer) stateTensors() map[string]*ts.Tensor {
	out := map[string]*ts.Tensor{}
	for _, p := range o.Params {
		if o.Kind == "sgd" {
			out["momentum_buffer."+p.Name] = p.m
			continue
		}
		out["exp_avg."+p.Name] = p.m
		out["exp_avg_sq."+p.Name] = p.v
	}
	return out
}

// loadState restores the optimizer's state tensors and per-parameter step counts.
func (o *Optimizer) loadState(path string, steps map[string]int) error {
	st, err := weights.OpenSafetensors(path)
	if err != nil {
		return err
	}
	meta := st.Metadata["optimizer"]
	st.Close()
	if meta != o.Kind {
		return fmt.Errorf("%s holds %q optimizer state, the run uses %q", path, meta, o.Kind)
	}
	if err := loadInto(path, o.stateTensors()); err != nil {
		return err
	}
	for _, p := range o.Params {
		n, ok := steps[p.Name]
		if !ok {
			return fmt.Errorf("%s: trainer state has no step count for parameter %s", path, p.Name)
		}
		p.Steps = n
	}
	return nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// writeFileSync writes a file and syncs it to disk.
func writeFileSync(path string, data []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}
