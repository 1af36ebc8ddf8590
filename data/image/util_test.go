package image

import (
	"bytes"
	stdimage "image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func readFile(path string) ([]byte, error) { return os.ReadFile(path) }

// rgbFrom builds an RGB image from rows of packed pixels.
func rgbFrom(w, h int, pix ...uint8) *RGB {
	return &RGB{W: w, H: h, Pix: pix}
}

func encodePNG(t testing.TB, img stdimage.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encodeJPEG(t testing.TB, img stdimage.Image, q int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: q}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// testPattern is a deterministic smooth-plus-edges RGB test image.
func testPattern(w, h int) *stdimage.NRGBA {
	m := stdimage.NewNRGBA(stdimage.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			r := uint8(x * 255 / max(1, w-1))
			g := uint8(y * 255 / max(1, h-1))
			b := uint8((x*7 + y*13) % 256)
			if (x/16+y/16)%2 == 0 {
				b = 255 - b
			}
			m.SetNRGBA(x, y, color.NRGBA{r, g, b, 255})
		}
	}
	return m
}

// findGoSample locates one of the Go project's own image test files, which every Go installation has:
// $GOROOT/src/image/testdata (video-*) and golang.org/x/image's testdata in the module cache (*.webp).
// They are read in place rather than copied into this repository. It returns "" when absent.
func findGoSample(name string) string {
	dirs := []string{filepath.Join(runtime.GOROOT(), "src", "image", "testdata")}
	if out, err := exec.Command("go", "env", "GOMODCACHE").Output(); err == nil {
		dirs = append(dirs, filepath.Join(strings.TrimSpace(string(out)), "golang.org", "x", "image@v0.48.0", "testdata"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// goSample is findGoSample for tests: it skips the test when the file is not installed.
func goSample(t testing.TB, name string) string {
	t.Helper()
	p := findGoSample(name)
	if p == "" {
		t.Skipf("Go sample image %s not found in GOROOT or the module cache", name)
	}
	return p
}
