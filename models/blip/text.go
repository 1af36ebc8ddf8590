package blip

import (
	"fmt"
	"math"

	"github.com/sugarme/gotch"
	gnn "github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/nn"
	"github.com/imgcap/imgcap/torchx"
)

// TextModel is BlipTextModel without pooler (BERT, post-LayerNorm): embeddings.{word_embeddings,
// position_embeddings, LayerNorm}, encoder.layer.N.{attention.self.{query,key,value},
// attention.output.{dense,LayerNorm}, crossattention.* (when is_decoder), intermediate.dense,
// output.{dense,LayerNorm}}. The same weights run bidirectionally (text encoder: ITC, ITM) or
// causally (text decoder), with or without cross-attention to image embeddings.
type TextModel struct {
	Cfg    TextConfig
	words  *nn.Embedding
	pos    *ts.Tensor
	embLN  *nn.LayerNorm
	layers []*nn.PostLNBlock
}

// NewTextModel builds the text model under p (e.g. root.Sub("text_encoder") or
// root.Sub("text_decoder").Sub("bert")) with BlipPreTrainedModel's initialisation: Linear and
// Embedding weights N(0, std²), biases 0, LayerNorms 1 and 0. Cross-attention layers exist when
// cfg.IsDecoder is true, as in Hugging Face.
func NewTextModel(p *gnn.Path, cfg TextConfig, std float64) (m *TextModel, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	defer torchx.Catch(&err)
	h := int64(cfg.HiddenSize)
	m = &TextModel{Cfg: cfg}
	emb := p.Sub("embeddings")
	w := torchx.Must(emb.Sub("word_embeddings").NewVar("weight", []int64{int64(cfg.VocabSize), h}, nn.NormalInit(std)))
	// padding_idx only stops the pad row's gradient (HF's init overwrites its zeros).
	m.words = &nn.Embedding{Weight: w, PaddingIdx: cfg.PadTokenID}
	m.pos = torchx.Must(emb.Sub("position_embeddings").NewVar("weight", []int64{int64(cfg.MaxPositionEmbeddings), h}, nn.NormalInit(std)))
	m.embLN, err = nn.NewLayerNorm(emb.Sub("LayerNorm"), h, cfg.LayerNormEps)
	torchx.MustOK(err)
	act, err := nn.Activation(cfg.HiddenAct)
	torchx.MustOK(err)
	heads := int64(cfg.NumAttentionHeads)
	scale := 1 / math.Sqrt(float64(h/heads))
	enc := int64(cfg.EncoderHiddenSize)
	inter := int64(cfg.IntermediateSize)
	for i := 0; i < cfg.NumHiddenLayers; i++ {
		lp := p.Sub("encoder").Sub("layer").Sub(fmt.Sprint(i))
		ln := func(p *gnn.Path) *nn.LayerNorm {
			l, err := nn.NewLayerNorm(p.Sub("LayerNorm"), h, cfg.LayerNormEps)
			torchx.MustOK(err)
			return l
		}
		attn := func(p *gnn.Path, kvIn int64) *nn.MultiHeadAttention {
			s := p.Sub("self")
			return &nn.MultiHeadAttention{
				Query: linear(s.Sub("query"), h, h, std),
				Key:   linear(s.Sub("key"), kvIn, h, std),
				Value: linear(s.Sub("value"), kvIn, h, std),
				Heads: heads, Scale: scale, DropoutP: cfg.AttentionProbsDropoutProb,
			}
		}
		b := &nn.PostLNBlock{
			Attn:    attn(lp.Sub("attention"), h),
			AttnOut: linear(lp.Sub("attention").Sub("output").Sub("dense"), h, h, std),
			AttnLN:  ln(lp.Sub("attention").Sub("output")),
			MLP: &nn.MLP{
				FC1: linear(lp.Sub("intermediate").Sub("dense"), h, inter, std),
				FC2: linear(lp.Sub("output").Sub("dense"), inter, h, std),
				Act: act,
			},
			MLPLN:   ln(lp.Sub("output")),
			Dropout: cfg.HiddenDropoutProb,
		}
		if cfg.IsDecoder {
			cp := lp.Sub("crossattention")
			b.Cross = attn(cp, enc)
			b.CrossOut = linear(cp.Sub("output").Sub("dense"), h, h, std)
			b.CrossLN = ln(cp.Sub("output"))
		}
		m.layers = append(m.layers, b)
	}
	return m, nil
}

// HasCrossAttention reports whether the layers can attend to image embeddings.
func (m *TextModel) HasCrossAttention() bool { return m.Cfg.IsDecoder }

// TextState is the text model's incremental decoding state (nn.DecoderState).
type TextState = nn.DecoderState

// CrossKV projects image embeddings [N, Tk, encoder_hidden] to every layer's cross-attention keys
// and values; the caller drops them.
func (m *TextModel) CrossKV(image *ts.Tensor) (kv []nn.CrossKV, err error) {
	if !m.HasCrossAttention() {
		return nil, fmt.Errorf("blip text: image embeddings given but the model has no cross-attention (is_decoder false)")
	}
	s, err := image.Size()
	if err != nil {
		return nil, torchx.Err("blip text", err)
	}
	if len(s) != 3 || s[2] != int64(m.Cfg.EncoderHiddenSize) {
		return nil, fmt.Errorf("blip text: image embeddings %v, want [N, Tk, %d]", s, m.Cfg.EncoderHiddenSize)
	}
	for _, b := range m.layers {
		c, err := b.Cross.CrossKeysValues(image)
		if err != nil {
			for i := range kv {
				kv[i].Drop()
			}
			return nil, err
		}
		kv = append(kv, c)
	}
	return kv, nil
}

// NewState prepares incremental decoding: empty self-attention caches and, when image is not
// nil, the cross-attention keys and values of image embeddings [N, Tk, encoder_hidden].
func (m *TextModel) NewState(image *ts.Tensor) (*TextState, error) {
	s := &TextState{}
	for range m.layers {
		s.Caches = append(s.Caches, &nn.KVCache{})
	}
	if image != nil {
		kv, err := m.CrossKV(image)
		if err != nil {
			return nil, err
		}
		s.Cross = kv
	}
	return s, nil
}

// TextInput is what TextModel.Forward reads.
type TextInput struct {
	// IDs are token ids [R, T].
	IDs *ts.Tensor
	// Mask is the padding keep-mask [R, past+T] (1 = attend, 0 = padding), or nil for all ones.
	Mask *ts.Tensor
	// Causal makes each position see only itself and earlier ones (the text decoder).
	Causal bool
	// Image are image embeddings [N, Tk, encoder_hidden] to cross-attend (R = N·G rows, G
	// consecutive rows per image), or nil. Ignored when State carries cross keys and values.
	Image *ts.Tensor
	// State makes the call incremental: IDs continue the cached positions and the caches grow.
	State *TextState
	// Train turns dropout on.
	Train bool
}

// Forward returns the last hidden states [R, T, hidden]. Self-attention masks are Hugging Face's
// extended masks: causal × padding (decoder) or padding only (encoder), converted as
// (1 − keep)·−10000. Cross-attention sees every image token.
func (m *TextModel) Forward(in TextInput) (out *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	s := torchx.MustSize(in.IDs)
	if len(s) != 2 || s[0] == 0 || s[1] == 0 {
		return nil, fmt.Errorf("blip text: input ids %v, want [R>0, T>0]", s)
	}
	R, T := s[0], s[1]
	past := in.State.Past()
	if past+T > int64(m.Cfg.MaxPositionEmbeddings) {
		return nil, fmt.Errorf("blip text: %d positions exceed max_position_embeddings %d", past+T, m.Cfg.MaxPositionEmbeddings)
	}
	dev, err := m.pos.Device()
	torchx.MustOK(err)
	if !sameDevice(dev, in.IDs) {
		in.IDs = torchx.Must(in.IDs.To(dev, false))
		defer in.IDs.Drop()
	}
	if in.Mask != nil && !sameDevice(dev, in.Mask) {
		in.Mask = torchx.Must(in.Mask.To(dev, false))
		defer in.Mask.Drop()
	}
	mask := torchx.Must(m.selfMask(in.Mask, in.Causal, R, past, T, dev))
	if mask != nil {
		defer mask.Drop()
	}
	var cross []nn.CrossKV
	switch {
	case in.State != nil && len(in.State.Cross) > 0:
		cross = in.State.Cross
	case in.Image != nil:
		kv, err := m.CrossKV(in.Image)
		torchx.MustOK(err)
		defer func() {
			for i := range kv {
				kv[i].Drop()
			}
		}()
		cross = kv
	}
	if cross != nil {
		if n := torchx.MustSize(cross[0].K)[0]; R%n != 0 {
			return nil, fmt.Errorf("blip text: %d text rows do not split over %d images", R, n)
		}
	}
	x := torchx.Must(m.embed(in.IDs, past, dev, in.Train))
	for i, b := range m.layers {
		bi := nn.BlockInput{Mask: mask, Train: in.Train}
		if in.State != nil {
			bi.Cache = in.State.Caches[i]
		}
		if cross != nil {
			bi.Cross = &cross[i]
		}
		y, err := b.Forward(x, bi)
		x.Drop()
		torchx.MustOK(err)
		x = y
	}
	return x, nil
}

// embed is LayerNorm(word_embeddings(ids) + position_embeddings(past…past+T−1)), then dropout.
// There are no token-type embeddings.
func (m *TextModel) embed(ids *ts.Tensor, past int64, dev gotch.Device, train bool) (out *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	T := torchx.MustSize(ids)[1]
	tok := torchx.Must(m.words.Forward(ids))
	defer tok.Drop()
	posIDs := torchx.Must(ts.ArangeStart(ts.IntScalar(past), ts.IntScalar(past+T), gotch.Int64, dev))
	defer posIDs.Drop()
	pos := torchx.Must(ts.Embedding(m.pos, posIDs, -1, false, false))
	defer pos.Drop()
	sum := torchx.Must(tok.Add(pos, false))
	defer sum.Drop()
	n := torchx.Must(m.embLN.Forward(sum))
	defer n.Drop()
	return nn.Dropout(n, m.Cfg.HiddenDropoutProb, train)
}

// selfMask builds the additive self-attention mask [R|1, 1, T|1, past+T], or nil when nothing is
// masked by construction (no padding mask and no causal constraint within the new positions).
func (m *TextModel) selfMask(keep *ts.Tensor, causal bool, R, past, T int64, dev gotch.Device) (out *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	var pad *ts.Tensor
	if keep != nil {
		ks := torchx.MustSize(keep)
		if len(ks) != 2 || ks[0] != R || ks[1] != past+T {
			return nil, fmt.Errorf("blip text: attention mask %v, want [%d, %d]", ks, R, past+T)
		}
		pad = torchx.Must(keep.View([]int64{R, 1, 1, past + T}, false))
		defer pad.Drop()
	}
	var full *ts.Tensor
	switch {
	case causal && T > 1:
		c := torchx.Must(nn.CausalKeep(past, T, dev))
		defer c.Drop()
		if pad == nil {
			full = c
		} else {
			cf := torchx.Must(c.Totype(gotch.Float, false))
			defer cf.Drop()
			full = torchx.Must(cf.Mul(pad, false))
			defer full.Drop()
		}
	case pad != nil:
		full = pad
	default:
		return nil, nil
	}
	return nn.AdditiveMask(full, HFMaskValue)
}

// LMHead is BlipTextLMPredictionHead: cls.predictions.transform.{dense, LayerNorm} with the
// hidden activation between them, then cls.predictions.decoder.weight plus cls.predictions.bias.
// In transformers 4.36.2 the decoder weight is not tied to the word embeddings (both are
// stored), and decoder.bias is cls.predictions.bias itself, so it is no separate parameter.
type LMHead struct {
	dense   *nn.Linear
	act     func(*ts.Tensor) (*ts.Tensor, error)
	ln      *nn.LayerNorm
	decoder *nn.Linear
}

// NewLMHead builds the head under p (root.Sub("text_decoder").Sub("cls").Sub("predictions")).
func NewLMHead(p *gnn.Path, cfg TextConfig, std float64) (h *LMHead, err error) {
	defer torchx.Catch(&err)
	hid := int64(cfg.HiddenSize)
	act, err := nn.Activation(cfg.HiddenAct)
	torchx.MustOK(err)
	h = &LMHead{act: act}
	t := p.Sub("transform")
	h.dense = linear(t.Sub("dense"), hid, hid, std)
	h.ln, err = nn.NewLayerNorm(t.Sub("LayerNorm"), hid, cfg.LayerNormEps)
	torchx.MustOK(err)
	w := torchx.Must(p.Sub("decoder").NewVar("weight", []int64{int64(cfg.VocabSize), hid}, nn.NormalInit(std)))
	b := torchx.Must(p.NewVar("bias", []int64{int64(cfg.VocabSize)}, nn.ZeroInit()))
	h.decoder = &nn.Linear{Weight: w, Bias: b}
	return h, nil
}

// Forward maps hidden states [..., hidden] to vocabulary logits [..., vocab].
func (h *LMHead) Forward(x *ts.Tensor) (out *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	d := torchx.Must(h.dense.Forward(x))
	defer d.Drop()
	a := torchx.Must(h.act(d))
	defer a.Drop()
	n := torchx.Must(h.ln.Forward(a))
	defer n.Drop()
	return h.decoder.Forward(n)
}

// sameDevice reports whether t lives on dev (unknown counts as different, so the caller moves
// it).
func sameDevice(dev gotch.Device, t *ts.Tensor) bool {
	d, err := t.Device()
	return err == nil && d == dev
}

// checkIDs reports ids outside [0, vocab) (embedding lookups would fail, on CUDA fatally).
func checkIDs(ids *ts.Tensor, vocab int) (err error) {
	defer torchx.Catch(&err)
	if ids.DType() != gotch.Int64 {
		return fmt.Errorf("blip: token ids have dtype %v, want int64", ids.DType())
	}
	if ids.Numel() == 0 {
		return nil
	}
	lo := torchx.Must(ids.Min(false))
	defer lo.Drop()
	hi := torchx.Must(ids.Max(false))
	defer hi.Drop()
	l, err := lo.Int64Value([]int64{})
	torchx.MustOK(torchx.Err("token ids", err))
	u, err := hi.Int64Value([]int64{})
	torchx.MustOK(torchx.Err("token ids", err))
	if l < 0 || u >= int64(vocab) {
		return fmt.Errorf("blip: token ids span [%d, %d], outside the vocabulary of %d", l, u, vocab)
	}
	return nil
}
