package weights

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"
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

// stDTypeCodes lists the safetensors dtype codes this package reads and writes.
func stDTypeCodes() string {
	codes := make([]string, 0, len(stDTypes))
	for _, c := range stDTypes {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	return strings.Join(codes, ", ")
}

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
// memory. The file is replaced atomically: the data goes to a temporary file in the same
// directory, which is synced and renamed over path, so a reader or a crash never sees half a
// file, and on failure path is left as it was.
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
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Chmod(f.Name(), 0o644)
		}
		if err == nil {
			err = os.Rename(f.Name(), path)
		}
		if err != nil {
			os.Remove(f.Name())
			if !strings.Contains(err.Error(), path) {
				err = fmt.Errorf("writing %s: %w", path, err)
			}
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

// OpenSafetensors opens a safetensors file and checks its header the way the reference reader
// (safetensors' Metadata::validate) does, and a little more: a header of at most 100 MB of
// UTF-8 JSON without duplicate keys, every tensor with a known dtype, a non-negative shape
// whose size matches its byte range, and byte ranges that tile the data exactly, from its
// first byte to the end of the file, without gaps or overlaps. Every error names the file and,
// where there is one, the tensor.
func OpenSafetensors(path string) (*Safetensors, error) {
	if !hostLittleEndian {
		return nil, fmt.Errorf("%s: safetensors needs a little-endian host", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: not a safetensors file: not a regular file", path)
	}
	h, err := parseSafetensors(path, f, fi.Size())
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Safetensors{path: path, f: f, entries: h.entries, dataOff: h.dataOff, Metadata: h.metadata}, nil
}

// stHeader is a checked safetensors header.
type stHeader struct {
	entries  map[string]stEntry
	metadata map[string]string
	dataOff  int64 // where the tensor data starts in the file
}

// stSpecDTypes maps every dtype code of the safetensors specification to its size in bits,
// including those this package cannot turn into tensors, so that a valid file with such a
// tensor gets an error saying so rather than "unknown dtype".
var stSpecDTypes = map[string]int64{
	"BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "F4": 4,
	"F6_E2M3": 6, "F6_E3M2": 6, "I16": 16, "U16": 16, "F16": 16, "BF16": 16, "I32": 32,
	"U32": 32, "F32": 32, "C64": 64, "F64": 64, "I64": 64, "U64": 64,
}

// parseSafetensors reads and checks the header of the size-byte safetensors file r; path
// only names the file in errors. It reads nothing beyond the header.
func parseSafetensors(path string, r io.ReaderAt, size int64) (*stHeader, error) {
	var lenBuf [8]byte
	if size < 8 {
		return nil, fmt.Errorf("%s: not a safetensors file: %d bytes, fewer than the 8 of the header length", path, size)
	}
	if _, err := r.ReadAt(lenBuf[:], 0); err != nil {
		return nil, fmt.Errorf("%s: not a safetensors file: %w", path, err)
	}
	hlen := binary.LittleEndian.Uint64(lenBuf[:])
	switch {
	case hlen > maxHeaderBytes:
		return nil, fmt.Errorf("%s: not a safetensors file: header length %d exceeds the %d-byte limit", path, hlen, maxHeaderBytes)
	case int64(hlen) > size-8:
		return nil, fmt.Errorf("%s: not a safetensors file (or truncated): header length %d for a %d-byte file", path, hlen, size)
	case hlen < 2:
		return nil, fmt.Errorf("%s: not a safetensors file: header length %d is too short for a JSON object", path, hlen)
	}
	hj := make([]byte, hlen)
	if _, err := r.ReadAt(hj, 8); err != nil {
		return nil, fmt.Errorf("%s: header: %w", path, err)
	}
	dataOff := 8 + int64(hlen)
	entries, meta, err := parseSafetensorsHeader(path, hj, size-dataOff)
	if err != nil {
		return nil, err
	}
	return &stHeader{entries: entries, metadata: meta, dataOff: dataOff}, nil
}

// parseSafetensorsHeader checks the JSON header hj of a file whose tensor data is dataLen
// bytes long and returns its tensors and metadata. It is pure: no I/O, no libtorch.
func parseSafetensorsHeader(path string, hj []byte, dataLen int64) (map[string]stEntry, map[string]string, error) {
	if !utf8.Valid(hj) {
		return nil, nil, fmt.Errorf("%s: header JSON is not valid UTF-8", path)
	}
	raw, err := decodeJSONObject(hj)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: header JSON: %w", path, err)
	}
	entries := make(map[string]stEntry, len(raw))
	var meta map[string]string
	type span struct {
		name       string
		begin, end int64
	}
	spans := make([]span, 0, len(raw))
	for _, kv := range raw {
		name, msg := kv.key, kv.value
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &meta); err != nil {
				return nil, nil, fmt.Errorf("%s: __metadata__ must map strings to strings: %w", path, err)
			}
			continue
		}
		e, err := decodeSTEntry(msg)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: tensor %q: %w", path, name, err)
		}
		dt, ok := stDType(e.DType)
		if !ok {
			if _, spec := stSpecDTypes[e.DType]; spec {
				return nil, nil, fmt.Errorf("%s: tensor %q: dtype %s is valid safetensors but cannot be loaded here (supported: %s)",
					path, name, e.DType, stDTypeCodes())
			}
			return nil, nil, fmt.Errorf("%s: tensor %q: unsupported dtype %q (supported: %s)", path, name, e.DType, stDTypeCodes())
		}
		n := int64(dt.Size())
		for _, d := range e.Shape {
			if d < 0 {
				return nil, nil, fmt.Errorf("%s: tensor %q: bad shape %v: negative dimension", path, name, e.Shape)
			}
			if d > 0 && n > math.MaxInt64/d {
				return nil, nil, fmt.Errorf("%s: tensor %q: bad shape %v: its size overflows", path, name, e.Shape)
			}
			n *= d
		}
		b, end := e.Offsets[0], e.Offsets[1]
		switch {
		case b < 0 || end < 0:
			return nil, nil, fmt.Errorf("%s: tensor %q: negative data_offsets [%d, %d]", path, name, b, end)
		case end < b:
			return nil, nil, fmt.Errorf("%s: tensor %q: data_offsets [%d, %d] end before they begin", path, name, b, end)
		case end-b != n:
			return nil, nil, fmt.Errorf("%s: tensor %q: byte range [%d, %d) does not fit shape %v of %s: it holds %d bytes, the shape needs %d",
				path, name, b, end, e.Shape, e.DType, end-b, n)
		case end > dataLen:
			return nil, nil, fmt.Errorf("%s: tensor %q: byte range [%d, %d) does not fit in the %d data bytes of the file (truncated?)",
				path, name, b, end, dataLen)
		}
		entries[name] = e
		spans = append(spans, span{name, b, end})
	}
	// The spec: the byte buffer is entirely indexed, without holes (so that no file can be two
	// formats at once). As in the reference reader, ranges sorted by offsets must follow one
	// another from 0 to the end of the file.
	sort.Slice(spans, func(i, j int) bool {
		if spans[i].begin != spans[j].begin {
			return spans[i].begin < spans[j].begin
		}
		if spans[i].end != spans[j].end {
			return spans[i].end < spans[j].end
		}
		return spans[i].name < spans[j].name
	})
	var at int64
	prev := ""
	for _, s := range spans {
		switch {
		case s.begin < at:
			return nil, nil, fmt.Errorf("%s: tensors %q and %q overlap: [%d, %d) starts before byte %d", path, prev, s.name, s.begin, s.end, at)
		case s.begin > at:
			return nil, nil, fmt.Errorf("%s: tensor %q: %d unindexed data bytes before its range [%d, %d) (the format allows no gaps)",
				path, s.name, s.begin-at, s.begin, s.end)
		}
		at = s.end
		if s.end > s.begin {
			prev = s.name
		}
	}
	if at != dataLen {
		what := "the header indexes no tensor bytes"
		if prev != "" {
			what = fmt.Sprintf("after the last tensor %q", prev)
		}
		return nil, nil, fmt.Errorf("%s: %d unindexed trailing data bytes %s (the format allows none)", path, dataLen-at, what)
	}
	return entries, meta, nil
}

// jsonMember is one key and value of a JSON object, in file order.
type jsonMember struct {
	key   string
	value json.RawMessage
}

// decodeJSONObject decodes one JSON object, keeping its values raw and refusing duplicate keys
// (which the safetensors format disallows and encoding/json would silently resolve) and
// anything but whitespace after the object.
func decodeJSONObject(b []byte) ([]jsonMember, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("want an object, found %v", tok)
	}
	var members []jsonMember
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("want a key, found %v", tok)
		}
		if seen[key] {
			return nil, fmt.Errorf("duplicate key %q", key)
		}
		seen[key] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("value of %q: %w", key, err)
		}
		members = append(members, jsonMember{key, v})
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		if err == nil {
			err = errors.New("data after the header object")
		}
		return nil, err
	}
	return members, nil
}

// decodeSTEntry decodes one tensor's header entry, requiring its three fields: encoding/json
// would leave a missing shape nil, which reads as a scalar.
func decodeSTEntry(msg json.RawMessage) (stEntry, error) {
	var raw struct {
		DType   *string  `json:"dtype"`
		Shape   *[]int64 `json:"shape"`
		Offsets *[]int64 `json:"data_offsets"`
	}
	if err := json.Unmarshal(msg, &raw); err != nil {
		return stEntry{}, fmt.Errorf("want {\"dtype\", \"shape\", \"data_offsets\"}: %w", err)
	}
	switch {
	case raw.DType == nil:
		return stEntry{}, errors.New(`missing "dtype"`)
	case raw.Shape == nil || *raw.Shape == nil:
		return stEntry{}, errors.New(`missing "shape" (a scalar has "shape": [])`)
	case raw.Offsets == nil:
		return stEntry{}, errors.New(`missing "data_offsets"`)
	case len(*raw.Offsets) != 2:
		return stEntry{}, fmt.Errorf(`"data_offsets" %v: want [begin, end]`, *raw.Offsets)
	}
	o := *raw.Offsets
	return stEntry{DType: *raw.DType, Shape: *raw.Shape, Offsets: [2]int64{o[0], o[1]}}, nil
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

// Tensor reads one tensor into a new CPU tensor, straight from the file into the tensor's
// memory.
func (s *Safetensors) Tensor(name string) (*ts.Tensor, error) {
	e, ok := s.entries[name]
	if !ok {
		return nil, fmt.Errorf("%s: no tensor %q", s.path, name)
	}
	dt, _ := stDType(e.DType)
	t, err := newTensorFrom(e.Shape, dt, func(b []byte) error {
		if len(b) == 0 {
			return nil
		}
		return s.readAt(b, e)
	})
	if err != nil {
		return nil, fmt.Errorf("%s: tensor %s: %w", s.path, name, err)
	}
	return t, nil
}

// Path is the file's path.
func (s *Safetensors) Path() string { return s.path }

// readRaw reads a tensor's bytes into dst.
func (s *Safetensors) readRaw(name string, dst []byte) (bool, error) {
	e, ok := s.entries[name]
	if !ok {
		return false, fmt.Errorf("%s: no tensor %q", s.path, name)
	}
	if n := e.Offsets[1] - e.Offsets[0]; int64(len(dst)) != n {
		return false, fmt.Errorf("%s: tensor %s: %d bytes, not %d", s.path, name, n, len(dst))
	}
	if err := s.readAt(dst, e); err != nil {
		return false, fmt.Errorf("%s: tensor %s: %w", s.path, name, err)
	}
	return true, nil
}

// readAt reads entry e's bytes into b, which is as long as the entry's byte range.
func (s *Safetensors) readAt(b []byte, e stEntry) error {
	_, err := s.f.ReadAt(b, s.dataOff+e.Offsets[0])
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("the file ends inside the tensor's bytes [%d, %d) (truncated after it was opened?): %w",
			e.Offsets[0], e.Offsets[1], err)
	}
	return err
}

// Close closes the file.
func (s *Safetensors) Close() error { return s.f.Close() }
