package image

import (
	"testing"
)

// benchJPEG is a 640x480 4:2:0 JPEG (quality 90) of a deterministic pattern.
func benchJPEG(b *testing.B) []byte {
	return encodeJPEG(b, testPattern(640, 480), 90)
}

func benchProcessor(b *testing.B, typ string, size int) *Processor {
	cfg, err := DefaultConfig(typ)
	if err != nil {
		b.Fatal(err)
	}
	cfg.Size = Size{Height: size, Width: size}
	p, err := NewProcessor(cfg, DecodeOptions{})
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkPreprocess measures decode + resize + normalise of a 640x480 JPEG, one goroutine.
func BenchmarkPreprocess(b *testing.B) {
	data := benchJPEG(b)
	cases := []struct {
		name, typ string
		size      int
	}{
		{"vit_bilinear_224", "ViTImageProcessor", 224},
		{"blip_bicubic_224", "BlipImageProcessor", 224},
		{"vit_bilinear_384", "ViTImageProcessor", 384},
		{"blip_bicubic_384", "BlipImageProcessor", 384},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			p := benchProcessor(b, c.typ, c.size)
			b.SetBytes(int64(len(data)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := p.PreprocessBytes(data); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
		})
	}
}

// BenchmarkPreprocessParallel is BenchmarkPreprocess on all GOMAXPROCS goroutines (a data loader's view).
func BenchmarkPreprocessParallel(b *testing.B) {
	data := benchJPEG(b)
	for _, size := range []int{224, 384} {
		b.Run(map[int]string{224: "blip_bicubic_224", 384: "blip_bicubic_384"}[size], func(b *testing.B) {
			p := benchProcessor(b, "BlipImageProcessor", size)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := p.PreprocessBytes(data); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
		})
	}
}

// BenchmarkStages splits the pipeline: JPEG decode to RGB, resize alone, normalise alone.
func BenchmarkStages(b *testing.B) {
	data := benchJPEG(b)
	m, err := DecodeBytes(data, DecodeOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("decode_640x480", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := DecodeBytes(data, DecodeOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, f := range []Filter{Bilinear, Bicubic} {
		for _, s := range []int{224, 384} {
			b.Run("resize_"+f.String()+"_"+map[int]string{224: "224", 384: "384"}[s], func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					if _, err := Resize(m, s, s, f); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
	p := benchProcessor(b, "BlipImageProcessor", 384)
	r, _ := Resize(m, 384, 384, Bicubic)
	b.Run("normalize_384", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			p.ToPixels(r)
		}
	})
}
