package blip

import (
	"fmt"
	"math"

	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/torchx"
)

// The pieces of BLIP's retrieval evaluation (evaluation() in BLIP's train_retrieval.py): image
// embeddings and contrastive features once per image, text features once per text, then the ITM
// head on the top-k candidates of each query.

// EncodeImages runs the vision model on pixels [N, C, H, W] without gradients and returns the
// image embeddings [N, 1+patches, vision_hidden] (what ITM cross-attends) and the contrastive
// features normalize(vision_proj(embeds[:, 0])) [N, image_text_hidden_size]. The caller drops
// both.
func (m *Retrieval) EncodeImages(pixels *ts.Tensor) (embeds, feats *ts.Tensor, err error) {
	err = torchx.NoGrad(func() (err error) {
		defer torchx.Catch(&err)
		embeds = torchx.Must(m.Encode(pixels, false))
		feats, err = m.ImageFeatures(embeds)
		if err != nil {
			embeds.Drop()
			embeds = nil
		}
		return err
	})
	return embeds, feats, err
}

// EncodeTexts returns the contrastive text features normalize(text_proj(text_encoder(ids)[:, 0]))
// [M, image_text_hidden_size] of ids, mask [M, T] (mask nil = all ones), without gradients.
func (m *Retrieval) EncodeTexts(ids, mask *ts.Tensor) (feats *ts.Tensor, err error) {
	err = torchx.NoGrad(func() (err error) {
		defer torchx.Catch(&err)
		torchx.MustOK(checkIDs(ids, m.Cfg.Text.VocabSize))
		h := torchx.Must(m.TextHidden(ids, mask, false))
		defer h.Drop()
		feats, err = m.TextFeatures(h)
		return err
	})
	return feats, err
}

// PairLogits returns itm_head's logits (index 1 = match; BLIP's retrieval score is that logit,
// its softmax the match probability) for every text of ids, mask [R, T] paired with image
// embeddings image [N, Tk, E], R = N·G (rows i·G … i·G+G−1 see image i), without gradients. The
// ids are used as given (replace column 0 by [ENC] first for the original BLIP's input; see
// ReplaceFirstToken).
func (m *Retrieval) PairLogits(image, ids, mask *ts.Tensor) (out [][2]float32, err error) {
	err = torchx.NoGrad(func() error {
		return torchx.WithScope(func(*torchx.Scope) (err error) {
			defer torchx.Catch(&err)
			torchx.MustOK(checkIDs(ids, m.Cfg.Text.VocabSize))
			n, r := torchx.MustSize(image)[0], torchx.MustSize(ids)[0]
			if n == 0 || r%n != 0 {
				return fmt.Errorf("blip match: %d text rows do not split over %d images", r, n)
			}
			h := torchx.Must(m.FusedHidden(image, ids, mask, false))
			logits := torchx.Must(m.ITMLogits(h))
			v, err := torchx.Float32s(logits)
			torchx.MustOK(err)
			out = make([][2]float32, r)
			for i := range out {
				out[i] = [2]float32{v[2*i], v[2*i+1]}
			}
			return nil
		})
	})
	return out, err
}

// MatchProb is softmax(logits)[1], the probability that a text matches its image.
func MatchProb(logits [2]float32) float64 {
	a, b := float64(logits[0]), float64(logits[1])
	return 1 / (1 + math.Exp(a-b))
}
