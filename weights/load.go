package weights

import (
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"strings"
	"unsafe"

	"github.com/sugarme/gotch"
	gnn "github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/torchx"
)

// LoadOptions adjusts how LoadInto matches a VarStore's variables with checkpoint keys. By
// default every persistent variable must be in the checkpoint under its own name.
//
// A variable named n is looked up under the key Prefix + strings.TrimPrefix(n, VarPrefix).
type LoadOptions struct {
	// Prefix is prepended to variable names to form checkpoint keys; keys without it are out of
	// scope (neither loaded nor unexpected). E.g. "encoder." loads a standalone ViT model from the
	// encoder.* keys of a VisionEncoderDecoder checkpoint.
	Prefix string
	// VarPrefix restricts the load to variables whose names start with it, and is stripped from
	// them to form checkpoint keys. E.g. "decoder." initialises the decoder of a captioner from
	// a plain GPT-2 checkpoint.
	VarPrefix string
	// Only, if set, restricts the load to the variables (full VarStore names) it accepts; the
	// others keep their values, are not reported missing, and their keys are not unexpected.
	Only func(name string) bool
	// Ignore, if set, names checkpoint keys (as in the file) the model does not use, such as
	// GPT-2's attn.bias/attn.masked_bias causal-mask buffers or a ViT pooler; they are not
	// reported as unexpected. (A key a selected variable needs is loaded all the same.)
	Ignore func(key string) bool
	// Transpose, if set, names checkpoint keys of 2-D tensors stored transposed relative to
	// their variable, such as GPT-2's Conv1D weights ([in, out]) loaded into [out, in] Linear
	// weights.
	Transpose func(key string) bool
	// Strict makes unexpected keys an error too, as PyTorch's load_state_dict(strict=True).
	Strict bool
}

// Report says what LoadInto matched. Names are checkpoint keys, sorted.
type Report struct {
	// Missing are keys that selected variables need and the checkpoint lacks.
	Missing []string
	// Unexpected are checkpoint keys in scope that match no variable and are not ignored.
	Unexpected []string
	// Mismatched are keys whose tensor cannot fill its variable, with both shapes and dtypes.
	Mismatched []string
	// Loaded counts the variables copied from the checkpoint.
	Loaded int
}

// LoadError is LoadInto's error when the checkpoint does not fit the model.
type LoadError struct {
	File   string // the checkpoint (for a sharded one, its index)
	Report Report
	Strict bool // unexpected keys count as a failure
}

// Error lists every problem, naming the file.
func (e *LoadError) Error() string {
	var parts []string
	r := e.Report
	if len(r.Missing) > 0 {
		parts = append(parts, "missing: "+listNames(r.Missing))
	}
	if len(r.Mismatched) > 0 {
		parts = append(parts, "wrong shape or dtype: "+listNames(r.Mismatched))
	}
	if len(r.Unexpected) > 0 {
		parts = append(parts, "unexpected: "+listNames(r.Unexpected))
	}
	msg := "checkpoint does not fit the model, nothing loaded: " + strings.Join(parts, "; ")
	if e.File != "" {
		msg = e.File + ": " + msg
	}
	return msg
}

// variable is a VarStore entry as LoadInto and SaveVarStore see it.
type variable struct {
	t          *ts.Tensor // the VarStore's own tensor
	persistent bool       // parameters and persistent buffers; others are not in state dicts
}

// storeVariables lists a VarStore's variables with their persistence. gotch exposes the
// persistent flag only inside its package (VarStore.Save honours it), so the unexported map is
// read under the store's lock; should gotch's layout ever change, every variable counts as
// persistent (what vs.Variables() implies).
func storeVariables(vs *gnn.VarStore) map[string]variable {
	out := map[string]variable{}
	f := reflect.ValueOf(vs).Elem().FieldByName("vars")
	if f.IsValid() && f.Type() == reflect.TypeOf(map[string]gnn.Var(nil)) {
		vs.Lock()
		m := reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().Interface().(map[string]gnn.Var)
		for name, v := range m {
			out[name] = variable{t: v.Tensor, persistent: v.Type != "buffer" || v.Persitent}
		}
		vs.Unlock()
		return out
	}
	for name, t := range vs.Variables() {
		// Variables returns copies of the Tensor structs; each shares its C tensor with the
		// store, so writing through the copy writes the variable.
		t := t
		out[name] = variable{t: &t, persistent: true}
	}
	return out
}

// loadable reports whether a checkpoint tensor of dtype src may be converted into a variable
// of dtype dst: anything into floating point, integers into integers, and exact matches;
// not floating point into integers or booleans, which would truncate silently.
func loadable(src, dst gotch.DType) bool {
	isInt := func(d gotch.DType) bool {
		switch d {
		case gotch.Uint8, gotch.Int8, gotch.Int16, gotch.Int, gotch.Int64:
			return true
		}
		return false
	}
	return src == dst || gotch.IsFloatDType(dst) || (isInt(src) && isInt(dst))
}

// LoadInto copies checkpoint tensors into the VarStore's variables by name: the variables
// selected by opt (by default every parameter and persistent buffer) are looked up, their
// shapes checked and their values converted to each variable's dtype and device and copied in
// place without recording gradients. Every check runs before anything is copied, so a
// checkpoint that does not fit (missing keys, wrong shapes, or with opt.Strict unexpected
// keys) returns a *LoadError and leaves the model untouched. Unexpected keys are otherwise
// reported, not an error: callers warn.
//
// Memory: with this package's Sources, a tensor whose dtype matches a contiguous CPU variable
// is read from the file straight into the variable; the others go through one staging buffer
// the size of the largest of them, reused. Other Sources yield one tensor at a time, freed
// after its copy. (Writing into a variable's memory directly does not bump autograd's version
// counter, as copy_ would; load before building any graph.)
//
// An I/O error while copying (a file truncated after it was opened) can leave the model
// partly loaded; the error says so.
func LoadInto(vs *gnn.VarStore, src Source, opt LoadOptions) (Report, error) {
	var r Report
	vars := storeVariables(vs)
	var jobs []loadJob
	for name, v := range vars {
		if !v.persistent || !strings.HasPrefix(name, opt.VarPrefix) || (opt.Only != nil && !opt.Only(name)) {
			continue
		}
		key := opt.Prefix + strings.TrimPrefix(name, opt.VarPrefix)
		dt, shape, ok := src.Info(key)
		if !ok {
			r.Missing = append(r.Missing, key)
			continue
		}
		want, err := v.t.Size()
		if err != nil {
			return r, fmt.Errorf("variable %s: %w", name, torchx.Err("size", err))
		}
		tr := opt.Transpose != nil && opt.Transpose(key)
		got := shape
		if tr {
			if len(shape) != 2 {
				r.Mismatched = append(r.Mismatched, fmt.Sprintf("%s (to transpose: %v is not 2-D)", key, shape))
				continue
			}
			got = []int64{shape[1], shape[0]}
		}
		if !slices.Equal(want, got) || !loadable(dt, v.t.DType()) {
			how := ""
			if tr {
				how = " transposed"
			}
			r.Mismatched = append(r.Mismatched, fmt.Sprintf("%s (model %v %v, checkpoint %v %v%s)", key, want, v.t.DType(), shape, dt, how))
			continue
		}
		jobs = append(jobs, loadJob{name: name, key: key, v: v.t, dt: dt, shape: shape, transpose: tr})
	}
	for _, key := range src.Names() {
		if !strings.HasPrefix(key, opt.Prefix) {
			continue
		}
		name := opt.VarPrefix + strings.TrimPrefix(key, opt.Prefix)
		if v, ok := vars[name]; ok && v.persistent {
			continue
		}
		if opt.Ignore == nil || !opt.Ignore(key) {
			r.Unexpected = append(r.Unexpected, key)
		}
	}
	sort.Strings(r.Missing)
	sort.Strings(r.Mismatched)
	sort.Strings(r.Unexpected)
	if len(r.Missing)+len(r.Mismatched) > 0 || (opt.Strict && len(r.Unexpected) > 0) {
		return r, &LoadError{File: sourcePath(src), Report: r, Strict: opt.Strict}
	}
	sort.Slice(jobs, func(i, j int) bool { return jobs[i].name < jobs[j].name })
	// The variables may be copies sharing vs's C tensors (storeVariables' fallback): keep vs,
	// whose finalizers would free them, alive until the copies are done.
	defer runtime.KeepAlive(vs)
	err := torchx.NoGrad(func() error {
		l := &loader{src: src}
		l.raw, _ = src.(rawReader)
		defer l.close()
		if l.raw != nil {
			// Size the staging buffer once, for the largest tensor that cannot be read
			// straight into its variable, so that it is allocated (and freed) only once.
			var most int64
			for _, j := range jobs {
				if n := j.bytes(); n > most && !j.direct() {
					most = n
				}
			}
			if most > 0 {
				if err := l.reserve(most); err != nil {
					return err
				}
			}
		}
		for _, j := range jobs {
			if err := l.load(j); err != nil {
				return fmt.Errorf("variable %s (%d of %d loaded before this error; the model is partly loaded): %w",
					j.name, r.Loaded, len(jobs), err)
			}
			r.Loaded++
		}
		return nil
	})
	return r, err
}

// rawReader is implemented by this package's Sources: they read a tensor's bytes (row-major,
// little-endian, in the checkpoint's dtype) straight into memory the caller owns.
type rawReader interface {
	// readRaw fills dst, whose length must be the tensor's size in bytes. It returns false,
	// having read nothing, for a tensor not stored densely (the caller then uses Tensor).
	readRaw(name string, dst []byte) (bool, error)
}

// loadJob is one variable to fill from one checkpoint tensor.
type loadJob struct {
	name, key string
	v         *ts.Tensor
	dt        gotch.DType // the checkpoint's
	shape     []int64     // the checkpoint's
	transpose bool
}

// loader copies checkpoint tensors into variables, on a locked OS thread under no-grad.
type loader struct {
	src     Source
	raw     rawReader  // nil if src cannot read into memory it is given
	staging *ts.Tensor // a reusable uint8 buffer for tensors that need converting
	cap     int64
}

func (l *loader) close() {
	if l.staging != nil {
		l.staging.Drop()
	}
}

// hostBytes returns the memory of a contiguous CPU tensor, or false if it has none to write.
func hostBytes(t *ts.Tensor, nbytes int64) ([]byte, bool) {
	dev, err := t.Device()
	if err != nil || dev != gotch.CPU {
		return nil, false
	}
	if c, err := t.IsContiguous(); err != nil || !c {
		return nil, false
	}
	ptr, err := t.DataPtr()
	if err != nil || ptr == nil {
		return nil, false
	}
	return unsafe.Slice((*byte)(ptr), nbytes), true
}

// bytes is the checkpoint tensor's size in bytes.
func (j loadJob) bytes() int64 { return numel(j.shape) * int64(j.dt.Size()) }

// direct reports whether the tensor's bytes can be read straight into the variable.
func (j loadJob) direct() bool {
	if j.transpose || j.dt != j.v.DType() {
		return false
	}
	_, ok := hostBytes(j.v, j.bytes())
	return ok
}

func (l *loader) load(j loadJob) error {
	nbytes := j.bytes()
	if nbytes == 0 {
		return nil // an empty variable: nothing to copy
	}
	if l.raw != nil && !j.transpose && j.dt == j.v.DType() {
		if dst, ok := hostBytes(j.v, nbytes); ok {
			if done, err := l.raw.readRaw(j.key, dst); done || err != nil {
				return err
			}
		}
	}
	if l.raw != nil {
		t, buf, err := l.stage(j.dt, j.shape, nbytes)
		if err != nil {
			return err
		}
		defer t.Drop()
		done, err := l.raw.readRaw(j.key, buf)
		if err != nil {
			return err
		}
		if done {
			return copyTensor(j.v, t, j.transpose)
		}
	}
	t, err := l.src.Tensor(j.key)
	if err != nil {
		return err
	}
	defer t.Drop()
	return copyTensor(j.v, t, j.transpose)
}

// stage returns a tensor of dtype dt and the given shape that views the staging buffer, and
// the buffer's bytes under it.
func (l *loader) stage(dt gotch.DType, shape []int64, nbytes int64) (*ts.Tensor, []byte, error) {
	if err := l.reserve(nbytes); err != nil {
		return nil, nil, err
	}
	ptr, err := l.staging.DataPtr()
	if err != nil || ptr == nil {
		return nil, nil, fmt.Errorf("staging buffer: %w", torchx.Err("data_ptr", err))
	}
	view, err := l.staging.Narrow(0, 0, nbytes, false)
	if err == nil {
		view, err = view.ViewDtype(dt, true)
	}
	if err == nil {
		if len(shape) == 0 {
			view, err = view.Squeeze(true)
		} else {
			view, err = view.View(shape, true)
		}
	}
	if err != nil {
		return nil, nil, torchx.Err("view staging buffer", err)
	}
	return view, unsafe.Slice((*byte)(ptr), nbytes), nil
}

// reserve makes the staging buffer hold at least nbytes.
func (l *loader) reserve(nbytes int64) error {
	if nbytes <= l.cap {
		return nil
	}
	if l.staging != nil {
		l.staging.Drop()
		l.staging, l.cap = nil, 0
	}
	s, err := ts.Empty([]int64{nbytes}, gotch.Uint8, gotch.CPU)
	if err != nil {
		return torchx.Err("allocate staging buffer", err)
	}
	l.staging, l.cap = s, nbytes
	return nil
}

// copyTensor copies t (transposed if asked) into v, converting dtype and device. Shapes were
// checked, so libtorch's copy_ cannot broadcast silently.
func copyTensor(v, t *ts.Tensor, transpose bool) error {
	from := t
	if transpose {
		tt, err := t.Transpose(0, 1, false)
		if err != nil {
			return torchx.Err("transpose", err)
		}
		defer tt.Drop()
		from = tt
	}
	// gotch's Copy_ exits the process on error.
	return torchx.CopyInPlace(v, from)
}

// StateDict is what a state dict of vs holds: its parameters and persistent buffers by name
// (the store's own tensors), without the non-persistent buffers that checkpoints of training
// state may hold but model files leave out.
func StateDict(vs *gnn.VarStore) map[string]*ts.Tensor {
	out := map[string]*ts.Tensor{}
	for name, v := range storeVariables(vs) {
		if v.persistent {
			out[name] = v.t
		}
	}
	return out
}

// SaveVarStore writes every parameter and persistent buffer of vs, by name, to a safetensors
// file at path, atomically. Unless metadata says otherwise it records {"format": "pt"}, which
// transformers' from_pretrained requires of a model.safetensors.
func SaveVarStore(path string, vs *gnn.VarStore, metadata map[string]string) error {
	tensors := StateDict(vs)
	md := map[string]string{"format": "pt"}
	for k, v := range metadata {
		md[k] = v
	}
	err := WriteSafetensors(path, tensors, md)
	runtime.KeepAlive(vs)
	return err
}
