package synth

import "testing"

// BenchmarkGenerate measures writing a 500-image 64x64 JPEG dataset (metadata, rendering, encoding, files).
func BenchmarkGenerate(b *testing.B) {
	for _, format := range Formats {
		b.Run(format, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, err := Generate(Options{Format: format, N: 500, OutDir: b.TempDir(), Seed: int64(i)}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(500*b.N)/b.Elapsed().Seconds(), "images/s")
		})
	}
}

// BenchmarkRender measures drawing one 64x64 scene.
func BenchmarkRender(b *testing.B) {
	scenes := NewScenes(256, 64, 1)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		Render(scenes[i%len(scenes)])
	}
}
