package blip

import (
	"math"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	gnn "github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/config"
	"github.com/imgcap/imgcap/torchx"
	"github.com/imgcap/imgcap/train"
)

// momentumOptions are retrieval fine-tuning's objectives (no decoder) with momentum
// distillation.
func momentumOptions(momentum float64, queue int64, alpha float64) PretrainOptions {
	o := DefaultPretrainOptions()
	o.WeightLM = 0
	o.Momentum, o.QueueSize, o.Alpha = momentum, queue, alpha
	return o
}

func newMomentumModel(t *testing.T, o PretrainOptions, seed int64) *Pretrainer {
	t.Helper()
	torchx.Seed(seed)
	m, err := NewPretrainer(tinyConfig(t), o, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// values reads every variable of a store (by name) into Go slices.
func values(t *testing.T, vs *gnn.VarStore, keep func(string) bool) map[string][]float32 {
	t.Helper()
	out := map[string][]float32{}
	for name := range vs.Variables() {
		if keep != nil && !keep(name) {
			continue
		}
		v, err := vs.Root().Get(name)
		if err != nil {
			t.Fatal(err)
		}
		if out[name], err = torchx.Float32s(v); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestMomentumOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*PretrainOptions)
		want string // "" = valid
	}{
		{"off", func(o *PretrainOptions) {}, ""},
		{"BLIP", func(o *PretrainOptions) { o.Momentum, o.QueueSize, o.Alpha, o.AlphaRampSteps = 0.995, 57600, 0.4, 100 }, ""},
		{"momentum without queue or distillation", func(o *PretrainOptions) { o.Momentum = 0.9 }, ""},
		{"momentum 1", func(o *PretrainOptions) { o.Momentum = 1 }, "momentum"},
		{"negative momentum", func(o *PretrainOptions) { o.Momentum = -0.1 }, "momentum"},
		{"NaN momentum", func(o *PretrainOptions) { o.Momentum = math.NaN() }, "momentum"},
		{"negative queue", func(o *PretrainOptions) { o.Momentum, o.QueueSize = 0.9, -1 }, "queue_size"},
		{"alpha above 1", func(o *PretrainOptions) { o.Momentum, o.Alpha = 0.9, 1.5 }, "alpha"},
		{"negative ramp", func(o *PretrainOptions) { o.Momentum, o.AlphaRampSteps = 0.9, -2 }, "alpha_ramp_steps"},
		{"queue without momentum", func(o *PretrainOptions) { o.QueueSize = 64 }, "need the momentum"},
		{"alpha without momentum", func(o *PretrainOptions) { o.Alpha = 0.4 }, "need the momentum"},
		{"momentum without ITC", func(o *PretrainOptions) { o.Momentum, o.WeightITC = 0.9, 0 }, "ITC"},
	}
	for _, tt := range tests {
		o := DefaultPretrainOptions()
		tt.edit(&o)
		err := o.Validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: error %v, want one about %q", tt.name, err, tt.want)
		}
	}
}

// TestMomentumState checks the momentum model's variables: the momentum copies start equal to
// their parameters and need no gradient, the text copy has no cross-attention, the queues hold
// unit columns with no image ids, and everything else draws the same values as without
// momentum.
func TestMomentumState(t *testing.T) {
	off := newMomentumModel(t, momentumOptions(0, 0, 0), 21)
	on := newMomentumModel(t, momentumOptions(0.995, 10, 0.4), 21)
	offVals := values(t, off.VarStore(), nil)
	onVals := values(t, on.VarStore(), nil)
	for name := range offVals {
		if IsMomentumState(name) {
			t.Errorf("the model without momentum has %s", name)
		}
		if !slices.Equal(offVals[name], onVals[name]) {
			t.Errorf("%s differs with momentum on", name)
		}
	}
	var copies int
	for name, v := range onVals {
		if _, ok := offVals[name]; ok {
			continue
		}
		if !IsMomentumState(name) {
			t.Errorf("unexpected variable %s", name)
			continue
		}
		tensor, _ := on.VarStore().Root().Get(name)
		if rg, err := tensor.RequiresGrad(); err != nil || rg {
			t.Errorf("%s requires grad (%v, %v)", name, rg, err)
		}
		if src, ok := momentumSource(name); ok {
			copies++
			if !slices.Equal(v, onVals[src]) {
				t.Errorf("%s does not start as a copy of %s", name, src)
			}
			if strings.Contains(name, "crossattention") {
				t.Errorf("the momentum text encoder has %s", name)
			}
		}
	}
	// Every vision_model/vision_proj/text_proj tensor and every text_encoder tensor but
	// cross-attention has its copy.
	want := 0
	for name := range offVals {
		for _, p := range momentumModules {
			if strings.HasPrefix(name, p[0]+".") && !strings.Contains(name, "crossattention") {
				want++
			}
		}
	}
	if copies != want || copies != len(on.momentumPairs) {
		t.Errorf("%d momentum copies (%d pairs), want %d", copies, len(on.momentumPairs), want)
	}
	D, K := on.Cfg.ImageTextHiddenSize, 10
	for _, name := range []string{imageQueueName, textQueueName} {
		q := onVals[name]
		if len(q) != D*K {
			t.Fatalf("%s has %d values, want %d×%d", name, len(q), D, K)
		}
		for k := 0; k < K; k++ {
			var s float64
			for d := 0; d < D; d++ {
				s += float64(q[d*K+k]) * float64(q[d*K+k])
			}
			if math.Abs(s-1) > 1e-5 {
				t.Errorf("%s column %d has norm² %g", name, k, s)
			}
		}
	}
	if ids, _ := torchx.Int64s(on.IdxQueue); len(ids) != K || slices.ContainsFunc(ids, func(v int64) bool { return v != NoImageID }) {
		t.Errorf("idx_queue %v, want %d × %d", ids, K, NoImageID)
	}
	for _, b := range []*ts.Tensor{on.QueuePtr, on.MomentumSteps} {
		if v, _ := torchx.Int64s(b); !slices.Equal(v, []int64{0}) {
			t.Errorf("buffer %v, want [0]", v)
		}
	}
}

// TestMomentumUpdate checks p_m = m·p_m0 + (1−m)·p after one update, in float32 as PyTorch
// computes it (two products, then their sum), for momentum copies that differ from their
// parameters.
func TestMomentumUpdate(t *testing.T) {
	for _, mm := range []float64{0.995, 0.5, 0.9} {
		m := newMomentumModel(t, momentumOptions(mm, 0, 0), 5)
		// Move the parameters away from their copies.
		err := torchx.NoGrad(func() error {
			for _, p := range m.momentumPairs {
				n, err := p[0].RandnLike(false)
				if err != nil {
					return err
				}
				err = torchx.AddInPlace(p[0], n)
				n.Drop()
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		read := func(i int) (p, pm []float32) {
			p, err := torchx.Float32s(m.momentumPairs[i][0])
			if err != nil {
				t.Fatal(err)
			}
			pm, err = torchx.Float32s(m.momentumPairs[i][1])
			if err != nil {
				t.Fatal(err)
			}
			return p, pm
		}
		type pair struct{ p, pm []float32 }
		before := make([]pair, len(m.momentumPairs))
		for i := range before {
			before[i].p, before[i].pm = read(i)
		}
		if err := m.momentumUpdate(); err != nil {
			t.Fatal(err)
		}
		a, b := float32(mm), float32(1-mm)
		var worst float64
		for i, x := range before {
			p, pm := read(i)
			if !slices.Equal(p, x.p) {
				t.Fatalf("m=%g: the update changed parameter %d", mm, i)
			}
			for j := range pm {
				want := float32(x.pm[j]*a) + float32(x.p[j]*b)
				if pm[j] != want {
					worst = max(worst, math.Abs(float64(pm[j]-want)))
				}
			}
		}
		if worst != 0 {
			t.Errorf("m=%g: momentum copies differ from m·p_m + (1−m)·p by up to %g", mm, worst)
		}
	}
}

// TestEnqueueWrapAround enqueues batches into a queue of 6: the columns from queue_ptr on take
// the batch, a batch that runs past the end wraps to column 0, and the pointer advances modulo
// the size; a batch larger than the queue is refused.
func TestEnqueueWrapAround(t *testing.T) {
	const K = 6
	m := newMomentumModel(t, momentumOptions(0.995, K, 0), 9)
	D := m.Cfg.ImageTextHiddenSize
	rng := rand.New(rand.NewPCG(1, 9))
	// Reference queue, column-major per feature row as the tensor: q[d*K+k].
	refImg, _ := torchx.Float32s(m.ImageQueue)
	refTxt, _ := torchx.Float32s(m.TextQueue)
	refIdx := slices.Repeat([]int64{NoImageID}, K)
	ptr := 0
	tests := []struct {
		rows    int
		ids     []int64
		wantPtr int64
	}{
		{4, []int64{10, 11, 12, 13}, 4},
		{4, []int64{20, 21, 22, 23}, 2}, // columns 4, 5, then 0, 1
		{3, nil, 5},                     // no ids: NoImageID
		{6, []int64{1, 2, 3, 4, 5, 6}, 5},
	}
	for step, tt := range tests {
		img := make([]float32, tt.rows*D)
		txt := make([]float32, tt.rows*D)
		for i := range img {
			img[i], txt[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
		}
		err := torchx.WithScope(func(*torchx.Scope) error {
			it, err := floatMatrix(img, tt.rows, gotch.CPU)
			if err != nil {
				return err
			}
			tx, err := floatMatrix(txt, tt.rows, gotch.CPU)
			if err != nil {
				return err
			}
			return m.enqueue(it, tx, tt.ids)
		})
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		for r := 0; r < tt.rows; r++ {
			k := (ptr + r) % K
			for d := 0; d < D; d++ {
				refImg[d*K+k], refTxt[d*K+k] = img[r*D+d], txt[r*D+d]
			}
			refIdx[k] = NoImageID
			if tt.ids != nil {
				refIdx[k] = tt.ids[r]
			}
		}
		ptr = (ptr + tt.rows) % K
		gotImg, _ := torchx.Float32s(m.ImageQueue)
		gotTxt, _ := torchx.Float32s(m.TextQueue)
		gotIdx, _ := torchx.Int64s(m.IdxQueue)
		gotPtr, _ := torchx.Int64s(m.QueuePtr)
		if !slices.Equal(gotImg, refImg) || !slices.Equal(gotTxt, refTxt) {
			t.Errorf("step %d: queued features differ from the reference", step)
		}
		if !slices.Equal(gotIdx, refIdx) {
			t.Errorf("step %d: idx_queue %v, want %v", step, gotIdx, refIdx)
		}
		if !slices.Equal(gotPtr, []int64{tt.wantPtr}) || int64(ptr) != tt.wantPtr {
			t.Errorf("step %d: queue_ptr %v, want %d", step, gotPtr, tt.wantPtr)
		}
	}
	err := torchx.WithScope(func(*torchx.Scope) error {
		big, _ := ts.Zeros([]int64{K + 1, int64(D)}, gotch.Float, gotch.CPU)
		return m.enqueue(big, big, nil)
	})
	if err == nil || !strings.Contains(err.Error(), "does not fit") {
		t.Errorf("a batch of %d rows in a queue of %d: %v", K+1, K, err)
	}
}

// TestMomentumContrastiveLossValue checks the queue positives (equal image ids, in the batch and
// in the queue) and MomentumContrastiveLoss against the formulas computed in Go, with and
// without distillation.
func TestMomentumContrastiveLossValue(t *testing.T) {
	const B, D, K = 4, 5, 6
	const temp = 0.2
	rng := rand.New(rand.NewPCG(7, 8))
	unit := func(n int) [][]float64 {
		out := make([][]float64, n)
		for i := range out {
			var s float64
			out[i] = make([]float64, D)
			for d := range out[i] {
				out[i][d] = rng.NormFloat64()
				s += out[i][d] * out[i][d]
			}
			for d := range out[i] {
				out[i][d] = float64(float32(out[i][d] / math.Sqrt(s)))
			}
		}
		return out
	}
	img, txt, imgM, txtM, qImg, qTxt := unit(B), unit(B), unit(B), unit(B), unit(K), unit(K)
	ids := []int64{3, 5, 3, 8}
	idxQueue := []int64{5, NoImageID, 3, 9, 8, 5}
	// Reference positives and targets.
	N := B + K
	pos := make([][]float64, B)
	for i := range pos {
		pos[i] = make([]float64, N)
		for j := 0; j < N; j++ {
			id := idxQueue[max(j-B, 0)]
			if j < B {
				id = ids[j]
			}
			if id == ids[i] {
				pos[i][j] = 1
			}
		}
	}
	keys := func(m, q [][]float64) [][]float64 { return append(slices.Clone(m), q...) }
	dot := func(a, b []float64) float64 {
		var s float64
		for i := range a {
			s += a[i] * b[i]
		}
		return s
	}
	sims := func(q, k [][]float64) [][]float64 {
		out := make([][]float64, len(q))
		for i := range q {
			for j := range k {
				out[i] = append(out[i], dot(q[i], k[j])/temp)
			}
		}
		return out
	}
	softmax := func(row []float64) []float64 {
		mx := slices.Max(row)
		var s float64
		out := make([]float64, len(row))
		for j, x := range row {
			out[j] = math.Exp(x - mx)
			s += out[j]
		}
		for j := range out {
			out[j] /= s
		}
		return out
	}
	direction := func(q, qm, k [][]float64, alpha float64) float64 {
		s, sm := sims(q, k), sims(qm, k)
		var total float64
		for i := range s {
			var npos float64
			for _, p := range pos[i] {
				npos += p
			}
			p, pm := softmax(s[i]), softmax(sm[i])
			for j := range s[i] {
				target := alpha*pm[j] + (1-alpha)*pos[i][j]/npos
				total -= target * math.Log(p[j])
			}
		}
		return total / float64(len(s))
	}
	flat := func(rows [][]float64) []float32 {
		var out []float32
		for _, r := range rows {
			for _, x := range r {
				out = append(out, float32(x))
			}
		}
		return out
	}
	for _, alpha := range []float64{0, 0.4, 1} {
		want := (direction(img, imgM, keys(txtM, qTxt), alpha) + direction(txt, txtM, keys(imgM, qImg), alpha)) / 2
		err := torchx.NoGrad(func() error {
			return torchx.WithScope(func(*torchx.Scope) error {
				tensor := func(rows [][]float64) *ts.Tensor {
					x, err := floatMatrix(flat(rows), len(rows), gotch.CPU)
					if err != nil {
						t.Fatal(err)
					}
					return x
				}
				qi, _ := tensor(qImg).T(false)
				qt, _ := tensor(qTxt).T(false)
				idxT, _ := int64Row(idxQueue, gotch.CPU)
				m := &Pretrainer{Opts: PretrainOptions{QueueSize: K}, vs: gnn.NewVarStore(gotch.CPU), IdxQueue: idxT}
				pb, err := positives(ids, B)
				if err != nil {
					return err
				}
				pbT, _ := floatMatrix(pb, B, gotch.CPU)
				p, err := m.queuePositives(ids, pbT)
				if err != nil {
					return err
				}
				if got, _ := torchx.Float32s(p); !slices.Equal(got, flat(pos)) {
					t.Errorf("positives %v, want %v", got, flat(pos))
				}
				tp, _ := ts.Full([]int64{1}, ts.FloatScalar(temp), gotch.Float, gotch.CPU)
				loss, err := MomentumContrastiveLoss(tensor(img), tensor(txt), tensor(imgM), tensor(txtM), qi, qt, tp, p, alpha)
				if err != nil {
					return err
				}
				if got := scalar(t, loss); math.Abs(got-want) > 1e-5*math.Abs(want) {
					t.Errorf("alpha %g: loss %.7f, want %.7f", alpha, got, want)
				}
				return nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestMomentumOffIsInBatchITC compares models with and without momentum built from one seed:
// evaluation batches give identical losses (the momentum path is for training only), and the
// first training batch of a momentum model without queue and distillation, whose momentum
// copies still equal the weights, gives the in-batch ITC.
func TestMomentumOffIsInBatchITC(t *testing.T) {
	cfg := tinyConfig(t)
	batch := randomBatch(t, cfg, 4, 8, []int64{1, 2, 1, 3}, 4)
	defer batch.Drop()
	off := newMomentumModel(t, momentumOptions(0, 0, 0), 3)
	tests := []struct {
		name  string
		opts  PretrainOptions
		train bool
		exact bool
	}{
		{"evaluation, full distillation", momentumOptions(0.995, 8, 0.4), false, true},
		{"training, no queue, no distillation", momentumOptions(0.995, 0, 0), true, false},
	}
	for _, tt := range tests {
		on := newMomentumModel(t, tt.opts, 3)
		run := func(m *Pretrainer) (itc, itm float64) {
			err := torchx.WithGrad(func() error {
				return torchx.WithScope(func(*torchx.Scope) error {
					torchx.Seed(11)
					l, err := m.Losses(batch, tt.train)
					if err != nil {
						return err
					}
					itc, itm = scalar(t, l.ITC), scalar(t, l.ITM)
					return nil
				})
			})
			if err != nil {
				t.Fatal(err)
			}
			return itc, itm
		}
		before := values(t, on.VarStore(), IsMomentumState)
		itc0, itm0 := run(off)
		itc1, itm1 := run(on)
		after := values(t, on.VarStore(), IsMomentumState)
		if tt.exact {
			if itc0 != itc1 || itm0 != itm1 {
				t.Errorf("%s: ITC, ITM %v, %v with momentum, %v, %v without", tt.name, itc1, itm1, itc0, itm0)
			}
			for name, v := range before {
				if !slices.Equal(v, after[name]) {
					t.Errorf("%s: %s changed", tt.name, name)
				}
			}
			continue
		}
		if math.Abs(itc1-itc0) > 1e-6*math.Abs(itc0) {
			t.Errorf("%s: ITC %v with momentum, %v without", tt.name, itc1, itc0)
		}
		if steps, _ := torchx.Int64s(on.MomentumSteps); !slices.Equal(steps, []int64{1}) {
			t.Errorf("%s: momentum_steps %v after one training batch", tt.name, steps)
		}
	}
}

// TestMomentumTraining optimises a tiny model with momentum distillation on one batch (through
// the trainer's optimizer): the losses stay finite and go down; the distillation weight ramps;
// no gradient reaches the momentum state, the optimizer does not hold it, and its step leaves
// it alone; the momentum copies trail the weights; and a training batch leaves no tensor behind.
func TestMomentumTraining(t *testing.T) {
	cfg := tinyConfig(t)
	o := momentumOptions(0.9, 12, 0.4)
	o.AlphaRampSteps = 2
	m := newMomentumModel(t, o, 13)
	batch := randomBatch(t, cfg, 4, 8, []int64{1, 2, 3, 1}, 6)
	defer batch.Drop()
	tc := config.Default().Train
	tc.Optimizer, tc.LR, tc.WeightDecay = "adamw", 2e-3, 0.05
	opt, err := train.NewOptimizer(m.VarStore(), tc, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer opt.Close()
	for _, p := range opt.Params {
		if IsMomentumState(p.Name) {
			t.Errorf("the optimizer updates %s", p.Name)
		}
	}
	const steps = 12
	var first, last [2]float64
	for step := 0; step < steps; step++ {
		var momBefore, momAfter map[string][]float32
		err := torchx.WithGrad(func() error {
			return torchx.WithScope(func(*torchx.Scope) error {
				l, err := m.Losses(batch, true)
				if err != nil {
					return err
				}
				wantAlpha := []float64{0, 0.2, 0.4}[min(step, 2)]
				if math.Abs(l.Alpha-wantAlpha) > 1e-12 {
					t.Errorf("step %d: alpha %g, want %g", step, l.Alpha, wantAlpha)
				}
				r := [2]float64{scalar(t, l.ITC), scalar(t, l.Total)}
				if math.IsNaN(r[1]) || math.IsInf(r[1], 0) {
					t.Fatalf("step %d: loss %v", step, r)
				}
				if step == 0 {
					first = r
				}
				last = r
				if err := l.Total.Backward(); err != nil {
					return err
				}
				momBefore = values(t, m.VarStore(), IsMomentumState)
				for name, v := range m.VarStore().Variables() {
					if !IsMomentumState(name) {
						continue
					}
					g, err := v.Grad(false)
					if err != nil {
						return err
					}
					if ok, _ := g.Defined(); ok {
						t.Errorf("step %d: %s has a gradient", step, name)
					}
				}
				if err := opt.Step(tc.LR); err != nil {
					return err
				}
				momAfter = values(t, m.VarStore(), IsMomentumState)
				return opt.ZeroGrad()
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		for name, v := range momBefore {
			if !slices.Equal(v, momAfter[name]) {
				t.Fatalf("step %d: the optimizer step changed %s", step, name)
			}
		}
	}
	runtime.KeepAlive(m)
	t.Logf("ITC, total: step 0 %v, step %d %v", first, steps-1, last)
	if !(last[0] < first[0] && last[1] < first[1]) {
		t.Errorf("losses did not go down: %v -> %v", first, last)
	}
	if v, _ := torchx.Int64s(m.MomentumSteps); !slices.Equal(v, []int64{steps}) {
		t.Errorf("momentum_steps %v, want %d", v, steps)
	}
	if v, _ := torchx.Int64s(m.QueuePtr); !slices.Equal(v, []int64{steps * 4 % 12}) {
		t.Errorf("queue_ptr %v, want %d", v, steps*4%12)
	}
	// The copies moved towards the weights but trail them.
	p, _ := torchx.Float32s(m.momentumPairs[0][0])
	pm, _ := torchx.Float32s(m.momentumPairs[0][1])
	if slices.Equal(p, pm) {
		t.Errorf("the momentum copy of a trained parameter equals it")
	}

	// A training batch drops every tensor it makes (GC off, so that finalizers cannot hide a
	// leak).
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	runtime.GC()
	runtime.GC()
	var counts []int
	for i := 0; i < 3; i++ {
		err := torchx.WithGrad(func() error {
			l, err := m.Losses(batch, true)
			if err != nil {
				return err
			}
			l.Drop()
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		counts = append(counts, len(ts.ExistingTensors))
	}
	if counts[2] > counts[0] {
		t.Errorf("live tensors grew over training batches: %v", counts)
	}
}

// TestMomentumLoadWeights loads a Hugging Face retrieval checkpoint into a pre-training model
// with momentum: the momentum copies start again from the loaded weights, and the momentum
// state is neither reported as kept (it is training state) nor expected in the checkpoint.
func TestMomentumLoadWeights(t *testing.T) {
	cfg, err := ReadConfig(retrievalDir)
	if err != nil {
		t.Fatal(err)
	}
	torchx.Seed(2)
	m, err := NewPretrainer(cfg, momentumOptions(0.995, 8, 0.4), gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	before := values(t, m.VarStore(), nil)
	kept, unexpected, err := m.LoadWeights(retrievalDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(unexpected) != 0 {
		t.Errorf("unexpected %v", unexpected)
	}
	for _, name := range kept {
		if IsMomentumState(name) {
			t.Errorf("momentum state %s reported as kept", name)
		}
	}
	loaded := values(t, m.VarStore(), nil)
	for name, v := range loaded {
		if src, ok := momentumSource(name); ok && !slices.Equal(v, loaded[src]) {
			t.Errorf("%s is not a copy of the loaded %s", name, src)
		}
	}
	if !slices.Equal(loaded[imageQueueName], before[imageQueueName]) {
		t.Error("loading weights changed the queue")
	}
	// The copies follow the checkpoint, not the random initialisation.
	if slices.Equal(before["vision_proj_m.weight"], loaded["vision_proj_m.weight"]) {
		t.Error("vision_proj_m kept its initial value")
	}
}
