package image

import (
	"fmt"
	"math"
)

// Rand is the randomness augmentation needs: uniform floats in [0, 1). Both math/rand's and math/rand/v2's
// *rand.Rand satisfy it, so a seeded generator makes augmentation deterministic.
type Rand interface {
	Float64() float64
}

// Augment configures training-time augmentation. The zero value disables every transform.
type Augment struct {
	// RandomResizedCrop replaces the evaluation resize/crop by torchvision's RandomResizedCrop to the model's
	// input size: a random window with area fraction in Scale and aspect ratio (w/h) in Ratio (log-uniform).
	RandomResizedCrop bool
	Scale             [2]float64 // area fraction range, torchvision default (0.08, 1)
	Ratio             [2]float64 // aspect ratio range, torchvision default (3/4, 4/3)
	// HFlip is the probability of a horizontal flip (0 disables; torchvision's default p is 0.5).
	HFlip float64
	// Colour jitter strengths as in torchvision's ColorJitter: a factor is drawn uniformly from
	// [max(0, 1-s), 1+s] (hue: a shift in [-Hue, Hue], Hue <= 0.5); the four run in a random order.
	Brightness, Contrast, Saturation, Hue float64
	// RandAugment is BLIP's RandomAugment, applied after the flip and before colour jitter (the zero value, N 0,
	// is off).
	RandAugment RandAugment
}

// DefaultAugment returns a common captioning setting: RandomResizedCrop(scale 0.5..1, ratio 3/4..4/3) and a
// horizontal flip half of the time, no colour jitter (captions often name colours).
func DefaultAugment() Augment {
	return Augment{RandomResizedCrop: true, Scale: [2]float64{0.5, 1}, Ratio: [2]float64{3.0 / 4, 4.0 / 3}, HFlip: 0.5}
}

// Validate reports out-of-range settings.
func (a Augment) Validate() error {
	if a.RandomResizedCrop {
		if !(a.Scale[0] > 0 && a.Scale[0] <= a.Scale[1] && a.Scale[1] <= 1) {
			return fmt.Errorf("augment: scale %v: want 0 < min <= max <= 1", a.Scale)
		}
		if !(a.Ratio[0] > 0 && a.Ratio[0] <= a.Ratio[1]) {
			return fmt.Errorf("augment: ratio %v: want 0 < min <= max", a.Ratio)
		}
	}
	if a.HFlip < 0 || a.HFlip > 1 {
		return fmt.Errorf("augment: hflip probability %g: want 0..1", a.HFlip)
	}
	if a.Brightness < 0 || a.Contrast < 0 || a.Saturation < 0 {
		return fmt.Errorf("augment: colour jitter strengths must be >= 0")
	}
	if a.Hue < 0 || a.Hue > 0.5 {
		return fmt.Errorf("augment: hue %g: want 0..0.5", a.Hue)
	}
	return a.RandAugment.Validate()
}

// uniform draws from [lo, hi).
func uniform(r Rand, lo, hi float64) float64 { return lo + (hi-lo)*r.Float64() }

// intn draws an int from [0, n).
func intn(r Rand, n int) int {
	v := int(r.Float64() * float64(n))
	if v >= n {
		v = n - 1
	}
	return v
}

// RandomResizedCropParams is torchvision's RandomResizedCrop.get_params: up to 10 tries of a random window with
// area fraction in scale and log-uniform aspect ratio in ratio, else a centred crop clamped to ratio. It returns
// the window's top, left, height and width.
func RandomResizedCropParams(h, w int, scale, ratio [2]float64, r Rand) (top, left, ch, cw int) {
	area := float64(h * w)
	logR0, logR1 := math.Log(ratio[0]), math.Log(ratio[1])
	for i := 0; i < 10; i++ {
		target := area * uniform(r, scale[0], scale[1])
		ar := math.Exp(uniform(r, logR0, logR1))
		cw = int(math.RoundToEven(math.Sqrt(target * ar)))
		ch = int(math.RoundToEven(math.Sqrt(target / ar)))
		if cw > 0 && cw <= w && ch > 0 && ch <= h {
			top = intn(r, h-ch+1)
			left = intn(r, w-cw+1)
			return top, left, ch, cw
		}
	}
	inRatio := float64(w) / float64(h)
	switch {
	case inRatio < ratio[0]:
		cw = w
		ch = int(math.RoundToEven(float64(cw) / ratio[0]))
	case inRatio > ratio[1]:
		ch = h
		cw = int(math.RoundToEven(float64(ch) * ratio[1]))
	default:
		cw, ch = w, h
	}
	return (h - ch) / 2, (w - cw) / 2, ch, cw
}

// trainSize is the fixed size RandomResizedCrop produces: the crop size if the config center-crops, else the
// resize size (a square of shortest_edge when the config keeps the aspect ratio).
func (p *Processor) trainSize() (h, w int) {
	c := p.cfg
	switch {
	case c.DoCenterCrop:
		return c.CropSize.Height, c.CropSize.Width
	case c.Size.ShortestEdge > 0:
		return c.Size.ShortestEdge, c.Size.ShortestEdge
	}
	return c.Size.Height, c.Size.Width
}

// PreprocessTrain is Preprocess with training augmentation: the random geometry (or the evaluation geometry when
// RandomResizedCrop is off), then flip, then RandAugment (BLIP's order: RandomResizedCrop, RandomHorizontalFlip,
// RandomAugment), then colour jitter, then rescale/normalise. The result depends only on m, a and the state of r.
func (p *Processor) PreprocessTrain(m *RGB, a Augment, r Rand) (Pixels, error) {
	if err := a.Validate(); err != nil {
		return Pixels{}, err
	}
	var err error
	if a.RandomResizedCrop {
		th, tw := p.trainSize()
		if th <= 0 || tw <= 0 {
			return Pixels{}, fmt.Errorf("augment: random resized crop needs a fixed size, config has %s", p.cfg.Size)
		}
		top, left, ch, cw := RandomResizedCropParams(m.H, m.W, a.Scale, a.Ratio, r)
		crop, err := m.Crop(left, top, cw, ch)
		if err != nil {
			return Pixels{}, err
		}
		filter := p.cfg.Resample
		if m, err = Resize(crop, tw, th, filter); err != nil {
			return Pixels{}, err
		}
	} else if m, err = p.Geometry(m); err != nil {
		return Pixels{}, err
	}
	if a.HFlip > 0 && r.Float64() < a.HFlip {
		m = m.FlipHorizontal()
	}
	if a.RandAugment.N > 0 {
		m = a.RandAugment.Apply(m, r)
	}
	if a.Brightness > 0 || a.Contrast > 0 || a.Saturation > 0 || a.Hue > 0 {
		m = ColorJitter(m, a, r)
	}
	return p.ToPixels(m), nil
}

// ColorJitter applies torchvision-style brightness, contrast, saturation and hue changes in a random order
// (PIL ImageEnhance semantics: blend with black, with the mean grey level, with the greyscale image; hue shifts
// the HSV hue). The arithmetic is float64 rounded to uint8, not PIL's exact integer code.
func ColorJitter(m *RGB, a Augment, r Rand) *RGB {
	// torchvision draws the permutation first, then each factor.
	order := [4]int{0, 1, 2, 3}
	for i := 3; i > 0; i-- {
		j := intn(r, i+1)
		order[i], order[j] = order[j], order[i]
	}
	factor := func(s float64) float64 {
		if s <= 0 {
			return 1
		}
		return uniform(r, math.Max(0, 1-s), 1+s)
	}
	bf, cf, sf := factor(a.Brightness), factor(a.Contrast), factor(a.Saturation)
	hf := 0.0
	if a.Hue > 0 {
		hf = uniform(r, -a.Hue, a.Hue)
	}
	out := m.Clone()
	for _, op := range order {
		switch op {
		case 0:
			if bf != 1 {
				blendConst(out, 0, bf)
			}
		case 1:
			if cf != 1 {
				var sum float64
				for i := 0; i < len(out.Pix); i += 3 {
					sum += float64(luma(out.Pix[i], out.Pix[i+1], out.Pix[i+2]))
				}
				mean := math.Floor(sum/float64(out.W*out.H) + 0.5)
				blendConst(out, mean, cf)
			}
		case 2:
			if sf != 1 {
				for i := 0; i < len(out.Pix); i += 3 {
					g := float64(luma(out.Pix[i], out.Pix[i+1], out.Pix[i+2]))
					for c := 0; c < 3; c++ {
						out.Pix[i+c] = roundClip(g + sf*(float64(out.Pix[i+c])-g))
					}
				}
			}
		case 3:
			if hf != 0 {
				shiftHue(out, hf)
			}
		}
	}
	return out
}

// luma is PIL's RGB -> L conversion (ITU-R 601-2 weights in 16-bit fixed point).
func luma(r, g, b uint8) uint8 {
	return uint8((uint32(r)*19595 + uint32(g)*38470 + uint32(b)*7471 + 0x8000) >> 16)
}

func roundClip(v float64) uint8 {
	v = math.Floor(v + 0.5)
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// blendConst blends every sample with the constant c: c + f*(x-c).
func blendConst(m *RGB, c, f float64) {
	for i, v := range m.Pix {
		m.Pix[i] = roundClip(c + f*(float64(v)-c))
	}
}

// shiftHue rotates the HSV hue of every pixel by shift (a fraction of the full circle).
func shiftHue(m *RGB, shift float64) {
	for i := 0; i < len(m.Pix); i += 3 {
		r, g, b := float64(m.Pix[i])/255, float64(m.Pix[i+1])/255, float64(m.Pix[i+2])/255
		mx := math.Max(r, math.Max(g, b))
		mn := math.Min(r, math.Min(g, b))
		v := mx
		d := mx - mn
		if d == 0 {
			continue // grey: hue undefined, unchanged
		}
		s := d / mx
		var h float64
		switch mx {
		case r:
			h = (g - b) / d
		case g:
			h = 2 + (b-r)/d
		default:
			h = 4 + (r-g)/d
		}
		h = h/6 + shift
		h -= math.Floor(h)
		// HSV -> RGB
		h6 := h * 6
		k := math.Floor(h6)
		f := h6 - k
		p := v * (1 - s)
		q := v * (1 - s*f)
		t := v * (1 - s*(1-f))
		var rr, gg, bb float64
		switch int(k) % 6 {
		case 0:
			rr, gg, bb = v, t, p
		case 1:
			rr, gg, bb = q, v, p
		case 2:
			rr, gg, bb = p, v, t
		case 3:
			rr, gg, bb = p, q, v
		case 4:
			rr, gg, bb = t, p, v
		default:
			rr, gg, bb = v, p, q
		}
		m.Pix[i], m.Pix[i+1], m.Pix[i+2] = roundClip(rr*255), roundClip(gg*255), roundClip(bb*255)
	}
}
