// Package models holds the contracts every model family implements and the registry that maps
// an architecture name to its constructor. The trainer, evaluator, server and CLI see only these
// interfaces, never model internals.
package models

import (
	"context"

	gnn "github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/nn"
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

// GenerateOptions control caption generation; zero values mean the model's defaults (for
// Hugging Face models, its generation_config.json).
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
	EarlyStopping bool   // beam search stops a row once NumBeams captions are finished
	Prompt        string // text the caption continues (the caller tokenizes it into PromptIDs)
	// PromptIDs are the tokenizer's ids of the prompt, as a Hugging Face tokenizer returns them
	// (BLIP: [CLS] … [SEP]); each model adds its start token or replaces special tokens the way
	// its Hugging Face generate() does.
	PromptIDs []int64
}

// Caption is one generated caption.
type Caption struct {
	Text  string  `json:"text"`
	IDs   []int64 `json:"ids"`   // generated tokens, the prompt and the end token excluded
	Score float64 `json:"score"` // sequence log-probability (beam search: length-normalised)
	// Sequence is the whole decoder sequence as Hugging Face's generate() returns it: start
	// token, prompt, generated tokens and the end token when one was generated.
	Sequence []int64 `json:"sequence,omitempty"`
}

// Captioner generates captions for a batch of images.
type Captioner interface {
	// Caption generates one caption per row of pixels ([B,3,H,W] float32, preprocessed).
	Caption(ctx context.Context, pixels *ts.Tensor, opts GenerateOptions) ([]Caption, error)
}

// Trainable is a model the shared trainer can optimise.
type Trainable interface {
	// VarStore holds every parameter, named like the Hugging Face (or torchvision) state_dict.
	VarStore() *gnn.VarStore
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

// Override returns the generation config gc with the options the user set (non-zero fields)
// applied on top, as Hugging Face's generate(**kwargs) overrides generation_config.json.
func (o GenerateOptions) Override(gc nn.GenerationConfig) nn.GenerationConfig {
	if o.NumBeams > 0 {
		gc.NumBeams = o.NumBeams
	}
	if o.MaxNewTokens > 0 {
		n := o.MaxNewTokens
		gc.MaxNewTokens = &n
	}
	if o.MinNewTokens > 0 {
		n := o.MinNewTokens
		gc.MinNewTokens = &n
	}
	if o.LengthPenalty != 0 {
		gc.LengthPenalty = o.LengthPenalty
	}
	if o.NoRepeatNgram > 0 {
		gc.NoRepeatNgramSize = o.NoRepeatNgram
	}
	if o.EarlyStopping {
		gc.EarlyStopping, gc.EarlyStoppingNever = true, false
	}
	if o.DoSample {
		gc.DoSample = true
	}
	if o.Temperature > 0 {
		gc.Temperature = o.Temperature
	}
	if o.TopK > 0 {
		gc.TopK = o.TopK
	}
	if o.TopP > 0 {
		gc.TopP = o.TopP
	}
	return gc
}
