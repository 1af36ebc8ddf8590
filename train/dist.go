package train

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sort"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/dist"
	"github.com/imgcap/imgcap/torchx"
)

// Sharder is a training Source that can give each process of a data-parallel group its own
// part of every batch.
type Sharder interface {
	// Shard returns the source of rank's part of each global batch in a group of world
	// processes. Its StepsPerEpoch counts global batches (the same on every rank), and like any
	// Source its batches depend only on (seed, epoch).
	Shard(rank, world int) (Source, error)
}

// errRank0Interrupted tells the other ranks that rank 0 was interrupted while it evaluated.
var errRank0Interrupted = errors.New("rank 0 was interrupted during its evaluation")

// startMsg is what rank 0 tells the group when the run starts.
type startMsg struct {
	Err        string `json:"err,omitempty"`
	State      *State `json:"state,omitempty"`
	Checkpoint string `json:"checkpoint,omitempty"`
	Total      int    `json:"total"`
	ModelHash  string `json:"model_hash"`
}

// startGroup starts a data-parallel rank: rank 0 prepares the run directory (fresh or resumed)
// and sends its state; the others check that their configuration, data and model agree with
// rank 0's; if every rank is ready, rank 0's weights and optimizer state are broadcast.
func (r *runner) startGroup() error {
	var local error
	var msg startMsg
	if r.rank == 0 {
		if local = r.startLocal(); local != nil {
			msg.Err = local.Error()
		} else {
			msg.State, msg.Checkpoint, msg.Total = r.st, r.checkpoint, r.total
		}
	}
	hash, err := modelHash(r.vs, r.opt)
	if err != nil && local == nil {
		local = err
	}
	msg.ModelHash = hash
	b, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	got, err := r.group.BroadcastBytes(b, 0)
	if err != nil {
		if local != nil {
			return local
		}
		return fmt.Errorf("train: start the group: %w", err)
	}
	if r.rank != 0 && local == nil {
		local = r.adopt(got, hash)
	}
	// Every rank learns whether all are ready, so that none waits for a rank that gave up.
	bad := 0.0
	if local != nil {
		bad = 1
	}
	v, err := r.group.AllReduceValues([]float64{bad}, dist.Sum)
	switch {
	case local != nil:
		return local
	case err != nil:
		return fmt.Errorf("train: start the group: %w", err)
	case v[0] > 0:
		return fmt.Errorf("train: %d of %d processes could not start (their errors say why)", int(v[0]), r.world)
	}
	return r.broadcastModel()
}

// adopt checks rank 0's start message against this rank and takes over rank 0's state.
func (r *runner) adopt(b []byte, hash string) error {
	var m startMsg
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("train: rank 0's start message: %w", err)
	}
	switch {
	case m.Err != "":
		return fmt.Errorf("train: rank 0 could not start: %s", m.Err)
	case m.State == nil:
		return errors.New("train: rank 0 sent no state")
	case m.State.ConfigHash != ConfigHash(r.c):
		return fmt.Errorf("train: rank %d's training config differs from rank 0's: %v", r.rank, configDiff(m.State.Config, r.c))
	case m.Total != r.total:
		return fmt.Errorf("train: rank %d would train %d steps, rank 0 %d (train.max_steps or train.epochs differ)", r.rank, r.total, m.Total)
	case m.State.StepsPerEpoch != r.spe:
		return fmt.Errorf("train: rank %d's training data has %d batches per epoch, rank 0's %d", r.rank, r.spe, m.State.StepsPerEpoch)
	case m.ModelHash != hash:
		return fmt.Errorf("train: rank %d's model differs from rank 0's (its parameter names, shapes or types)", r.rank)
	}
	r.st, r.checkpoint, r.savedStopped = m.State, m.Checkpoint, m.State.Stopped
	for _, p := range r.opt.Params {
		p.Steps = m.State.ParamSteps[p.Name]
	}
	return nil
}

// modelHash fingerprints the names, shapes and types of a model's variables and of the
// parameters the optimizer updates.
func modelHash(vs *nn.VarStore, opt *Optimizer) (string, error) {
	vars := vs.Variables()
	names := make([]string, 0, len(vars))
	for name := range vars {
		names = append(names, name)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, name := range names {
		t := vars[name]
		shape, err := t.Size()
		if err != nil {
			return "", torchx.Err("size of "+name, err)
		}
		fmt.Fprintf(h, "%s %v %v\n", name, shape, t.DType())
	}
	fmt.Fprintf(h, "optimizer %s\n", opt.Kind)
	for _, p := range opt.Params {
		fmt.Fprintf(h, "param %s\n", p.Name)
	}
	runtime.KeepAlive(vs)
	return hex.EncodeToString(h.Sum(nil)[:8]), nil
}

// broadcastModel copies rank 0's variables (parameters and buffers) and optimizer state to
// every rank.
func (r *runner) broadcastModel() error {
	vars := r.vs.Variables()
	names := make([]string, 0, len(vars))
	for name := range vars {
		names = append(names, name)
	}
	sort.Strings(names)
	tensors := make([]*ts.Tensor, 0, len(names)+2*len(r.opt.Params))
	for _, name := range names {
		t := vars[name]
		tensors = append(tensors, &t)
	}
	for _, p := range r.opt.Params {
		for _, t := range []*ts.Tensor{p.m, p.v} {
			if t != nil {
				tensors = append(tensors, t)
			}
		}
	}
	err := r.group.Broadcast(tensors, 0)
	runtime.KeepAlive(r.vs) // the tensors are copies of values vs owns
	if err != nil {
		return fmt.Errorf("train: broadcast rank 0's weights: %w", err)
	}
	return nil
}

// averageGradients replaces every rank's gradients by their mean over the group. One small
// all-reduce first combines, per rank, the interruption vote, the step's loss and which
// parameters have a gradient (a parameter some rank's batch did not reach gets a zero gradient
// there); then the gradients travel in flat buckets. It returns whether any rank was
// interrupted and the mean loss over the group.
func (r *runner) averageGradients(interrupted bool, loss float64) (bool, float64, error) {
	n := len(r.opt.Params)
	vals := make([]float64, 2+n)
	if interrupted {
		vals[0] = 1
	}
	vals[1] = loss
	err := torchx.NoGrad(func() error {
		return torchx.WithScope(func(*torchx.Scope) error {
			for i, p := range r.opt.Params {
				g, err := p.grad()
				if err != nil {
					return err
				}
				if g != nil {
					vals[2+i] = 1
				}
			}
			sums, err := r.group.AllReduceValues(vals, dist.Sum)
			if err != nil {
				return err
			}
			interrupted, loss = sums[0] > 0, sums[1]/float64(r.world)
			grads := make([]*ts.Tensor, 0, n)
			for i, p := range r.opt.Params {
				if sums[2+i] == 0 {
					continue // no rank has a gradient for it: every rank skips it
				}
				if vals[2+i] == 0 {
					if err := dist.EnsureGrad(p.t); err != nil {
						return fmt.Errorf("%s: %w", p.Name, err)
					}
				}
				g, err := p.grad()
				if err != nil {
					return err
				}
				grads = append(grads, g)
			}
			return r.group.AllReduce(grads, dist.Avg)
		})
	})
	return interrupted, loss, err
}

// evaluateAll runs evaluate: alone, or on rank 0, which tells the other ranks the outcome
// (improved, early stop, interrupted, failed).
func (r *runner) evaluateAll(ctx context.Context) (improved, stop bool, err error) {
	if r.group == nil {
		return r.evaluate(ctx)
	}
	type evalMsg struct {
		Improved, Stop, Interrupted bool
		Err                         string
	}
	var m evalMsg
	if r.rank == 0 {
		improved, stop, err = r.evaluate(ctx)
		m = evalMsg{Improved: improved, Stop: stop}
		if err != nil {
			m.Err, m.Interrupted = err.Error(), ctx.Err() != nil
		}
	}
	b, jerr := json.Marshal(m)
	if jerr != nil {
		return false, false, jerr
	}
	got, berr := r.group.BroadcastBytes(b, 0)
	if r.rank == 0 {
		if err == nil {
			err = berr
		}
		return improved, stop, err
	}
	if berr != nil {
		return false, false, berr
	}
	if err := json.Unmarshal(got, &m); err != nil {
		return false, false, fmt.Errorf("rank 0's evaluation result: %w", err)
	}
	switch {
	case m.Interrupted:
		return false, false, errRank0Interrupted
	case m.Err != "":
		return false, false, fmt.Errorf("rank 0's evaluation at step %d failed: %s", r.st.Step, m.Err)
	}
	r.st.LastEvalStep = r.st.Step
	r.dirty = true
	return m.Improved, m.Stop, nil
}

// checkReplicas verifies that every rank holds the same parameters as rank 0 (the sums of
// each parameter's values, bit for bit), so that rank 0's checkpoint is the group's.
func (r *runner) checkReplicas() error {
	sums := make([]float64, len(r.opt.Params))
	err := torchx.NoGrad(func() error {
		return torchx.WithScope(func(*torchx.Scope) error {
			for i, p := range r.opt.Params {
				s, err := p.t.Sum(gotch.Double, false)
				if err != nil {
					return torchx.Err("sum of "+p.Name, err)
				}
				if sums[i], err = s.Float64Value([]int64{}); err != nil {
					return torchx.Err("sum of "+p.Name, err)
				}
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	buf := make([]byte, 8*len(sums))
	for i, v := range sums {
		binary.LittleEndian.PutUint64(buf[8*i:], math.Float64bits(v))
	}
	got, err := r.group.BroadcastBytes(buf, 0)
	if err != nil {
		return err
	}
	if len(got) != len(buf) {
		return fmt.Errorf("rank 0 has %d parameters, rank %d has %d", len(got)/8, r.rank, len(sums))
	}
	first := -1
	for i := range sums {
		if binary.LittleEndian.Uint64(got[8*i:]) != math.Float64bits(sums[i]) {
			first = i
			break
		}
	}
	bad := 0.0
	if first >= 0 {
		bad = 1
	}
	v, err := r.group.AllReduceValues([]float64{bad}, dist.Sum)
	if err != nil {
		return err
	}
	if first >= 0 {
		return fmt.Errorf("the weights of rank %d differ from rank 0's (first %s: sum %v, rank 0 %v): the data-parallel replicas diverged",
			r.rank, r.opt.Params[first].Name, sums[first], math.Float64frombits(binary.LittleEndian.Uint64(got[8*first:])))
	}
	if v[0] > 0 {
		return fmt.Errorf("the weights of %d rank(s) differ from rank 0's: the data-parallel replicas diverged", int(v[0]))
	}
	return nil
}
