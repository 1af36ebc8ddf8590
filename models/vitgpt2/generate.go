package vitgpt2

import (
	"context"
	"fmt"
	"slices"

	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/models"
	"github.com/imgcap/imgcap/models/gpt2"
	"github.com/imgcap/imgcap/nn"
	"github.com/imgcap/imgcap/torchx"
)

// Generate runs generation for pixels [B, C, H, W]. prompts[b] are the decoder tokens each
// caption starts with (at least decoder_start_token_id; all of one length); nil means
// [decoder_start_token_id] for every image. Sequences hold the new tokens only.
func (m *Model) Generate(ctx context.Context, pixels *ts.Tensor, prompts [][]int64, o nn.GenerateOptions) (seqs []nn.Sequence, err error) {
	err = torchx.NoGrad(func() error {
		return torchx.WithScope(func(s *torchx.Scope) (err error) {
			defer torchx.Catch(&err)
			enc := torchx.Must(m.Encode(pixels, false))
			b := torchx.MustSize(enc)[0]
			if prompts == nil {
				for i := int64(0); i < b; i++ {
					prompts = append(prompts, []int64{m.Cfg.DecoderStartTokenID})
				}
			}
			if int64(len(prompts)) != b {
				return fmt.Errorf("%d prompts for %d images", len(prompts), b)
			}
			st, err := m.Decoder.NewState(enc)
			torchx.MustOK(err)
			defer st.Drop()
			d := m.decoder(st)
			seqs, err = nn.Generate(ctx, d, prompts, o)
			return err
		})
	})
	return seqs, err
}

// GenerateOptions fills o's zero-valued token ids from the model config: EOS and pad.
func (m *Model) GenerateOptions(o nn.GenerateOptions) nn.GenerateOptions {
	if len(o.EOS) == 0 {
		o.EOS = []int64{m.Cfg.EOSTokenID}
	}
	o.PadID = m.Cfg.PadTokenID
	return o
}

// decoder feeds GPT-2 to nn.Generate with cached self-attention and the images' cross-attention
// keys and values.
func (m *Model) decoder(st *gpt2.State) *nn.CachedDecoder {
	return &nn.CachedDecoder{State: st, Device: m.Device(), Vocab: m.Cfg.Decoder.VocabSize,
		LastLogits: func(ids *ts.Tensor) (out *ts.Tensor, err error) {
			defer torchx.Catch(&err)
			h := torchx.Must(m.Decoder.Hidden(ids, nil, st, false))
			last := torchx.Must(h.Select(1, torchx.MustSize(ids)[1]-1, false))
			return ts.Linear(last, m.Decoder.WTE(), ts.None)
		}}
}

// Caption implements models.Captioner: o.PromptIDs, when set, are the decoder prompt exactly as
// Hugging Face's generate() takes decoder_input_ids (starting with decoder_start_token_id);
// zero options take the generation config's values (see GenerationConfig).
func (m *Model) Caption(ctx context.Context, pixels *ts.Tensor, o models.GenerateOptions) (caps []models.Caption, err error) {
	prompt := o.PromptIDs
	if len(prompt) == 0 {
		prompt = []int64{m.Cfg.DecoderStartTokenID}
	}
	for _, id := range prompt {
		if id < 0 || id >= int64(m.Cfg.Decoder.VocabSize) {
			return nil, fmt.Errorf("prompt id %d outside the vocabulary of %d", id, m.Cfg.Decoder.VocabSize)
		}
	}
	size, err := pixels.Size()
	if err != nil {
		return nil, torchx.Err("pixels", err)
	}
	prompts := make([][]int64, size[0])
	for i := range prompts {
		prompts[i] = prompt
	}
	go_, err := o.Override(m.Gen).Options(len(prompt))
	if err != nil {
		return nil, err
	}
	go_.Seed = o.Seed
	go_ = m.GenerateOptions(go_)
	seqs, err := m.Generate(ctx, pixels, prompts, go_)
	if err != nil {
		return nil, err
	}
	for _, s := range seqs {
		ids := s.Tokens
		if n := len(ids); n > 0 && slices.Contains(go_.EOS, ids[n-1]) {
			ids = ids[:n-1]
		}
		caps = append(caps, models.Caption{IDs: ids, Score: s.Score, Sequence: append(append([]int64(nil), prompt...), s.Tokens...)})
	}
	return caps, nil
}
