package image

import (
	"bytes"
	"os"
	"testing"
)

// The fuzz targets run their seed corpus as ordinary tests; `go test -fuzz=FuzzX` explores further. Each checks
// that hostile input gives an error or a well-formed result, never a panic.

func addFileSeeds(f *testing.F, paths ...string) {
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
}

func FuzzDecodeBytes(f *testing.F) {
	addFileSeeds(f, "testdata/hf/images/img0.jpg", "testdata/hf/images/img1.png")
	for _, name := range []string{"video-001.q50.422.jpeg", "blue-purple-pink.lossy.webp"} {
		if p := findGoSample(name); p != "" {
			addFileSeeds(f, p)
		}
	}
	f.Add(withExif(encodeJPEG(f, quadrants(), 80), 6, true))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeBytes(data, DecodeOptions{MaxPixels: 1 << 20})
		if err != nil {
			return
		}
		if m.W <= 0 || m.H <= 0 || len(m.Pix) != 3*m.W*m.H {
			t.Fatalf("bad image %dx%d with %d bytes", m.W, m.H, len(m.Pix))
		}
	})
}

func FuzzJPEGOrientation(f *testing.F) {
	f.Add(withExif(encodeJPEG(f, quadrants(), 80), 6, false))
	f.Add(withExif(encodeJPEG(f, quadrants(), 80), 3, true))
	f.Add([]byte{0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x08, 'E', 'x', 'i', 'f', 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		if o := JPEGOrientation(data); o < 1 || o > 8 {
			t.Fatalf("orientation %d", o)
		}
	})
}

func FuzzReadNPY(f *testing.F) {
	addFileSeeds(f, "testdata/hf/vit_gpt2/pixel_values.npy", "testdata/hf/images/img1_jpg_rgb.npy")
	f.Add(rawNPY(1, "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }\n", make([]byte, 16)))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ReadNPY(bytes.NewReader(data))
		if err != nil {
			return
		}
		if a.Len() != a.dataLen() {
			t.Fatalf("shape %v but %d values", a.Shape, a.dataLen())
		}
	})
}

func FuzzParseConfig(f *testing.F) {
	addFileSeeds(f, "testdata/hf/blip_caption/preprocessor_config.json", "testdata/hf/vit_gpt2/preprocessor_config.json")
	f.Add([]byte(`{"image_processor_type": "CLIPImageProcessor", "size": {"shortest_edge": 7}, "crop_size": 5}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			return
		}
		p, err := NewProcessor(c, DecodeOptions{})
		if err != nil {
			t.Fatalf("parsed config rejected by NewProcessor: %v", err)
		}
		if c.Size.Height*c.Size.Width > 256*256 || c.Size.ShortestEdge > 256 {
			return // keep the fuzzer fast
		}
		if _, err := p.Preprocess(FromImage(testPattern(9, 7))); err != nil {
			t.Logf("preprocess: %v", err)
		}
	})
}
