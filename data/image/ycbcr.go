package image

import (
	stdimage "image"
)

// libjpeg's YCbCr -> RGB conversion (jdcolor.c): 16-bit fixed point, tables indexed by the chroma sample.
const (
	yccScaleBits = 16
	yccOneHalf   = 1 << (yccScaleBits - 1)
)

// yccFix is libjpeg's FIX(x): x in 16.16 fixed point, rounded.
func yccFix(x float64) int32 { return int32(x*(1<<yccScaleBits) + 0.5) }

var (
	crRTab [256]int32 // Cr contribution to R, already shifted
	cbBTab [256]int32 // Cb contribution to B, already shifted
	crGTab [256]int32 // Cr contribution to G, unshifted
	cbGTab [256]int32 // Cb contribution to G, unshifted, with the rounding half
)

func init() {
	for i := 0; i < 256; i++ {
		x := int32(i - 128)
		crRTab[i] = (yccFix(1.40200)*x + yccOneHalf) >> yccScaleBits
		cbBTab[i] = (yccFix(1.77200)*x + yccOneHalf) >> yccScaleBits
		crGTab[i] = -yccFix(0.71414) * x
		cbGTab[i] = -yccFix(0.34414)*x + yccOneHalf
	}
}

func clampU8(v int32) uint8 {
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// yccPixel converts one Y, Cb, Cr triple exactly as libjpeg(-turbo)'s ycc_rgb_convert does.
func yccPixel(y, cb, cr uint8) (uint8, uint8, uint8) {
	yy := int32(y)
	r := yy + crRTab[cr]
	g := yy + (cbGTab[cb]+crGTab[cr])>>yccScaleBits
	b := yy + cbBTab[cb]
	return clampU8(r), clampU8(g), clampU8(b)
}

// chromaGeometry returns the horizontal and vertical subsampling factors of m's chroma planes.
func chromaGeometry(r stdimage.YCbCrSubsampleRatio) (hf, vf int) {
	switch r {
	case stdimage.YCbCrSubsampleRatio422:
		return 2, 1
	case stdimage.YCbCrSubsampleRatio420:
		return 2, 2
	case stdimage.YCbCrSubsampleRatio440:
		return 1, 2
	case stdimage.YCbCrSubsampleRatio411:
		return 4, 1
	case stdimage.YCbCrSubsampleRatio410:
		return 4, 2
	}
	return 1, 1
}

// ycbcrToRGB converts m into out (same size). With fancy set it reproduces libjpeg-turbo's default decoder
// output stage: "fancy" triangle-filter chroma upsampling for 2:1 factors (h2v1, h2v2, h1v2 with libjpeg's
// edge replication and alternating rounding bias), box replication otherwise, then libjpeg's fixed-point
// colour conversion. Without fancy, chroma samples are replicated (what Go's image/jpeg implies).
func ycbcrToRGB(m *stdimage.YCbCr, out *RGB, fancy bool) {
	w, h := m.Rect.Dx(), m.Rect.Dy()
	if w == 0 || h == 0 {
		return
	}
	hf, vf := chromaGeometry(m.SubsampleRatio)
	// Chroma plane origin and size in samples (libjpeg's downsampled_width/height).
	cx0, cy0 := floorDiv(m.Rect.Min.X, hf), floorDiv(m.Rect.Min.Y, vf)
	cw := ceilDiv(m.Rect.Max.X, hf) - cx0
	ch := ceilDiv(m.Rect.Max.Y, vf) - cy0
	crow := func(plane []uint8, cy int) []uint8 {
		if cy < 0 {
			cy = 0
		}
		if cy >= ch {
			cy = ch - 1
		}
		off := cy * m.CStride
		return plane[off : off+cw]
	}
	// Go's chroma planes start at the sample that covers Rect.Min (COffset(Rect.Min) == 0).
	cbBase, crBase := m.Cb, m.Cr
	// Sub-sample phase of Rect.Min inside its chroma sample; only 0 happens for decoded JPEGs.
	px, py := m.Rect.Min.X-cx0*hf, m.Rect.Min.Y-cy0*vf

	useFancy := fancy && px == 0 && py == 0 &&
		((hf == 2 && vf == 1 && cw > 2) || (hf == 2 && vf == 2 && cw > 2) || (hf == 1 && vf == 2))
	cbRow := make([]uint8, cw*hf)
	crRow := make([]uint8, cw*hf)
	colsum := make([]int32, cw)
	for y := 0; y < h; y++ {
		yrow := m.Y[y*m.YStride : y*m.YStride+w]
		switch {
		case hf == 1 && vf == 1:
			copy(cbRow, crow(cbBase, y))
			copy(crRow, crow(crBase, y))
		case useFancy && vf == 1: // h2v1
			fancyH2V1(crow(cbBase, y), cbRow)
			fancyH2V1(crow(crBase, y), crRow)
		case useFancy && hf == 2: // h2v2
			cy := y / 2
			other := cy - 1
			if y%2 == 1 {
				other = cy + 1
			}
			fancyH2V2(crow(cbBase, cy), crow(cbBase, other), colsum, cbRow)
			fancyH2V2(crow(crBase, cy), crow(crBase, other), colsum, crRow)
		case useFancy: // h1v2
			cy := y / 2
			other := cy - 1
			if y%2 == 1 {
				other = cy + 1
			}
			fancyH1V2(crow(cbBase, cy), crow(cbBase, other), cbRow)
			fancyH1V2(crow(crBase, cy), crow(crBase, other), crRow)
		default: // box replication
			cy := (y + py) / vf
			cbIn, crIn := crow(cbBase, cy), crow(crBase, cy)
			for i := range cbRow {
				cbRow[i] = cbIn[i/hf]
				crRow[i] = crIn[i/hf]
			}
		}
		o := out.Pix[3*y*w : 3*(y+1)*w]
		for x := 0; x < w; x++ {
			o[3*x], o[3*x+1], o[3*x+2] = yccPixel(yrow[x], cbRow[x+px], crRow[x+px])
		}
	}
}

// fancyH2V1 is libjpeg's h2v1 triangle filter: each output is 3/4 nearer + 1/4 further input sample, with
// rounding biases 1 and 2 alternating; the outermost outputs copy the edge samples. len(in) must be > 2.
func fancyH2V1(in, out []uint8) {
	n := len(in)
	out[0] = in[0]
	out[1] = uint8((int32(in[0])*3 + int32(in[1]) + 2) >> 2)
	for i := 1; i < n-1; i++ {
		v := int32(in[i]) * 3
		out[2*i] = uint8((v + int32(in[i-1]) + 1) >> 2)
		out[2*i+1] = uint8((v + int32(in[i+1]) + 2) >> 2)
	}
	v := int32(in[n-1]) * 3
	out[2*n-2] = uint8((v + int32(in[n-2]) + 1) >> 2)
	out[2*n-1] = in[n-1]
}

// fancyH2V2 is libjpeg's h2v2 triangle filter for one output row: near is the nearest chroma row, far the next
// nearest (the row above for even output rows, below for odd ones, replicated at the image edges).
func fancyH2V2(near, far []uint8, colsum []int32, out []uint8) {
	n := len(near)
	for i := 0; i < n; i++ {
		colsum[i] = int32(near[i])*3 + int32(far[i])
	}
	out[0] = uint8((colsum[0]*4 + 8) >> 4)
	out[1] = uint8((colsum[0]*3 + colsum[1] + 7) >> 4)
	for i := 1; i < n-1; i++ {
		out[2*i] = uint8((colsum[i]*3 + colsum[i-1] + 8) >> 4)
		out[2*i+1] = uint8((colsum[i]*3 + colsum[i+1] + 7) >> 4)
	}
	out[2*n-2] = uint8((colsum[n-1]*3 + colsum[n-2] + 8) >> 4)
	out[2*n-1] = uint8((colsum[n-1]*4 + 7) >> 4)
}

// fancyH1V2 is libjpeg-turbo's h1v2 (4:4:0) vertical triangle filter for one output row.
func fancyH1V2(near, far []uint8, out []uint8) {
	for i := range near {
		out[i] = uint8((int32(near[i])*3 + int32(far[i]) + 1) >> 2)
	}
}

func floorDiv(a, b int) int {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func ceilDiv(a, b int) int { return -floorDiv(-a, b) }
