package vitgpt2

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/nn"
	"github.com/imgcap/imgcap/torchx"
)

// Hugging Face transformers 4.36.2 on the same 2-core CPU (issue #6): seconds per call for
// ViT-B/16 224 + GPT-2 124M with random weights, 20 new tokens.
var hfSeconds = map[string]float64{
	"encoder/b1": 0.94, "greedy/b1": 7.45, "beam3/b1": 12.58, "greedy/b4": 13.79, "beam3/b4": 20.09,
}

var (
	fullOnce  sync.Once
	fullModel *Model
	fullErr   error
)

// fullSize builds ViT-B/16 (224²) + GPT-2 small with cross-attention, randomly initialised.
func fullSize(b *testing.B) *Model {
	fullOnce.Do(func() {
		cfg, err := ParseConfig([]byte(`{"model_type":"vision-encoder-decoder","encoder":{"model_type":"vit"},"decoder":{"model_type":"gpt2"}}`))
		if err != nil {
			fullErr = err
			return
		}
		torchx.Seed(0)
		// All cores, as imgcap's CLI and PyTorch use (libtorch alone would start with one here).
		if fullErr = torchx.SetThreads(0); fullErr != nil {
			return
		}
		fullModel, fullErr = New(cfg, gotch.CPU)
	})
	if fullErr != nil {
		b.Fatal(fullErr)
	}
	return fullModel
}

func randomPixels(b *testing.B, n int64, size int) *ts.Tensor {
	x, err := ts.Randn([]int64{n, 3, int64(size), int64(size)}, gotch.Float, gotch.CPU)
	if err != nil {
		b.Fatal(err)
	}
	return x
}

// BenchmarkGenerate times encoding and 20-token generation at full size and prints Hugging
// Face's time for the same work beside ours (go test -bench Generate -benchtime 1x).
func BenchmarkGenerate(b *testing.B) {
	m := fullSize(b)
	size := m.Cfg.Encoder.ImageSize
	for _, c := range []struct {
		name  string
		batch int64
		beams int
		enc   bool
	}{
		{"encoder/b1", 1, 0, true},
		{"greedy/b1", 1, 1, false},
		{"beam3/b1", 1, 3, false},
		{"greedy/b4", 4, 1, false},
		{"beam3/b4", 4, 3, false},
	} {
		b.Run(c.name, func(b *testing.B) {
			px := randomPixels(b, c.batch, size)
			defer px.Drop()
			for i := 0; i < b.N; i++ {
				if c.enc {
					err := torchx.NoGrad(func() error {
						h, err := m.Encode(px, false)
						if err == nil {
							h.Drop()
						}
						return err
					})
					if err != nil {
						b.Fatal(err)
					}
					continue
				}
				o := m.GenerateOptions(nn.GenerateOptions{NumBeams: c.beams, MaxNewTokens: 20, MinNewTokens: 20, LengthPenalty: 1})
				seqs, err := m.Generate(context.Background(), px, nil, o)
				if err != nil {
					b.Fatal(err)
				}
				if len(seqs) != int(c.batch) || len(seqs[0].Tokens) != 20 {
					b.Fatalf("%d sequences of %d tokens", len(seqs), len(seqs[0].Tokens))
				}
			}
			sec := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(sec, "s/op")
			b.ReportMetric(hfSeconds[c.name]/sec, "x_vs_HF")
			fmt.Printf("%-12s imgcap %6.2f s   Hugging Face %6.2f s   %.1fx   (%d threads)\n", c.name, sec, hfSeconds[c.name], hfSeconds[c.name]/sec, torchx.Threads())
		})
	}
}
