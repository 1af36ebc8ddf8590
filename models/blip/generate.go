package blip

import (
	"context"
	"fmt"
	"slices"

	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/models"
	"github.com/imgcap/imgcap/nn"
	"github.com/imgcap/imgcap/torchx"
)

// DecoderPrompts turns tokenizer prompts into the decoder prompts BlipForConditionalGeneration's
// generate() uses for batch images: nil gives [bos_token_id] per image; otherwise each prompt
// (tokenizer output [CLS] w1 … [SEP], all of one length ≥ 2) has its first token replaced by
// bos_token_id and its last token dropped. The inputs are not modified (Hugging Face overwrites
// the caller's column 0 in place).
func (m *Captioner) DecoderPrompts(promptIDs [][]int64, batch int) ([][]int64, error) {
	bos := m.Cfg.Text.BOSTokenID
	out := make([][]int64, batch)
	if promptIDs == nil {
		for i := range out {
			out[i] = []int64{bos}
		}
		return out, nil
	}
	if len(promptIDs) != batch {
		return nil, fmt.Errorf("blip generate: %d prompts for %d images", len(promptIDs), batch)
	}
	for i, p := range promptIDs {
		if len(p) < 2 {
			return nil, fmt.Errorf("blip generate: prompt %d has %d tokens; want the tokenizer's [CLS] … [SEP] (at least 2)", i, len(p))
		}
		if len(p) != len(promptIDs[0]) {
			// HF drops the last column of the padded batch, which for a shorter prompt is a pad
			// and not its [SEP]: refuse rather than reproduce that.
			return nil, fmt.Errorf("blip generate: prompt %d has %d tokens but prompt 0 has %d; prompts must have the same length", i, len(p), len(promptIDs[0]))
		}
		for _, id := range p {
			if id < 0 || id >= int64(m.Cfg.Text.VocabSize) {
				return nil, fmt.Errorf("blip generate: prompt %d: token id %d outside the vocabulary of %d", i, id, m.Cfg.Text.VocabSize)
			}
		}
		q := slices.Clone(p[:len(p)-1])
		q[0] = bos
		out[i] = q
	}
	return out, nil
}

// GenerateOptions returns o with the token ids BLIP's generate() always uses: generation ends
// on sep_token_id ([SEP], 102 by default — not generation_config's eos_token_id) and finished
// rows are padded with pad_token_id.
func (m *Captioner) GenerateOptions(o nn.GenerateOptions) nn.GenerateOptions {
	o.EOS = []int64{m.Cfg.Text.SepTokenID}
	o.PadID = m.Cfg.Text.PadTokenID
	return o
}

// OptionsFrom turns a generation config (the checkpoint's generation_config.json, with the
// caller's overrides) into options for Generate: length limits count the decoder prompt as
// transformers does (bos, plus the prompt's words when promptIDs is not nil), and the end and pad
// ids are BLIP's (see GenerateOptions), not the config's eos_token_id.
func (m *Captioner) OptionsFrom(gc nn.GenerationConfig, promptIDs [][]int64) (nn.GenerateOptions, error) {
	promptLen := 1
	if len(promptIDs) > 0 {
		promptLen = len(promptIDs[0]) - 1
	}
	// The config's eos_token_id must not shape the options: BLIP ends on [SEP].
	gc.EOSTokenID = []int64{m.Cfg.Text.SepTokenID}
	pad := m.Cfg.Text.PadTokenID
	gc.PadTokenID = &pad
	o, err := gc.Options(promptLen)
	if err != nil {
		return o, err
	}
	return m.GenerateOptions(o), nil
}

// Generate captions pixels [B, C, H, W] as BlipForConditionalGeneration.generate does (see
// DecoderPrompts for promptIDs, nil for none; GenerateOptions for the end and pad ids, which it
// applies). The image embeddings and every layer's cross-attention keys and values are computed
// once per image and shared by its beams; self-attention keys and values are cached. Sequences
// hold the new tokens only (the decoder prompt excluded, [SEP] included when generated).
func (m *Captioner) Generate(ctx context.Context, pixels *ts.Tensor, promptIDs [][]int64, o nn.GenerateOptions) (seqs []nn.Sequence, err error) {
	o = m.GenerateOptions(o)
	err = torchx.NoGrad(func() error {
		return torchx.WithScope(func(s *torchx.Scope) (err error) {
			defer torchx.Catch(&err)
			img := torchx.Must(m.Encode(pixels, false))
			prompts, err := m.DecoderPrompts(promptIDs, int(torchx.MustSize(img)[0]))
			torchx.MustOK(err)
			st, err := m.Text.NewState(img)
			torchx.MustOK(err)
			defer st.Drop()
			seqs, err = nn.Generate(ctx, m.decoder(st), prompts, o)
			return err
		})
	})
	return seqs, err
}

// decoder feeds the text decoder to nn.Generate, one Step per token with cached self-attention
// keys and values and the images' cross-attention keys and values.
func (m *Captioner) decoder(st *TextState) *nn.CachedDecoder {
	return &nn.CachedDecoder{State: st, Device: m.Device(), Vocab: m.Cfg.Text.VocabSize,
		LastLogits: func(ids *ts.Tensor) (out *ts.Tensor, err error) {
			defer torchx.Catch(&err)
			h := torchx.Must(m.Text.Forward(TextInput{IDs: ids, Causal: true, State: st}))
			last := torchx.Must(h.Select(1, torchx.MustSize(ids)[1]-1, false))
			return m.Head.Forward(last)
		}}
}

// Caption implements models.Captioner: one caption per image of pixels [B, C, H, W]. o.PromptIDs,
// when set, are the tokenizer's [CLS] … [SEP] ids of a prompt, exactly what Hugging Face's
// generate() takes as input_ids (its first token becomes bos_token_id and its last is dropped);
// options left zero take the generation config's values (Gen: generation_config.json), and
// generation ends on sep_token_id. Captions hold the new tokens without the final [SEP];
// Sequence is what Hugging Face returns (decoder prompt, new tokens, [SEP] when generated).
func (m *Captioner) Caption(ctx context.Context, pixels *ts.Tensor, o models.GenerateOptions) ([]models.Caption, error) {
	size, err := pixels.Size()
	if err != nil {
		return nil, torchx.Err("pixels", err)
	}
	if len(size) != 4 {
		return nil, fmt.Errorf("blip caption: pixels %v, want [B, C, H, W]", size)
	}
	var prompts [][]int64
	if len(o.PromptIDs) > 0 {
		prompts = make([][]int64, size[0])
		for i := range prompts {
			prompts[i] = o.PromptIDs
		}
	}
	dec, err := m.DecoderPrompts(prompts, int(size[0]))
	if err != nil {
		return nil, err
	}
	opts, err := m.OptionsFrom(o.Override(m.Gen), prompts)
	if err != nil {
		return nil, err
	}
	opts.Seed = o.Seed
	seqs, err := m.Generate(ctx, pixels, prompts, opts)
	if err != nil {
		return nil, err
	}
	caps := make([]models.Caption, len(seqs))
	for i, s := range seqs {
		ids := s.Tokens
		if n := len(ids); n > 0 && ids[n-1] == m.Cfg.Text.SepTokenID {
			ids = ids[:n-1]
		}
		caps[i] = models.Caption{IDs: slices.Clone(ids), Score: s.Score,
			Sequence: append(slices.Clone(dec[i]), s.Tokens...)}
	}
	return caps, nil
}

var _ models.Captioner = (*Captioner)(nil)
