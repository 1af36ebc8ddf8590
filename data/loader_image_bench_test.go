package data

import (
	"context"
	"fmt"
	stdimage "image"
	"image/color"
	"image/jpeg"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/imgcap/imgcap/data/image"
)

// BenchmarkLoaderImages measures the loader with the real image pipeline: 640×480 JPEGs
// decoded, resized (bilinear, like ViT's processor) to 224² or 384², normalised, batched, with 1
// and 2 workers. It reports images/s.
func BenchmarkLoaderImages(b *testing.B) {
	dir := b.TempDir()
	const nImages = 64
	recs := make([]Record, nImages)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range recs {
		m := stdimage.NewRGBA(stdimage.Rect(0, 0, 640, 480))
		for y := 0; y < 480; y++ {
			for x := 0; x < 640; x++ {
				m.Set(x, y, color.RGBA{uint8(x + i), uint8(y * 3), uint8(rng.IntN(256)), 255})
			}
		}
		p := filepath.Join(dir, fmt.Sprintf("%03d.jpg", i))
		f, err := os.Create(p)
		if err != nil {
			b.Fatal(err)
		}
		if err := jpeg.Encode(f, m, &jpeg.Options{Quality: 90}); err != nil {
			b.Fatal(err)
		}
		f.Close()
		recs[i] = Record{ID: int64(i), Name: filepath.Base(p), Path: p, Captions: []string{"x"}}
	}
	for _, size := range []int{224, 384} {
		cfg, err := image.DefaultConfig("ViTImageProcessor")
		if err != nil {
			b.Fatal(err)
		}
		cfg.Size = image.Size{Height: size, Width: size}
		proc, err := image.NewProcessor(cfg, image.DecodeOptions{})
		if err != nil {
			b.Fatal(err)
		}
		transform := func(ctx context.Context, rec *Record, s Sample, rng *rand.Rand) (image.Pixels, error) {
			return proc.PreprocessFile(rec.Path)
		}
		for _, workers := range []int{1, 2} {
			b.Run(fmt.Sprintf("%dpx/workers=%d", size, workers), func(b *testing.B) {
				l, err := NewLoader(recs, LoaderOptions[image.Pixels]{Transform: transform, BatchSize: 16, Workers: workers, Seed: 1, Unit: PerImage})
				if err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				images := 0
				for i := 0; i < b.N; i++ {
					it := l.Iter(context.Background(), Position{Epoch: i})
					for {
						batch, err := it.Next()
						if err != nil {
							b.Fatal(err)
						}
						images += len(batch.Items)
						if batch.Next.Epoch != i {
							break
						}
					}
					it.Close()
				}
				b.ReportMetric(float64(images)/time.Since(start).Seconds(), "images/s")
			})
		}
	}
}
