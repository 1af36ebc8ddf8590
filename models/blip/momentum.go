package blip

import (
	"fmt"
	"sort"
	"strings"

	"github.com/sugarme/gotch"
	gnn "github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/models"
	"github.com/imgcap/imgcap/torchx"
)

// BLIP's momentum distillation (Li et al. 2022, §3.2, after ALBEF; salesforce/BLIP
// models/blip_pretrain.py and blip_retrieval.py, LAVIS blip_models/blip_retrieval.py): momentum
// copies of the contrastive towers give the ITC keys, past keys wait in feature queues, and the
// ITC targets mix the positives with the momentum model's own similarities.
//
// The momentum state lives in the pre-training model's VarStore as non-persistent buffers: the
// trainer's checkpoints hold it (vs.Variables()), so a run resumes exactly, while Hugging Face
// state dicts (weights.SaveVarStore, imgcap export, weights.LoadInto) leave it out, as
// BlipForImageTextRetrieval has no such keys.

// momentumModules pairs each contrastive module with its momentum copy (BLIP's model_pairs,
// under Hugging Face-style prefixes).
var momentumModules = [][2]string{
	{"vision_model", "vision_model_m"},
	{"vision_proj", "vision_proj_m"},
	{"text_encoder", "text_encoder_m"},
	{"text_proj", "text_proj_m"},
}

// Names of the momentum buffers: BLIP's queues and queue pointer, and imgcap's step count.
const (
	imageQueueName    = "image_queue"
	textQueueName     = "text_queue"
	idxQueueName      = "idx_queue"
	queuePtrName      = "queue_ptr"
	momentumStepsName = "momentum_steps"
)

// NoImageID is the image id of queue entries that hold no image (BLIP fills idx_queue with it);
// rows of a batch without Batch.ImageIDs are queued with it too.
const NoImageID = -100

// IsMomentumState reports whether a pre-training model variable is momentum distillation state:
// a momentum copy (vision_model_m.*, vision_proj_m.*, text_encoder_m.*, text_proj_m.*), a queue,
// the queue pointer or the step count. Checkpoints hold these; Hugging Face folders do not.
func IsMomentumState(name string) bool {
	for _, p := range momentumModules {
		if strings.HasPrefix(name, p[1]+".") {
			return true
		}
	}
	switch name {
	case imageQueueName, textQueueName, idxQueueName, queuePtrName, momentumStepsName:
		return true
	}
	return false
}

// buildMomentum adds the momentum encoders (copies of the current weights, requires_grad off)
// and the queues under root when Opts.Momentum > 0.
func (m *Pretrainer) buildMomentum(root *gnn.Path) (err error) {
	o := m.Opts
	if o.Momentum == 0 {
		return nil
	}
	cfg := m.Cfg
	std := cfg.InitializerRange
	// The modules are built in a scratch store (gotch's builders add trainable, persistent
	// parameters) and their tensors then registered in the model's store as buffers.
	scratch := gnn.NewVarStore(root.Device())
	sr := scratch.Root()
	if m.VisionM, err = NewVisionModel(sr.Sub("vision_model_m"), cfg.Vision, std); err != nil {
		return fmt.Errorf("blip vision_model_m: %w", err)
	}
	// The momentum text encoder only ever runs on text alone (BLIP's mode='text'), so it gets no
	// cross-attention layers (BLIP builds them, unused).
	tc := cfg.Text
	tc.IsDecoder = false
	if m.EncoderM, err = NewTextModel(sr.Sub("text_encoder_m"), tc, std); err != nil {
		return fmt.Errorf("blip text_encoder_m: %w", err)
	}
	defer torchx.Catch(&err)
	d := int64(cfg.ImageTextHiddenSize)
	m.VisionProjM = linear(sr.Sub("vision_proj_m"), int64(cfg.Vision.HiddenSize), d, std)
	m.TextProjM = linear(sr.Sub("text_proj_m"), int64(cfg.Text.HiddenSize), d, std)
	names := make([]string, 0, scratch.Len())
	for name := range scratch.Variables() {
		names = append(names, name)
	}
	sort.Strings(names)
	torchx.MustOK(torchx.NoGrad(func() (err error) {
		defer torchx.Catch(&err)
		for _, name := range names {
			mt := torchx.Must(sr.Get(name)) // the tensor the module computes with
			src, ok := momentumSource(name)
			if !ok {
				return fmt.Errorf("blip: momentum variable %s has no counterpart", name)
			}
			p, err := root.Get(src)
			if err != nil {
				return fmt.Errorf("blip: momentum variable %s: the model has no %s", name, src)
			}
			torchx.MustOK(torchx.SetRequiresGrad(mt, false))
			torchx.MustOK(torchx.CopyInPlace(mt, p)) // BLIP's copy_params
			torchx.MustOK(addBuffer(root, name, mt))
			m.momentumPairs = append(m.momentumPairs, [2]*ts.Tensor{p, mt})
		}
		return nil
	}))
	dev := root.Device()
	if K := o.QueueSize; K > 0 {
		// BLIP: normalize(randn(embed_dim, queue_size), dim=0), ids −100, pointer 0.
		for _, q := range []struct {
			name string
			dst  **ts.Tensor
		}{{imageQueueName, &m.ImageQueue}, {textQueueName, &m.TextQueue}} {
			r := torchx.Must(ts.Randn([]int64{d, K}, gotch.Float, dev))
			n, err := normalizeDim(r, 0)
			r.Drop()
			torchx.MustOK(err)
			*q.dst, err = addBufferOwned(root, q.name, n)
			torchx.MustOK(err)
		}
		idx := torchx.Must(ts.Full([]int64{1, K}, ts.IntScalar(NoImageID), gotch.Int64, dev))
		m.IdxQueue = torchx.Must(addBufferOwned(root, idxQueueName, idx))
		ptr := torchx.Must(ts.Zeros([]int64{1}, gotch.Int64, dev))
		m.QueuePtr = torchx.Must(addBufferOwned(root, queuePtrName, ptr))
	}
	steps := torchx.Must(ts.Zeros([]int64{1}, gotch.Int64, dev))
	m.MomentumSteps = torchx.Must(addBufferOwned(root, momentumStepsName, steps))
	return nil
}

// momentumSource is the parameter a momentum variable follows ("vision_model_m.x" → "vision_model.x").
func momentumSource(name string) (string, bool) {
	for _, p := range momentumModules {
		if rest, ok := strings.CutPrefix(name, p[1]+"."); ok {
			return p[0] + "." + rest, true
		}
	}
	return "", false
}

// addBuffer registers t (kept by its module) as a non-persistent buffer of the store under its
// dotted name.
func addBuffer(root *gnn.Path, name string, t *ts.Tensor) error {
	// gotch's paths take one name segment at a time (a dot in a name exits the process).
	parts := strings.Split(name, ".")
	p := root
	for _, s := range parts[:len(parts)-1] {
		p = p.Sub(s)
	}
	// Add keeps its own handle to t's tensor (same storage and autograd flags).
	_, err := p.Add(parts[len(parts)-1], t, false, gnn.WithVarType("buffer"), gnn.WithPersistent(false))
	return torchx.Err("add "+name, err)
}

// addBufferOwned registers t as a non-persistent buffer, frees t's handle and returns the
// store's.
func addBufferOwned(root *gnn.Path, name string, t *ts.Tensor) (*ts.Tensor, error) {
	defer t.Drop()
	v, err := root.Add(name, t, false, gnn.WithVarType("buffer"), gnn.WithPersistent(false))
	return v, torchx.Err("add "+name, err)
}

// normalizeDim is F.normalize(x, dim=d): x / max(‖x‖₂ along d, 1e-12).
func normalizeDim(x *ts.Tensor, d int64) (out *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	n := torchx.Must(x.NormScalaroptDim(ts.FloatScalar(2), []int64{d}, true, false))
	defer n.Drop()
	c := torchx.Must(n.ClampMin(ts.FloatScalar(1e-12), false))
	defer c.Drop()
	return x.Div(c, false)
}

// syncMomentum copies every parameter into its momentum copy (BLIP's copy_params), e.g. after
// loading pretrained weights.
func (m *Pretrainer) syncMomentum() error {
	return torchx.NoGrad(func() error {
		for _, p := range m.momentumPairs {
			if err := torchx.CopyInPlace(p[1], p[0]); err != nil {
				return err
			}
		}
		return nil
	})
}

// momentumUpdate is BLIP's _momentum_update: p_m = p_m·Momentum + p·(1 − Momentum) for every
// pair, in that operation order, without recording gradients.
func (m *Pretrainer) momentumUpdate() error {
	mm := m.Opts.Momentum
	return torchx.NoGrad(func() error {
		for _, p := range m.momentumPairs {
			if err := torchx.MulScalarInPlace(p[1], mm); err != nil {
				return err
			}
			w, err := p[0].MulScalar(ts.FloatScalar(1-mm), false)
			if err != nil {
				return torchx.Err("momentum update", err)
			}
			err = torchx.AddInPlace(p[1], w)
			w.Drop()
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// int64Value reads a one-element int64 buffer.
func int64Value(t *ts.Tensor, name string) (int64, error) {
	v, err := torchx.Int64s(t)
	if err != nil {
		return 0, fmt.Errorf("blip %s: %w", name, err)
	}
	if len(v) != 1 {
		return 0, fmt.Errorf("blip %s: %d values, want 1", name, len(v))
	}
	return v[0], nil
}

// enqueue is BLIP's _dequeue_and_enqueue: the B momentum features [B, D] and their image ids
// (nil: NoImageID) overwrite the queue columns from queue_ptr on, and queue_ptr advances by B
// modulo QueueSize. Unlike BLIP, which asserts that QueueSize is a multiple of B, a batch that
// does not fit before the end wraps around to column 0 (so batch sizes need not divide the
// queue, e.g. an epoch's last, smaller batch); B must not exceed QueueSize.
func (m *Pretrainer) enqueue(imgFeatM, txtFeatM *ts.Tensor, ids []int64) error {
	K := m.Opts.QueueSize
	if K == 0 {
		return nil
	}
	return torchx.NoGrad(func() (err error) {
		defer torchx.Catch(&err)
		B := torchx.MustSize(imgFeatM)[0]
		if B > K {
			return fmt.Errorf("blip pretrain: a batch of %d rows does not fit the queue of %d", B, K)
		}
		ptr, err := int64Value(m.QueuePtr, queuePtrName)
		torchx.MustOK(err)
		if ptr < 0 || ptr >= K {
			return fmt.Errorf("blip pretrain: queue_ptr %d outside [0, %d)", ptr, K)
		}
		qids := make([]int64, B)
		for i := range qids {
			qids[i] = NoImageID
			if len(ids) == int(B) {
				qids[i] = ids[i]
			}
		}
		idT := torchx.Must(int64Row(qids, m.Device()))
		defer idT.Drop()
		imgT := torchx.Must(imgFeatM.T(false))
		defer imgT.Drop()
		txtT := torchx.Must(txtFeatM.T(false))
		defer txtT.Drop()
		first := min(B, K-ptr)
		for _, seg := range [][3]int64{{ptr, 0, first}, {0, first, B - first}} { // queue column, batch row, count
			if seg[2] == 0 {
				continue
			}
			for _, w := range [][2]*ts.Tensor{{m.ImageQueue, imgT}, {m.TextQueue, txtT}, {m.IdxQueue, idT}} {
				dst := torchx.Must(w[0].Narrow(1, seg[0], seg[2], false))
				src, err := w[1].Narrow(1, seg[1], seg[2], false)
				if err != nil {
					dst.Drop()
					return torchx.Err("enqueue", err)
				}
				err = torchx.CopyInPlace(dst, src)
				dst.Drop()
				src.Drop()
				torchx.MustOK(err)
			}
		}
		return torchx.FillInPlace(m.QueuePtr, (ptr+B)%K)
	})
}

// int64Row is v as an int64 tensor [1, len(v)] on dev.
func int64Row(v []int64, dev gotch.Device) (out *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	t := torchx.Must(ts.OfSlice(v))
	t = torchx.Must(t.View([]int64{1, int64(len(v))}, true))
	if dev != gotch.CPU {
		t = torchx.Must(t.To(dev, true))
	}
	return t, nil
}

// queuePositives is the positive-pair matrix [B, B+K] of BLIP's retrieval ITC: the in-batch
// positives posBatch [B, B], then queue entry k is a positive of row i when their image ids are
// equal (idx_queue; none without Batch.ImageIDs). Without a queue it is posBatch's values.
func (m *Pretrainer) queuePositives(ids []int64, posBatch *ts.Tensor) (out *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	B := torchx.MustSize(posBatch)[0]
	if m.Opts.QueueSize == 0 {
		return posBatch.ShallowClone()
	}
	var q *ts.Tensor
	if len(ids) == int(B) {
		row := torchx.Must(int64Row(ids, m.Device()))
		col := torchx.Must(row.T(true))
		eq := torchx.Must(col.EqTensor(m.IdxQueue, false)) // [B, 1] == [1, K] → [B, K]
		col.Drop()
		q = torchx.Must(eq.Totype(gotch.Float, true))
	} else {
		q = torchx.Must(ts.Zeros([]int64{B, m.Opts.QueueSize}, gotch.Float, m.Device()))
	}
	defer q.Drop()
	return ts.Cat([]*ts.Tensor{posBatch, q}, 1)
}

// momentumKeys is cat([featM.T, queue], dim=1): [D, B+K] (queue nil: [D, B]).
func momentumKeys(featM, queue *ts.Tensor) (out *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	t := torchx.Must(featM.T(false))
	if queue == nil {
		return t, nil
	}
	defer t.Drop()
	return ts.Cat([]*ts.Tensor{t, queue}, 1)
}

// MomentumContrastiveLoss is BLIP's ITC with momentum distillation for a batch of B rows: image
// and text features imgFeat, txtFeat [B, D] (normalised, the model's: gradients flow through
// them and temp), the momentum encoders' features imgFeatM, txtFeatM [B, D], the queued
// momentum features imgQueue, txtQueue [D, K] (nil for none), the temperature (0-d or [1]),
// the positive-pair matrix pos [B, B+K] (columns: the batch's momentum features, then the
// queue) and the distillation weight alpha. With keys_img = [imgFeatM.T, imgQueue] and
// keys_txt = [txtFeatM.T, txtQueue],
//
//	sim_i2t = imgFeat·keys_txt / temp,  sim_t2i = txtFeat·keys_img / temp
//	targets = pos / rowsum(pos)
//	targets_i2t = alpha·softmax(imgFeatM·keys_txt / temp) + (1 − alpha)·targets   (no gradient)
//	targets_t2i = alpha·softmax(txtFeatM·keys_img / temp) + (1 − alpha)·targets
//	loss = (mean_i −Σ_j log_softmax(sim_i2t)·targets_i2t + mean_i −Σ_j log_softmax(sim_t2i)·targets_t2i) / 2
func MomentumContrastiveLoss(imgFeat, txtFeat, imgFeatM, txtFeatM, imgQueue, txtQueue, temp, pos *ts.Tensor, alpha float64) (loss *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	var keysImg, keysTxt, tgtI2T, tgtT2I *ts.Tensor
	defer func() {
		for _, t := range []*ts.Tensor{keysImg, keysTxt, tgtI2T, tgtT2I} {
			if t != nil {
				t.Drop()
			}
		}
	}()
	torchx.MustOK(torchx.NoGrad(func() (err error) {
		defer torchx.Catch(&err)
		keysImg = torchx.Must(momentumKeys(imgFeatM, imgQueue))
		keysTxt = torchx.Must(momentumKeys(txtFeatM, txtQueue))
		rowSum := torchx.Must(pos.SumDimIntlist([]int64{1}, true, gotch.Float, false))
		defer rowSum.Drop()
		targets := torchx.Must(pos.Div(rowSum, false))
		if alpha == 0 {
			tgtI2T = targets
			tgtT2I = torchx.Must(targets.ShallowClone())
			return nil
		}
		defer targets.Drop()
		soft := func(q, keys *ts.Tensor) *ts.Tensor {
			raw := torchx.Must(q.Matmul(keys, false))
			defer raw.Drop()
			s := torchx.Must(raw.Div(temp, false))
			defer s.Drop()
			p := torchx.Must(s.Softmax(1, gotch.Float, false))
			defer p.Drop()
			a := torchx.Must(p.MulScalar(ts.FloatScalar(alpha), false))
			defer a.Drop()
			b := torchx.Must(targets.MulScalar(ts.FloatScalar(1-alpha), false))
			defer b.Drop()
			return torchx.Must(a.Add(b, false))
		}
		tgtI2T = soft(imgFeatM, keysTxt)
		tgtT2I = soft(txtFeatM, keysImg)
		return nil
	}))
	dir := func(q, keys, tg *ts.Tensor) *ts.Tensor {
		raw := torchx.Must(q.Matmul(keys, false))
		defer raw.Drop()
		s := torchx.Must(raw.Div(temp, false))
		defer s.Drop()
		return torchx.Must(softCrossEntropy(s, tg))
	}
	a := dir(imgFeat, keysTxt, tgtI2T)
	defer a.Drop()
	b := dir(txtFeat, keysImg, tgtT2I)
	defer b.Drop()
	sum := torchx.Must(a.Add(b, false))
	defer sum.Drop()
	return sum.DivScalar(ts.FloatScalar(2), false)
}

// momentumITC is the ITC of a training batch with momentum distillation: it advances the
// momentum encoders (BLIP updates them inside forward, before the momentum features), computes
// MomentumContrastiveLoss with the distillation weight of this step, and enqueues the batch's
// momentum features. It also returns the in-batch similarities imgFeat·txtFeatᵀ / temp
// (detached), from which ITM draws its hard negatives as BLIP's retrieval model does, and the
// distillation weight it used. fi and ft are the model's features, posBatch the in-batch
// positives [B, B].
func (m *Pretrainer) momentumITC(b *models.Batch, fi, ft, posBatch *ts.Tensor, train bool) (loss, simI2T *ts.Tensor, alpha float64, err error) {
	defer torchx.Catch(&err)
	B := torchx.MustSize(fi)[0]
	if K := m.Opts.QueueSize; K > 0 && B > K {
		return nil, nil, 0, fmt.Errorf("blip pretrain: a batch of %d rows does not fit the queue of %d (queue size must be at least the batch size)", B, K)
	}
	var fiM, ftM *ts.Tensor
	defer func() {
		for _, t := range []*ts.Tensor{fiM, ftM} {
			if t != nil {
				t.Drop()
			}
		}
	}()
	torchx.MustOK(torchx.NoGrad(func() (err error) {
		defer torchx.Catch(&err)
		step, err := int64Value(m.MomentumSteps, momentumStepsName)
		torchx.MustOK(err)
		alpha = m.Opts.Alpha
		if r := m.Opts.AlphaRampSteps; r > 0 {
			alpha *= min(1, float64(step)/float64(r))
		}
		torchx.MustOK(m.momentumUpdate())
		torchx.MustOK(torchx.FillInPlace(m.MomentumSteps, step+1))
		imgM := torchx.Must(m.VisionM.Forward(b.Pixels, train))
		defer imgM.Drop()
		fiM = torchx.Must(projectFirst(m.VisionProjM, imgM))
		thM := torchx.Must(m.EncoderM.Forward(TextInput{IDs: b.InputIDs, Mask: b.AttentionMask, Train: train}))
		defer thM.Drop()
		ftM = torchx.Must(projectFirst(m.TextProjM, thM))
		return nil
	}))
	pos := torchx.Must(m.queuePositives(b.ImageIDs, posBatch))
	defer pos.Drop()
	loss = torchx.Must(MomentumContrastiveLoss(fi, ft, fiM, ftM, m.ImageQueue, m.TextQueue, m.Temp, pos, alpha))
	err = torchx.NoGrad(func() (err error) {
		defer torchx.Catch(&err)
		torchx.MustOK(m.enqueue(fiM, ftM, b.ImageIDs))
		ftT := torchx.Must(ft.T(false))
		defer ftT.Drop()
		raw := torchx.Must(fi.Matmul(ftT, false))
		defer raw.Drop()
		simI2T = torchx.Must(raw.Div(m.Temp, false))
		return nil
	})
	if err != nil {
		loss.Drop()
		return nil, nil, 0, err
	}
	return loss, simI2T, alpha, nil
}
