package image

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
)

// Array is an n-dimensional array read from or written to a NumPy .npy file, in C (row-major) order.
// Exactly one of the typed slices holds the data, chosen by Dtype.
type Array struct {
	// Dtype is the element type: one of "float32", "float64", "int64", "int32", "uint8", "bool".
	Dtype string
	// Shape is the array's shape; an empty shape is a scalar holding one element.
	Shape []int

	F32  []float32 // data when Dtype is "float32"
	F64  []float64 // data when Dtype is "float64"
	I64  []int64   // data when Dtype is "int64"
	I32  []int32   // data when Dtype is "int32"
	U8   []uint8   // data when Dtype is "uint8"
	Bool []bool    // data when Dtype is "bool"
}

// NewFloat32Array returns a float32 Array of the given shape wrapping data (not copied).
func NewFloat32Array(shape []int, data []float32) *Array {
	return &Array{Dtype: "float32", Shape: append([]int(nil), shape...), F32: data}
}

// NewInt64Array returns an int64 Array of the given shape wrapping data (not copied).
func NewInt64Array(shape []int, data []int64) *Array {
	return &Array{Dtype: "int64", Shape: append([]int(nil), shape...), I64: data}
}

// NewUint8Array returns a uint8 Array of the given shape wrapping data (not copied).
func NewUint8Array(shape []int, data []uint8) *Array {
	return &Array{Dtype: "uint8", Shape: append([]int(nil), shape...), U8: data}
}

// Len is the number of elements the shape describes (1 for a scalar).
func (a *Array) Len() int {
	n := 1
	for _, d := range a.Shape {
		n *= d
	}
	return n
}

// dataLen is the length of the slice that Dtype selects, or -1 for an unknown Dtype.
func (a *Array) dataLen() int {
	switch a.Dtype {
	case "float32":
		return len(a.F32)
	case "float64":
		return len(a.F64)
	case "int64":
		return len(a.I64)
	case "int32":
		return len(a.I32)
	case "uint8":
		return len(a.U8)
	case "bool":
		return len(a.Bool)
	}
	return -1
}

// Float64s returns the elements converted to float64, whatever the Dtype.
func (a *Array) Float64s() []float64 {
	out := make([]float64, 0, a.dataLen())
	switch a.Dtype {
	case "float32":
		for _, v := range a.F32 {
			out = append(out, float64(v))
		}
	case "float64":
		out = append(out, a.F64...)
	case "int64":
		for _, v := range a.I64 {
			out = append(out, float64(v))
		}
	case "int32":
		for _, v := range a.I32 {
			out = append(out, float64(v))
		}
	case "uint8":
		for _, v := range a.U8 {
			out = append(out, float64(v))
		}
	case "bool":
		for _, v := range a.Bool {
			if v {
				out = append(out, 1)
			} else {
				out = append(out, 0)
			}
		}
	}
	return out
}

// npyMagic starts every .npy file.
const npyMagic = "\x93NUMPY"

// maxNPYElements bounds the element count a header may announce (2^34), so a corrupt header cannot ask for
// an absurd allocation before any data is read.
const maxNPYElements = 1 << 34

// ReadNPYFile reads a .npy file; errors name the file.
func ReadNPYFile(path string) (*Array, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	a, err := ReadNPY(bufio.NewReader(f))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return a, nil
}

// ReadNPY reads one array in NumPy .npy format (versions 1.0, 2.0 and 3.0; C order; little- or big-endian
// float32, float64, int64, int32, uint8 and bool).
func ReadNPY(r io.Reader) (*Array, error) {
	var pre [8]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return nil, fmt.Errorf("npy: reading magic: %w", err)
	}
	if string(pre[:6]) != npyMagic {
		return nil, errors.New("npy: not a .npy file (bad magic)")
	}
	major := pre[6]
	var hlen int
	switch major {
	case 1:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, fmt.Errorf("npy: reading header length: %w", err)
		}
		hlen = int(binary.LittleEndian.Uint16(b[:]))
	case 2, 3:
		var b [4]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, fmt.Errorf("npy: reading header length: %w", err)
		}
		n := binary.LittleEndian.Uint32(b[:])
		if n > 1<<24 {
			return nil, fmt.Errorf("npy: header length %d is implausible", n)
		}
		hlen = int(n)
	default:
		return nil, fmt.Errorf("npy: unsupported format version %d.%d", pre[6], pre[7])
	}
	hdr := make([]byte, hlen)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return nil, fmt.Errorf("npy: reading header: %w", err)
	}
	descr, fortran, shape, err := parseNPYHeader(string(hdr))
	if err != nil {
		return nil, fmt.Errorf("npy: header %q: %w", strings.TrimSpace(string(hdr)), err)
	}
	if fortran {
		return nil, errors.New("npy: fortran_order arrays are not supported (want C order)")
	}
	dtype, size, order, err := parseDescr(descr)
	if err != nil {
		return nil, fmt.Errorf("npy: %w", err)
	}
	a := &Array{Dtype: dtype, Shape: shape}
	n := 1
	for _, d := range shape {
		if d < 0 {
			return nil, fmt.Errorf("npy: negative dimension in shape %v", shape)
		}
		if d > 0 && n > maxNPYElements/d {
			return nil, fmt.Errorf("npy: shape %v has too many elements", shape)
		}
		n *= d
	}
	raw := make([]byte, n*size)
	if _, err := io.ReadFull(r, raw); err != nil {
		return nil, fmt.Errorf("npy: reading %d elements of %s (shape %v): %w", n, dtype, shape, err)
	}
	switch dtype {
	case "float32":
		a.F32 = make([]float32, n)
		for i := range a.F32 {
			a.F32[i] = math.Float32frombits(order.Uint32(raw[4*i:]))
		}
	case "float64":
		a.F64 = make([]float64, n)
		for i := range a.F64 {
			a.F64[i] = math.Float64frombits(order.Uint64(raw[8*i:]))
		}
	case "int64":
		a.I64 = make([]int64, n)
		for i := range a.I64 {
			a.I64[i] = int64(order.Uint64(raw[8*i:]))
		}
	case "int32":
		a.I32 = make([]int32, n)
		for i := range a.I32 {
			a.I32[i] = int32(order.Uint32(raw[4*i:]))
		}
	case "uint8":
		a.U8 = raw
	case "bool":
		a.Bool = make([]bool, n)
		for i, b := range raw {
			a.Bool[i] = b != 0
		}
	}
	return a, nil
}

// parseDescr maps a NumPy type string such as "<f4" to our Dtype name, element size and byte order.
func parseDescr(descr string) (string, int, binary.ByteOrder, error) {
	if len(descr) < 2 {
		return "", 0, nil, fmt.Errorf("unsupported descr %q", descr)
	}
	var order binary.ByteOrder = binary.LittleEndian
	switch descr[0] {
	case '<', '|', '=':
	case '>':
		order = binary.BigEndian
	default:
		return "", 0, nil, fmt.Errorf("unsupported descr %q", descr)
	}
	switch descr[1:] {
	case "f4":
		return "float32", 4, order, nil
	case "f8":
		return "float64", 8, order, nil
	case "i8":
		return "int64", 8, order, nil
	case "i4":
		return "int32", 4, order, nil
	case "u1":
		return "uint8", 1, order, nil
	case "b1":
		return "bool", 1, order, nil
	}
	return "", 0, nil, fmt.Errorf("unsupported descr %q (want f4, f8, i8, i4, u1 or b1)", descr)
}

// parseNPYHeader parses the Python dict literal of a .npy header:
// {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
func parseNPYHeader(h string) (descr string, fortran bool, shape []int, err error) {
	p := &litParser{s: strings.TrimSpace(h)}
	if !p.eat('{') {
		return "", false, nil, errors.New("want '{'")
	}
	seen := map[string]bool{}
	for {
		p.skipSpace()
		if p.eat('}') {
			break
		}
		key, err := p.str()
		if err != nil {
			return "", false, nil, err
		}
		p.skipSpace()
		if !p.eat(':') {
			return "", false, nil, fmt.Errorf("want ':' after key %q", key)
		}
		p.skipSpace()
		switch key {
		case "descr":
			if descr, err = p.str(); err != nil {
				return "", false, nil, fmt.Errorf("descr: %w", err)
			}
		case "fortran_order":
			switch {
			case p.word("True"):
				fortran = true
			case p.word("False"):
				fortran = false
			default:
				return "", false, nil, errors.New("fortran_order: want True or False")
			}
		case "shape":
			if shape, err = p.tuple(); err != nil {
				return "", false, nil, fmt.Errorf("shape: %w", err)
			}
		default:
			return "", false, nil, fmt.Errorf("unknown key %q", key)
		}
		seen[key] = true
		p.skipSpace()
		if p.eat(',') {
			continue
		}
		p.skipSpace()
		if p.eat('}') {
			break
		}
		return "", false, nil, fmt.Errorf("want ',' or '}' at offset %d", p.i)
	}
	for _, k := range []string{"descr", "fortran_order", "shape"} {
		if !seen[k] {
			return "", false, nil, fmt.Errorf("missing key %q", k)
		}
	}
	return descr, fortran, shape, nil
}

// litParser scans the small subset of Python literals that .npy headers use.
type litParser struct {
	s string
	i int
}

func (p *litParser) skipSpace() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == '\n') {
		p.i++
	}
}

func (p *litParser) eat(c byte) bool {
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *litParser) word(w string) bool {
	if strings.HasPrefix(p.s[p.i:], w) {
		p.i += len(w)
		return true
	}
	return false
}

func (p *litParser) str() (string, error) {
	if p.i >= len(p.s) || (p.s[p.i] != '\'' && p.s[p.i] != '"') {
		return "", fmt.Errorf("want a quoted string at offset %d", p.i)
	}
	q := p.s[p.i]
	end := strings.IndexByte(p.s[p.i+1:], q)
	if end < 0 {
		return "", errors.New("unterminated string")
	}
	v := p.s[p.i+1 : p.i+1+end]
	p.i += end + 2
	return v, nil
}

func (p *litParser) tuple() ([]int, error) {
	if !p.eat('(') {
		return nil, errors.New("want '('")
	}
	shape := []int{}
	for {
		p.skipSpace()
		if p.eat(')') {
			return shape, nil
		}
		j := p.i
		for j < len(p.s) && p.s[j] >= '0' && p.s[j] <= '9' {
			j++
		}
		// NumPy on Windows once wrote longs as "3L".
		v, err := strconv.Atoi(p.s[p.i:j])
		if err != nil {
			return nil, fmt.Errorf("bad dimension at offset %d", p.i)
		}
		p.i = j
		p.eat('L')
		shape = append(shape, v)
		p.skipSpace()
		if p.eat(',') {
			continue
		}
		p.skipSpace()
		if p.eat(')') {
			return shape, nil
		}
		return nil, fmt.Errorf("want ',' or ')' at offset %d", p.i)
	}
}

// WriteNPYFile writes a to path in .npy format.
func WriteNPYFile(path string, a *Array) error {
	var buf bytes.Buffer
	if err := WriteNPY(&buf, a); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

// WriteNPY writes a in .npy format version 1.0, little-endian, C order, with the header padded to a multiple
// of 64 bytes as NumPy does.
func WriteNPY(w io.Writer, a *Array) error {
	var descr string
	switch a.Dtype {
	case "float32":
		descr = "<f4"
	case "float64":
		descr = "<f8"
	case "int64":
		descr = "<i8"
	case "int32":
		descr = "<i4"
	case "uint8":
		descr = "|u1"
	case "bool":
		descr = "|b1"
	default:
		return fmt.Errorf("npy: unsupported dtype %q", a.Dtype)
	}
	if a.dataLen() != a.Len() {
		return fmt.Errorf("npy: shape %v needs %d elements, data has %d", a.Shape, a.Len(), a.dataLen())
	}
	var sh strings.Builder
	sh.WriteByte('(')
	for i, d := range a.Shape {
		if i > 0 {
			sh.WriteString(", ")
		}
		sh.WriteString(strconv.Itoa(d))
	}
	if len(a.Shape) == 1 {
		sh.WriteByte(',')
	}
	sh.WriteByte(')')
	dict := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, sh.String())
	total := len(npyMagic) + 2 + 2 + len(dict) + 1
	pad := (64 - total%64) % 64
	hdr := dict + strings.Repeat(" ", pad) + "\n"
	if len(hdr) > math.MaxUint16 {
		return errors.New("npy: header too long for format 1.0")
	}
	var out bytes.Buffer
	out.WriteString(npyMagic)
	out.Write([]byte{1, 0})
	_ = binary.Write(&out, binary.LittleEndian, uint16(len(hdr)))
	out.WriteString(hdr)
	le := binary.LittleEndian
	var b [8]byte
	switch a.Dtype {
	case "float32":
		for _, v := range a.F32 {
			le.PutUint32(b[:], math.Float32bits(v))
			out.Write(b[:4])
		}
	case "float64":
		for _, v := range a.F64 {
			le.PutUint64(b[:], math.Float64bits(v))
			out.Write(b[:8])
		}
	case "int64":
		for _, v := range a.I64 {
			le.PutUint64(b[:], uint64(v))
			out.Write(b[:8])
		}
	case "int32":
		for _, v := range a.I32 {
			le.PutUint32(b[:], uint32(v))
			out.Write(b[:4])
		}
	case "uint8":
		out.Write(a.U8)
	case "bool":
		for _, v := range a.Bool {
			if v {
				out.WriteByte(1)
			} else {
				out.WriteByte(0)
			}
		}
	}
	_, err := w.Write(out.Bytes())
	return err
}
