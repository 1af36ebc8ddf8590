// Package weights reads and writes tensors by name: safetensors files (an 8-byte header
// length, a JSON header of dtypes, shapes and byte ranges, then raw little-endian data).
package weights

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"unsafe"

	"github.com/sugarme/gotch"
	lib "github.com/sugarme/gotch/libtch"
	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/torchx"
)

// The safetensors format (https://huggingface.co/docs/safetensors): an 8-byte little-endian
// header length N, N bytes of JSON mapping each tensor name to its dtype, shape and byte range
// in the data that follows (plus an optional "__metadata__" string map), then the raw
// little-endian tensor bytes.

// maxHeaderBytes bounds the JSON header a reader accepts.
const maxHeaderBytes = 100 << 20

var stDTypes = map[gotch.DType]string{
	gotch.Float: "F32", gotch.Double: "F64", gotch.Half: "F16", gotch.BFloat16: "BF16",
	gotch.Int64: "I64", gotch.Int: "I32", gotch.Int16: "I16", gotch.Int8: "I8",
	gotch.Uint8: "U8", gotch.Bool: "BOOL",
}

// hostLittleEndian guards the byte copies between tensors and files, which assume the
// little-endian layout safetensors prescribes.
var hostLittleEndian = func() bool { x := uint16(1); return *(*byte)(unsafe.Pointer(&x)) == 1 }()

func stDType(name string) (gotch.DType, bool) {
	for d, n := range stDTypes {
		if n == name {
			return d, true
		}
	}
	return gotch.Float, false
}

type stEntry struct {
	DType   string   `json:"dtype"`
	Shape   []int64  `json:"shape"`
	Offsets [2]int64 `json:"data_offsets"`
}

// WriteSafetensors writes the named tensors (on any device, any layout) to path in the
// safetensors format, with optional string metadata. It copies one tensor at a time to host
// memory. The file is written in place: callers wanting atomicity write into a temporary
// directory (as checkpoints do) or file and rename.
func WriteSafetensors(path string, tensors map[string]*ts.Tensor, metadata map[string]string) (err error) {
	if !hostLittleEndian {
		return fmt.Errorf("%s: safetensors needs a little-endian host", path)
	}
	names := make([]string, 0, len(tensors))
	for name := range tensors {
		if name == "__metadata__" {
			return fmt.Errorf("%s: %q is reserved and cannot name a tensor", path, name)
		}
		names = append(names, name)
	}
	sort.Strings(names)
	header := map[string]any{}
	if len(metadata) > 0 {
		header["__metadata__"] = metadata
	}
	var off int64
	sizes := make([]int64, len(names))
	for i, name := range names {
		t := tensors[name]
		dt, ok := stDTypes[t.DType()]
		if !ok {
			return fmt.Errorf("%s: tensor %s: dtype %v has no safetensors code", path, name, t.DType())
		}
		shape, err := t.Size()
		if err != nil {
			return fmt.Errorf("%s: tensor %s: %w", path, name, torchx.Err("size", err))
		}
		n := int64(t.DType().Size())
		for _, d := range shape {
			n *= d
		}
		if shape == nil {
			shape = []int64{}
		}
		header[name] = stEntry{DType: dt, Shape: shape, Offsets: [2]int64{off, off + n}}
		sizes[i] = n
		off += n
	}
	hj, err := json.Marshal(header)
	if err != nil {
		return fmt.Errorf("%s: header: %w", path, err)
	}
	for len(hj)%8 != 0 { // align the data to 8 bytes, as the reference writer does
		hj = append(hj, ' ')
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	w := bufio.NewWriterSize(f, 1<<20)
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(hj)))
	if _, err := w.Write(lenBuf[:]); err != nil {
		return err
	}
	if _, err := w.Write(hj); err != nil {
		return err
	}
	var buf []byte
	for i, name := range names {
		if sizes[i] == 0 {
			continue
		}
		if int64(cap(buf)) < sizes[i] {
			buf = make([]byte, sizes[i])
		}
		b := buf[:sizes[i]]
		t := tensors[name]
		es := t.DType().Size()
		lib.AtCopyData(lib.Ctensor(t.Ctensor()), unsafe.Pointer(&b[0]), uint(sizes[i]/int64(es)), es)
		if err := ts.TorchErr(); err != nil {
			return fmt.Errorf("%s: tensor %s: %w", path, name, torchx.Err("copy to host", err))
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Sync()
}

// Safetensors is an open safetensors file whose tensors are read one at a time.
type Safetensors struct {
	path     string
	f        *os.File
	entries  map[string]stEntry
	dataOff  int64
	Metadata map[string]string
}

// OpenSafetensors opens a safetensors file and checks its header: known dtypes, non-negative
// shapes, byte ranges that match the shapes and lie inside the file without overlapping.
func OpenSafetensors(path string) (*Safetensors, error) {
	if !hostLittleEndian {
		return nil, fmt.Errorf("%s: safetensors needs a little-endian host", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := readHeader(path, f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return st, nil
}

func readHeader(path string, f *os.File) (*Safetensors, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	var lenBuf [8]byte
	if _, err := io.ReadFull(f, lenBuf[:]); err != nil {
		return nil, fmt.Errorf("%s: not a safetensors file: %w", path, err)
	}
	hlen := binary.LittleEndian.Uint64(lenBuf[:])
	if hlen > maxHeaderBytes || int64(hlen) > fi.Size()-8 {
		return nil, fmt.Errorf("%s: not a safetensors file: header length %d for a %d-byte file", path, hlen, fi.Size())
	}
	hj := make([]byte, hlen)
	if _, err := io.ReadFull(f, hj); err != nil {
		return nil, fmt.Errorf("%s: header: %w", path, err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(hj, &raw); err != nil {
		return nil, fmt.Errorf("%s: header JSON: %w", path, err)
	}
	st := &Safetensors{path: path, f: f, entries: map[string]stEntry{}, dataOff: 8 + int64(hlen)}
	dataLen := fi.Size() - st.dataOff
	type span struct {
		name       string
		begin, end int64
	}
	var spans []span
	for name, msg := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &st.Metadata); err != nil {
				return nil, fmt.Errorf("%s: __metadata__ must map strings to strings: %w", path, err)
			}
			continue
		}
		var e stEntry
		if err := json.Unmarshal(msg, &e); err != nil {
			return nil, fmt.Errorf("%s: tensor %s: %w", path, name, err)
		}
		dt, ok := stDType(e.DType)
		if !ok {
			return nil, fmt.Errorf("%s: tensor %s: unsupported dtype %q", path, name, e.DType)
		}
		n := int64(dt.Size())
		for _, d := range e.Shape {
			if d < 0 || (d > 0 && n > math.MaxInt64/d) {
				return nil, fmt.Errorf("%s: tensor %s: bad shape %v", path, name, e.Shape)
			}
			n *= d
		}
		b, end := e.Offsets[0], e.Offsets[1]
		if b < 0 || end < b || end > dataLen || end-b != n {
			return nil, fmt.Errorf("%s: tensor %s: byte range [%d, %d) does not fit shape %v of %s in %d data bytes",
				path, name, b, end, e.Shape, e.DType, dataLen)
		}
		st.entries[name] = e
		if end > b { // an empty tensor occupies no bytes and cannot overlap
			spans = append(spans, span{name, b, end})
		}
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].begin < spans[j].begin })
	for i := 1; i < len(spans); i++ {
		if spans[i].begin < spans[i-1].end {
			return nil, fmt.Errorf("%s: tensors %s and %s overlap", path, spans[i-1].name, spans[i].name)
		}
	}
	return st, nil
}

// Names lists the file's tensor names, sorted.
func (s *Safetensors) Names() []string {
	names := make([]string, 0, len(s.entries))
	for n := range s.entries {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Info reports a tensor's dtype and shape without reading it.
func (s *Safetensors) Info(name string) (gotch.DType, []int64, bool) {
	e, ok := s.entries[name]
	if !ok {
		return gotch.Float, nil, false
	}
	dt, _ := stDType(e.DType)
	return dt, append([]int64(nil), e.Shape...), true
}

// Tensor reads one tensor into a new CPU tensor.
func (s *Safetensors) Tensor(name string) (*ts.Tensor, error) {
	e, ok := s.entries[name]
	if !ok {
		return nil, fmt.Errorf("%s: no tensor %q", s.path, name)
	}
	dt, _ := stDType(e.DType)
	data := make([]byte, e.Offsets[1]-e.Offsets[0])
	if _, err := s.f.ReadAt(data, s.dataOff+e.Offsets[0]); err != nil {
		return nil, fmt.Errorf("%s: tensor %s: %w", s.path, name, err)
	}
	shape := e.Shape
	if len(shape) == 0 {
		shape = []int64{1} // gotch cannot build a 0-d tensor directly: squeeze a [1]
	}
	t, err := ts.OfDataSize(data, shape, dt)
	if err != nil {
		return nil, fmt.Errorf("%s: tensor %s: %w", s.path, name, torchx.Err("build tensor", err))
	}
	if len(e.Shape) == 0 {
		if t, err = t.Squeeze(true); err != nil {
			return nil, fmt.Errorf("%s: tensor %s: %w", s.path, name, torchx.Err("build tensor", err))
		}
	}
	return t, nil
}

// Close closes the file.
func (s *Safetensors) Close() error { return s.f.Close() }
