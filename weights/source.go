package weights

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"unsafe"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/torchx"
)

// Source is a checkpoint whose tensors are listed up front and read one at a time, so that
// loading a model never holds more than one checkpoint tensor in memory. Safetensors,
// TorchFile and Sharded implement it. A Source is not safe for concurrent use.
type Source interface {
	// Names lists the checkpoint's tensor names, sorted.
	Names() []string
	// Info reports a tensor's dtype and shape without reading its data.
	Info(name string) (dtype gotch.DType, shape []int64, ok bool)
	// Tensor reads one tensor into a new contiguous CPU tensor owned by the caller.
	Tensor(name string) (*ts.Tensor, error)
	// Close releases the checkpoint's files.
	Close() error
}

// sourcePath names the file behind a Source, for messages, or is "" if the Source has no
// Path method.
func sourcePath(src Source) string {
	if p, ok := src.(interface{ Path() string }); ok {
		return p.Path()
	}
	return ""
}

// Hugging Face's file names for a model folder's weights, in the order OpenDir prefers them.
const (
	SafetensorsName      = "model.safetensors"
	SafetensorsIndexName = "model.safetensors.index.json"
	TorchName            = "pytorch_model.bin"
	TorchIndexName       = "pytorch_model.bin.index.json"
)

// OpenDir opens the weights of a Hugging Face model folder, preferring, as transformers
// does, model.safetensors, then the sharded model.safetensors.index.json, then
// pytorch_model.bin, then pytorch_model.bin.index.json. It returns the Source and the path
// of the file it opened.
func OpenDir(dir string) (Source, string, error) {
	for _, name := range []string{SafetensorsName, SafetensorsIndexName, TorchName, TorchIndexName} {
		p := filepath.Join(dir, name)
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, "", err
		}
		if fi.IsDir() {
			return nil, "", fmt.Errorf("%s is a directory", p)
		}
		src, err := Open(p)
		if err != nil {
			return nil, "", err
		}
		return src, p, nil
	}
	return nil, "", fmt.Errorf("%s: no model weights: looked for %s, %s, %s and %s", dir,
		SafetensorsName, SafetensorsIndexName, TorchName, TorchIndexName)
}

// Open opens one checkpoint file by its name: *.safetensors, a sharded checkpoint's
// *.index.json, or otherwise a torch.save state dict (.bin, .pth, .pt, ...).
func Open(path string) (Source, error) {
	lower := strings.ToLower(path)
	switch {
	case strings.HasSuffix(lower, ".safetensors"):
		return OpenSafetensors(path)
	case strings.HasSuffix(lower, ".index.json"):
		return OpenSharded(path)
	}
	return OpenTorch(path)
}

// Sharded is a checkpoint split over several files by an index (model.safetensors.index.json
// or pytorch_model.bin.index.json) whose weight_map names each tensor's file. The index is
// authoritative: a tensor in a shard that the index does not list is not visible.
type Sharded struct {
	path   string
	shards map[string]Source // file name -> open shard
	where  map[string]Source // tensor name -> its shard
}

var _ Source = (*Sharded)(nil)

// OpenSharded opens a sharded checkpoint's index and every shard it names (shards live next to
// the index), and checks that each listed tensor is in its shard.
func OpenSharded(indexPath string) (*Sharded, error) {
	var index struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := ReadConfigJSON(filepath.Dir(indexPath), filepath.Base(indexPath), &index); err != nil {
		return nil, err
	}
	if len(index.WeightMap) == 0 {
		return nil, fmt.Errorf("%s: no weight_map", indexPath)
	}
	s := &Sharded{path: indexPath, shards: map[string]Source{}, where: map[string]Source{}}
	files := map[string]bool{}
	for _, file := range index.WeightMap {
		files[file] = true
	}
	sorted := make([]string, 0, len(files))
	for file := range files {
		sorted = append(sorted, file)
	}
	sort.Strings(sorted)
	for _, file := range sorted {
		if file == "" || file != filepath.Base(file) || file == "." || file == ".." || strings.ContainsAny(file, `/\`) {
			s.Close()
			return nil, fmt.Errorf("%s: shard %q is not a file name in the index's folder", indexPath, file)
		}
		p := filepath.Join(filepath.Dir(indexPath), file)
		var src Source
		var err error
		if strings.HasSuffix(strings.ToLower(file), ".safetensors") {
			src, err = OpenSafetensors(p)
		} else {
			src, err = OpenTorch(p)
		}
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("%s: shard: %w", indexPath, err)
		}
		s.shards[file] = src
	}
	var missing []string
	for name, file := range index.WeightMap {
		src := s.shards[file]
		if _, _, ok := src.Info(name); !ok {
			missing = append(missing, name+" (in "+file+")")
			continue
		}
		s.where[name] = src
	}
	if len(missing) > 0 {
		s.Close()
		sort.Strings(missing)
		return nil, fmt.Errorf("%s: %d tensor(s) listed by the index are not in their shard: %s", indexPath, len(missing), listNames(missing))
	}
	return s, nil
}

// Path is the index file's path.
func (s *Sharded) Path() string { return s.path }

// Names lists every tensor of the index, sorted.
func (s *Sharded) Names() []string {
	names := make([]string, 0, len(s.where))
	for n := range s.where {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Info reports a tensor's dtype and shape without reading it.
func (s *Sharded) Info(name string) (gotch.DType, []int64, bool) {
	src, ok := s.where[name]
	if !ok {
		return gotch.Float, nil, false
	}
	return src.Info(name)
}

// Tensor reads one tensor from its shard.
func (s *Sharded) Tensor(name string) (*ts.Tensor, error) {
	src, ok := s.where[name]
	if !ok {
		return nil, fmt.Errorf("%s: no tensor %q", s.path, name)
	}
	return src.Tensor(name)
}

// readRaw reads a tensor's bytes from its shard, if the shard can.
func (s *Sharded) readRaw(name string, dst []byte) (bool, error) {
	src, ok := s.where[name]
	if !ok {
		return false, fmt.Errorf("%s: no tensor %q", s.path, name)
	}
	if r, ok := src.(rawReader); ok {
		return r.readRaw(name, dst)
	}
	return false, nil
}

// Close closes every shard.
func (s *Sharded) Close() error {
	var first error
	for _, src := range s.shards {
		if err := src.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// newTensorFrom allocates an uninitialised CPU tensor and lets fill write its bytes in place
// (little-endian, row-major), so that reading a tensor from a file costs no copy beyond the
// tensor itself.
func newTensorFrom(shape []int64, dt gotch.DType, fill func([]byte) error) (*ts.Tensor, error) {
	runtime.LockOSThread() // libtorch reports errors per OS thread
	defer runtime.UnlockOSThread()
	n := numel(shape)
	if n < 0 {
		return nil, fmt.Errorf("bad shape %v", shape)
	}
	alloc := shape
	if len(shape) == 0 {
		alloc = []int64{1} // gotch cannot allocate a 0-d tensor: squeeze a [1] afterwards
	}
	t, err := ts.Empty(alloc, dt, gotch.CPU)
	if err != nil {
		return nil, torchx.Err("allocate tensor", err)
	}
	var buf []byte
	if nbytes := n * int64(dt.Size()); nbytes > 0 {
		ptr, err := t.DataPtr()
		if err != nil || ptr == nil {
			t.Drop()
			return nil, fmt.Errorf("tensor data pointer: %w", torchx.Err("data_ptr", err))
		}
		buf = unsafe.Slice((*byte)(ptr), nbytes)
	}
	if err := fill(buf); err != nil {
		t.Drop()
		return nil, err
	}
	if len(shape) == 0 {
		s, err := t.Squeeze(true)
		if err != nil {
			t.Drop()
			return nil, torchx.Err("squeeze", err)
		}
		t = s
	}
	return t, nil
}

// listNames joins names for a message, eliding all but the first few.
func listNames(names []string) string {
	const show = 12
	if len(names) <= show {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s, ... and %d more", strings.Join(names[:show], ", "), len(names)-show)
}

// ReadConfigJSON decodes the JSON file name of a model folder dir (config.json,
// preprocessor_config.json, ...) into v. Errors name the file, and for malformed JSON or a
// value of the wrong type also the line and column.
func ReadConfigJSON(dir, name string, v any) error {
	path := filepath.Join(dir, name)
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			line, col := lineCol(data, syn.Offset)
			return fmt.Errorf("%s:%d:%d: %w", path, line, col, err)
		case errors.As(err, &typ):
			line, col := lineCol(data, typ.Offset)
			return fmt.Errorf("%s:%d:%d: %w", path, line, col, err)
		}
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// lineCol converts the offset encoding/json reports (just past the offending byte) into a
// 1-based line and column of that byte.
func lineCol(data []byte, off int64) (int, int) {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	pos := int(off) - 1
	if pos < 0 {
		pos = 0
	}
	line, start := 1, 0
	for i := 0; i < pos && i < len(data); i++ {
		if data[i] == '\n' {
			line++
			start = i + 1
		}
	}
	return line, pos - start + 1
}
