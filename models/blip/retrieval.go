package blip

import (
	"fmt"

	"github.com/sugarme/gotch"
	gnn "github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/nn"
	"github.com/imgcap/imgcap/torchx"
)

// Retrieval is BlipForImageTextRetrieval: vision_model.*, text_encoder.* (a TextModel run
// bidirectionally), vision_proj and text_proj (image-text contrastive features) and itm_head
// (image-text matching).
type Retrieval struct {
	Cfg        Config
	vs         *gnn.VarStore
	Vision     *VisionModel
	Text       *TextModel
	VisionProj *nn.Linear
	TextProj   *nn.Linear
	ITMHead    *nn.Linear
}

// NewRetrieval builds a randomly initialised retrieval model on device (Hugging Face's
// initialisation).
func NewRetrieval(cfg Config, device gotch.Device) (m *Retrieval, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	vs := gnn.NewVarStore(device)
	m = &Retrieval{Cfg: cfg, vs: vs}
	if err := m.build(vs.Root()); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Retrieval) build(root *gnn.Path) (err error) {
	cfg := m.Cfg
	std := cfg.InitializerRange
	if m.Vision, err = NewVisionModel(root.Sub("vision_model"), cfg.Vision, std); err != nil {
		return fmt.Errorf("blip vision_model: %w", err)
	}
	if m.Text, err = NewTextModel(root.Sub("text_encoder"), cfg.Text, std); err != nil {
		return fmt.Errorf("blip text_encoder: %w", err)
	}
	defer torchx.Catch(&err)
	d := int64(cfg.ImageTextHiddenSize)
	m.VisionProj = linear(root.Sub("vision_proj"), int64(cfg.Vision.HiddenSize), d, std)
	m.TextProj = linear(root.Sub("text_proj"), int64(cfg.Text.HiddenSize), d, std)
	m.ITMHead = linear(root.Sub("itm_head"), int64(cfg.Text.HiddenSize), 2, std)
	return nil
}

// VarStore holds every parameter, named like the Hugging Face state_dict.
func (m *Retrieval) VarStore() *gnn.VarStore { return m.vs }

// Device is where the parameters live.
func (m *Retrieval) Device() gotch.Device { return m.vs.Device() }

// Encode returns the image embeddings [B, 1+patches, vision_hidden].
func (m *Retrieval) Encode(pixels *ts.Tensor, train bool) (*ts.Tensor, error) {
	return m.Vision.Forward(pixels, train)
}

// FusedHidden runs the text encoder bidirectionally on ids [R, T] (mask [R, T] or nil) with
// cross-attention to every token of image embeddings [N, Tk, vision_hidden], R = N·G: rows
// i·G … i·G+G−1 see image i. It returns the last hidden states [R, T, hidden]. As in Hugging
// Face, the ids are used as given (the original BLIP replaces [CLS] by [ENC] first).
func (m *Retrieval) FusedHidden(image, ids, mask *ts.Tensor, train bool) (*ts.Tensor, error) {
	if !m.Text.HasCrossAttention() {
		return nil, fmt.Errorf("blip retrieval: the text encoder has no cross-attention (text_config.is_decoder false), so it cannot match")
	}
	return m.Text.Forward(TextInput{IDs: ids, Mask: mask, Image: image, Train: train})
}

// ITMLogits is itm_head applied to token 0 of fused hidden states [R, T, hidden]: [R, 2], index 1
// = match.
func (m *Retrieval) ITMLogits(fused *ts.Tensor) (out *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	first := torchx.Must(fused.Select(1, 0, false))
	defer first.Drop()
	return m.ITMHead.Forward(first)
}

// ITM is BlipForImageTextRetrieval(use_itm_head=True): the match logits [B, 2] of image i with
// text i, for pixels [B, C, H, W] and ids, mask [B, T] (mask nil = all ones).
func (m *Retrieval) ITM(pixels, ids, mask *ts.Tensor) (out *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	torchx.MustOK(checkIDs(ids, m.Cfg.Text.VocabSize))
	img := torchx.Must(m.Encode(pixels, false))
	defer img.Drop()
	if is, ds := torchx.MustSize(img), torchx.MustSize(ids); len(ds) != 2 || is[0] != ds[0] {
		return nil, fmt.Errorf("blip retrieval: %d images and input ids %v; ITM pairs image i with text i", is[0], ds)
	}
	h := torchx.Must(m.FusedHidden(img, ids, mask, false))
	defer h.Drop()
	return m.ITMLogits(h)
}

// TextHidden runs the text encoder bidirectionally without the image (the ITC text branch):
// last hidden states [M, T, hidden].
func (m *Retrieval) TextHidden(ids, mask *ts.Tensor, train bool) (*ts.Tensor, error) {
	return m.Text.Forward(TextInput{IDs: ids, Mask: mask, Train: train})
}

// ImageFeatures is normalize(vision_proj(image_embeds[:, 0])): [N, image_text_hidden_size].
func (m *Retrieval) ImageFeatures(image *ts.Tensor) (*ts.Tensor, error) {
	return projectFirst(m.VisionProj, image)
}

// TextFeatures is normalize(text_proj(text_hidden[:, 0])): [M, image_text_hidden_size].
func (m *Retrieval) TextFeatures(textHidden *ts.Tensor) (*ts.Tensor, error) {
	return projectFirst(m.TextProj, textHidden)
}

// projectFirst is normalize(proj(x[:, 0]), dim=-1).
func projectFirst(proj *nn.Linear, x *ts.Tensor) (out *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	first := torchx.Must(x.Select(1, 0, false))
	defer first.Drop()
	p := torchx.Must(proj.Forward(first))
	defer p.Drop()
	return Normalize(p)
}

// Normalize is F.normalize(x, dim=-1): x / max(‖x‖₂, 1e-12).
func Normalize(x *ts.Tensor) (out *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	n := torchx.Must(x.NormScalaroptDim(ts.FloatScalar(2), []int64{-1}, true, false))
	defer n.Drop()
	c := torchx.Must(n.ClampMin(ts.FloatScalar(1e-12), false))
	defer c.Drop()
	return x.Div(c, false)
}

// ITC is BlipForImageTextRetrieval(use_itm_head=False): the cosine similarities [N, M] of the
// images' and texts' contrastive features (no temperature).
func (m *Retrieval) ITC(pixels, ids, mask *ts.Tensor) (out *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	torchx.MustOK(checkIDs(ids, m.Cfg.Text.VocabSize))
	img := torchx.Must(m.Encode(pixels, false))
	defer img.Drop()
	fi := torchx.Must(m.ImageFeatures(img))
	defer fi.Drop()
	th := torchx.Must(m.TextHidden(ids, mask, false))
	defer th.Drop()
	ft := torchx.Must(m.TextFeatures(th))
	defer ft.Drop()
	ftT := torchx.Must(ft.T(false))
	defer ftT.Drop()
	return fi.Matmul(ftT, false)
}

// pairHidden runs the fused text encoder for every (image, text) pair of image embeddings
// [N, Tk, E] and ids, mask [M, T]: [N·M, T, hidden], row i·M + j pairing image i with text j.
func (m *Retrieval) pairHidden(image, ids, mask *ts.Tensor) (out *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	n := torchx.MustSize(image)[0]
	rep := torchx.Must(ids.Repeat([]int64{n, 1}, false))
	defer rep.Drop()
	var repMask *ts.Tensor
	if mask != nil {
		repMask = torchx.Must(mask.Repeat([]int64{n, 1}, false))
		defer repMask.Drop()
	}
	return m.FusedHidden(image, rep, repMask, false)
}

// MatchScores are the image-text scores of every pair, indexed [image][text].
type MatchScores struct {
	// ITMLogits are itm_head's logits (index 1 = match).
	ITMLogits [][][2]float32
	// ITMProb is softmax(ITMLogits)[1], the probability that the text describes the image.
	ITMProb [][]float32
	// ITC is the cosine similarity of the contrastive features.
	ITC [][]float32
}

// maxPairRows bounds the rows (image-text pairs) Match sends through the fused text encoder at
// once.
const maxPairRows = 256

// Match scores every image of pixels [N, C, H, W] against every text of ids, mask [M, T] (mask
// nil = all ones): ITM match probabilities (the text encoder cross-attending each image, image
// embeddings and cross-attention keys and values computed once per image) and ITC similarities.
func (m *Retrieval) Match(pixels, ids, mask *ts.Tensor) (res *MatchScores, err error) {
	err = torchx.NoGrad(func() error {
		return torchx.WithScope(func(s *torchx.Scope) (err error) {
			defer torchx.Catch(&err)
			torchx.MustOK(checkIDs(ids, m.Cfg.Text.VocabSize))
			img := torchx.Must(m.Encode(pixels, false))
			N := torchx.MustSize(img)[0]
			is := torchx.MustSize(ids)
			if len(is) != 2 || is[0] == 0 {
				return fmt.Errorf("blip match: input ids %v, want [M>0, T]", is)
			}
			M := is[0]
			res = &MatchScores{}
			step := max(1, maxPairRows/M)
			for i0 := int64(0); i0 < N; i0 += step {
				n := min(step, N-i0)
				torchx.MustOK(torchx.WithScope(func(*torchx.Scope) (err error) {
					defer torchx.Catch(&err)
					chunk := torchx.Must(img.Narrow(0, i0, n, false))
					h := torchx.Must(m.pairHidden(chunk, ids, mask))
					logits := torchx.Must(m.ITMLogits(h))
					vals, err := torchx.Float32s(logits)
					torchx.MustOK(err)
					probs := torchx.Must(logits.Softmax(-1, gotch.Float, false))
					pv, err := torchx.Float32s(probs)
					torchx.MustOK(err)
					for i := int64(0); i < n; i++ {
						lrow := make([][2]float32, M)
						prow := make([]float32, M)
						for j := int64(0); j < M; j++ {
							r := i*M + j
							lrow[j] = [2]float32{vals[2*r], vals[2*r+1]}
							prow[j] = pv[2*r+1]
						}
						res.ITMLogits = append(res.ITMLogits, lrow)
						res.ITMProb = append(res.ITMProb, prow)
					}
					return nil
				}))
			}
			fi := torchx.Must(m.ImageFeatures(img))
			th := torchx.Must(m.TextHidden(ids, mask, false))
			ft := torchx.Must(m.TextFeatures(th))
			ftT := torchx.Must(ft.T(false))
			sim := torchx.Must(fi.Matmul(ftT, false))
			sv, err := torchx.Float32s(sim)
			torchx.MustOK(err)
			for i := int64(0); i < N; i++ {
				res.ITC = append(res.ITC, sv[i*M:(i+1)*M])
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}
