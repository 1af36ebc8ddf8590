// Package models holds the contracts every model family implements and the registry that maps
// an architecture name to its constructor. The trainer, evaluator, server and CLI see only these
// interfaces, never model internals.
package models

import (
	"context"

	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// Batch is one collated batch of images and captions, ready for a model.
type Batch struct {
	// Pixels are the preprocessed images, float32 [B, 3, H, W] (nil when Features is used).
	Pixels *ts.Tensor
	// Features are precomputed encoder features, float32 [B, ...] (nil when Pixels is used).
	Features *ts.Tensor
	// InputIDs are token ids int64 [B, L], right-padded with the tokenizer's pad id.
	InputIDs *ts.Tensor
	// AttentionMask is int64 [B, L]: 1 for real tokens, 0 for padding.
	AttentionMask *ts.Tensor
	// ImageIDs identify each row's image (COCO-style numeric ids).
	ImageIDs []int64
	// Paths are the image files of each row ("" for synthetic tensors).
	Paths []string
}

// GenerateOptions control caption generation; zero values mean the model's defaults.
type GenerateOptions struct {
	NumBeams      int     // 1 = greedy
	MaxNewTokens  int     // new tokens after the prompt
	MinNewTokens  int     // no end token before this many new tokens
	LengthPenalty float64 // beam score = logprob / length^penalty
	NoRepeatNgram int     // forbid repeated n-grams of this size (0 = off)
	DoSample      bool    // sample instead of greedy/beam
	Temperature   float64
	TopK          int
	TopP          float64
	Seed          int64
	Prompt        string // text the caption continues
}

// Caption is one generated caption.
type Caption struct {
	Text  string  `json:"text"`
	IDs   []int64 `json:"ids"`
	Score float64 `json:"score"` // sequence log-probability (beam search: length-normalised)
}

// Captioner generates captions for a batch of images.
type Captioner interface {
	// Caption generates one caption per row of pixels ([B,3,H,W] float32, preprocessed).
	Caption(ctx context.Context, pixels *ts.Tensor, opts GenerateOptions) ([]Caption, error)
}

// Trainable is a model the shared trainer can optimise.
type Trainable interface {
	// VarStore holds every parameter, named like the Hugging Face (or torchvision) state_dict.
	VarStore() *nn.VarStore
	// Loss returns the mean loss of a batch as a scalar tensor that supports Backward.
	// train switches dropout and other training-only behaviour on.
	Loss(b *Batch, train bool) (*ts.Tensor, error)
}

// Drop frees the batch's tensors. Batches are collated off the training thread, so step
// scopes do not see their tensors; whoever consumes a batch drops it.
func (b *Batch) Drop() {
	for _, t := range []*ts.Tensor{b.Pixels, b.Features, b.InputIDs, b.AttentionMask} {
		if t != nil {
			_ = t.Drop()
		}
	}
}
