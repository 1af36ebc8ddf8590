// Package vgglstm is the first model of the original project: VGG16 image features and the
// LSTM "merge" decoder of the Keras notebook (Flickr8k).
//
//	image  → VGG16 → fc2 (4096, after ReLU) → Dropout(0.4) → Linear(4096,256) → ReLU ─┐
//	tokens → Embedding(V,256, pad 0) → Dropout(0.4) → LSTM(256) ─────────────────── add → Linear(256,256) → ReLU → Linear(256,V)
//
// The encoder's parameters carry torchvision's names (features.N.*, classifier.{0,3}.*), so a
// torchvision vgg16 state dict loads by name; the decoder's live under decoder.*. The notebook
// trains on one (prefix, next word) pair per sample; here every prefix of a caption is trained in
// one pass of the LSTM (the same objective, O(L) instead of O(L²)).
//
// Preprocessing differs from the notebook on purpose: Keras' VGG16 uses caffe-style inputs
// (BGR, mean subtraction, no scaling); imgcap uses torchvision's (RGB in [0,1], ImageNet mean/std),
// which is what torchvision's pretrained weights expect.
package vgglstm

import (
	"context"
	"fmt"
	"math"

	"github.com/sugarme/gotch"
	gnn "github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/models"
	"github.com/imgcap/imgcap/nn"
	"github.com/imgcap/imgcap/torchx"
)

// Config sizes the model. It is saved with a run as config.json.
type Config struct {
	VocabSize int64   `json:"vocab_size"`
	EmbedDim  int64   `json:"embed_dim"`  // 256 in the notebook
	HiddenDim int64   `json:"hidden_dim"` // 256 in the notebook
	Dropout   float64 `json:"dropout"`    // 0.4 in the notebook
	ImageSize int64   `json:"image_size"` // 224 for torchvision's VGG16
	// Width scales VGG16's channels and fc sizes (1 = torchvision's VGG16).
	Width float64 `json:"width"`
	// BatchNorm selects torchvision's vgg16_bn (a BatchNorm after every conv), which trains
	// from scratch far more easily than plain VGG16.
	BatchNorm bool  `json:"batch_norm,omitempty"`
	PadID     int64 `json:"pad_id"`
	// StartID and EndID are the vocabulary's startseq and endseq.
	StartID int64 `json:"start_id"`
	EndID   int64 `json:"end_id"`
	// MaxLength is the longest caption in tokens, startseq and endseq included.
	MaxLength int64 `json:"max_length"`
}

// vggBlocks are VGG16's ("D") conv channels per block; a max-pool follows each block.
var vggBlocks = [][]int64{{64, 64}, {128, 128}, {256, 256, 256}, {512, 512, 512}, {512, 512, 512}}

// FeatureDim is the size of the encoder's fc2 features.
func (c Config) FeatureDim() int64 { return scale(4096, c.Width) }

func scale(n int64, w float64) int64 {
	return max(1, int64(math.Round(float64(n)*w)))
}

// Model is VGG16 + LSTM.
type Model struct {
	Cfg    Config
	vs     *gnn.VarStore
	convs  []*nn.Conv2d
	bns    []*nn.BatchNorm2d // vgg16_bn only, one per conv
	poolAt map[int]bool      // conv index after which a max-pool follows
	fc1    *nn.Linear        // classifier.0
	fc2    *nn.Linear        // classifier.3

	imgProj *nn.Linear // decoder.image_proj
	embed   *nn.Embedding
	lstm    *nn.LSTM
	fc      *nn.Linear // decoder.fc
	out     *nn.Linear // decoder.out

	frozenEncoder bool
}

// New builds a randomly initialised model on device.
func New(cfg Config, device gotch.Device) (*Model, error) {
	if cfg.VocabSize < 3 || cfg.EmbedDim <= 0 || cfg.HiddenDim <= 0 || cfg.ImageSize < 32 || cfg.Width <= 0 {
		return nil, fmt.Errorf("vgglstm: invalid config %+v", cfg)
	}
	vs := gnn.NewVarStore(device)
	root := vs.Root()
	m := &Model{Cfg: cfg, vs: vs, poolAt: map[int]bool{}}
	var err error
	feat := root.Sub("features")
	in, idx := int64(3), 0
	for _, block := range vggBlocks {
		for _, ch := range block {
			out := scale(ch, cfg.Width)
			// torchvision's VGG init: Kaiming-normal (fan out, ReLU) weights, zero biases. PyTorch's
			// default conv init shrinks activations through 13 layers until the image is lost.
			conv, err := nn.NewConv2dInit(feat.Sub(fmt.Sprint(idx)), in, out, 3, 1, 1,
				nn.KaimingNormalFanOut(out*9), gnn.NewConstInit(0))
			if err != nil {
				return nil, err
			}
			m.convs = append(m.convs, conv)
			idx++
			if cfg.BatchNorm {
				bn, err := nn.NewBatchNorm2d(feat.Sub(fmt.Sprint(idx)), out)
				if err != nil {
					return nil, err
				}
				m.bns = append(m.bns, bn)
				idx++
			}
			idx++ // ReLU
			in = out
		}
		m.poolAt[len(m.convs)-1] = true
		idx++ // MaxPool
	}
	cls := root.Sub("classifier")
	fd := cfg.FeatureDim()
	// torchvision's VGG init for the classifier: N(0, 0.01) weights, zero biases.
	if m.fc1, err = nn.NewLinearInit(cls.Sub("0"), in*7*7, fd, gnn.NewRandnInit(0, 0.01), gnn.NewConstInit(0)); err != nil {
		return nil, err
	}
	if m.fc2, err = nn.NewLinearInit(cls.Sub("3"), fd, fd, gnn.NewRandnInit(0, 0.01), gnn.NewConstInit(0)); err != nil {
		return nil, err
	}
	dec := root.Sub("decoder")
	if m.imgProj, err = nn.NewLinear(dec.Sub("image_proj"), fd, cfg.HiddenDim, true); err != nil {
		return nil, err
	}
	if m.embed, err = nn.NewEmbedding(dec.Sub("embed"), cfg.VocabSize, cfg.EmbedDim, cfg.PadID); err != nil {
		return nil, err
	}
	if m.lstm, err = nn.NewLSTM(dec.Sub("lstm"), cfg.EmbedDim, cfg.HiddenDim, 1, 0); err != nil {
		return nil, err
	}
	if m.fc, err = nn.NewLinear(dec.Sub("fc"), cfg.HiddenDim, cfg.HiddenDim, true); err != nil {
		return nil, err
	}
	if m.out, err = nn.NewLinear(dec.Sub("out"), cfg.HiddenDim, cfg.VocabSize, true); err != nil {
		return nil, err
	}
	return m, nil
}

// VarStore holds the parameters (torchvision names for the encoder, decoder.* for the rest).
func (m *Model) VarStore() *gnn.VarStore { return m.vs }

// FreezeEncoder stops training the VGG16 encoder (features run under no-grad).
func (m *Model) FreezeEncoder() error {
	m.frozenEncoder = true
	for name, t := range m.vs.Variables() {
		if isEncoderParam(name) {
			tt := t
			if _, err := tt.SetRequiresGrad(false, false); err != nil {
				return torchx.Err("freeze "+name, err)
			}
		}
	}
	return nil
}

func isEncoderParam(name string) bool {
	return len(name) > 9 && (name[:9] == "features." || (len(name) > 11 && name[:11] == "classifier."))
}

// Encode returns fc2 features [B, FeatureDim] of preprocessed images [B,3,H,W].
func (m *Model) Encode(pixels *ts.Tensor, train bool) (out *ts.Tensor, err error) {
	if m.frozenEncoder {
		err = torchx.NoGrad(func() error {
			out, err = m.encode(pixels, false)
			return err
		})
		return out, err
	}
	return m.encode(pixels, train)
}

func (m *Model) encode(pixels *ts.Tensor, train bool) (out *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	x := pixels
	for i, conv := range m.convs {
		x = torchx.Must(conv.Forward(x))
		if m.bns != nil {
			x = torchx.Must(m.bns[i].Forward(x, train))
		}
		torchx.MustOK(x.Relu_()) // in place: saves a copy per layer
		if m.poolAt[i] {
			x = torchx.Must(x.MaxPool2d([]int64{2, 2}, []int64{2, 2}, []int64{0, 0}, []int64{1, 1}, false, false))
		}
	}
	x = torchx.Must(x.AdaptiveAvgPool2d([]int64{7, 7}, false))
	x = torchx.Must(x.Flatten(1, -1, false))
	x = torchx.Must(m.fc1.Forward(x))
	x = torchx.Must(x.Relu(false))
	x = torchx.Must(ts.Dropout(x, 0.5, train))
	x = torchx.Must(m.fc2.Forward(x))
	return torchx.Must(x.Relu(false)), nil
}

// Decode returns next-token logits [B,T,V] for features [B,F] and input ids [B,T] (startseq
// first), starting from a zero LSTM state.
func (m *Model) Decode(features, ids *ts.Tensor, train bool) (out *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	size := torchx.MustSize(ids)
	fe := torchx.Must(m.project(features, train))
	state, err := m.lstm.ZeroState(size[0])
	torchx.MustOK(err)
	h, _, err := m.decodeStep(fe, ids, state, train)
	torchx.MustOK(err)
	return h, nil
}

// project maps features to the decoder's image vector: Dropout → Linear → ReLU.
func (m *Model) project(features *ts.Tensor, train bool) (out *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	x := torchx.Must(ts.Dropout(features, m.Cfg.Dropout, train))
	x = torchx.Must(m.imgProj.Forward(x))
	return torchx.Must(x.Relu(false)), nil
}

// decodeStep runs the text branch over ids [B,T] from state and merges it with fe [B,H].
func (m *Model) decodeStep(fe, ids *ts.Tensor, state nn.LSTMState, train bool) (logits *ts.Tensor, next nn.LSTMState, err error) {
	defer torchx.Catch(&err)
	e := torchx.Must(m.embed.Forward(ids))
	e = torchx.Must(ts.Dropout(e, m.Cfg.Dropout, train))
	se, next, err := m.lstm.Forward(e, state, train)
	torchx.MustOK(err)
	x := torchx.Must(se.Add(torchx.Must(fe.Unsqueeze(1, false)), false))
	x = torchx.Must(m.fc.Forward(x))
	x = torchx.Must(x.Relu(false))
	return torchx.Must(m.out.Forward(x)), next, nil
}

// Loss is the mean next-word cross-entropy over every caption position (padding ignored).
// The batch carries either Pixels or precomputed Features, and InputIDs [B,L] =
// startseq w1 … wn endseq, right-padded with PadID.
func (m *Model) Loss(b *models.Batch, train bool) (loss *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	feats := b.Features
	if feats == nil {
		if b.Pixels == nil {
			return nil, fmt.Errorf("vgglstm: batch has neither pixels nor features")
		}
		feats = torchx.Must(m.Encode(b.Pixels, train))
	}
	size := torchx.MustSize(b.InputIDs)
	if size[1] < 2 {
		return nil, fmt.Errorf("vgglstm: captions need at least 2 tokens, got %d", size[1])
	}
	in := torchx.Must(b.InputIDs.Narrow(1, 0, size[1]-1, false))
	target := torchx.Must(b.InputIDs.Narrow(1, 1, size[1]-1, false))
	// Padding positions are not predicted.
	isPad := torchx.Must(target.Eq(ts.IntScalar(m.Cfg.PadID), false))
	target = torchx.Must(target.MaskedFill(isPad, ts.IntScalar(nn.IgnoreIndex), false))
	logits := torchx.Must(m.Decode(feats, in, train))
	return nn.SequenceCrossEntropy(logits, target, nn.IgnoreIndex, 0)
}

// Caption generates captions for preprocessed images [B,3,H,W] with greedy or beam search.
func (m *Model) Caption(ctx context.Context, pixels *ts.Tensor, opts models.GenerateOptions) ([]models.Caption, error) {
	var feats *ts.Tensor
	err := torchx.NoGrad(func() (err error) {
		feats, err = m.encode(pixels, false)
		return err
	})
	if err != nil {
		return nil, err
	}
	defer feats.Drop()
	return m.CaptionFeatures(ctx, feats, opts)
}

// CaptionFeatures generates captions from precomputed features [B,F]; token ids only (the
// caller decodes them with the vocabulary).
func (m *Model) CaptionFeatures(ctx context.Context, feats *ts.Tensor, opts models.GenerateOptions) (caps []models.Caption, err error) {
	beams := max(1, opts.NumBeams)
	maxNew := opts.MaxNewTokens
	if maxNew <= 0 {
		maxNew = int(m.Cfg.MaxLength) - 1
	}
	lp := opts.LengthPenalty
	if lp == 0 {
		lp = 1
	}
	gen := nn.GenerateOptions{
		NumBeams: beams, MaxNewTokens: maxNew, MinNewTokens: opts.MinNewTokens,
		LengthPenalty: lp, NoRepeatNgram: opts.NoRepeatNgram, PadID: m.Cfg.PadID,
		DoSample: opts.DoSample, Temperature: opts.Temperature, TopK: opts.TopK, TopP: opts.TopP,
		Seed: opts.Seed,
	}
	if m.Cfg.EndID >= 0 {
		gen.EOS = []int64{m.Cfg.EndID}
	}
	err = torchx.NoGrad(func() error {
		return torchx.WithScope(func(s *torchx.Scope) (err error) {
			defer torchx.Catch(&err)
			b := torchx.MustSize(feats)[0]
			fe := torchx.Must(m.project(feats, false))
			if beams > 1 {
				fe = torchx.Must(fe.RepeatInterleaveSelfInt(int64(beams), []int64{0}, []int64{}, false))
			}
			st := &stepper{m: m, fe: fe}
			st.state, err = m.lstm.ZeroState(b * int64(beams))
			torchx.MustOK(err)
			prompts := make([][]int64, b)
			for i := range prompts {
				prompts[i] = []int64{m.Cfg.StartID}
			}
			seqs, err := nn.Generate(ctx, st, prompts, gen)
			torchx.MustOK(err)
			for _, h := range seqs {
				ids := h.Tokens
				if n := len(ids); n > 0 && ids[n-1] == m.Cfg.EndID {
					ids = ids[:n-1]
				}
				caps = append(caps, models.Caption{IDs: ids, Score: h.Score})
			}
			return nil
		})
	})
	return caps, err
}

// stepper is the nn.Decoder of the LSTM: it feeds tokens to every row and returns the logits
// of the last position.
type stepper struct {
	m     *Model
	fe    *ts.Tensor
	state nn.LSTMState
}

func (s *stepper) Step(tokens [][]int64) (logits []float32, vocab int, err error) {
	defer torchx.Catch(&err)
	rows, n := int64(len(tokens)), int64(len(tokens[0]))
	flat := make([]int64, 0, rows*n)
	for _, t := range tokens {
		flat = append(flat, t...)
	}
	ids := torchx.Must(ts.OfSlice(flat))
	ids = torchx.Must(ids.View([]int64{rows, n}, false))
	dev, err := s.fe.Device()
	torchx.MustOK(err)
	ids = torchx.Must(ids.To(dev, false))
	out, next, err := s.m.decodeStep(s.fe, ids, s.state, false)
	torchx.MustOK(err)
	s.state = next
	last := torchx.Must(out.Select(1, n-1, false))
	vals, err := torchx.Float32s(last)
	torchx.MustOK(err)
	return vals, int(s.m.Cfg.VocabSize), nil
}

func (s *stepper) Reorder(rows []int64) (err error) {
	defer torchx.Catch(&err)
	idx := torchx.Must(ts.OfSlice(rows))
	dev, err := s.fe.Device()
	torchx.MustOK(err)
	idx = torchx.Must(idx.To(dev, false))
	s.state = nn.LSTMState{
		H: torchx.Must(s.state.H.IndexSelect(1, idx, false)),
		C: torchx.Must(s.state.C.IndexSelect(1, idx, false)),
	}
	s.fe = torchx.Must(s.fe.IndexSelect(0, idx, false))
	return nil
}
