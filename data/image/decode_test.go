package image

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	stdimage "image"
	"image/color"
	"image/gif"
	"math"
	"os"
	"strings"
	"testing"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"
)

// quadrants is a 32x16 image: red | green over blue | white.
func quadrants() *stdimage.NRGBA {
	m := stdimage.NewNRGBA(stdimage.Rect(0, 0, 32, 16))
	for y := 0; y < 16; y++ {
		for x := 0; x < 32; x++ {
			c := [4]color.NRGBA{{255, 0, 0, 255}, {0, 255, 0, 255}, {0, 0, 255, 255}, {255, 255, 255, 255}}[(y/8)*2+x/16]
			m.SetNRGBA(x, y, c)
		}
	}
	return m
}

// withExif inserts an APP1 Exif segment holding one Orientation entry right after the JPEG's SOI.
func withExif(jpg []byte, orientation int, bigEndian bool) []byte {
	var t bytes.Buffer
	var bo binary.ByteOrder = binary.LittleEndian
	if bigEndian {
		bo = binary.BigEndian
		t.WriteString("MM")
	} else {
		t.WriteString("II")
	}
	w16 := func(v uint16) { _ = binary.Write(&t, bo, v) }
	w32 := func(v uint32) { _ = binary.Write(&t, bo, v) }
	w16(42)
	w32(8)
	w16(2)      // two entries
	w16(0x010F) // Make, ASCII, 4 bytes inline
	w16(2)
	w32(4)
	t.WriteString("Go\x00\x00")
	w16(0x0112) // Orientation, SHORT, 1
	w16(3)
	w32(1)
	w16(uint16(orientation))
	w16(0)
	w32(0) // no next IFD
	seg := append([]byte("Exif\x00\x00"), t.Bytes()...)
	var out bytes.Buffer
	out.Write(jpg[:2])
	out.Write([]byte{0xFF, 0xE1})
	_ = binary.Write(&out, binary.BigEndian, uint16(len(seg)+2))
	out.Write(seg)
	out.Write(jpg[2:])
	return out.Bytes()
}

// corner colour names of a decoded quadrant image, judged by the dominant channel.
func cornerNames(m *RGB) string {
	name := func(x, y int) string {
		r, g, b := m.At(x, y)
		switch {
		case r > 200 && g > 200 && b > 200:
			return "W"
		case r > 200:
			return "R"
		case g > 200:
			return "G"
		case b > 200:
			return "B"
		}
		return "?"
	}
	// Sample 3 pixels inside each corner to stay clear of JPEG edge blur.
	return name(3, 3) + name(m.W-4, 3) + "/" + name(3, m.H-4) + name(m.W-4, m.H-4)
}

func TestEXIFOrientation(t *testing.T) {
	base := encodeJPEG(t, quadrants(), 95)
	// Expected corners after PIL's exif_transpose, worked out from the EXIF definitions on R G / B W.
	cases := []struct {
		o       int
		corners string
		w, h    int
	}{
		{1, "RG/BW", 32, 16}, {2, "GR/WB", 32, 16}, {3, "WB/GR", 32, 16}, {4, "BW/RG", 32, 16},
		{5, "RB/GW", 16, 32}, {6, "BR/WG", 16, 32}, {7, "WG/BR", 16, 32}, {8, "GW/RB", 16, 32},
	}
	for _, c := range cases {
		for _, be := range []bool{false, true} {
			data := withExif(base, c.o, be)
			if got := JPEGOrientation(data); got != c.o {
				t.Errorf("orientation %d (big endian %v): parsed %d", c.o, be, got)
			}
			m, err := DecodeBytes(data, DecodeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if m.W != c.w || m.H != c.h || cornerNames(m) != c.corners {
				t.Errorf("orientation %d: %dx%d %s, want %dx%d %s", c.o, m.W, m.H, cornerNames(m), c.w, c.h, c.corners)
			}
		}
	}
	m, err := DecodeBytes(withExif(base, 6, false), DecodeOptions{IgnoreOrientation: true})
	if err != nil {
		t.Fatal(err)
	}
	if cornerNames(m) != "RG/BW" {
		t.Errorf("IgnoreOrientation: got %s", cornerNames(m))
	}
}

func TestJPEGOrientationMalformed(t *testing.T) {
	good := withExif(encodeJPEG(t, quadrants(), 90), 6, false)
	cases := map[string][]byte{
		"not jpeg":        []byte("\x89PNG...."),
		"empty":           nil,
		"truncated exif":  good[:30],
		"bad tiff magic":  bytes.Replace(good, []byte("II*\x00"), []byte("XX*\x00"), 1),
		"no exif":         encodeJPEG(t, quadrants(), 90),
		"segment too big": append([]byte{0xFF, 0xD8, 0xFF, 0xE1, 0xFF, 0xFF}, []byte("Exif\x00\x00")...),
	}
	for name, data := range cases {
		if got := JPEGOrientation(data); got != 1 {
			t.Errorf("%s: orientation %d, want 1", name, got)
		}
	}
}

func TestOrientSmall(t *testing.T) {
	// 3x2 image with pixel values 1..6 in the red channel:  1 2 3 / 4 5 6.
	src := NewRGB(3, 2)
	for i := 0; i < 6; i++ {
		src.Pix[3*i] = uint8(i + 1)
	}
	cases := []struct {
		o    int
		w    int
		want []uint8
	}{
		{1, 3, []uint8{1, 2, 3, 4, 5, 6}},
		{2, 3, []uint8{3, 2, 1, 6, 5, 4}},
		{3, 3, []uint8{6, 5, 4, 3, 2, 1}},
		{4, 3, []uint8{4, 5, 6, 1, 2, 3}},
		{5, 2, []uint8{1, 4, 2, 5, 3, 6}}, // transpose
		{6, 2, []uint8{4, 1, 5, 2, 6, 3}}, // rotate clockwise
		{7, 2, []uint8{6, 3, 5, 2, 4, 1}}, // transverse
		{8, 2, []uint8{3, 6, 2, 5, 1, 4}}, // rotate counter-clockwise
		{9, 3, []uint8{1, 2, 3, 4, 5, 6}}, // unknown: unchanged
	}
	for _, c := range cases {
		m := Orient(src, c.o)
		var got []uint8
		for i := 0; i < 6; i++ {
			got = append(got, m.Pix[3*i])
		}
		if m.W != c.w || string(got) != string(c.want) {
			t.Errorf("orientation %d: w=%d %v, want w=%d %v", c.o, m.W, got, c.w, c.want)
		}
	}
}

func TestDecodeFormatsToRGB(t *testing.T) {
	nrgba := stdimage.NewNRGBA(stdimage.Rect(0, 0, 2, 1))
	nrgba.SetNRGBA(0, 0, color.NRGBA{10, 20, 30, 0})
	nrgba.SetNRGBA(1, 0, color.NRGBA{200, 100, 50, 128})
	gray := stdimage.NewGray(stdimage.Rect(0, 0, 2, 1))
	gray.Pix = []uint8{7, 250}
	gray16 := stdimage.NewGray16(stdimage.Rect(0, 0, 2, 1))
	gray16.SetGray16(0, 0, color.Gray16{0x12ff})
	gray16.SetGray16(1, 0, color.Gray16{0xfe01})
	rgb64 := stdimage.NewNRGBA64(stdimage.Rect(0, 0, 2, 1))
	rgb64.SetNRGBA64(0, 0, color.NRGBA64{0x0102, 0x0304, 0x0506, 0xffff})
	rgb64.SetNRGBA64(1, 0, color.NRGBA64{0xff00, 0x8080, 0x00ff, 0xffff})
	pal := stdimage.NewPaletted(stdimage.Rect(0, 0, 2, 1), color.Palette{color.NRGBA{1, 2, 3, 255}, color.NRGBA{90, 80, 70, 60}})
	pal.Pix = []uint8{1, 0}
	opaque := stdimage.NewPaletted(stdimage.Rect(0, 0, 2, 1), color.Palette{color.RGBA{1, 2, 3, 255}, color.RGBA{90, 80, 70, 255}})
	opaque.Pix = []uint8{1, 0}

	enc := func(f func(*bytes.Buffer) error) []byte {
		var b bytes.Buffer
		if err := f(&b); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	cases := []struct {
		name string
		data []byte
		want []uint8
	}{
		// PIL's convert("RGB") drops alpha: the straight RGB values survive even where alpha is 0.
		{"png rgba", encodePNG(t, nrgba), []uint8{10, 20, 30, 200, 100, 50}},
		{"png gray", encodePNG(t, gray), []uint8{7, 7, 7, 250, 250, 250}},
		{"png gray16 high byte", encodePNG(t, gray16), []uint8{0x12, 0x12, 0x12, 0xfe, 0xfe, 0xfe}},
		{"png rgb16 high byte", encodePNG(t, rgb64), []uint8{1, 3, 5, 0xff, 0x80, 0}},
		{"png palette with alpha", encodePNG(t, pal), []uint8{90, 80, 70, 1, 2, 3}},
		{"gif", enc(func(b *bytes.Buffer) error { return gif.Encode(b, opaque, nil) }), []uint8{90, 80, 70, 1, 2, 3}},
		{"bmp", enc(func(b *bytes.Buffer) error { return bmp.Encode(b, opaque) }), []uint8{90, 80, 70, 1, 2, 3}},
		{"tiff", enc(func(b *bytes.Buffer) error { return tiff.Encode(b, nrgba, nil) }), []uint8{10, 20, 30, 200, 100, 50}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := DecodeBytes(c.data, DecodeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if m.W != 2 || m.H != 1 || !bytes.Equal(m.Pix, c.want) {
				t.Errorf("got %dx%d %v, want 2x1 %v", m.W, m.H, m.Pix, c.want)
			}
		})
	}
}

func TestCMYKFormula(t *testing.T) {
	// PIL cmyk2rgb: nk = 255-k; out = nk - MULDIV255(c, nk) with MULDIV255(a,b) = ((a*b+128)>>8 + a*b+128) >> 8.
	cases := []struct{ c, m, y, k, r, g, b uint8 }{
		{0, 0, 0, 0, 255, 255, 255},
		{0, 0, 0, 255, 0, 0, 0},
		{255, 0, 128, 0, 0, 255, 127},
		{128, 64, 0, 55, 100, 150, 200}, // nk=200: 200-100, 200-50, 200-0 (128*200+128=25728 -> 100)
	}
	for _, c := range cases {
		r, g, b := cmykToRGB(c.c, c.m, c.y, c.k)
		if r != c.r || g != c.g || b != c.b {
			t.Errorf("cmyk(%d,%d,%d,%d) = %d,%d,%d; want %d,%d,%d", c.c, c.m, c.y, c.k, r, g, b, c.r, c.g, c.b)
		}
	}
}

// meanAbsDiff compares an RGB image with a reference image of the same size.
func meanAbsDiff(t *testing.T, m *RGB, ref stdimage.Image) float64 {
	t.Helper()
	rr := FromImage(ref)
	if rr.W != m.W || rr.H != m.H {
		t.Fatalf("size %dx%d vs reference %dx%d", m.W, m.H, rr.W, rr.H)
	}
	var s float64
	for i := range m.Pix {
		s += math.Abs(float64(m.Pix[i]) - float64(rr.Pix[i]))
	}
	return s / float64(len(m.Pix))
}

func TestJPEGSubsamplingVariants(t *testing.T) {
	srcData, err := os.ReadFile(goSample(t, "video-001.png"))
	if err != nil {
		t.Fatal(err)
	}
	src, _, err := stdimage.Decode(bytes.NewReader(srcData))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"q50.420", "q50.422", "q50.440", "q50.444", "q50.411", "q50.420.progressive"} {
		t.Run(name, func(t *testing.T) {
			path := goSample(t, "video-001."+name+".jpeg")
			lib, err := DecodeFile(path, DecodeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			std, err := DecodeFile(path, DecodeOptions{JPEG: JPEGStdlib})
			if err != nil {
				t.Fatal(err)
			}
			dl, ds := meanAbsDiff(t, lib, src), meanAbsDiff(t, std, src)
			t.Logf("mean |decoded - lossless source|: libjpeg-style %.2f, Go stdlib %.2f", dl, ds)
			// Quality-50 JPEG error dominates; the libjpeg-style path must be as faithful as Go's (smoothing
			// chroma helps), and both must be close to the source.
			if dl > 8 || dl > ds+0.1 {
				t.Errorf("libjpeg-style decode error %.2f (Go stdlib %.2f)", dl, ds)
			}
		})
	}
}

func TestDecodeOtherSamples(t *testing.T) {
	cases := []struct {
		path string
		w, h int
	}{
		{"video-001.cmyk.jpeg", 150, 103},
		{"video-005.gray.q50.jpeg", 150, 103},
		{"blue-purple-pink.lossy.webp", 0, 0},
		{"blue-purple-pink.lossless.webp", 0, 0},
	}
	for _, c := range cases {
		c.path = goSample(t, c.path)
		m, err := DecodeFile(c.path, DecodeOptions{})
		if err != nil {
			t.Fatalf("%s: %v", c.path, err)
		}
		if len(m.Pix) != 3*m.W*m.H || m.W == 0 {
			t.Errorf("%s: bad image %dx%d", c.path, m.W, m.H)
		}
		if c.w > 0 && (m.W != c.w || m.H != c.h) {
			t.Errorf("%s: %dx%d, want %dx%d", c.path, m.W, m.H, c.w, c.h)
		}
	}
	// The CMYK JPEG must match Go's own RGB rendering of it up to the formula difference (PIL's cmyk2rgb
	// rounds differently from Go's color.CMYKToRGB).
	cm, _ := DecodeFile(goSample(t, "video-001.cmyk.jpeg"), DecodeOptions{})
	f, _ := os.ReadFile(goSample(t, "video-001.cmyk.png"))
	ref, _, _ := stdimage.Decode(bytes.NewReader(f))
	if d := meanAbsDiff(t, cm, ref); d > 1 {
		t.Errorf("CMYK JPEG mean |diff| vs source %.2f", d)
	}
}

// pngHeaderOnly is a PNG signature and an IHDR claiming w×h RGB pixels, with no image data.
func pngHeaderOnly(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr, w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2 // 8-bit truecolour
	_ = binary.Write(&b, binary.BigEndian, uint32(13))
	chunk := append([]byte("IHDR"), ihdr...)
	b.Write(chunk)
	_ = binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(chunk))
	return b.Bytes()
}

func TestDecompressionBombGuard(t *testing.T) {
	bomb := pngHeaderOnly(100000, 100000)
	_, err := DecodeBytes(bomb, DecodeOptions{})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "100000x100000") {
		t.Fatalf("error %v, want ErrTooLarge naming the size", err)
	}
	small := encodePNG(t, testPattern(4, 4))
	if _, err := DecodeBytes(small, DecodeOptions{MaxPixels: 15}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("16 pixels with limit 15: error %v, want ErrTooLarge", err)
	}
	if _, err := DecodeBytes(small, DecodeOptions{MaxPixels: 16}); err != nil {
		t.Errorf("16 pixels with limit 16: %v", err)
	}
	// Without a limit the header passes and decoding fails on the missing data, not on size.
	if _, err := DecodeBytes(bomb, DecodeOptions{MaxPixels: -1}); err == nil || errors.Is(err, ErrTooLarge) {
		t.Errorf("no limit: error %v, want a decode error", err)
	}
}

func TestDecodeErrors(t *testing.T) {
	cases := map[string][]byte{
		"garbage":   []byte("this is not an image at all"),
		"empty":     nil,
		"truncated": encodePNG(t, testPattern(64, 64))[:100],
	}
	for name, data := range cases {
		if _, err := DecodeBytes(data, DecodeOptions{}); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
	if _, err := DecodeFile("testdata/does-not-exist.png", DecodeOptions{}); err == nil {
		t.Error("missing file: want an error")
	}
}

func TestFancyUpsamplingHand(t *testing.T) {
	// h2v1: 3/4 nearer + 1/4 further with biases 1 and 2; edges copy.
	out := make([]uint8, 6)
	fancyH2V1([]uint8{0, 100, 200}, out)
	if want := []uint8{0, 25, 75, 125, 175, 200}; !bytes.Equal(out, want) {
		t.Errorf("h2v1 %v, want %v", out, want)
	}
	// h2v2 with near row [0 100 200], far row [40 40 40]: colsum = 40, 340, 640;
	// out = (4*40+8)>>4=10, (3*40+340+7)>>4=29, (3*340+40+8)>>4=66, (3*340+640+7)>>4=104,
	// (3*640+340+8)>>4=141, (4*640+7)>>4=160.
	cs := make([]int32, 3)
	fancyH2V2([]uint8{0, 100, 200}, []uint8{40, 40, 40}, cs, out)
	if want := []uint8{10, 29, 66, 104, 141, 160}; !bytes.Equal(out, want) {
		t.Errorf("h2v2 %v, want %v", out, want)
	}
}

func TestYCCPixelHand(t *testing.T) {
	// libjpeg: R = Y + ((91881*(Cr-128) + 32768) >> 16); B = Y + ((116130*(Cb-128) + 32768) >> 16);
	// G = Y + ((-22554*(Cb-128) - 46802*(Cr-128) + 32768) >> 16).
	cases := []struct{ y, cb, cr, r, g, b uint8 }{
		{100, 128, 128, 100, 100, 100},
		{100, 128, 138, 114, 93, 100}, // R: 951578>>16 = 14; G: (-468020+32768)>>16 = -7
		{100, 118, 128, 100, 103, 82}, // B: (-1161300+32768)>>16 = -18; G: (225540+32768)>>16 = 3
		{250, 128, 255, 255, 159, 250},
	}
	for _, c := range cases {
		r, g, b := yccPixel(c.y, c.cb, c.cr)
		if r != c.r || g != c.g || b != c.b {
			t.Errorf("ycc(%d,%d,%d) = %d,%d,%d; want %d,%d,%d", c.y, c.cb, c.cr, r, g, b, c.r, c.g, c.b)
		}
	}
}

func TestYCbCrRatiosGreyAndConstant(t *testing.T) {
	// Constant chroma must give the same colour everywhere for every subsampling ratio and odd sizes.
	for _, ratio := range []stdimage.YCbCrSubsampleRatio{
		stdimage.YCbCrSubsampleRatio444, stdimage.YCbCrSubsampleRatio422, stdimage.YCbCrSubsampleRatio420,
		stdimage.YCbCrSubsampleRatio440, stdimage.YCbCrSubsampleRatio411, stdimage.YCbCrSubsampleRatio410,
	} {
		m := stdimage.NewYCbCr(stdimage.Rect(0, 0, 13, 7), ratio)
		for i := range m.Y {
			m.Y[i] = uint8(i * 7)
		}
		for i := range m.Cb {
			m.Cb[i], m.Cr[i] = 90, 170
		}
		out := FromImage(m)
		for y := 0; y < 7; y++ {
			for x := 0; x < 13; x++ {
				r, g, b := out.At(x, y)
				er, eg, eb := yccPixel(m.Y[m.YOffset(x, y)], 90, 170)
				if r != er || g != eg || b != eb {
					t.Fatalf("%v (%d,%d): %d,%d,%d want %d,%d,%d", ratio, x, y, r, g, b, er, eg, eb)
				}
			}
		}
	}
}
