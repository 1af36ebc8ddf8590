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

// Captioner is BlipForConditionalGeneration: vision_model.*, text_decoder.bert.* (a causal
// TextModel cross-attending the image embeddings) and text_decoder.cls.predictions.* (LMHead).
type Captioner struct {
	Cfg    Config
	vs     *gnn.VarStore
	Vision *VisionModel
	Text   *TextModel
	Head   *LMHead
	// Gen holds the generation defaults Caption starts from: the model folder's
	// generation_config.json (else its config.json's generation keys), or Hugging Face's defaults
	// for a new model.
	Gen nn.GenerationConfig
	// PromptLen is how many leading tokens of every training caption are a prompt ([CLS] and the
	// prompt's words, e.g. 4 for "a picture of "): Loss ignores their labels, as BLIP's
	// decoder_targets[:, :prompt_length] = -100 does. 0 trains on every token.
	PromptLen int
}

// NewCaptioner builds a randomly initialised captioner on device (Hugging Face's
// initialisation; see NewVisionModel and NewTextModel).
func NewCaptioner(cfg Config, device gotch.Device) (m *Captioner, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	vs := gnn.NewVarStore(device)
	root := vs.Root()
	m = &Captioner{Cfg: cfg, vs: vs, Gen: nn.DefaultGenerationConfig()}
	std := cfg.InitializerRange
	if m.Vision, err = NewVisionModel(root.Sub("vision_model"), cfg.Vision, std); err != nil {
		return nil, fmt.Errorf("blip vision_model: %w", err)
	}
	dec := root.Sub("text_decoder")
	if m.Text, err = NewTextModel(dec.Sub("bert"), cfg.Text, std); err != nil {
		return nil, fmt.Errorf("blip text_decoder: %w", err)
	}
	if !m.Text.HasCrossAttention() {
		return nil, fmt.Errorf("blip text_decoder: text_config.is_decoder is false, so the decoder cannot see the image")
	}
	if m.Head, err = NewLMHead(dec.Sub("cls").Sub("predictions"), cfg.Text, std); err != nil {
		return nil, fmt.Errorf("blip text_decoder.cls: %w", err)
	}
	return m, nil
}

// VarStore holds every parameter, named like the Hugging Face state_dict.
func (m *Captioner) VarStore() *gnn.VarStore { return m.vs }

// Device is where the parameters live.
func (m *Captioner) Device() gotch.Device { return m.vs.Device() }

// Encode returns the image embeddings [B, 1+patches, vision_hidden] the decoder cross-attends
// (the vision model's last_hidden_state).
func (m *Captioner) Encode(pixels *ts.Tensor, train bool) (*ts.Tensor, error) {
	return m.Vision.Forward(pixels, train)
}

// Logits is BlipForConditionalGeneration.forward's logits [B, T, vocab] for input_ids [B, T] as
// given (Hugging Face does not replace [CLS] by [DEC] here) and attention_mask [B, T] (nil = all
// ones), conditioned on the images.
func (m *Captioner) Logits(pixels, ids, mask *ts.Tensor, train bool) (out *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	torchx.MustOK(checkIDs(ids, m.Cfg.Text.VocabSize))
	img := torchx.Must(m.Encode(pixels, train))
	defer img.Drop()
	if is, ds := torchx.MustSize(img), torchx.MustSize(ids); len(ds) != 2 || ds[0] != is[0] {
		return nil, fmt.Errorf("blip: %d images and input ids %v", is[0], ds)
	}
	return m.logitsFromImage(img, ids, mask, train)
}

func (m *Captioner) logitsFromImage(img, ids, mask *ts.Tensor, train bool) (out *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	h := torchx.Must(m.Text.Forward(TextInput{IDs: ids, Mask: mask, Causal: true, Image: img, Train: train}))
	defer h.Drop()
	return m.Head.Forward(h)
}

// LossLabels is BlipForConditionalGeneration.forward's loss: the mean cross-entropy of
// logits[:, :-1] against labels[:, 1:] over labels ≠ −100 (padding counts unless set to −100),
// with label smoothing (transformers 4.36.2 uses HFLabelSmoothing = 0.1).
func (m *Captioner) LossLabels(pixels, ids, mask, labels *ts.Tensor, labelSmoothing float64, train bool) (loss *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	if ls, is := torchx.MustSize(labels), torchx.MustSize(ids); len(ls) != 2 || len(is) != 2 || ls[0] != is[0] || ls[1] != is[1] {
		return nil, fmt.Errorf("blip: labels %v do not match input ids %v", ls, is)
	}
	logits := torchx.Must(m.Logits(pixels, ids, mask, train))
	defer logits.Drop()
	return ShiftedLMLoss(logits, labels, labelSmoothing)
}

// ShiftedLMLoss is BlipTextLMHeadModel's loss: mean cross-entropy of logits[:, :-1] [B, T, V]
// against labels[:, 1:] [B, T], skipping −100, with label smoothing.
func ShiftedLMLoss(logits, labels *ts.Tensor, labelSmoothing float64) (loss *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	s := torchx.MustSize(logits)
	if len(s) != 3 || s[1] < 2 {
		return nil, fmt.Errorf("blip: logits %v, want [B, T>1, vocab] for a shifted loss", s)
	}
	pred := torchx.Must(logits.Narrow(1, 0, s[1]-1, false))
	defer pred.Drop()
	lab := torchx.Must(labels.Narrow(1, 1, s[1]-1, false))
	defer lab.Drop()
	return nn.SequenceCrossEntropy(pred, lab, nn.IgnoreIndex, labelSmoothing)
}

// DecoderInputs prepares a batch of tokenizer output ([CLS] words [SEP] [PAD]…) for training the
// decoder as BLIP does: column 0 becomes bos_token_id ([DEC], the token generation starts from)
// and the labels are the ids with padding (attention mask 0) set to −100.
func DecoderInputs(ids, mask *ts.Tensor, bos int64) (in, labels *ts.Tensor, err error) {
	defer func() { // runs after Catch has set err
		if err != nil && in != nil {
			in.Drop()
			in = nil
		}
	}()
	defer torchx.Catch(&err)
	in = torchx.Must(ReplaceFirstToken(ids, bos))
	if mask == nil {
		// A fresh tensor, not a view of in, so that the caller may edit the labels.
		return in, torchx.Must(in.AddScalar(ts.IntScalar(0), false)), nil
	}
	pad := torchx.Must(mask.Eq(ts.IntScalar(0), false))
	defer pad.Drop()
	return in, torchx.Must(in.MaskedFill(pad, ts.IntScalar(nn.IgnoreIndex), false)), nil
}

// Loss is the captioning training loss of a batch whose InputIDs are tokenizer output
// ([CLS] caption [SEP], right-padded; AttentionMask 0 marks padding): BLIP's recipe, with [CLS]
// replaced by bos ([DEC], as generation starts), padding and the first PromptLen tokens ignored,
// label smoothing Cfg.LMLabelSmoothing(). Use LossLabels for Hugging Face's forward(labels=…)
// exactly.
func (m *Captioner) Loss(b *models.Batch, train bool) (loss *ts.Tensor, err error) {
	if b == nil || b.Pixels == nil || b.InputIDs == nil {
		return nil, fmt.Errorf("blip caption loss needs pixels and input ids")
	}
	defer torchx.Catch(&err)
	in, labels, err := DecoderInputs(b.InputIDs, b.AttentionMask, m.Cfg.Text.BOSTokenID)
	torchx.MustOK(err)
	defer in.Drop()
	defer labels.Drop()
	if m.PromptLen > 0 {
		torchx.MustOK(IgnorePrompt(labels, m.PromptLen))
	}
	return m.LossLabels(b.Pixels, in, b.AttentionMask, labels, m.Cfg.LMLabelSmoothing(), train)
}

// IgnorePrompt sets the first n columns of labels [B, T] to −100 in place (at most T columns),
// so that the loss does not train the prompt (BLIP: decoder_targets[:, :prompt_length] = -100).
func IgnorePrompt(labels *ts.Tensor, n int) (err error) {
	defer torchx.Catch(&err)
	s := torchx.MustSize(labels)
	if len(s) != 2 {
		return fmt.Errorf("blip: labels %v, want [B, T]", s)
	}
	k := min(int64(n), s[1])
	if k <= 0 {
		return nil
	}
	head := torchx.Must(labels.Narrow(1, 0, k, false))
	defer head.Drop()
	return torchx.NoGrad(func() error {
		return torchx.Err("ignore prompt labels", head.Fill_(ts.IntScalar(nn.IgnoreIndex)))
	})
}

// ReplaceFirstToken returns a copy of ids [B, T>0] whose first column is tok.
func ReplaceFirstToken(ids *ts.Tensor, tok int64) (out *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	s := torchx.MustSize(ids)
	if len(s) != 2 || s[1] == 0 {
		return nil, fmt.Errorf("blip: input ids %v, want [B, T>0]", s)
	}
	dev, err := ids.Device()
	torchx.MustOK(err)
	head := torchx.Must(ts.Full([]int64{s[0], 1}, ts.IntScalar(tok), ids.DType(), dev))
	defer head.Drop()
	rest := torchx.Must(ids.Narrow(1, 1, s[1]-1, false))
	defer rest.Drop()
	return ts.Cat([]*ts.Tensor{head, rest}, 1)
}

// The models the trainer can optimise.
var (
	_ models.Trainable = (*Captioner)(nil)
	_ models.Trainable = (*Pretrainer)(nil)
)
