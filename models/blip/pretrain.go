package blip

import (
	"fmt"

	"github.com/sugarme/gotch"
	gnn "github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/models"
	"github.com/imgcap/imgcap/nn"
	"github.com/imgcap/imgcap/torchx"
)

// PretrainOptions configure BLIP's pre-training objectives (Li et al. 2022, §3.2; LAVIS
// blip_pretrain): image-text contrastive (ITC), image-text matching with hard negatives (ITM)
// and image-conditioned language modelling (LM).
type PretrainOptions struct {
	// WeightITC, WeightITM and WeightLM weigh the three losses in the total (BLIP: 1, 1, 1).
	WeightITC, WeightITM, WeightLM float64
	// TempInit is the contrastive temperature's initial value (BLIP: 0.07).
	TempInit float64
	// TempMin and TempMax bound the temperature, clamped before every use (BLIP: 0.001, 0.5).
	TempMin, TempMax float64
	// LabelSmoothing is the LM loss's label smoothing (BLIP: 0.1).
	LabelSmoothing float64
	// ITMFirstToken, when ≥ 0, replaces the first token of the ITM text (BLIP's [ENC] token);
	// −1 keeps the tokenizer's [CLS], as Hugging Face's BlipForImageTextRetrieval does.
	ITMFirstToken int64
	// Momentum, when > 0, turns on BLIP's momentum distillation (BLIP: 0.995): momentum copies
	// of the contrastive towers, updated p_m = Momentum·p_m + (1 − Momentum)·p at every training
	// batch, give the ITC keys (see MomentumContrastiveLoss). 0 keeps the in-batch ITC. A
	// training batch is one Losses call: with gradient accumulation the copies move at every
	// micro-batch (BLIP accumulates nothing).
	Momentum float64
	// QueueSize is how many past momentum features (with their image ids) are kept as extra ITC
	// keys (BLIP: 57600); 0 = none. It needs Momentum.
	QueueSize int64
	// Alpha is the distillation weight: the ITC targets are Alpha·softmax(momentum similarities)
	// + (1 − Alpha)·positives (BLIP: 0.4); 0 = the positives alone. It needs Momentum.
	Alpha float64
	// AlphaRampSteps, when > 0, ramps the distillation weight up over the first training
	// batches: batch n (counted from 0 over the whole run) uses Alpha·min(1, n/AlphaRampSteps).
	// BLIP ramps over one epoch in retrieval fine-tuning and two in pre-training.
	AlphaRampSteps int64
}

// DefaultPretrainOptions are BLIP's settings, with Hugging Face's ITM input (no [ENC] token) and
// without momentum distillation (BLIP's Momentum 0.995, QueueSize 57600, Alpha 0.4 turn it on).
func DefaultPretrainOptions() PretrainOptions {
	return PretrainOptions{
		WeightITC: 1, WeightITM: 1, WeightLM: 1, TempInit: 0.07, TempMin: 0.001, TempMax: 0.5,
		LabelSmoothing: HFLabelSmoothing, ITMFirstToken: -1,
	}
}

// Validate reports the first inconsistent value.
func (o PretrainOptions) Validate() error {
	switch {
	case o.WeightITC < 0 || o.WeightITM < 0 || o.WeightLM < 0 || o.WeightITC+o.WeightITM+o.WeightLM == 0:
		return fmt.Errorf("blip pretrain: loss weights %g, %g, %g must be ≥ 0 and not all 0", o.WeightITC, o.WeightITM, o.WeightLM)
	case !(o.TempMin > 0 && o.TempMin <= o.TempMax):
		return fmt.Errorf("blip pretrain: temperature bounds [%g, %g] must satisfy 0 < min ≤ max", o.TempMin, o.TempMax)
	case o.TempInit < o.TempMin || o.TempInit > o.TempMax:
		return fmt.Errorf("blip pretrain: initial temperature %g outside [%g, %g]", o.TempInit, o.TempMin, o.TempMax)
	case o.LabelSmoothing < 0 || o.LabelSmoothing > 1:
		return fmt.Errorf("blip pretrain: label smoothing %g must be in [0, 1]", o.LabelSmoothing)
	case !(o.Momentum >= 0 && o.Momentum < 1):
		return fmt.Errorf("blip pretrain: momentum %g must be in [0, 1) (0 = no momentum encoders)", o.Momentum)
	case o.QueueSize < 0:
		return fmt.Errorf("blip pretrain: queue_size %d must be ≥ 0", o.QueueSize)
	case !(o.Alpha >= 0 && o.Alpha <= 1):
		return fmt.Errorf("blip pretrain: alpha %g must be in [0, 1]", o.Alpha)
	case o.AlphaRampSteps < 0:
		return fmt.Errorf("blip pretrain: alpha_ramp_steps %d must be ≥ 0", o.AlphaRampSteps)
	case o.Momentum == 0 && (o.QueueSize > 0 || o.Alpha > 0 || o.AlphaRampSteps > 0):
		return fmt.Errorf("blip pretrain: queue_size %d, alpha %g and alpha_ramp_steps %d need the momentum encoders (momentum > 0)", o.QueueSize, o.Alpha, o.AlphaRampSteps)
	case o.Momentum > 0 && o.WeightITC == 0:
		return fmt.Errorf("blip pretrain: momentum %g serves the ITC objective, whose weight is 0", o.Momentum)
	}
	return nil
}

// Pretrainer holds BLIP's three pre-training heads over one image encoder, under Hugging Face's
// names where Hugging Face has the module: vision_model.*, text_encoder.*, vision_proj,
// text_proj, itm_head (as in BlipForImageTextRetrieval) and text_decoder.* (as in
// BlipForConditionalGeneration; built only when Opts.WeightLM > 0), so either checkpoint
// initialises its part. The contrastive
// temperature has no Hugging Face counterpart (BlipModel's logit_scale is a different
// parametrisation, and the retrieval model has none); it is the parameter "temp", BLIP's and
// LAVIS's name. Unlike BLIP, the encoder and decoder share no weights.
//
// With Opts.Momentum > 0 the model also holds BLIP's momentum distillation state:
// vision_model_m.*, vision_proj_m.*, text_encoder_m.* (without cross-attention, which BLIP's
// builds but never runs) and text_proj_m.*, copies of their counterparts that follow them as
// p_m = m·p_m + (1 − m)·p (no gradients, not optimised); image_queue and text_queue (queued
// momentum features, [image_text_hidden_size, QueueSize]), idx_queue (their image ids) and
// queue_ptr, BLIP's names; and momentum_steps, the count of training batches that clocks the
// distillation ramp. They are non-persistent buffers of the VarStore: training checkpoints hold
// them, so a run resumes exactly, and Hugging Face state dicts (export, LoadWeights) leave them
// out. Training batches (Losses with train set) update the momentum encoders first, as BLIP's
// forward does, then compute the ITC against the momentum features of the batch and the queue
// (MomentumContrastiveLoss) and enqueue the batch; evaluation batches compute the plain
// in-batch ITC and change nothing. ITM draws its hard negatives from the model's own in-batch
// similarities in both cases, as BLIP's retrieval model does (BLIP's pre-training model draws
// them from the similarities to the batch's momentum features). Under data-parallel training
// every process keeps its own queue of its own rows (BLIP all-gathers the ranks' features
// before enqueueing); the momentum encoders stay identical across processes, as the weights do.
type Pretrainer struct {
	Cfg        Config
	Opts       PretrainOptions
	vs         *gnn.VarStore
	Vision     *VisionModel
	Encoder    *TextModel
	Decoder    *TextModel
	Head       *LMHead
	VisionProj *nn.Linear
	TextProj   *nn.Linear
	ITMHead    *nn.Linear
	// Temp is the contrastive temperature (0-d).
	Temp *ts.Tensor
	// VisionM, EncoderM, VisionProjM and TextProjM are the momentum encoders (nil when
	// Opts.Momentum is 0).
	VisionM                *VisionModel
	EncoderM               *TextModel
	VisionProjM, TextProjM *nn.Linear
	// ImageQueue and TextQueue are the queued momentum features [image_text_hidden_size,
	// QueueSize] (unit columns), IdxQueue [1, QueueSize] int64 their image ids (NoImageID:
	// none) and QueuePtr [1] int64 the next column written; nil without a queue.
	ImageQueue, TextQueue, IdxQueue, QueuePtr *ts.Tensor
	// MomentumSteps [1] int64 counts the training batches seen with momentum on (nil when off).
	MomentumSteps *ts.Tensor
	// momentumPairs are (parameter, momentum copy) in momentum-name order.
	momentumPairs [][2]*ts.Tensor
}

// NewPretrainer builds a randomly initialised pre-training model on device.
func NewPretrainer(cfg Config, opts PretrainOptions, device gotch.Device) (m *Pretrainer, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if !cfg.Text.IsDecoder {
		return nil, fmt.Errorf("blip pretrain: text_config.is_decoder is false, so the text models have no cross-attention")
	}
	vs := gnn.NewVarStore(device)
	root := vs.Root()
	m = &Pretrainer{Cfg: cfg, Opts: opts, vs: vs}
	// The retrieval half, built exactly as BlipForImageTextRetrieval.
	r := &Retrieval{Cfg: cfg}
	if err := r.build(root); err != nil {
		return nil, err
	}
	m.Vision, m.Encoder, m.VisionProj, m.TextProj, m.ITMHead = r.Vision, r.Text, r.VisionProj, r.TextProj, r.ITMHead
	// The decoder exists only when the LM objective is trained (retrieval fine-tuning trains ITC
	// and ITM alone and should not carry a second BERT and its optimizer state).
	if opts.WeightLM > 0 {
		std := cfg.InitializerRange
		dec := root.Sub("text_decoder")
		if m.Decoder, err = NewTextModel(dec.Sub("bert"), cfg.Text, std); err != nil {
			return nil, fmt.Errorf("blip text_decoder: %w", err)
		}
		if m.Head, err = NewLMHead(dec.Sub("cls").Sub("predictions"), cfg.Text, std); err != nil {
			return nil, fmt.Errorf("blip text_decoder.cls: %w", err)
		}
	}
	// 0-d like BLIP's nn.Parameter(0.07 * torch.ones([])); gotch's initialisers cannot build a
	// 0-d tensor, so it is squeezed from [1] and added.
	if m.Temp, err = scalarParam(root, "temp", opts.TempInit); err != nil {
		return nil, fmt.Errorf("blip temp: %w", err)
	}
	// Last, so that the other parameters draw the same initial values with momentum on or off.
	if err := m.buildMomentum(root); err != nil {
		return nil, err
	}
	return m, nil
}

// scalarParam adds a trainable 0-d parameter of value v under p.
func scalarParam(p *gnn.Path, name string, v float64) (out *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	one := torchx.Must(ts.Full([]int64{1}, ts.FloatScalar(v), gotch.Float, p.Device()))
	defer one.Drop()
	view := torchx.Must(one.Squeeze(false))
	defer view.Drop()
	// A fresh tensor, not a view of one (registering the squeezed view itself left a parameter
	// that libtorch later failed to read).
	zero := torchx.Must(view.MulScalar(ts.FloatScalar(1), false))
	defer zero.Drop()
	return p.Add(name, zero, true)
}

// VarStore holds every parameter.
func (m *Pretrainer) VarStore() *gnn.VarStore { return m.vs }

// Retrieval is the pre-training model's BlipForImageTextRetrieval part (vision model, text
// encoder, projections, ITM head), sharing its parameters: for matching and retrieval evaluation.
func (m *Pretrainer) Retrieval() *Retrieval {
	return &Retrieval{Cfg: m.Cfg, vs: m.vs, Vision: m.Vision, Text: m.Encoder, VisionProj: m.VisionProj,
		TextProj: m.TextProj, ITMHead: m.ITMHead}
}

// Captioner is the pre-training model's BlipForConditionalGeneration part (vision model, text
// decoder, LM head), sharing its parameters, with Hugging Face's generation defaults; nil when
// the model has no decoder (Opts.WeightLM was 0).
func (m *Pretrainer) Captioner() *Captioner {
	if m.Decoder == nil {
		return nil
	}
	return &Captioner{Cfg: m.Cfg, vs: m.vs, Vision: m.Vision, Text: m.Decoder, Head: m.Head,
		Gen: nn.DefaultGenerationConfig()}
}

// Device is where the parameters live.
func (m *Pretrainer) Device() gotch.Device { return m.vs.Device() }

// ClampTemp clamps the temperature into [TempMin, TempMax] in place, without recording
// gradients (BLIP does so at the start of every forward).
func (m *Pretrainer) ClampTemp() error {
	return torchx.NoGrad(func() error {
		return torchx.Err("clamp temperature", m.Temp.Clamp_(ts.FloatScalar(m.Opts.TempMin), ts.FloatScalar(m.Opts.TempMax)))
	})
}

// PretrainLosses are one batch's losses (scalar tensors that support Backward; nil for an
// objective of weight 0) and the ITM negatives that were sampled.
type PretrainLosses struct {
	ITC, ITM, LM, Total *ts.Tensor
	// NegImage[i] is the image paired with text i as a hard negative; NegText[i] the text paired
	// with image i.
	NegImage, NegText []int64
	// Alpha is the distillation weight the ITC used (0 without momentum distillation).
	Alpha float64
}

// Drop frees the loss tensors.
func (l *PretrainLosses) Drop() {
	for _, t := range []*ts.Tensor{l.ITC, l.ITM, l.LM, l.Total} {
		if t != nil {
			t.Drop()
		}
	}
}

// Loss is the weighted sum of the ITC, ITM and LM losses of a batch (see Losses).
func (m *Pretrainer) Loss(b *models.Batch, train bool) (loss *ts.Tensor, err error) {
	l, err := m.Losses(b, train)
	if err != nil {
		return nil, err
	}
	total := l.Total
	l.Total = nil
	l.Drop()
	return total, nil
}

// Losses computes BLIP's three objectives on a batch of images and their captions (InputIDs:
// tokenizer output [CLS] caption [SEP], right-padded; AttentionMask 0 marks padding):
//
//   - ITC: image features normalize(vision_proj(img[:, 0])) and text features
//     normalize(text_proj(text_encoder(ids)[:, 0])) (no cross-attention); similarities divided by
//     the clamped temperature; cross-entropy in both directions against the positives, averaged.
//     With Opts.Momentum > 0 and train set, BLIP's momentum distillation instead (see
//     Pretrainer and MomentumContrastiveLoss): the keys are the momentum features of the batch
//     and the queue, queue entries of the same image id are positives too, and the targets
//     mix in the momentum similarities with weight Alpha (ramped, see AlphaRampSteps).
//   - ITM: text_encoder with cross-attention on (text i, image i) pairs, and on hard negatives
//     drawn from the softmax of the in-batch ITC similarities of the model's own features
//     (positives get weight 0): one negative image per text and one negative text per image;
//     itm_head on token 0, label 1 for the B positive pairs and 0 for the 2B negative ones.
//   - LM: text_decoder on the caption with [CLS] replaced by bos_token_id, padding ignored,
//     label smoothing Opts.LabelSmoothing.
//
// Rows whose Batch.ImageIDs are equal show the same image and count as positives of each other
// (LAVIS's retrieval fine-tuning); without ImageIDs each row's only positive is itself. Every
// row needs at least one row of another image. Negatives are sampled with libtorch's generator
// (torchx.Seed makes them reproducible).
func (m *Pretrainer) Losses(b *models.Batch, train bool) (res *PretrainLosses, err error) {
	if b == nil || b.Pixels == nil || b.InputIDs == nil {
		return nil, fmt.Errorf("blip pretrain: the batch needs pixels and input ids")
	}
	out := &PretrainLosses{}
	defer func() { // runs after Catch has set err
		if err != nil {
			out.Drop()
		}
	}()
	defer torchx.Catch(&err)
	torchx.MustOK(checkIDs(b.InputIDs, m.Cfg.Text.VocabSize))
	B := torchx.MustSize(b.Pixels)[0]
	if is := torchx.MustSize(b.InputIDs); len(is) != 2 || is[0] != B {
		return nil, fmt.Errorf("blip pretrain: %d images and input ids %v", B, is)
	}
	pos, err := positives(b.ImageIDs, int(B))
	torchx.MustOK(err)
	torchx.MustOK(m.ClampTemp())
	dev := m.Device()
	img := torchx.Must(m.Vision.Forward(b.Pixels, train))
	defer img.Drop()

	// ITC (its similarities also choose the ITM negatives).
	if m.Opts.WeightITC > 0 || m.Opts.WeightITM > 0 {
		fi := torchx.Must(projectFirst(m.VisionProj, img))
		defer fi.Drop()
		th := torchx.Must(m.Encoder.Forward(TextInput{IDs: b.InputIDs, Mask: b.AttentionMask, Train: train}))
		defer th.Drop()
		ft := torchx.Must(projectFirst(m.TextProj, th))
		defer ft.Drop()
		posT := torchx.Must(floatMatrix(pos, int(B), dev))
		defer posT.Drop()
		var itc, simI2T *ts.Tensor
		if train && m.Opts.Momentum > 0 {
			itc, simI2T, out.Alpha, err = m.momentumITC(b, fi, ft, posT, train)
			torchx.MustOK(err)
		} else {
			itc, simI2T = torchx.Must2(ContrastiveLoss(fi, ft, m.Temp, posT))
		}
		defer simI2T.Drop()
		if m.Opts.WeightITC > 0 {
			out.ITC = itc
		} else {
			defer itc.Drop()
		}
		// ITM with hard negatives.
		if m.Opts.WeightITM > 0 {
			out.NegImage, out.NegText, err = SampleHardNegatives(simI2T, posT)
			torchx.MustOK(err)
			out.ITM = torchx.Must(m.itmLoss(img, b.InputIDs, b.AttentionMask, out.NegImage, out.NegText, train))
		}
	}

	// LM.
	if m.Opts.WeightLM > 0 {
		if m.Decoder == nil {
			return nil, fmt.Errorf("blip pretrain: the LM objective has weight %g but the model was built without a text decoder (weight 0)", m.Opts.WeightLM)
		}
		in, labels, err := DecoderInputs(b.InputIDs, b.AttentionMask, m.Cfg.Text.BOSTokenID)
		torchx.MustOK(err)
		defer in.Drop()
		defer labels.Drop()
		h := torchx.Must(m.Decoder.Forward(TextInput{IDs: in, Mask: b.AttentionMask, Causal: true, Image: img, Train: train}))
		defer h.Drop()
		logits := torchx.Must(m.Head.Forward(h))
		defer logits.Drop()
		out.LM = torchx.Must(ShiftedLMLoss(logits, labels, m.Opts.LabelSmoothing))
	}

	for _, term := range []struct {
		loss *ts.Tensor
		w    float64
	}{{out.ITC, m.Opts.WeightITC}, {out.ITM, m.Opts.WeightITM}, {out.LM, m.Opts.WeightLM}} {
		if term.loss == nil {
			continue
		}
		wl := torchx.Must(term.loss.MulScalar(ts.FloatScalar(term.w), false))
		if out.Total == nil {
			out.Total = wl
			continue
		}
		sum, err := out.Total.Add(wl, false)
		wl.Drop()
		torchx.MustOK(torchx.Err("total loss", err))
		out.Total.Drop()
		out.Total = sum
	}
	return out, nil
}

// positives is the B×B positive-pair matrix: equal image ids, or the identity without ids. Every
// row must have a negative.
func positives(ids []int64, B int) ([]float32, error) {
	pos := make([]float32, B*B)
	for i := 0; i < B; i++ {
		neg := false
		for j := 0; j < B; j++ {
			same := i == j || (len(ids) == B && ids[i] == ids[j])
			if same {
				pos[i*B+j] = 1
			} else {
				neg = true
			}
		}
		if !neg {
			return nil, fmt.Errorf("blip pretrain: row %d of %d has no row of another image to contrast with (ITC and ITM need at least two different images)", i, B)
		}
	}
	return pos, nil
}

func floatMatrix(v []float32, n int, dev gotch.Device) (out *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	t := torchx.Must(ts.OfSlice(v))
	t = torchx.Must(t.View([]int64{int64(n), int64(len(v) / n)}, true))
	if dev != gotch.CPU {
		t = torchx.Must(t.To(dev, true))
	}
	return t, nil
}

// ContrastiveLoss is BLIP's ITC loss for image features [B, D] and text features [B, D] (both
// normalised), a temperature (0-d or [1]) and the positive-pair matrix [B, B] (1 = same image):
// with sim = img·txtᵀ / temp, the mean over rows of −Σ log_softmax(sim)·targets in each
// direction (targets = positives normalised per row), averaged over the two directions. It
// also returns sim (image-to-text, detached) for sampling hard negatives.
func ContrastiveLoss(imgFeat, txtFeat, temp, pos *ts.Tensor) (loss, sim *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	txtT := torchx.Must(txtFeat.T(false))
	defer txtT.Drop()
	raw := torchx.Must(imgFeat.Matmul(txtT, false))
	defer raw.Drop()
	i2t := torchx.Must(raw.Div(temp, false)) // [B_img, B_txt]
	defer i2t.Drop()
	t2i := torchx.Must(i2t.T(false))
	defer t2i.Drop()
	rowSum := torchx.Must(pos.SumDimIntlist([]int64{1}, true, gotch.Float, false))
	defer rowSum.Drop()
	targets := torchx.Must(pos.Div(rowSum, false))
	defer targets.Drop()
	posT := torchx.Must(pos.T(false))
	defer posT.Drop()
	colSum := torchx.Must(posT.SumDimIntlist([]int64{1}, true, gotch.Float, false))
	defer colSum.Drop()
	targetsT := torchx.Must(posT.Div(colSum, false))
	defer targetsT.Drop()
	a := torchx.Must(softCrossEntropy(i2t, targets))
	defer a.Drop()
	b := torchx.Must(softCrossEntropy(t2i, targetsT))
	defer b.Drop()
	sum := torchx.Must(a.Add(b, false))
	defer sum.Drop()
	loss = torchx.Must(sum.DivScalar(ts.FloatScalar(2), false))
	sim, err = i2t.Detach(false)
	if err != nil {
		loss.Drop()
		return nil, nil, torchx.Err("detach", err)
	}
	return loss, sim, nil
}

// softCrossEntropy is the mean over rows of −Σ_j targets[i,j]·log_softmax(scores[i])_j: the
// contrastive loss of one direction against soft targets [B, K].
func softCrossEntropy(scores, targets *ts.Tensor) (out *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	lp := torchx.Must(scores.LogSoftmax(1, gotch.Float, false))
	defer lp.Drop()
	p := torchx.Must(lp.Mul(targets, false))
	defer p.Drop()
	r := torchx.Must(p.SumDimIntlist([]int64{1}, false, gotch.Float, false))
	defer r.Drop()
	m := torchx.Must(r.Mean(gotch.Float, false))
	defer m.Drop()
	return m.Neg(false)
}

// SampleHardNegatives draws BLIP's ITM hard negatives from image-to-text similarities [B, B]
// and the positive-pair matrix [B, B]: for each text a negative image with probability
// ∝ softmax(sim_t2i)+1e-4, and for each image a negative text ∝ softmax(sim_i2t)+1e-4, positives
// weighted 0, so a positive is never drawn.
func SampleHardNegatives(simI2T, pos *ts.Tensor) (negImage, negText []int64, err error) {
	err = torchx.NoGrad(func() (err error) {
		defer torchx.Catch(&err)
		isPos := torchx.Must(pos.Gt(ts.FloatScalar(0), false))
		defer isPos.Drop()
		isPosT := torchx.Must(isPos.T(false))
		defer isPosT.Drop()
		draw := func(sim, mask *ts.Tensor) []int64 {
			p := torchx.Must(sim.Softmax(1, gotch.Float, false))
			defer p.Drop()
			w := torchx.Must(p.AddScalar(ts.FloatScalar(1e-4), false))
			defer w.Drop()
			wm := torchx.Must(w.MaskedFill(mask, ts.FloatScalar(0), false))
			defer wm.Drop()
			idx := torchx.Must(wm.Multinomial(1, false, false))
			defer idx.Drop()
			v, err := torchx.Int64s(idx)
			torchx.MustOK(err)
			return v
		}
		simT2I := torchx.Must(simI2T.T(false))
		defer simT2I.Drop()
		// Row i of sim_t2i is text i against every image; positives of text i are images with
		// pos[j][i] = 1.
		negImage = draw(simT2I, isPosT)
		negText = draw(simI2T, isPos)
		return nil
	})
	return negImage, negText, err
}

// itmLoss is the ITM cross-entropy over B positive pairs (image i, text i), B pairs (image
// negImage[i], text i) and B pairs (image i, text negText[i]).
func (m *Pretrainer) itmLoss(img, ids, mask *ts.Tensor, negImage, negText []int64, train bool) (loss *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	dev := m.Device()
	index := func(v []int64) *ts.Tensor {
		t := torchx.Must(ts.OfSlice(v))
		if dev != gotch.CPU {
			t = torchx.Must(t.To(dev, true))
		}
		return t
	}
	ni := index(negImage)
	defer ni.Drop()
	nt := index(negText)
	defer nt.Drop()
	itmIDs := ids
	if m.Opts.ITMFirstToken >= 0 {
		itmIDs = torchx.Must(ReplaceFirstToken(ids, m.Opts.ITMFirstToken))
		defer itmIDs.Drop()
	}
	imgNeg := torchx.Must(img.IndexSelect(0, ni, false))
	defer imgNeg.Drop()
	idsNeg := torchx.Must(itmIDs.IndexSelect(0, nt, false))
	defer idsNeg.Drop()
	allImg := torchx.Must(ts.Cat([]*ts.Tensor{img, imgNeg, img}, 0))
	defer allImg.Drop()
	allIDs := torchx.Must(ts.Cat([]*ts.Tensor{itmIDs, itmIDs, idsNeg}, 0))
	defer allIDs.Drop()
	var allMask *ts.Tensor
	if mask != nil {
		maskNeg := torchx.Must(mask.IndexSelect(0, nt, false))
		defer maskNeg.Drop()
		allMask = torchx.Must(ts.Cat([]*ts.Tensor{mask, mask, maskNeg}, 0))
		defer allMask.Drop()
	}
	h := torchx.Must(m.Encoder.Forward(TextInput{IDs: allIDs, Mask: allMask, Image: allImg, Train: train}))
	defer h.Drop()
	first := torchx.Must(h.Select(1, 0, false))
	defer first.Drop()
	logits := torchx.Must(m.ITMHead.Forward(first))
	defer logits.Drop()
	B := int64(len(negImage))
	lab := make([]int64, 3*B)
	for i := int64(0); i < B; i++ {
		lab[i] = 1
	}
	labels := index(lab)
	defer labels.Drop()
	return nn.CrossEntropy(logits, labels, nn.IgnoreIndex, 0)
}
