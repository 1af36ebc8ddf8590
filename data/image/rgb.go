// Package image is imgcap's image pipeline: decoding (JPEG, PNG, GIF, BMP, TIFF, WebP) with EXIF orientation and
// a decompression-bomb guard, conversion to 8-bit RGB the way PIL's convert("RGB") does it, PIL-exact
// antialiased resizing, Hugging Face image-processor preprocessing (resize, center crop, rescale, normalise) driven
// by a model's preprocessor_config.json, training augmentation, and a NumPy .npy reader/writer for fixtures.
//
// Output tensors are plain CHW float32 slices; this package does not depend on libtorch.
package image

import (
	"fmt"
	stdimage "image"
	"image/color"
)

// RGB is an 8-bit RGB image: Pix holds rows top to bottom, each pixel as R, G, B bytes (HWC order, no padding).
type RGB struct {
	W, H int     // width and height in pixels
	Pix  []uint8 // len 3*W*H
}

// NewRGB returns a black w×h image.
func NewRGB(w, h int) *RGB {
	return &RGB{W: w, H: h, Pix: make([]uint8, 3*w*h)}
}

// At returns the R, G, B values of pixel (x, y).
func (m *RGB) At(x, y int) (r, g, b uint8) {
	i := 3 * (y*m.W + x)
	return m.Pix[i], m.Pix[i+1], m.Pix[i+2]
}

// Set sets pixel (x, y) to r, g, b.
func (m *RGB) Set(x, y int, r, g, b uint8) {
	i := 3 * (y*m.W + x)
	m.Pix[i], m.Pix[i+1], m.Pix[i+2] = r, g, b
}

// Clone returns a deep copy of m.
func (m *RGB) Clone() *RGB {
	return &RGB{W: m.W, H: m.H, Pix: append([]uint8(nil), m.Pix...)}
}

// ToImage returns m as a standard library image (opaque), for encoding or display.
func (m *RGB) ToImage() *stdimage.NRGBA {
	out := stdimage.NewNRGBA(stdimage.Rect(0, 0, m.W, m.H))
	for i, j := 0, 0; i < len(m.Pix); i, j = i+3, j+4 {
		out.Pix[j], out.Pix[j+1], out.Pix[j+2], out.Pix[j+3] = m.Pix[i], m.Pix[i+1], m.Pix[i+2], 255
	}
	return out
}

// Crop returns the w×h rectangle whose top-left corner is (x, y) as a new image. Like PIL's Image.crop, parts of
// the rectangle outside m are black.
func (m *RGB) Crop(x, y, w, h int) (*RGB, error) {
	if w <= 0 || h <= 0 {
		return nil, fmt.Errorf("crop: empty rectangle %dx%d", w, h)
	}
	out := NewRGB(w, h)
	for yy := 0; yy < h; yy++ {
		sy := y + yy
		if sy < 0 || sy >= m.H {
			continue
		}
		x0, x1 := x, x+w
		if x0 < 0 {
			x0 = 0
		}
		if x1 > m.W {
			x1 = m.W
		}
		if x0 >= x1 {
			continue
		}
		copy(out.Pix[3*(yy*w+x0-x):], m.Pix[3*(sy*m.W+x0):3*(sy*m.W+x1)])
	}
	return out, nil
}

// FlipHorizontal returns m mirrored left to right.
func (m *RGB) FlipHorizontal() *RGB {
	out := NewRGB(m.W, m.H)
	for y := 0; y < m.H; y++ {
		row := m.Pix[3*y*m.W : 3*(y+1)*m.W]
		orow := out.Pix[3*y*m.W : 3*(y+1)*m.W]
		for x := 0; x < m.W; x++ {
			j := 3 * (m.W - 1 - x)
			orow[3*x], orow[3*x+1], orow[3*x+2] = row[j], row[j+1], row[j+2]
		}
	}
	return out
}

// FromImage converts any decoded image to RGB the way PIL's Image.convert("RGB") does for the corresponding PIL
// mode: alpha is dropped (not composited), grayscale is replicated, palettes are looked up, CMYK uses PIL's
// formula, 16-bit samples keep their high byte. YCbCr (JPEG, WebP) goes through libjpeg-turbo's fancy chroma
// upsampling and fixed-point colour conversion.
func FromImage(img stdimage.Image) *RGB {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	out := NewRGB(w, h)
	p := out.Pix
	switch m := img.(type) {
	case *stdimage.NRGBA:
		for y := 0; y < h; y++ {
			row := m.Pix[(y+b.Min.Y-m.Rect.Min.Y)*m.Stride+(b.Min.X-m.Rect.Min.X)*4:]
			o := p[3*y*w:]
			for x := 0; x < w; x++ {
				o[3*x], o[3*x+1], o[3*x+2] = row[4*x], row[4*x+1], row[4*x+2]
			}
		}
	case *stdimage.RGBA:
		for y := 0; y < h; y++ {
			row := m.Pix[(y+b.Min.Y-m.Rect.Min.Y)*m.Stride+(b.Min.X-m.Rect.Min.X)*4:]
			o := p[3*y*w:]
			for x := 0; x < w; x++ {
				r, g, bb, a := row[4*x], row[4*x+1], row[4*x+2], row[4*x+3]
				if a != 255 && a != 0 {
					r, g, bb = unpremul(r, a), unpremul(g, a), unpremul(bb, a)
				}
				o[3*x], o[3*x+1], o[3*x+2] = r, g, bb
			}
		}
	case *stdimage.Gray:
		for y := 0; y < h; y++ {
			row := m.Pix[(y+b.Min.Y-m.Rect.Min.Y)*m.Stride+(b.Min.X-m.Rect.Min.X):]
			o := p[3*y*w:]
			for x := 0; x < w; x++ {
				v := row[x]
				o[3*x], o[3*x+1], o[3*x+2] = v, v, v
			}
		}
	case *stdimage.Gray16:
		for y := 0; y < h; y++ {
			row := m.Pix[(y+b.Min.Y-m.Rect.Min.Y)*m.Stride+(b.Min.X-m.Rect.Min.X)*2:]
			o := p[3*y*w:]
			for x := 0; x < w; x++ {
				v := row[2*x] // big-endian: high byte first
				o[3*x], o[3*x+1], o[3*x+2] = v, v, v
			}
		}
	case *stdimage.NRGBA64:
		for y := 0; y < h; y++ {
			row := m.Pix[(y+b.Min.Y-m.Rect.Min.Y)*m.Stride+(b.Min.X-m.Rect.Min.X)*8:]
			o := p[3*y*w:]
			for x := 0; x < w; x++ {
				o[3*x], o[3*x+1], o[3*x+2] = row[8*x], row[8*x+2], row[8*x+4]
			}
		}
	case *stdimage.CMYK:
		for y := 0; y < h; y++ {
			row := m.Pix[(y+b.Min.Y-m.Rect.Min.Y)*m.Stride+(b.Min.X-m.Rect.Min.X)*4:]
			o := p[3*y*w:]
			for x := 0; x < w; x++ {
				o[3*x], o[3*x+1], o[3*x+2] = cmykToRGB(row[4*x], row[4*x+1], row[4*x+2], row[4*x+3])
			}
		}
	case *stdimage.Paletted:
		pal := make([][3]uint8, len(m.Palette))
		for i, c := range m.Palette {
			pal[i] = paletteRGB(c)
		}
		for y := 0; y < h; y++ {
			row := m.Pix[(y+b.Min.Y-m.Rect.Min.Y)*m.Stride+(b.Min.X-m.Rect.Min.X):]
			o := p[3*y*w:]
			for x := 0; x < w; x++ {
				var c [3]uint8
				if int(row[x]) < len(pal) {
					c = pal[row[x]]
				}
				o[3*x], o[3*x+1], o[3*x+2] = c[0], c[1], c[2]
			}
		}
	case *stdimage.YCbCr:
		ycbcrToRGB(m, out, true)
	case *stdimage.NYCbCrA:
		ycbcrToRGB(&m.YCbCr, out, true)
	default:
		for y := 0; y < h; y++ {
			o := p[3*y*w:]
			for x := 0; x < w; x++ {
				c := color.NRGBA64Model.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA64)
				o[3*x], o[3*x+1], o[3*x+2] = uint8(c.R>>8), uint8(c.G>>8), uint8(c.B>>8)
			}
		}
	}
	return out
}

// unpremul undoes alpha premultiplication of one 8-bit channel, rounding to nearest.
func unpremul(c, a uint8) uint8 {
	v := (uint32(c)*255 + uint32(a)/2) / uint32(a)
	if v > 255 {
		v = 255
	}
	return uint8(v)
}

// paletteRGB returns a palette entry's straight (non-premultiplied) colour without its alpha, as PIL's
// P -> RGB conversion does.
func paletteRGB(c color.Color) [3]uint8 {
	switch v := c.(type) {
	case color.NRGBA:
		return [3]uint8{v.R, v.G, v.B}
	case color.RGBA:
		if v.A == 255 || v.A == 0 {
			return [3]uint8{v.R, v.G, v.B}
		}
		return [3]uint8{unpremul(v.R, v.A), unpremul(v.G, v.A), unpremul(v.B, v.A)}
	}
	n := color.NRGBA64Model.Convert(c).(color.NRGBA64)
	return [3]uint8{uint8(n.R >> 8), uint8(n.G >> 8), uint8(n.B >> 8)}
}

// cmykToRGB is PIL's cmyk2rgb: channel = (255-k) - round((255-k)*c/255), with PIL's MULDIV255 rounding.
func cmykToRGB(c, m, y, k uint8) (uint8, uint8, uint8) {
	nk := 255 - int(k)
	f := func(v uint8) uint8 {
		t := int(v)*nk + 128
		r := nk - ((t>>8)+t)>>8
		if r < 0 {
			r = 0
		}
		return uint8(r)
	}
	return f(c), f(m), f(y)
}
