package weights

import (
	"archive/zip"
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"os"
	"path"
	"runtime"
	"sort"
	"strings"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/pickle"
	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/torchx"
)

// PyTorch checkpoints (torch.save of a state dict, e.g. Hugging Face's pytorch_model.bin or a
// torchvision .pth) come in two layouts:
//
//   - the zip archive written since torch 1.6: <dir>/data.pkl is a pickle of the state dict in
//     which every tensor is a call of torch._utils._rebuild_tensor_v2 on a storage named by a
//     persistent id ('storage', torch.FloatStorage, key, location, numel); the storage's raw
//     little-endian bytes are the record <dir>/data/<key>;
//   - the legacy stream of earlier versions: five pickles (magic number, protocol version,
//     system info, the state dict, the list of storage keys) followed by each storage as an
//     8-byte element count and its raw bytes.
//
// TorchFile decodes only the pickle, with gotch's unpickler, into references (storage key,
// offset, shape, strides) and reads a tensor's bytes when it is asked for, so that loading a
// model needs memory for the model plus one tensor. (gotch's own pickle.Decode reads every
// storage into Go slices and converts them, which costs about 2-3x the file size in RAM and
// exits the process on some errors; it is not used.) Safetensors remains the better format:
// no pickle at all, a JSON header, and byte ranges that need no interpretation; OpenDir
// prefers it when a folder has both.

// maxPickleBytes bounds the size of a state dict's pickle (data.pkl is typically tens of KB).
const maxPickleBytes = 256 << 20

// supportedStorages maps torch's typed storage classes to dtypes.
var supportedStorages = map[string]gotch.DType{
	"FloatStorage":    gotch.Float,
	"DoubleStorage":   gotch.Double,
	"HalfStorage":     gotch.Half,
	"BFloat16Storage": gotch.BFloat16,
	"LongStorage":     gotch.Int64,
	"IntStorage":      gotch.Int,
	"ShortStorage":    gotch.Int16,
	"CharStorage":     gotch.Int8,
	"ByteStorage":     gotch.Uint8,
	"BoolStorage":     gotch.Bool,
}

// storageClass is what torch.FloatStorage and its siblings decode to.
type storageClass struct {
	name  string
	dtype gotch.DType
}

// storageRef is a storage named by a persistent id: its data is read on demand.
type storageRef struct {
	key   string
	dtype gotch.DType
	numel int64
}

// tensorRef is a tensor rebuilt lazily: a strided view of a storage.
type tensorRef struct {
	storage      *storageRef
	offset       int64
	size, stride []int64
}

// rebuildTensor is torch._utils._rebuild_tensor (v1: storage, offset, size, stride) or
// _rebuild_tensor_v2 (plus requires_grad, backward_hooks and, since torch 2.0, metadata).
type rebuildTensor struct{ v2 bool }

// Call builds a tensorRef from the rebuild function's arguments.
func (r rebuildTensor) Call(args ...any) (any, error) {
	fn := "_rebuild_tensor"
	if r.v2 {
		fn = "_rebuild_tensor_v2"
		if len(args) != 6 && len(args) != 7 {
			return nil, fmt.Errorf("%s: %d arguments, want 6 or 7", fn, len(args))
		}
	} else if len(args) != 4 {
		return nil, fmt.Errorf("%s: %d arguments, want 4", fn, len(args))
	}
	st, ok := args[0].(*storageRef)
	if !ok {
		return nil, fmt.Errorf("%s: first argument is %s, not a storage", fn, pyType(args[0]))
	}
	off, err := pyInt(args[1])
	if err != nil {
		return nil, fmt.Errorf("%s: storage offset: %w", fn, err)
	}
	size, err := pyInts(args[2])
	if err != nil {
		return nil, fmt.Errorf("%s: size: %w", fn, err)
	}
	stride, err := pyInts(args[3])
	if err != nil {
		return nil, fmt.Errorf("%s: stride: %w", fn, err)
	}
	return &tensorRef{storage: st, offset: off, size: size, stride: stride}, nil
}

// rebuildParameter is torch._utils._rebuild_parameter(data, requires_grad, backward_hooks),
// which a state dict saved with keep_vars=True uses: the parameter is its tensor.
type rebuildParameter struct{}

// Call returns the parameter's tensor.
func (rebuildParameter) Call(args ...any) (any, error) {
	if len(args) != 3 {
		return nil, fmt.Errorf("_rebuild_parameter: %d arguments, want 3", len(args))
	}
	t, ok := args[0].(*tensorRef)
	if !ok {
		return nil, fmt.Errorf("_rebuild_parameter: first argument is %s, not a tensor", pyType(args[0]))
	}
	return t, nil
}

// findClass resolves the globals allowedGlobal accepts (collections.OrderedDict is resolved
// by gotch's unpickler before it asks).
func findClass(module, name string) (any, error) {
	if err := allowedGlobal(module, name); err != nil {
		return nil, err
	}
	switch module + "." + name {
	case "torch._utils._rebuild_tensor":
		return rebuildTensor{}, nil
	case "torch._utils._rebuild_tensor_v2":
		return rebuildTensor{v2: true}, nil
	case "torch._utils._rebuild_parameter":
		return rebuildParameter{}, nil
	}
	if dt, ok := supportedStorages[name]; ok && (module == "torch" || module == "torch.cuda") {
		return &storageClass{name: name, dtype: dt}, nil
	}
	return nil, fmt.Errorf("global %s.%s cannot be resolved", module, name)
}

// noClass refuses every global, for the pickles of a legacy file's preamble.
func noClass(module, name string) (any, error) {
	return nil, fmt.Errorf("pickle references the global %s.%s where none is expected", module, name)
}

func pyType(v any) string {
	switch v.(type) {
	case nil:
		return "None"
	case string:
		return "a str"
	case int, *big.Int:
		return "an int"
	case float64:
		return "a float"
	case bool:
		return "a bool"
	case *pickle.Dict, *pickle.OrderedDict:
		return "a dict"
	case *pickle.List:
		return "a list"
	case *pickle.Tuple:
		return "a tuple"
	case *tensorRef:
		return "a tensor"
	case *storageRef:
		return "a storage"
	}
	return fmt.Sprintf("a %T", v)
}

func pyInt(v any) (int64, error) {
	switch x := v.(type) {
	case int:
		return int64(x), nil
	case *big.Int:
		if x.IsInt64() {
			return x.Int64(), nil
		}
	}
	return 0, fmt.Errorf("%s is not a 64-bit int", pyType(v))
}

func pyInts(v any) ([]int64, error) {
	t, ok := v.(*pickle.Tuple)
	if !ok {
		return nil, fmt.Errorf("%s is not a tuple", pyType(v))
	}
	out := make([]int64, t.Len())
	for i := range out {
		n, err := pyInt(t.Get(i))
		if err != nil {
			return nil, err
		}
		out[i] = n
	}
	return out, nil
}

// TorchFile is an open PyTorch checkpoint (a torch.save state dict, zip or legacy layout)
// whose tensors are read one at a time. Only plain state dicts load: a pickle that names any
// global besides torch's tensor-rebuild functions, its storage classes and
// collections.OrderedDict is refused, and the error names the global.
type TorchFile struct {
	path    string
	f       *os.File
	tensors map[string]*tensorRef
	records map[string]*zip.File // zip layout: storage key -> its record
	offsets map[string]int64     // legacy layout: storage key -> offset of its bytes
}

var _ Source = (*TorchFile)(nil)

// OpenTorch opens a torch.save state dict (pytorch_model.bin, .pth, .pt) and checks it: the
// pickle's globals, that every entry is a tensor of a supported dtype, and that every tensor
// lies inside its storage's bytes. Tensor data is not read until asked for.
func OpenTorch(path string) (*TorchFile, error) {
	if !hostLittleEndian {
		return nil, fmt.Errorf("%s: reading PyTorch files needs a little-endian host", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	tf := &TorchFile{path: path, f: f}
	if err := tf.open(); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return tf, nil
}

func (tf *TorchFile) open() error {
	fi, err := tf.f.Stat()
	if err != nil {
		return err
	}
	head := make([]byte, 512)
	n, err := tf.f.ReadAt(head, 0)
	if err != nil && err != io.EOF {
		return err
	}
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, []byte("PK\x03\x04")):
		return tf.openZip(fi.Size())
	case len(head) >= 262 && string(head[257:262]) == "ustar":
		return errors.New("a tar checkpoint of torch < 0.4 is not supported; re-save it with a recent torch")
	case len(head) > 0 && head[0] == 0x80:
		return tf.openLegacy(fi.Size())
	}
	return errors.New("not a PyTorch checkpoint (neither a torch.save zip archive nor a legacy torch.save pickle)")
}

func (tf *TorchFile) openZip(size int64) error {
	zr, err := zip.NewReader(tf.f, size)
	if err != nil {
		return fmt.Errorf("zip archive: %w", err)
	}
	byName := make(map[string]*zip.File, len(zr.File))
	prefix := ""
	for _, zf := range zr.File {
		byName[zf.Name] = zf
		dir, base := path.Split(zf.Name)
		if base == "data.pkl" && strings.Count(dir, "/") == 1 {
			prefix = dir
		}
	}
	if prefix == "" {
		return errors.New("zip archive without a <name>/data.pkl record: not a torch.save file")
	}
	if _, ok := byName[prefix+"constants.pkl"]; ok {
		return errors.New("a TorchScript archive (torch.jit.save), not a state dict saved with torch.save")
	}
	if zf, ok := byName[prefix+"byteorder"]; ok {
		b, err := readRecord(zf, 16)
		if err != nil {
			return fmt.Errorf("record %s: %w", zf.Name, err)
		}
		if s := strings.TrimSpace(string(b)); s != "little" {
			return fmt.Errorf("tensors stored in %q byte order; only little-endian files are supported", s)
		}
	}
	pkl, err := readRecord(byName[prefix+"data.pkl"], maxPickleBytes)
	if err != nil {
		return fmt.Errorf("%sdata.pkl: %w", prefix, err)
	}
	if _, err := scanPickle(bufio.NewReader(bytes.NewReader(pkl)), allowedGlobal); err != nil {
		return fmt.Errorf("%sdata.pkl: %w", prefix, err)
	}
	storages := map[string]*storageRef{}
	u := pickle.NewUnpickler(bytes.NewReader(pkl))
	u.FindClass = findClass
	u.PersistentLoad = func(pid any) (any, error) {
		// ('storage', storage class, key, location, numel)
		return persistentStorage(pid, 5, storages)
	}
	root, err := unpickle(&u)
	if err != nil {
		return fmt.Errorf("%sdata.pkl: %w", prefix, err)
	}
	if tf.tensors, err = stateDict(root); err != nil {
		return fmt.Errorf("%sdata.pkl: %w", prefix, err)
	}
	tf.records = map[string]*zip.File{}
	for key, st := range storages {
		zf, ok := byName[prefix+"data/"+key]
		if !ok {
			return fmt.Errorf("storage %q has no record %sdata/%s", key, prefix, key)
		}
		if need := st.numel * int64(st.dtype.Size()); zf.UncompressedSize64 < uint64(need) {
			return fmt.Errorf("record %s holds %d bytes; storage %q needs %d", zf.Name, zf.UncompressedSize64, key, need)
		}
		tf.records[key] = zf
	}
	return nil
}

// legacyMagic is the first pickle of a legacy torch.save file.
const legacyMagic = "1950a86a20f9469cfc6c"

func (tf *TorchFile) openLegacy(size int64) error {
	br := bufio.NewReader(io.NewSectionReader(tf.f, 0, size))
	what := []string{"magic number", "protocol version", "system info", "state dict", "storage keys"}
	var start [6]int64
	for i, w := range what {
		allow := func(module, name string) error {
			return fmt.Errorf("pickle references the global %s.%s where none is expected", module, name)
		}
		if w == "state dict" {
			allow = allowedGlobal
		}
		n, err := scanPickle(br, allow)
		if err != nil {
			if i == 0 {
				return fmt.Errorf("not a PyTorch checkpoint: %w", err)
			}
			return fmt.Errorf("legacy torch.save %s pickle: %w", w, err)
		}
		start[i+1] = start[i] + n
	}
	section := func(i int) *pickle.Unpickler {
		u := pickle.NewUnpickler(bufio.NewReader(io.NewSectionReader(tf.f, start[i], start[i+1]-start[i])))
		u.FindClass = noClass
		return &u
	}
	magic, err := unpickle(section(0))
	if n, ok := magic.(*big.Int); err != nil || !ok || n.Text(16) != legacyMagic {
		return errors.New("not a PyTorch checkpoint (bad legacy magic number)")
	}
	if v, err := unpickle(section(1)); err != nil || v != 1001 {
		return fmt.Errorf("legacy torch.save protocol version %v, want 1001", v)
	}
	if info, err := unpickle(section(2)); err == nil {
		if d, ok := info.(*pickle.Dict); ok {
			if le, ok := d.Get("little_endian"); ok && le == false {
				return errors.New("saved on a big-endian machine; only little-endian files are supported")
			}
		}
	}
	storages := map[string]*storageRef{}
	u := section(3)
	u.FindClass = findClass
	u.PersistentLoad = func(pid any) (any, error) {
		// ('storage', storage class, root key, location, numel, view metadata)
		return persistentStorage(pid, 6, storages)
	}
	root, err := unpickle(u)
	if err != nil {
		return fmt.Errorf("legacy torch.save state dict: %w", err)
	}
	if tf.tensors, err = stateDict(root); err != nil {
		return err
	}
	keysObj, err := unpickle(section(4))
	if err != nil {
		return fmt.Errorf("legacy torch.save storage keys: %w", err)
	}
	keys, ok := keysObj.(*pickle.List)
	if !ok {
		return fmt.Errorf("legacy torch.save storage keys: %s, not a list", pyType(keysObj))
	}
	tf.offsets = map[string]int64{}
	off := start[5]
	for _, k := range *keys {
		key, ok := k.(string)
		if !ok {
			return fmt.Errorf("legacy torch.save storage key is %s, not a str", pyType(k))
		}
		st, ok := storages[key]
		if !ok {
			return fmt.Errorf("legacy torch.save storage %q is not used by the state dict", key)
		}
		var hdr [8]byte
		if _, err := tf.f.ReadAt(hdr[:], off); err != nil {
			return fmt.Errorf("storage %q at byte %d: %w", key, off, err)
		}
		if n := int64(binary.LittleEndian.Uint64(hdr[:])); n != st.numel {
			return fmt.Errorf("storage %q holds %d elements; the state dict says %d", key, n, st.numel)
		}
		tf.offsets[key] = off + 8
		off += 8 + st.numel*int64(st.dtype.Size())
		if off > size {
			return fmt.Errorf("storage %q runs past the end of the file", key)
		}
	}
	for key := range storages {
		if _, ok := tf.offsets[key]; !ok {
			return fmt.Errorf("storage %q has no data in the file", key)
		}
	}
	return nil
}

// readRecord reads a small zip record whole.
func readRecord(zf *zip.File, limit int64) ([]byte, error) {
	if zf.UncompressedSize64 > uint64(limit) {
		return nil, fmt.Errorf("%d bytes, more than the %d allowed", zf.UncompressedSize64, limit)
	}
	rc, err := zf.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, limit))
}

// persistentStorage resolves a storage's persistent id, a tuple of n fields starting with
// 'storage', the storage class, its key, location and element count (plus, in legacy files,
// a view description that must be None). A storage shared by several tensors (tied weights)
// resolves to one storageRef.
func persistentStorage(pid any, n int, storages map[string]*storageRef) (any, error) {
	t, ok := pid.(*pickle.Tuple)
	if !ok || t.Len() != n {
		return nil, fmt.Errorf("persistent id %s: want a %d-tuple ('storage', class, key, location, numel...)", pyType(pid), n)
	}
	if kind, _ := t.Get(0).(string); kind != "storage" {
		return nil, fmt.Errorf("persistent id of kind %v: only 'storage' is supported", t.Get(0))
	}
	cls, ok := t.Get(1).(*storageClass)
	if !ok {
		return nil, fmt.Errorf("persistent id: storage class is %s", pyType(t.Get(1)))
	}
	key, ok := t.Get(2).(string)
	if !ok {
		return nil, fmt.Errorf("persistent id: storage key is %s, not a str", pyType(t.Get(2)))
	}
	numel, err := pyInt(t.Get(4))
	if err != nil || numel < 0 || numel > math.MaxInt64/16 {
		return nil, fmt.Errorf("persistent id: storage %q: bad element count %v", key, t.Get(4))
	}
	if n == 6 && t.Get(5) != nil {
		return nil, fmt.Errorf("storage %q is a storage view (torch < 0.4); not supported", key)
	}
	if st, ok := storages[key]; ok {
		if st.dtype != cls.dtype || st.numel != numel {
			return nil, fmt.Errorf("storage %q is described twice differently", key)
		}
		return st, nil
	}
	st := &storageRef{key: key, dtype: cls.dtype, numel: numel}
	storages[key] = st
	return st, nil
}

// unpickle runs gotch's unpickler, turning a panic on malformed input into an error.
func unpickle(u *pickle.Unpickler) (v any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed pickle: %v", r)
		}
	}()
	return u.Load()
}

// stateDict checks that root is a flat dict of named tensors that fit their storages.
func stateDict(root any) (map[string]*tensorRef, error) {
	out := map[string]*tensorRef{}
	add := func(k, v any) error {
		name, ok := k.(string)
		if !ok {
			return fmt.Errorf("state dict key %v is %s, not a str", k, pyType(k))
		}
		t, ok := v.(*tensorRef)
		if !ok {
			return fmt.Errorf("state dict entry %q is %s, not a tensor (only flat state dicts of tensors load)", name, pyType(v))
		}
		if err := t.check(); err != nil {
			return fmt.Errorf("tensor %s: %w", name, err)
		}
		out[name] = t
		return nil
	}
	switch d := root.(type) {
	case *pickle.OrderedDict:
		for e := d.List.Front(); e != nil; e = e.Next() {
			entry := e.Value.(*pickle.OrderedDictEntry)
			if err := add(entry.Key, entry.Value); err != nil {
				return nil, err
			}
		}
	case *pickle.Dict:
		for _, e := range *d {
			if err := add(e.Key, e.Value); err != nil {
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf("the pickle holds %s, not a state dict", pyType(root))
	}
	return out, nil
}

// numel is the element count of a shape, or -1 on overflow.
func numel(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		if d < 0 {
			return -1
		}
		if d != 0 && n > math.MaxInt64/16/d {
			return -1
		}
		n *= d
	}
	return n
}

// contiguous reports whether strides lay out a shape densely in row-major order.
func contiguous(size, stride []int64) bool {
	want := int64(1)
	for i := len(size) - 1; i >= 0; i-- {
		if size[i] != 1 && stride[i] != want {
			return false
		}
		want *= size[i]
	}
	return true
}

// span is the number of storage elements a strided view touches from its first element, or
// -1 if that overflows.
func (t *tensorRef) span() int64 {
	if numel(t.size) == 0 {
		return 0
	}
	s := int64(1)
	for i, d := range t.size {
		if d > 1 && t.stride[i] > 0 {
			if t.stride[i] > (math.MaxInt64/16-s)/(d-1) {
				return -1
			}
			s += (d - 1) * t.stride[i]
		}
	}
	return s
}

func (t *tensorRef) check() error {
	if len(t.size) != len(t.stride) {
		return fmt.Errorf("size %v and stride %v differ in rank", t.size, t.stride)
	}
	if numel(t.size) < 0 {
		return fmt.Errorf("bad size %v", t.size)
	}
	for _, s := range t.stride {
		if s < 0 {
			return fmt.Errorf("bad stride %v for size %v", t.stride, t.size)
		}
	}
	if sp := t.span(); sp < 0 || t.offset < 0 || t.offset > t.storage.numel || sp > t.storage.numel-t.offset {
		return fmt.Errorf("view (offset %d, size %v, stride %v) exceeds its storage of %d elements",
			t.offset, t.size, t.stride, t.storage.numel)
	}
	return nil
}

// Path is the file's path.
func (tf *TorchFile) Path() string { return tf.path }

// Names lists the state dict's keys, sorted.
func (tf *TorchFile) Names() []string {
	names := make([]string, 0, len(tf.tensors))
	for n := range tf.tensors {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Info reports a tensor's dtype and shape without reading it.
func (tf *TorchFile) Info(name string) (gotch.DType, []int64, bool) {
	t, ok := tf.tensors[name]
	if !ok {
		return gotch.Float, nil, false
	}
	return t.storage.dtype, append([]int64(nil), t.size...), true
}

// Tensor reads one tensor into a new contiguous CPU tensor.
func (tf *TorchFile) Tensor(name string) (*ts.Tensor, error) {
	t, ok := tf.tensors[name]
	if !ok {
		return nil, fmt.Errorf("%s: no tensor %q", tf.path, name)
	}
	dt := t.storage.dtype
	if contiguous(t.size, t.stride) {
		x, err := newTensorFrom(t.size, dt, func(b []byte) error { return tf.readStorage(t.storage, t.offset, b) })
		if err != nil {
			return nil, fmt.Errorf("%s: tensor %s: %w", tf.path, name, err)
		}
		return x, nil
	}
	// A strided view (a transposed or tied slice): read the elements it spans, then copy the
	// view out densely.
	runtime.LockOSThread() // libtorch reports errors per OS thread
	defer runtime.UnlockOSThread()
	base, err := newTensorFrom([]int64{t.span()}, dt, func(b []byte) error { return tf.readStorage(t.storage, t.offset, b) })
	if err != nil {
		return nil, fmt.Errorf("%s: tensor %s: %w", tf.path, name, err)
	}
	view, err := base.AsStrided(t.size, t.stride, []int64{0}, true)
	if err != nil {
		base.Drop()
		return nil, fmt.Errorf("%s: tensor %s: %w", tf.path, name, torchx.Err("as_strided", err))
	}
	x, err := view.Contiguous(true)
	if err != nil {
		view.Drop()
		return nil, fmt.Errorf("%s: tensor %s: %w", tf.path, name, torchx.Err("contiguous", err))
	}
	return x, nil
}

// readRaw reads a densely stored tensor's bytes into dst.
func (tf *TorchFile) readRaw(name string, dst []byte) (bool, error) {
	t, ok := tf.tensors[name]
	if !ok {
		return false, fmt.Errorf("%s: no tensor %q", tf.path, name)
	}
	if !contiguous(t.size, t.stride) {
		return false, nil
	}
	if n := numel(t.size) * int64(t.storage.dtype.Size()); int64(len(dst)) != n {
		return false, fmt.Errorf("%s: tensor %s: %d bytes, not %d", tf.path, name, n, len(dst))
	}
	if err := tf.readStorage(t.storage, t.offset, dst); err != nil {
		return false, fmt.Errorf("%s: tensor %s: %w", tf.path, name, err)
	}
	return true, nil
}

// readStorage fills dst with a storage's bytes from element off on.
func (tf *TorchFile) readStorage(st *storageRef, off int64, dst []byte) error {
	if len(dst) == 0 {
		return nil
	}
	byteOff := off * int64(st.dtype.Size())
	if tf.offsets != nil {
		_, err := tf.f.ReadAt(dst, tf.offsets[st.key]+byteOff)
		return err
	}
	zf := tf.records[st.key]
	if zf.Method == zip.Store {
		base, err := zf.DataOffset()
		if err != nil {
			return err
		}
		_, err = tf.f.ReadAt(dst, base+byteOff)
		return err
	}
	rc, err := zf.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	if _, err := io.CopyN(io.Discard, rc, byteOff); err != nil {
		return fmt.Errorf("record %s: %w", zf.Name, err)
	}
	if _, err := io.ReadFull(rc, dst); err != nil {
		return fmt.Errorf("record %s: %w", zf.Name, err)
	}
	return nil
}

// Close closes the file.
func (tf *TorchFile) Close() error { return tf.f.Close() }
