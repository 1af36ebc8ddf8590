package image

import (
	"fmt"
	"math"
	"strings"
)

// RandAugment is BLIP's RandomAugment (salesforce/BLIP transform/randaugment.py; LAVIS carries the same file as
// lavis/processors/randaugment.py). BLIP's captioning, retrieval and pre-training recipes apply
// RandomAugment(2, 5, isPIL=True, augs=[Identity, AutoContrast, Brightness, Sharpness, Equalize, ShearX, ShearY,
// TranslateX, TranslateY, Rotate]) after RandomResizedCrop and RandomHorizontalFlip.
//
// For every image, N op names are drawn uniformly with replacement from Ops (np.random.choice(augs, N)); each drawn
// op is then applied, in draw order, with probability 0.5 (BLIP skips it when np.random.random() > 0.5) at the
// fixed magnitude M on BLIP's 0..10 scale (MAX_LEVEL = 10; BLIP's M is not random). BLIP's level -> argument
// mappings, with l = M/10:
//
//   - Brightness, Sharpness, Color, Contrast: factor l*1.8 + 0.1 (0.1..1.9). At BLIP's M = 5 the factor is
//     exactly 1.0, so Brightness and Sharpness leave the image unchanged there.
//   - ShearX, ShearY: shear l*0.3, negated when a uniform draw is > 0.5.
//   - TranslateX, TranslateY: l*10 pixels (translate_const = 10, absolute pixels, not a fraction of the size),
//     negated when a uniform draw is > 0.5.
//   - Rotate: l*30 degrees, negated when a uniform draw is < 0.5.
//   - Solarize: threshold int(l*256); Posterize: int(l*4) bits.
//   - Identity, AutoContrast, Equalize: no argument.
//
// Geometric ops fill uncovered pixels with BLIP's replace_value (128, 128, 128). Each op's arithmetic follows
// BLIP's numpy/cv2 code rather than the PIL functions its comments name, quirks included (see each op's
// function): AutoContrast turns every channel whose minimum is above 0 into 255 (numpy's uint8 -low wraps);
// Sharpness does not clip, so factors above 1 wrap around; Color and Contrast weight R, G, B by 0.114, 0.587,
// 0.299; shear and translation act about the top-left corner and rotation about (W/2, H/2), through
// cv2.warpAffine's fixed-point bilinear sampling. Checked sample for sample against BLIP's functions run with
// numpy 1.24 and OpenCV 4.6 (testdata/randaugment). Where results can still differ: Color by one level where a
// BLAS without fused multiply-adds is used; Equalize above 2^24 pixels (BLIP's float32 counts lose precision).
//
// All draws come from the Rand passed to Apply, in BLIP's order: the N op choices first, then for each op its
// apply draw and, if it is applied and signed, its sign draw. A seeded Rand reproduces the augmentation, but not
// numpy's random stream.
type RandAugment struct {
	// N is the number of ops drawn per image (0 disables RandAugment).
	N int
	// M is the magnitude, 0..10 (BLIP uses 5).
	M float64
	// Ops names the ops to draw from (BLIP's names, matched case-insensitively; repeats weight the draw). Empty
	// means BLIPRandAugmentOps, the list BLIP's training transforms pass, not all of RandAugmentOps (BLIP's own
	// default for an empty augs).
	Ops []string
}

// raOp is one of BLIP's RandomAugment operations.
type raOp uint8

// The ops in the order of BLIP's func_dict.
const (
	raIdentity raOp = iota
	raAutoContrast
	raEqualize
	raRotate
	raSolarize
	raColor
	raContrast
	raBrightness
	raSharpness
	raShearX
	raTranslateX
	raTranslateY
	raPosterize
	raShearY
	raNumOps
)

var raNames = [raNumOps]string{
	"Identity", "AutoContrast", "Equalize", "Rotate", "Solarize", "Color", "Contrast", "Brightness", "Sharpness",
	"ShearX", "TranslateX", "TranslateY", "Posterize", "ShearY",
}

// blipRAOps is the augs list of BLIP's create_dataset (data/__init__.py), also used by LAVIS's BLIP processors.
var blipRAOps = []raOp{
	raIdentity, raAutoContrast, raBrightness, raSharpness, raEqualize, raShearX, raShearY, raTranslateX,
	raTranslateY, raRotate,
}

func (o raOp) String() string {
	if o < raNumOps {
		return raNames[o]
	}
	return fmt.Sprintf("raOp(%d)", int(o))
}

// RandAugmentOps returns the names of every op BLIP's randaugment.py defines (its func_dict keys, in order).
func RandAugmentOps() []string { return append([]string(nil), raNames[:]...) }

// BLIPRandAugmentOps returns the ops BLIP's captioning, retrieval and pre-training transforms draw from.
func BLIPRandAugmentOps() []string {
	out := make([]string, len(blipRAOps))
	for i, o := range blipRAOps {
		out[i] = raNames[o]
	}
	return out
}

// parseRAOp maps an op name (case-insensitive) to its op.
func parseRAOp(name string) (raOp, bool) {
	for i, n := range raNames {
		if strings.EqualFold(n, name) {
			return raOp(i), true
		}
	}
	return 0, false
}

// Validate reports a negative N, a magnitude outside 0..10 and unknown op names (all of them).
func (ra RandAugment) Validate() error {
	if ra.N < 0 {
		return fmt.Errorf("augment: rand augment n %d: want >= 0", ra.N)
	}
	if !(ra.M >= 0 && ra.M <= 10) {
		return fmt.Errorf("augment: rand augment magnitude %g: want 0..10", ra.M)
	}
	var bad []string
	for _, n := range ra.Ops {
		if _, ok := parseRAOp(n); !ok {
			bad = append(bad, fmt.Sprintf("%q", n))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("augment: unknown rand augment op(s) %s (want %s)", strings.Join(bad, ", "),
			strings.Join(raNames[:], ", "))
	}
	return nil
}

// Apply draws and applies the ops to m as BLIP's RandomAugment.__call__ does. It never modifies m; the result
// is m itself when no drawn op was applied, else a new image. Ops must be valid (see Validate); an unknown name
// panics.
func (ra RandAugment) Apply(m *RGB, r Rand) *RGB {
	if ra.N <= 0 {
		return m
	}
	st := raState{cur: m}
	ra.draw(r, func(op raOp, applied bool, arg float64) {
		if applied {
			st.apply(op, arg)
		}
	})
	return st.cur
}

// draw makes one image's random choices in BLIP's order and calls visit for each drawn op, in order: whether it
// is applied and, if so, its argument (factor, shear, pixels, degrees, threshold or bits).
func (ra RandAugment) draw(r Rand, visit func(op raOp, applied bool, arg float64)) {
	var pickBuf [8]raOp
	picks := pickBuf[:0]
	for i := 0; i < ra.N; i++ {
		var op raOp
		if len(ra.Ops) == 0 {
			op = blipRAOps[intn(r, len(blipRAOps))]
		} else {
			name := ra.Ops[intn(r, len(ra.Ops))]
			var ok bool
			if op, ok = parseRAOp(name); !ok {
				panic(fmt.Sprintf("image: unknown rand augment op %q", name))
			}
		}
		picks = append(picks, op)
	}
	l := ra.M / 10 // BLIP: level / MAX_LEVEL
	for _, op := range picks {
		if r.Float64() > 0.5 { // BLIP: if np.random.random() > prob: continue
			visit(op, false, 0)
			continue
		}
		var arg float64
		switch op {
		case raBrightness, raSharpness, raColor, raContrast: // enhance_level_to_args
			arg = float64(l*1.8) + 0.1
		case raShearX, raShearY: // shear_level_to_args
			arg = l * 0.3
			if r.Float64() > 0.5 {
				arg = -arg
			}
		case raTranslateX, raTranslateY: // translate_level_to_args(translate_const=10, ...)
			arg = l * 10
			if r.Float64() > 0.5 {
				arg = -arg
			}
		case raRotate: // rotate_level_to_args: note < 0.5 here
			arg = l * 30
			if r.Float64() < 0.5 {
				arg = -arg
			}
		case raSolarize: // solarize_level_to_args
			arg = math.Trunc(l * 256)
		case raPosterize: // posterize_level_to_args
			arg = math.Trunc(l * 4)
		}
		visit(op, true, arg)
	}
}

// raState carries the image through a sequence of ops with at most two pixel buffers: cur is the input until an
// op changes it (owned false), spare is a free buffer of the same size for the out-of-place ops.
type raState struct {
	cur            *RGB
	owned          bool
	spare          []uint8
	adelta, bdelta []int
}

// inPlace returns cur, copied first if it is still the caller's image.
func (s *raState) inPlace() *RGB {
	if !s.owned {
		s.cur = s.cur.Clone()
		s.owned = true
	}
	return s.cur
}

// target returns an image of cur's size to write an out-of-place op into; commit makes it current.
func (s *raState) target() *RGB {
	if len(s.spare) != len(s.cur.Pix) {
		s.spare = make([]uint8, len(s.cur.Pix))
	}
	return &RGB{W: s.cur.W, H: s.cur.H, Pix: s.spare}
}

func (s *raState) commit(dst *RGB) {
	if s.owned {
		s.spare = s.cur.Pix
	} else {
		s.spare = nil
	}
	s.cur, s.owned = dst, true
}

// raFill is BLIP's replace_value for the geometric ops.
var raFill = [3]uint8{128, 128, 128}

// apply runs one op with its argument (factor, shear, pixels, degrees, threshold or bits) as BLIP's
// func_dict[name](img, *args) does.
func (s *raState) apply(op raOp, arg float64) {
	switch op {
	case raIdentity:
	case raAutoContrast:
		autoContrastBLIP(s.inPlace())
	case raEqualize:
		equalizeBLIP(s.inPlace())
	case raSolarize:
		solarizeBLIP(s.inPlace(), int(arg))
	case raPosterize:
		posterizeBLIP(s.inPlace(), int(arg))
	case raBrightness:
		brightnessBLIP(s.inPlace(), arg)
	case raContrast:
		contrastBLIP(s.inPlace(), arg)
	case raColor:
		colorBLIP(s.inPlace(), arg)
	case raSharpness:
		if arg == 1 {
			return // BLIP returns the image itself
		}
		dst := s.target()
		sharpnessBLIP(dst, s.cur, arg)
		s.commit(dst)
	case raShearX, raShearY, raTranslateX, raTranslateY, raRotate:
		var mat [6]float64
		switch op {
		case raShearX:
			mat = shearXMatrix(arg)
		case raShearY:
			mat = shearYMatrix(arg)
		case raTranslateX:
			mat = translateXMatrix(arg)
		case raTranslateY:
			mat = translateYMatrix(arg)
		default:
			mat = rotationMatrix2D(float64(float32(s.cur.W)/2), float64(float32(s.cur.H)/2), arg)
		}
		if len(s.adelta) < s.cur.W {
			s.adelta, s.bdelta = make([]int, s.cur.W), make([]int, s.cur.W)
		}
		dst := s.target()
		warpAffineLinear(dst, s.cur, mat, raFill, s.adelta, s.bdelta)
		s.commit(dst)
	default:
		panic(fmt.Sprintf("image: unknown rand augment op %v", op))
	}
}

// applyLUT maps every sample of channel c through lut[c].
func applyLUT(m *RGB, lut *[3][256]uint8) {
	p := m.Pix
	for i := 0; i+2 < len(p); i += 3 {
		p[i], p[i+1], p[i+2] = lut[0][p[i]], lut[1][p[i+1]], lut[2][p[i+2]]
	}
}

// channelHist counts the samples of each channel.
func channelHist(m *RGB) (h [3][256]int) {
	p := m.Pix
	for i := 0; i+2 < len(p); i += 3 {
		h[0][p[i]]++
		h[1][p[i+1]]++
		h[2][p[i+2]]++
	}
	return h
}

// truncU8 is numpy's float -> uint8 astype on x86-64: truncation toward zero, then the low 8 bits (so -3.7
// becomes 253 and 304.5 becomes 48). Only BLIP's Sharpness relies on the wrap-around; the other ops clip first.
func truncU8(v float64) uint8 { return uint8(int64(v)) }

// autoContrastBLIP is BLIP's autocontrast_func (cutoff 0), per channel with lo, hi its minimum and maximum:
// if hi <= lo the channel is unchanged; else scale = 255/(hi-lo), offset = -lo*scale, and each value v becomes
// v*scale + offset clipped to 0..255 and truncated.
//
// BLIP computes -lo on numpy's uint8 scalar, which wraps: the offset is (256-lo)*scale, not -lo*scale, whenever
// lo > 0. Every value of such a channel then maps above 255, so BLIP's AutoContrast turns a channel whose
// minimum is not 0 into a constant 255 (a channel whose minimum is 0 is stretched as PIL's autocontrast does).
// This is reproduced, not corrected: it is what BLIP trains with.
func autoContrastBLIP(m *RGB) {
	h := channelHist(m)
	var lut [3][256]uint8
	for c := 0; c < 3; c++ {
		lo, hi := -1, -1
		for v := 0; v < 256; v++ {
			if h[c][v] > 0 {
				if lo < 0 {
					lo = v
				}
				hi = v
			}
		}
		if hi <= lo {
			for v := range lut[c] {
				lut[c][v] = uint8(v)
			}
			continue
		}
		scale := 255 / float64(hi-lo)
		offset := float64(uint8(-lo)) * scale // numpy: -np.uint8(lo) wraps to 256-lo
		for v := 0; v < 256; v++ {
			t := float64(float64(v)*scale) + offset
			lut[c][v] = truncU8(math.Min(math.Max(t, 0), 255))
		}
	}
	applyLUT(m, &lut)
}

// equalizeBLIP is BLIP's equalize_func, which is PIL's ImageOps.equalize: per channel with histogram h,
// step = (sum of h over the nonzero bins but the last) // 255; if step is 0 the channel is unchanged, else
// value i becomes (step//2 + h[0] + ... + h[i-1]) // step, at most 255. BLIP does this in float32, which is exact
// for images below 2^24 pixels; this integer code is exact for all sizes.
func equalizeBLIP(m *RGB) {
	h := channelHist(m)
	var lut [3][256]uint8
	for c := 0; c < 3; c++ {
		total, last := 0, -1
		for v := 0; v < 256; v++ {
			if h[c][v] > 0 {
				total += h[c][v]
				last = v
			}
		}
		if last < 0 {
			continue
		}
		step := (total - h[c][last]) / 255
		if step == 0 {
			for v := range lut[c] {
				lut[c][v] = uint8(v)
			}
			continue
		}
		acc := step / 2
		for v := 0; v < 256; v++ {
			lut[c][v] = uint8(min(acc/step, 255))
			acc += h[c][v]
		}
	}
	applyLUT(m, &lut)
}

// solarizeBLIP is BLIP's solarize_func: values below thresh stay, the others become 255 - value.
func solarizeBLIP(m *RGB, thresh int) {
	var lut [256]uint8
	for v := range lut {
		if v < thresh {
			lut[v] = uint8(v)
		} else {
			lut[v] = uint8(255 - v)
		}
	}
	for i, v := range m.Pix {
		m.Pix[i] = lut[v]
	}
}

// posterizeBLIP is BLIP's posterize_func: value & uint8(255 << (8-bits)). numpy 1.x wraps the mask to 8 bits
// (numpy 2 raises instead), so 0 bits makes the image black.
func posterizeBLIP(m *RGB, bits int) {
	bits = max(0, min(8, bits))
	mask := uint8((255 << (8 - bits)) & 0xff)
	for i, v := range m.Pix {
		m.Pix[i] = v & mask
	}
}

// brightnessBLIP is BLIP's brightness_func: the table (arange(256, float32) * factor) in float32, clipped to
// 0..255 and truncated.
func brightnessBLIP(m *RGB, factor float64) {
	f := float32(factor)
	var lut [256]uint8
	for v := range lut {
		t := float32(float32(v) * f)
		lut[v] = truncU8(float64(min(max(t, 0), 255)))
	}
	for i, v := range m.Pix {
		m.Pix[i] = lut[v]
	}
}

// contrastBLIP is BLIP's contrast_func: mean = 0.114*mean(R) + 0.587*mean(G) + 0.299*mean(B) (BLIP's weights
// are OpenCV's BGR luma weights applied to RGB channels), then (v - mean)*factor + mean in float64, clipped and
// truncated.
func contrastBLIP(m *RGB, factor float64) {
	var sum [3]int64
	p := m.Pix
	for i := 0; i+2 < len(p); i += 3 {
		sum[0] += int64(p[i])
		sum[1] += int64(p[i+1])
		sum[2] += int64(p[i+2])
	}
	n := float64(m.W * m.H)
	mean := float64(float64(float64(sum[0])/n)*0.114) + float64(float64(sum[1])/n)*0.587
	mean = float64(mean) + float64(float64(sum[2])/n)*0.299
	var lut [256]uint8
	for v := range lut {
		t := float64(float64(float64(v)-mean)*factor) + mean
		lut[v] = truncU8(math.Min(math.Max(t, 0), 255))
	}
	for i, v := range p {
		p[i] = lut[v]
	}
}

// colorBLIP is BLIP's color_func: every pixel (a row vector) times the float32 matrix
// A*factor + [0.114, 0.587, 0.299]ᵀ with A = [[0.886, -0.114, -0.114], [-0.587, 0.413, -0.587],
// [-0.299, -0.299, 0.701]] (again BGR weights on RGB), clipped and truncated. numpy hands the product to BLAS;
// the dot products here are float32 fused multiply-adds in channel order, which is what OpenBLAS (the BLAS of
// numpy's wheels) computes on x86-64 CPUs with FMA; an unfused BLAS (reference BLAS, CPUs without FMA) can give
// one level less or more where a result lands within a float32 rounding of an integer.
func colorBLIP(m *RGB, factor float64) {
	a := [3][3]float32{{0.886, -0.114, -0.114}, {-0.587, 0.413, -0.587}, {-0.299, -0.299, 0.701}}
	c := [3]float32{0.114, 0.587, 0.299}
	f := float32(factor)
	var mat [3][3]float32
	for i := 0; i < 3; i++ {
		for j := 0; j < 3; j++ {
			mat[i][j] = float32(a[i][j]*f) + c[i]
		}
	}
	p := m.Pix
	for i := 0; i+2 < len(p); i += 3 {
		x0, x1, x2 := float32(p[i]), float32(p[i+1]), float32(p[i+2])
		for j := 0; j < 3; j++ {
			s := float32(x0 * mat[0][j])
			s = fma32(x1, mat[1][j], s)
			s = fma32(x2, mat[2][j], s)
			p[i+j] = truncU8(float64(min(max(s, 0), 255)))
		}
	}
}

// fma32 is a float32 fused multiply-add: the float64 product of two float32 values is exact, and rounding the
// float64 sum to float32 equals a single rounding except where that sum lands exactly halfway between two
// float32 values without being so exactly (double rounding; not seen in testing).
func fma32(a, b, c float32) float32 { return float32(float64(float64(a)*float64(b)) + float64(c)) }

// sharpnessBLIP writes BLIP's sharpness_func of src into dst (factor != 1; BLIP returns the image itself at 1).
// The degenerate image is cv2.filter2D with the float32 kernel [[1,1,1],[1,5,1],[1,1,1]]/13 (sums in float32 in
// row-major kernel order, rounded half to even to uint8, borders reflected as BORDER_REFLECT_101). Factor 0
// returns it whole; otherwise the one-pixel border keeps src and the interior is deg + factor*(src - deg) in
// float32, truncated with numpy's wrap-around (BLIP does not clip, so factors above 1 can wrap bright pixels
// to dark and dark to bright). OpenCV builds that use fused multiply-adds in filter2D may round a few
// degenerate values differently.
func sharpnessBLIP(dst, src *RGB, factor float64) {
	w, h := src.W, src.H
	k1 := float32(1) / 13
	k5 := float32(5) / 13
	f := float32(factor)
	sp, dp := src.Pix, dst.Pix
	stride := 3 * w
	degen := func(x, y, c int) float32 {
		var s float32
		for dy := -1; dy <= 1; dy++ {
			yy := reflect101(y+dy, h)
			for dx := -1; dx <= 1; dx++ {
				xx := reflect101(x+dx, w)
				k := k1
				if dx == 0 && dy == 0 {
					k = k5
				}
				s = float32(s + float32(float32(sp[yy*stride+3*xx+c])*k))
			}
		}
		return float32(roundHalfEvenU8(s))
	}
	if factor == 0 {
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				for c := 0; c < 3; c++ {
					dp[y*stride+3*x+c] = uint8(degen(x, y, c))
				}
			}
		}
		return
	}
	// The products of a sample with a kernel weight, as float32 tables (the same roundings as multiplying).
	var t1, t5 [256]float32
	for v := range t1 {
		t1[v] = float32(float32(v) * k1)
		t5[v] = float32(float32(v) * k5)
	}
	copy(dp, sp)
	for y := 1; y < h-1; y++ {
		up, row, down := sp[(y-1)*stride:y*stride], sp[y*stride:(y+1)*stride], sp[(y+1)*stride:(y+2)*stride]
		out := dp[y*stride : (y+1)*stride]
		for i := 3; i < stride-3; i++ {
			// Row-major kernel order: the row above, this row, the row below, each left to right.
			s := t1[up[i-3]]
			s = float32(s + t1[up[i]])
			s = float32(s + t1[up[i+3]])
			s = float32(s + t1[row[i-3]])
			s = float32(s + t5[row[i]])
			s = float32(s + t1[row[i+3]])
			s = float32(s + t1[down[i-3]])
			s = float32(s + t1[down[i]])
			s = float32(s + t1[down[i+3]])
			d := float32(roundHalfEvenU8(s))
			v := float32(d + float32(f*float32(float32(row[i])-d)))
			out[i] = truncU8(float64(v))
		}
	}
}

// roundHalfEvenU8 is OpenCV's saturate_cast<uchar>(float): round half to even, then clamp.
func roundHalfEvenU8(s float32) uint8 {
	v := math.RoundToEven(float64(s))
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// reflect101 is OpenCV's BORDER_REFLECT_101 index (gfedcb|abcdefgh|gfedcba).
func reflect101(i, n int) int {
	if n == 1 {
		return 0
	}
	for i < 0 || i >= n {
		if i < 0 {
			i = -i
		} else {
			i = 2*n - 2 - i
		}
	}
	return i
}

// The geometric ops' forward matrices, as BLIP builds them: np.float32 2x3 matrices (so the shear factor is
// rounded to float32) for shear and translation, cv2.getRotationMatrix2D (float64) for rotation.

func shearXMatrix(f float64) [6]float64 { return [6]float64{1, float64(float32(f)), 0, 0, 1, 0} }

func shearYMatrix(f float64) [6]float64 { return [6]float64{1, 0, 0, float64(float32(f)), 1, 0} }

func translateXMatrix(off float64) [6]float64 {
	return [6]float64{1, 0, float64(float32(-off)), 0, 1, 0}
}

func translateYMatrix(off float64) [6]float64 {
	return [6]float64{1, 0, 0, 0, 1, float64(float32(-off))}
}

// rotationMatrix2D is cv2.getRotationMatrix2D(center, degrees, 1): a counter-clockwise rotation (as seen on
// screen) about (cx, cy). BLIP's rotate_func uses the center (W/2, H/2), not the middle pixel ((W-1)/2, (H-1)/2).
// Go's math.Sincos can differ from glibc's cos and sin in the last bit, which moves a sample coordinate only
// where it lies within 1e-13 of a 1/32-pixel rounding boundary.
func rotationMatrix2D(cx, cy, degrees float64) [6]float64 {
	angle := degrees * (float64(math.Pi) / 180)
	beta, alpha := math.Sincos(angle)
	return [6]float64{
		alpha, beta, float64(float64(1-alpha)*cx) - float64(beta*cy),
		-beta, alpha, float64(beta*cx) + float64(float64(1-alpha)*cy),
	}
}

// warpAffineLinear writes cv2.warpAffine(src, M, (W, H), flags=INTER_LINEAR, borderMode=BORDER_CONSTANT,
// borderValue=fill) into dst (same size as src), following OpenCV's classic fixed-point CPU path (LAVIS pins
// opencv-python-headless 4.5.5; checked against 4.6; later 4.x releases rewrote the warp kernels and may round
// some samples differently): M is the forward map, inverted in float64; source
// coordinates are fixed point with 1/32-pixel steps (per-column and per-row terms each rounded half to even at
// 1/1024 pixel, then shifted); bilinear weights are the products of the 1/32 fractions in 15-bit fixed point
// with rounding; neighbours outside the image read as fill. adelta and bdelta are scratch of at least dst.W.
func warpAffineLinear(dst, src *RGB, M [6]float64, fill [3]uint8, adelta, bdelta []int) {
	// Invert the forward matrix as warpAffine does without WARP_INVERSE_MAP.
	d := float64(M[0]*M[4]) - float64(M[1]*M[3])
	if d != 0 {
		d = 1 / d
	}
	a11, a22 := M[4]*d, M[0]*d
	M[0] = a11
	M[1] *= -d
	M[3] *= -d
	M[4] = a22
	b1 := float64(-M[0]*M[2]) - float64(M[1]*M[5])
	b2 := float64(-M[3]*M[2]) - float64(M[4]*M[5])
	M[2], M[5] = b1, b2

	const (
		abBits     = 10
		abScale    = 1 << abBits
		interBits  = 5
		tabSize    = 1 << interBits
		roundDelta = abScale / tabSize / 2
	)
	w, h := dst.W, dst.H
	for x := 0; x < w; x++ {
		adelta[x] = cvRound(float64(M[0]*float64(x)) * abScale)
		bdelta[x] = cvRound(float64(M[3]*float64(x)) * abScale)
	}
	sw, sh := src.W, src.H
	sp, stride := src.Pix, 3*src.W
	for y := 0; y < h; y++ {
		x0 := cvRound(float64(float64(M[1]*float64(y))+M[2])*abScale) + roundDelta
		y0 := cvRound(float64(float64(M[4]*float64(y))+M[5])*abScale) + roundDelta
		out := dst.Pix[y*3*w : (y+1)*3*w]
		for x := 0; x < w; x++ {
			X := (x0 + adelta[x]) >> (abBits - interBits)
			Y := (y0 + bdelta[x]) >> (abBits - interBits)
			sx, sy := sat16(X>>interBits), sat16(Y>>interBits)
			fx, fy := int32(X&(tabSize-1)), int32(Y&(tabSize-1))
			// Weights of (sx, sy), (sx+1, sy), (sx, sy+1), (sx+1, sy+1): float32 products of the fractions
			// times 2^15 are these integers exactly. OpenCV's table stores 32767 + a 1 on the far corner for
			// the whole-pixel cell, which gives the same result.
			w00 := (tabSize - fx) * (tabSize - fy) * 32
			w01 := fx * (tabSize - fy) * 32
			w10 := (tabSize - fx) * fy * 32
			w11 := fx * fy * 32
			o := 3 * x
			if uint(sx) < uint(sw-1) && uint(sy) < uint(sh-1) {
				i := sy*stride + 3*sx
				j := i + stride
				p, q := sp[i:i+6:i+6], sp[j:j+6:j+6]
				out[o] = uint8((int32(p[0])*w00 + int32(p[3])*w01 + int32(q[0])*w10 + int32(q[3])*w11 + 1<<14) >> 15)
				out[o+1] = uint8((int32(p[1])*w00 + int32(p[4])*w01 + int32(q[1])*w10 + int32(q[4])*w11 + 1<<14) >> 15)
				out[o+2] = uint8((int32(p[2])*w00 + int32(p[5])*w01 + int32(q[2])*w10 + int32(q[5])*w11 + 1<<14) >> 15)
				continue
			}
			if sx >= sw || sx+1 < 0 || sy >= sh || sy+1 < 0 {
				out[o], out[o+1], out[o+2] = fill[0], fill[1], fill[2]
				continue
			}
			for c := 0; c < 3; c++ {
				acc := int32(1 << 14)
				for k, wt := range [4]int32{w00, w01, w10, w11} {
					v := int32(fill[c])
					if xx, yy := sx+k&1, sy+k>>1; xx >= 0 && xx < sw && yy >= 0 && yy < sh {
						v = int32(sp[yy*stride+3*xx+c])
					}
					acc += v * wt
				}
				out[o+c] = uint8(acc >> 15)
			}
		}
	}
}

// cvRound is OpenCV's cvRound / saturate_cast<int>(double): round half to even (x86's default rounding).
func cvRound(v float64) int { return int(math.RoundToEven(v)) }

// sat16 is saturate_cast<short>.
func sat16(v int) int { return max(-32768, min(32767, v)) }
