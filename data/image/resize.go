package image

import (
	"fmt"
	"math"
	"strings"
)

// Filter is a resampling filter, numbered like PIL's Image.Resampling (the `resample` key of Hugging Face
// preprocessor configs).
type Filter int

// PIL's resampling filters, with PIL's numeric codes.
const (
	Nearest  Filter = 0
	Lanczos  Filter = 1
	Bilinear Filter = 2
	Bicubic  Filter = 3
	Box      Filter = 4
	Hamming  Filter = 5
)

var filterNames = map[Filter]string{
	Nearest: "nearest", Lanczos: "lanczos", Bilinear: "bilinear", Bicubic: "bicubic", Box: "box", Hamming: "hamming",
}

// String returns the filter's lower-case name, e.g. "bicubic".
func (f Filter) String() string {
	if s, ok := filterNames[f]; ok {
		return s
	}
	return fmt.Sprintf("Filter(%d)", int(f))
}

// Valid reports whether f is one of PIL's six filters.
func (f Filter) Valid() bool { _, ok := filterNames[f]; return ok }

// ParseFilter accepts a filter name (nearest, bilinear, bicubic, lanczos, box, hamming; PIL's aliases
// antialias = lanczos and linear = bilinear, cubic = bicubic) or a PIL numeric code.
func ParseFilter(s string) (Filter, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "nearest", "0":
		return Nearest, nil
	case "lanczos", "antialias", "1":
		return Lanczos, nil
	case "bilinear", "linear", "2":
		return Bilinear, nil
	case "bicubic", "cubic", "3":
		return Bicubic, nil
	case "box", "4":
		return Box, nil
	case "hamming", "5":
		return Hamming, nil
	}
	return 0, fmt.Errorf("unknown resampling filter %q (want nearest, bilinear, bicubic, lanczos, box or hamming)", s)
}

// filterDef is a PIL resampling kernel and its support radius at scale 1.
type filterDef struct {
	fn      func(float64) float64
	support float64
}

// The kernels are written with explicit float64 conversions so that the Go compiler never fuses a multiply and
// an add (it may on arm64), keeping the arithmetic identical to PIL's C code compiled without FMA.

func boxKernel(x float64) float64 {
	if x > -0.5 && x <= 0.5 {
		return 1
	}
	return 0
}

func bilinearKernel(x float64) float64 {
	if x < 0 {
		x = -x
	}
	if x < 1 {
		return 1 - x
	}
	return 0
}

func hammingKernel(x float64) float64 {
	if x < 0 {
		x = -x
	}
	if x == 0 {
		return 1
	}
	if x >= 1 {
		return 0
	}
	x = x * math.Pi
	// PIL writes 0.54f and 0.46f: float constants widened to double.
	c := float64(float64(float32(0.46)) * math.Cos(x))
	return float64(math.Sin(x)/x) * (float64(float32(0.54)) + c)
}

func bicubicKernel(x float64) float64 {
	const a = -0.5
	if x < 0 {
		x = -x
	}
	if x < 1 {
		t := float64((a + 2) * x)
		t = float64(float64(t-(a+3)) * x)
		t = float64(t * x)
		return t + 1
	}
	if x < 2 {
		t := float64(float64(x-5) * x)
		t = float64(float64(t+8) * x)
		return float64(t-4) * a
	}
	return 0
}

func sinc(x float64) float64 {
	if x == 0 {
		return 1
	}
	x = x * math.Pi
	return math.Sin(x) / x
}

func lanczosKernel(x float64) float64 {
	if -3 <= x && x < 3 {
		return sinc(x) * sinc(x/3)
	}
	return 0
}

func filterFor(f Filter) (filterDef, bool) {
	switch f {
	case Box:
		return filterDef{boxKernel, 0.5}, true
	case Bilinear:
		return filterDef{bilinearKernel, 1}, true
	case Hamming:
		return filterDef{hammingKernel, 1}, true
	case Bicubic:
		return filterDef{bicubicKernel, 2}, true
	case Lanczos:
		return filterDef{lanczosKernel, 3}, true
	}
	return filterDef{}, false
}

// precisionBits is PIL's fixed-point precision for 8-bit resampling: 32 - 8 bits of result - 2 bits of headroom.
const precisionBits = 32 - 8 - 2

// coeffs are the fixed-point weights of one resampling pass: output sample i reads bounds[2i+1] input samples
// starting at bounds[2i], weighted by k[i*ksize:].
type coeffs struct {
	ksize  int
	bounds []int
	k      []int32
}

// precomputeCoeffs follows PIL's precompute_coeffs + normalize_coeffs_8bpc: the kernel is widened by the
// downscale factor (antialiasing), evaluated at input pixel centres, normalised to sum 1 in float64, then
// rounded half away from zero to 22-bit fixed point.
func precomputeCoeffs(inSize int, in0, in1 float32, outSize int, f filterDef) coeffs {
	scale := float64(in1-in0) / float64(outSize)
	filterscale := scale
	if filterscale < 1 {
		filterscale = 1
	}
	support := f.support * filterscale
	ksize := int(math.Ceil(support))*2 + 1
	c := coeffs{ksize: ksize, bounds: make([]int, 2*outSize), k: make([]int32, outSize*ksize)}
	w := make([]float64, ksize)
	for xx := 0; xx < outSize; xx++ {
		center := float64(in0) + float64((float64(xx)+0.5)*scale)
		ss := 1 / filterscale
		xmin := int(center - support + 0.5)
		if xmin < 0 {
			xmin = 0
		}
		xmax := int(center + support + 0.5)
		if xmax > inSize {
			xmax = inSize
		}
		xmax -= xmin
		ww := 0.0
		for x := 0; x < xmax; x++ {
			v := f.fn((float64(x+xmin) - center + 0.5) * ss)
			w[x] = v
			ww += v
		}
		for x := 0; x < xmax; x++ {
			v := w[x]
			if ww != 0 {
				v /= ww
			}
			if v < 0 {
				c.k[xx*ksize+x] = int32(-0.5 + v*(1<<precisionBits))
			} else {
				c.k[xx*ksize+x] = int32(0.5 + v*(1<<precisionBits))
			}
		}
		c.bounds[2*xx] = xmin
		c.bounds[2*xx+1] = xmax
	}
	return c
}

// clip8 is PIL's clip8: drop the fixed-point fraction and clamp to 0..255.
func clip8(v int32) uint8 {
	v >>= precisionBits
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// MaxResizePixels bounds the output of Resize (2^28 pixels, 768 MiB of RGB) so a bad size cannot exhaust
// memory.
const MaxResizePixels = 1 << 28

// Resize returns src resized to w×h with filter f, reproducing PIL's Image.resize on an RGB image bit for bit
// (libImaging/Resample.c: antialiased convolution in 8-bit fixed point, horizontal pass then vertical pass;
// Nearest uses PIL's affine nearest-neighbour scaling). A same-size resize returns a copy.
func Resize(src *RGB, w, h int, f Filter) (*RGB, error) {
	if w <= 0 || h <= 0 {
		return nil, fmt.Errorf("resize: invalid target size %dx%d", w, h)
	}
	if int64(w)*int64(h) > MaxResizePixels {
		return nil, fmt.Errorf("resize: target %dx%d exceeds %d pixels", w, h, int64(MaxResizePixels))
	}
	if src.W <= 0 || src.H <= 0 || len(src.Pix) != 3*src.W*src.H {
		return nil, fmt.Errorf("resize: invalid source image %dx%d with %d bytes", src.W, src.H, len(src.Pix))
	}
	if w == src.W && h == src.H {
		return src.Clone(), nil
	}
	if f == Nearest {
		return resizeNearest(src, w, h), nil
	}
	fd, ok := filterFor(f)
	if !ok {
		return nil, fmt.Errorf("resize: unknown filter %d", int(f))
	}
	return resample(src, w, h, fd), nil
}

// resample is PIL's ImagingResampleInner with box = (0, 0, src.W, src.H).
func resample(src *RGB, w, h int, fd filterDef) *RGB {
	needH := w != src.W
	needV := h != src.H
	vert := precomputeCoeffs(src.H, 0, float32(src.H), h, fd)
	cur := src
	if needH {
		horiz := precomputeCoeffs(src.W, 0, float32(src.W), w, fd)
		// Only the rows the vertical pass reads.
		yFirst := vert.bounds[0]
		yLast := vert.bounds[2*h-2] + vert.bounds[2*h-1]
		if !needV {
			yFirst, yLast = 0, src.H
		}
		tmp := NewRGB(w, yLast-yFirst)
		resampleHorizontal(tmp, src, yFirst, horiz)
		if needV {
			for i := 0; i < h; i++ {
				vert.bounds[2*i] -= yFirst
			}
		}
		cur = tmp
	}
	if needV {
		out := NewRGB(cur.W, h)
		resampleVertical(out, cur, vert)
		return out
	}
	return cur
}

func resampleHorizontal(out, in *RGB, offset int, c coeffs) {
	ks := c.ksize
	for yy := 0; yy < out.H; yy++ {
		inRow := in.Pix[3*(yy+offset)*in.W : 3*(yy+offset+1)*in.W]
		outRow := out.Pix[3*yy*out.W : 3*(yy+1)*out.W]
		for xx := 0; xx < out.W; xx++ {
			xmin, n := c.bounds[2*xx], c.bounds[2*xx+1]
			k := c.k[xx*ks : xx*ks+n]
			p := inRow[3*xmin : 3*(xmin+n)]
			s0, s1, s2 := int32(1<<(precisionBits-1)), int32(1<<(precisionBits-1)), int32(1<<(precisionBits-1))
			for x, kv := range k {
				s0 += int32(p[3*x]) * kv
				s1 += int32(p[3*x+1]) * kv
				s2 += int32(p[3*x+2]) * kv
			}
			outRow[3*xx], outRow[3*xx+1], outRow[3*xx+2] = clip8(s0), clip8(s1), clip8(s2)
		}
	}
}

func resampleVertical(out, in *RGB, c coeffs) {
	ks := c.ksize
	rowLen := 3 * in.W
	acc := make([]int32, rowLen)
	for yy := 0; yy < out.H; yy++ {
		ymin, n := c.bounds[2*yy], c.bounds[2*yy+1]
		k := c.k[yy*ks : yy*ks+n]
		for i := range acc {
			acc[i] = 1 << (precisionBits - 1)
		}
		// Integer sums are exact, so accumulating row by row gives PIL's per-pixel result.
		for y, kv := range k {
			row := in.Pix[(ymin+y)*rowLen : (ymin+y+1)*rowLen]
			for i, v := range row {
				acc[i] += int32(v) * kv
			}
		}
		o := out.Pix[yy*rowLen : (yy+1)*rowLen]
		for i, v := range acc {
			o[i] = clip8(v)
		}
	}
}

// resizeNearest is PIL's ImagingScaleAffine for a pure scale: source coordinate of output pixel x is
// floor(box0 + scale*(x+0.5)), accumulated in float64 as PIL does.
func resizeNearest(src *RGB, w, h int) *RGB {
	out := NewRGB(w, h)
	ax := float64(src.W) / float64(w)
	ay := float64(src.H) / float64(h)
	xin := make([]int, w)
	xo := ax * 0.5
	for x := 0; x < w; x++ {
		xin[x] = nearestCoord(xo, src.W)
		xo += ax
	}
	yo := ay * 0.5
	for y := 0; y < h; y++ {
		yi := nearestCoord(yo, src.H)
		yo += ay
		if yi < 0 {
			continue
		}
		inRow := src.Pix[3*yi*src.W:]
		o := out.Pix[3*y*w:]
		for x, xi := range xin {
			if xi < 0 {
				continue
			}
			o[3*x], o[3*x+1], o[3*x+2] = inRow[3*xi], inRow[3*xi+1], inRow[3*xi+2]
		}
	}
	return out
}

// nearestCoord is PIL's COORD macro with the bounds check: -1 marks an out-of-range sample (left black).
func nearestCoord(v float64, n int) int {
	if v < 0 {
		return -1
	}
	i := int(v)
	if i >= n {
		return -1
	}
	return i
}
