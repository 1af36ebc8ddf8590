package image

import (
	"fmt"
	"os"
)

// Pixels is one preprocessed image: float32 values in CHW order (channel, row, column), C == 3.
type Pixels struct {
	Data    []float32 // C*H*W values
	C, H, W int       // channels (3), height, width
}

// Shape returns [C, H, W].
func (p Pixels) Shape() []int { return []int{p.C, p.H, p.W} }

// Processor turns decoded images into model input the way a Hugging Face image processor configured by the same
// preprocessor_config.json does: (convert to RGB) -> resize with PIL -> center crop -> rescale -> normalise ->
// CHW. It is safe for concurrent use.
type Processor struct {
	cfg    Config
	decode DecodeOptions
	lut    [3][256]float32 // the value each uint8 level of each channel becomes
}

// NewProcessor validates c and prepares a Processor; dec configures decoding of files and bytes.
func NewProcessor(c Config, dec DecodeOptions) (*Processor, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("image processor: %w", err)
	}
	p := &Processor{cfg: c, decode: dec}
	for ch := 0; ch < 3; ch++ {
		mean, std := float32(c.ImageMean[ch]), float32(c.ImageStd[ch])
		for v := 0; v < 256; v++ {
			var x float32
			if c.DoRescale {
				// numpy: uint8 array * Python float -> float64, then .astype(float32).
				x = float32(float64(v) * c.RescaleFactor)
			} else {
				x = float32(v)
			}
			if c.DoNormalize {
				// numpy float32: (x - mean) / std with mean, std cast to float32.
				d := x - mean
				x = d / std
			}
			p.lut[ch][v] = x
		}
	}
	return p, nil
}

// Config returns the processor's configuration.
func (p *Processor) Config() Config { return p.cfg }

// Geometry applies the configured resize and center crop to m (no value transform).
func (p *Processor) Geometry(m *RGB) (*RGB, error) {
	c := p.cfg
	if c.DoResize {
		h, w := c.Size.Output(m.H, m.W)
		if h <= 0 || w <= 0 {
			return nil, fmt.Errorf("resize %dx%d image with size %s: empty result", m.W, m.H, c.Size)
		}
		r, err := Resize(m, w, h, c.Resample)
		if err != nil {
			return nil, err
		}
		m = r
	}
	if c.DoCenterCrop {
		m = CenterCrop(m, c.CropSize.Height, c.CropSize.Width)
	}
	return m, nil
}

// ToPixels applies the configured rescale and normalisation to m and returns it in CHW order.
func (p *Processor) ToPixels(m *RGB) Pixels {
	n := m.W * m.H
	out := Pixels{Data: make([]float32, 3*n), C: 3, H: m.H, W: m.W}
	r, g, b := out.Data[:n], out.Data[n:2*n], out.Data[2*n:]
	for i := 0; i < n; i++ {
		r[i] = p.lut[0][m.Pix[3*i]]
		g[i] = p.lut[1][m.Pix[3*i+1]]
		b[i] = p.lut[2][m.Pix[3*i+2]]
	}
	return out
}

// Preprocess runs the whole evaluation pipeline on a decoded image.
func (p *Processor) Preprocess(m *RGB) (Pixels, error) {
	g, err := p.Geometry(m)
	if err != nil {
		return Pixels{}, err
	}
	return p.ToPixels(g), nil
}

// PreprocessBytes decodes an encoded image and preprocesses it.
func (p *Processor) PreprocessBytes(data []byte) (Pixels, error) {
	m, err := DecodeBytes(data, p.decode)
	if err != nil {
		return Pixels{}, err
	}
	return p.Preprocess(m)
}

// PreprocessFile decodes the image file at path and preprocesses it; errors name the file.
func (p *Processor) PreprocessFile(path string) (Pixels, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Pixels{}, err
	}
	px, err := p.PreprocessBytes(data)
	if err != nil {
		return Pixels{}, fmt.Errorf("%s: %w", path, err)
	}
	return px, nil
}

// Stack concatenates same-shaped images into one [N, C, H, W] buffer.
func Stack(ps []Pixels) ([]float32, []int, error) {
	if len(ps) == 0 {
		return nil, nil, fmt.Errorf("stack: no images")
	}
	c, h, w := ps[0].C, ps[0].H, ps[0].W
	out := make([]float32, 0, len(ps)*c*h*w)
	for i, p := range ps {
		if p.C != c || p.H != h || p.W != w {
			return nil, nil, fmt.Errorf("stack: image %d has shape %v, image 0 has %v", i, p.Shape(), ps[0].Shape())
		}
		out = append(out, p.Data...)
	}
	return out, []int{len(ps), c, h, w}, nil
}

// CenterCrop is transformers' center_crop: the h×w window at top = (H-h)//2, left = (W-w)//2; where the
// window extends past the image (crop larger than the image) the missing pixels are zero.
func CenterCrop(m *RGB, h, w int) *RGB {
	if h == m.H && w == m.W {
		return m
	}
	top := pyFloorDiv(m.H-h, 2)
	left := pyFloorDiv(m.W-w, 2)
	if top >= 0 && left >= 0 && top+h <= m.H && left+w <= m.W {
		out, _ := m.Crop(left, top, w, h)
		return out
	}
	// transformers pads the image to max(crop, image) centred, then crops; the result is the same as
	// cropping the window at the offsets below with zero fill.
	newH, newW := max(h, m.H), max(w, m.W)
	topPad := (newH - m.H) / 2
	leftPad := (newW - m.W) / 2
	top += topPad
	left += leftPad
	y0, y1 := max(0, top), min(newH, top+h)
	x0, x1 := max(0, left), min(newW, left+w)
	out := NewRGB(x1-x0, y1-y0)
	for y := y0; y < y1; y++ {
		sy := y - topPad
		if sy < 0 || sy >= m.H {
			continue
		}
		for x := x0; x < x1; x++ {
			sx := x - leftPad
			if sx < 0 || sx >= m.W {
				continue
			}
			r, g, b := m.At(sx, sy)
			out.Set(x-x0, y-y0, r, g, b)
		}
	}
	return out
}

// pyFloorDiv is Python's // for ints.
func pyFloorDiv(a, b int) int { return floorDiv(a, b) }
