package image

import (
	"bytes"
	"encoding/binary"
)

// JPEGOrientation returns the EXIF orientation (1..8) stored in a JPEG's APP1 "Exif" segment, or 1 when the data
// is not a JPEG, has no EXIF block, or the block is malformed. It scans marker segments up to the first SOS.
func JPEGOrientation(data []byte) int {
	if len(data) < 4 || data[0] != 0xFF || data[1] != 0xD8 {
		return 1
	}
	i := 2
	for i+4 <= len(data) {
		if data[i] != 0xFF {
			return 1
		}
		marker := data[i+1]
		if marker == 0xFF { // fill byte
			i++
			continue
		}
		i += 2
		// Markers without a length field.
		if marker == 0x01 || marker == 0xD8 || (marker >= 0xD0 && marker <= 0xD7) {
			continue
		}
		if marker == 0xD9 || marker == 0xDA { // EOI, SOS: no more metadata segments
			return 1
		}
		if i+2 > len(data) {
			return 1
		}
		n := int(binary.BigEndian.Uint16(data[i:]))
		if n < 2 || i+n > len(data) {
			return 1
		}
		seg := data[i+2 : i+n]
		if marker == 0xE1 && bytes.HasPrefix(seg, []byte("Exif\x00\x00")) {
			if o, ok := tiffOrientation(seg[6:]); ok {
				return o
			}
		}
		i += n
	}
	return 1
}

// tiffOrientation reads tag 0x0112 (Orientation) from IFD0 of a TIFF structure (the body of an Exif block).
func tiffOrientation(t []byte) (int, bool) {
	if len(t) < 8 {
		return 0, false
	}
	var bo binary.ByteOrder
	switch string(t[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return 0, false
	}
	if bo.Uint16(t[2:]) != 42 {
		return 0, false
	}
	off := int64(bo.Uint32(t[4:]))
	if off < 8 || off+2 > int64(len(t)) {
		return 0, false
	}
	n := int64(bo.Uint16(t[off:]))
	for k := int64(0); k < n; k++ {
		e := off + 2 + 12*k
		if e+12 > int64(len(t)) {
			return 0, false
		}
		if bo.Uint16(t[e:]) != 0x0112 {
			continue
		}
		typ, count := bo.Uint16(t[e+2:]), bo.Uint32(t[e+4:])
		if count < 1 {
			return 0, false
		}
		var v int
		switch typ {
		case 3: // SHORT, stored left-justified in the value field
			v = int(bo.Uint16(t[e+8:]))
		case 4: // LONG
			v = int(bo.Uint32(t[e+8:]))
		default:
			return 0, false
		}
		if v < 1 || v > 8 {
			return 0, false
		}
		return v, true
	}
	return 0, false
}

// Orient applies an EXIF orientation to m the way PIL's ImageOps.exif_transpose does (2: mirror, 3: rotate 180,
// 4: flip vertically, 5: transpose, 6: rotate 270° counter-clockwise, 7: transverse, 8: rotate 90°
// counter-clockwise). Orientation 1 and unknown values return m itself.
func Orient(m *RGB, orientation int) *RGB {
	w, h := m.W, m.H
	var out *RGB
	var src func(x, y int) int // pixel index in m for output pixel (x, y)
	switch orientation {
	case 2:
		out = NewRGB(w, h)
		src = func(x, y int) int { return y*w + (w - 1 - x) }
	case 3:
		out = NewRGB(w, h)
		src = func(x, y int) int { return (h-1-y)*w + (w - 1 - x) }
	case 4:
		out = NewRGB(w, h)
		src = func(x, y int) int { return (h-1-y)*w + x }
	case 5: // transpose: out(x, y) = in(y, x)
		out = NewRGB(h, w)
		src = func(x, y int) int { return x*w + y }
	case 6: // rotate 270 CCW (90 clockwise): out(x, y) = in(y, h-1-x)
		out = NewRGB(h, w)
		src = func(x, y int) int { return (h-1-x)*w + y }
	case 7: // transverse: out(x, y) = in(w-1-y, h-1-x)
		out = NewRGB(h, w)
		src = func(x, y int) int { return (h-1-x)*w + (w - 1 - y) }
	case 8: // rotate 90 CCW: out(x, y) = in(w-1-y, x)
		out = NewRGB(h, w)
		src = func(x, y int) int { return x*w + (w - 1 - y) }
	default:
		return m
	}
	for y := 0; y < out.H; y++ {
		for x := 0; x < out.W; x++ {
			s := 3 * src(x, y)
			d := 3 * (y*out.W + x)
			out.Pix[d], out.Pix[d+1], out.Pix[d+2] = m.Pix[s], m.Pix[s+1], m.Pix[s+2]
		}
	}
	return out
}
