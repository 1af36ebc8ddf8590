package image

import (
	"bytes"
	"errors"
	"fmt"
	stdimage "image"
	"image/color"
	_ "image/gif" // register GIF
	"image/jpeg"
	_ "image/png" // register PNG
	"io"
	"os"

	_ "golang.org/x/image/bmp"  // register BMP
	_ "golang.org/x/image/tiff" // register TIFF
	_ "golang.org/x/image/webp" // register WebP
)

// DefaultMaxPixels is the largest image (width × height) Decode accepts unless told otherwise; it equals PIL's
// Image.MAX_IMAGE_PIXELS (the threshold of PIL's DecompressionBombWarning).
const DefaultMaxPixels = 89478485

// ErrTooLarge is wrapped by the error Decode returns for an image above the pixel limit.
var ErrTooLarge = errors.New("image exceeds the pixel limit (decompression-bomb guard)")

// JPEGMode selects how JPEG chroma is upsampled and converted to RGB.
type JPEGMode int

const (
	// JPEGLibjpeg reproduces libjpeg-turbo's default output stage (what PIL returns): "fancy" triangle-filter
	// chroma upsampling and libjpeg's fixed-point YCbCr -> RGB. The IDCT is still Go's, so pixels can differ
	// from PIL by a few levels.
	JPEGLibjpeg JPEGMode = iota
	// JPEGStdlib uses Go's own conversion (chroma replicated, color.YCbCrToRGB rounding).
	JPEGStdlib
)

// DecodeOptions configures Decode. The zero value is the recommended setting.
type DecodeOptions struct {
	// MaxPixels refuses images with more pixels, checked on the header before decoding.
	// 0 means DefaultMaxPixels; a negative value disables the check.
	MaxPixels int64
	// IgnoreOrientation skips applying the JPEG EXIF orientation (transformers' load_image applies it).
	IgnoreOrientation bool
	// JPEG selects the JPEG colour path.
	JPEG JPEGMode
}

// DecodeFile reads and decodes the image file at path; errors name the file.
func DecodeFile(path string, opt DecodeOptions) (*RGB, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m, err := DecodeBytes(data, opt)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// Decode reads all of r and decodes it (see DecodeBytes).
func Decode(r io.Reader, opt DecodeOptions) (*RGB, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("reading image: %w", err)
	}
	return DecodeBytes(data, opt)
}

// DecodeBytes decodes a JPEG, PNG, GIF (first frame), BMP, TIFF or WebP image to RGB. The header is read first
// and images above the pixel limit are refused without decoding. JPEG EXIF orientation is applied unless
// disabled. Alpha is dropped, as PIL's convert("RGB") does.
func DecodeBytes(data []byte, opt DecodeOptions) (*RGB, error) {
	cfg, format, err := stdimage.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		if errors.Is(err, stdimage.ErrFormat) {
			return nil, fmt.Errorf("decoding image: unknown format (want JPEG, PNG, GIF, BMP, TIFF or WebP): %w", err)
		}
		return nil, fmt.Errorf("decoding image header: %w", err)
	}
	if err := checkPixels(cfg.Width, cfg.Height, opt.MaxPixels); err != nil {
		return nil, fmt.Errorf("%s image: %w", format, err)
	}
	var img stdimage.Image
	if format == "jpeg" {
		img, err = jpeg.Decode(bytes.NewReader(data))
	} else {
		img, _, err = stdimage.Decode(bytes.NewReader(data))
	}
	if err != nil {
		return nil, fmt.Errorf("decoding %s image (%dx%d): %w", format, cfg.Width, cfg.Height, err)
	}
	var out *RGB
	if ycc, ok := img.(*stdimage.YCbCr); ok && format == "jpeg" && opt.JPEG == JPEGStdlib {
		out = stdlibYCbCrToRGB(ycc)
	} else {
		out = FromImage(img)
	}
	if format == "jpeg" && !opt.IgnoreOrientation {
		out = Orient(out, JPEGOrientation(data))
	}
	return out, nil
}

// checkPixels applies the decompression-bomb guard to a w×h header.
func checkPixels(w, h int, limit int64) error {
	if w <= 0 || h <= 0 {
		return fmt.Errorf("invalid size %dx%d", w, h)
	}
	if limit == 0 {
		limit = DefaultMaxPixels
	}
	if limit > 0 && int64(w)*int64(h) > limit {
		return fmt.Errorf("%dx%d = %d pixels, limit %d: %w", w, h, int64(w)*int64(h), limit, ErrTooLarge)
	}
	return nil
}

// stdlibYCbCrToRGB converts with Go's color.YCbCrToRGB and replicated chroma.
func stdlibYCbCrToRGB(m *stdimage.YCbCr) *RGB {
	b := m.Rect
	out := NewRGB(b.Dx(), b.Dy())
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			yi, ci := m.YOffset(x, y), m.COffset(x, y)
			r, g, bb := color.YCbCrToRGB(m.Y[yi], m.Cb[ci], m.Cr[ci])
			out.Set(x-b.Min.X, y-b.Min.Y, r, g, bb)
		}
	}
	return out
}
