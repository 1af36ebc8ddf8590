package train

import (
	"context"
	"io"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/models"
	"github.com/imgcap/imgcap/torchx"
)

// toyModel is a small classifier: Linear -> LayerNorm -> ReLU -> Dropout -> Linear, plus a frozen
// bias. It reads b.Pixels as [B, in] features and b.InputIDs as [B] class labels.
type toyModel struct {
	vs                       *nn.VarStore
	w1, b1, lnw, lnb, w2, b2 *ts.Tensor
	frozen                   *ts.Tensor
	in, hidden, classes      int64
	dropout                  float64
	noDecay                  func(string) bool
}

func newToy(t testing.TB, seed int64, in, hidden, classes int64, dropout float64) *toyModel {
	t.Helper()
	m := &toyModel{vs: nn.NewVarStore(gotch.CPU), in: in, hidden: hidden, classes: classes, dropout: dropout}
	err := torchx.Locked(func() error {
		torchx.Seed(seed)
		root := m.vs.Root()
		fc1, ln, fc2 := root.Sub("fc1"), root.Sub("ln"), root.Sub("fc2")
		var err error
		if m.w1, err = fc1.KaimingUniform("weight", []int64{in, hidden}); err != nil {
			return err
		}
		if m.b1, err = fc1.Uniform("bias", []int64{hidden}, -0.1, 0.1); err != nil {
			return err
		}
		if m.lnw, err = ln.Ones("weight", []int64{hidden}); err != nil {
			return err
		}
		if m.lnb, err = ln.Zeros("bias", []int64{hidden}); err != nil {
			return err
		}
		if m.w2, err = fc2.KaimingUniform("weight", []int64{hidden, classes}); err != nil {
			return err
		}
		if m.b2, err = fc2.Zeros("bias", []int64{classes}); err != nil {
			return err
		}
		fb, err := ts.Randn([]int64{classes}, gotch.Float, gotch.CPU)
		if err != nil {
			return err
		}
		m.frozen, err = root.Add("frozen_bias", fb, false)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (m *toyModel) VarStore() *nn.VarStore { return m.vs }

func (m *toyModel) Loss(b *models.Batch, train bool) (*ts.Tensor, error) {
	h, err := b.Pixels.Matmul(m.w1, false)
	if err != nil {
		return nil, err
	}
	if h, err = h.Add(m.b1, true); err != nil {
		return nil, err
	}
	if h, err = ts.LayerNorm(h, []int64{m.hidden}, m.lnw, m.lnb, 1e-5, false); err != nil {
		return nil, err
	}
	if h, err = h.Relu(true); err != nil {
		return nil, err
	}
	if m.dropout > 0 {
		if h, err = ts.Dropout(h, m.dropout, train); err != nil {
			return nil, err
		}
	}
	if h, err = h.Matmul(m.w2, true); err != nil {
		return nil, err
	}
	if h, err = h.Add(m.b2, true); err != nil {
		return nil, err
	}
	if h, err = h.Add(m.frozen, true); err != nil {
		return nil, err
	}
	return h.CrossEntropyLoss(b.InputIDs, ts.None, 1, -100, 0, true)
}

// noDecayModel is a toyModel that chooses its own no-decay parameters.
type noDecayModel struct{ *toyModel }

func (m noDecayModel) NoDecay(name string) bool { return m.noDecay(name) }

// toyData is a fixed synthetic classification set: features from a fixed generator, labels
// from a random linear teacher.
type toyData struct {
	x       [][]float32
	y       []int64
	batch   int
	seed    int64
	shuffle bool
	opened  []int // skip value of every Epoch call, for tests
}

func newToyData(n, in, classes, batch int, seed uint64) *toyData {
	r := rand.New(rand.NewPCG(seed, 99))
	teacher := make([][]float64, in)
	for i := range teacher {
		teacher[i] = make([]float64, classes)
		for j := range teacher[i] {
			teacher[i][j] = r.NormFloat64()
		}
	}
	d := &toyData{batch: batch, seed: int64(seed), shuffle: true}
	for k := 0; k < n; k++ {
		row := make([]float32, in)
		for i := range row {
			row[i] = float32(r.NormFloat64())
		}
		best, bestV := 0, -1e300
		for j := 0; j < classes; j++ {
			v := 0.0
			for i := range row {
				v += float64(row[i]) * teacher[i][j]
			}
			if v > bestV {
				best, bestV = j, v
			}
		}
		d.x = append(d.x, row)
		d.y = append(d.y, int64(best))
	}
	return d
}

func (d *toyData) StepsPerEpoch() int { return len(d.x) / d.batch }

func (d *toyData) Epoch(_ context.Context, epoch, skip int) (Iterator, error) {
	d.opened = append(d.opened, skip)
	order := make([]int, len(d.x))
	for i := range order {
		order[i] = i
	}
	if d.shuffle {
		order = EpochPermutation(d.seed, epoch, len(d.x))
	}
	return &toyIter{d: d, order: order, pos: skip * d.batch}, nil
}

type toyIter struct {
	d     *toyData
	order []int
	pos   int
}

func (it *toyIter) Next() (*models.Batch, error) {
	if it.pos+it.d.batch > len(it.order) {
		return nil, io.EOF
	}
	in := int64(len(it.d.x[0]))
	var xs []float32
	var ys []int64
	for _, i := range it.order[it.pos : it.pos+it.d.batch] {
		xs = append(xs, it.d.x[i]...)
		ys = append(ys, it.d.y[i])
	}
	it.pos += it.d.batch
	x, err := ts.OfSlice(xs)
	if err != nil {
		return nil, err
	}
	xv, err := x.View([]int64{int64(it.d.batch), in}, true)
	if err != nil {
		return nil, err
	}
	y, err := ts.OfSlice(ys)
	if err != nil {
		return nil, err
	}
	return &models.Batch{Pixels: xv, InputIDs: y}, nil
}

func (it *toyIter) Close() error { return nil }

// snapshot copies every variable of a VarStore, by name.
func snapshot(t testing.TB, vs *nn.VarStore) map[string]*ts.Tensor {
	t.Helper()
	out := map[string]*ts.Tensor{}
	err := torchx.NoGrad(func() error {
		for name, v := range vs.Variables() {
			c, err := v.ZerosLike(false)
			if err != nil {
				return err
			}
			if err := torchx.CopyInPlace(c, &v); err != nil {
				return err
			}
			out[name] = c
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	runtime.KeepAlive(vs)
	return out
}

// sameTensors reports the names whose tensors are not bitwise equal (or missing).
func sameTensors(t testing.TB, a, b map[string]*ts.Tensor) []string {
	t.Helper()
	var diff []string
	for name, x := range a {
		y, ok := b[name]
		if !ok {
			diff = append(diff, name+" (missing)")
			continue
		}
		eq, err := x.Equal(y, false)
		if err != nil {
			t.Fatal(err)
		}
		if !eq {
			diff = append(diff, name)
		}
	}
	if len(a) != len(b) {
		diff = append(diff, "different tensor counts")
	}
	return diff
}

func values(t testing.TB, x *ts.Tensor) []float64 {
	t.Helper()
	d, err := x.Totype(gotch.Double, false)
	if err != nil {
		t.Fatal(err)
	}
	n := d.Numel()
	out := make([]float64, n)
	if err := d.CopyData(out, n); err != nil {
		t.Fatal(err)
	}
	return out
}
