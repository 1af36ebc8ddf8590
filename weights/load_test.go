package weights

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	gnn "github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/torchx"
)

// arange returns 1, 2, ..., numel(shape) as a tensor of dtype dt and that shape.
func arange(t *testing.T, shape []int64, dt gotch.DType) *ts.Tensor {
	t.Helper()
	var x *ts.Tensor
	err := torchx.Locked(func() error {
		n := numel(shape)
		vals := make([]float32, n)
		for i := range vals {
			vals[i] = float32(i + 1)
		}
		var err error
		if n == 0 {
			x, err = ts.Zeros(shape, dt, gotch.CPU)
			return err
		}
		if x, err = ts.OfSlice(vals); err != nil {
			return err
		}
		if len(shape) == 0 {
			x, err = x.Squeeze(true)
		} else {
			x, err = x.View(shape, true)
		}
		if err != nil {
			return err
		}
		x, err = x.Totype(dt, true)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func seq(n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = float64(i + 1)
	}
	return out
}

func filled(n int, v float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = v
	}
	return out
}

type varSpec struct {
	name          string
	shape         []int64
	dt            gotch.DType
	buffer        bool
	nonPersistent bool
}

// testModel is a VarStore of parameters and buffers, every element set to -7.
func testModel(t *testing.T, specs []varSpec) *gnn.VarStore {
	t.Helper()
	vs := gnn.NewVarStore(gotch.CPU)
	err := torchx.Locked(func() error {
		for _, s := range specs {
			shape := s.shape
			if len(shape) == 0 {
				shape = []int64{1} // gotch's generated ops cannot take a 0-d shape
			}
			x, err := ts.Full(shape, ts.FloatScalar(-7), s.dt, gotch.CPU)
			if err != nil {
				return err
			}
			if len(s.shape) == 0 {
				if x, err = x.Squeeze(true); err != nil {
					return err
				}
			}
			opts := []gnn.AddOpt{}
			if s.buffer {
				opts = append(opts, gnn.WithVarType("buffer"), gnn.WithPersistent(!s.nonPersistent))
			}
			p, parts := vs.Root(), strings.Split(s.name, ".")
			for _, part := range parts[:len(parts)-1] {
				p = p.Sub(part)
			}
			if _, err := p.Add(parts[len(parts)-1], x, !s.buffer, opts...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

var standardModel = []varSpec{
	{name: "enc.w", shape: []int64{2, 3}, dt: gotch.Float},
	{name: "enc.b", shape: []int64{3}, dt: gotch.Float},
	{name: "enc.ids", shape: []int64{4}, dt: gotch.Int64, buffer: true},
	{name: "enc.cache", shape: []int64{2}, dt: gotch.Float, buffer: true, nonPersistent: true},
	{name: "dec.w", shape: []int64{3, 2}, dt: gotch.Float},
}

type fileSpec struct {
	name  string
	shape []int64
	dt    gotch.DType
}

// standardFile is a checkpoint that fits standardModel, with keys prefixed by p.
func standardFile(p string, dt gotch.DType) []fileSpec {
	return []fileSpec{
		{p + "enc.w", []int64{2, 3}, dt},
		{p + "enc.b", []int64{3}, dt},
		{p + "enc.ids", []int64{4}, gotch.Int64},
		{p + "dec.w", []int64{3, 2}, dt},
	}
}

func writeCheckpoint(t *testing.T, path string, specs []fileSpec) {
	t.Helper()
	m := map[string]*ts.Tensor{}
	for _, s := range specs {
		m[s.name] = arange(t, s.shape, s.dt)
	}
	if err := WriteSafetensors(path, m, nil); err != nil {
		t.Fatal(err)
	}
	for _, x := range m {
		x.Drop()
	}
}

func TestLoadInto(t *testing.T) {
	without := func(specs []fileSpec, drop string) []fileSpec {
		return slices.DeleteFunc(slices.Clone(specs), func(s fileSpec) bool { return s.name == drop })
	}
	replace := func(specs []fileSpec, s fileSpec) []fileSpec {
		return append(without(specs, s.name), s)
	}
	all := []string{"dec.w", "enc.b", "enc.ids", "enc.w"}
	cases := []struct {
		name       string
		file       []fileSpec
		opt        LoadOptions
		wantErr    []string // substrings; none means success
		missing    []string
		unexpected []string
		mismatched []string // keys
		loaded     []string // variables that must hold the checkpoint's values afterwards
		values     map[string][]float64
	}{
		{name: "exact", file: standardFile("", gotch.Float), loaded: all},
		{name: "F16 converted to the variables' F32", file: standardFile("", gotch.Half), loaded: all},
		{name: "BF16 and F64", file: replace(standardFile("", gotch.BFloat16), fileSpec{"dec.w", []int64{3, 2}, gotch.Double}), loaded: all},
		{name: "int32 into an int64 buffer", file: replace(standardFile("", gotch.Float), fileSpec{"enc.ids", []int64{4}, gotch.Int}), loaded: all},
		{
			name: "missing", file: without(standardFile("", gotch.Float), "dec.w"),
			wantErr: []string{"missing: dec.w", "nothing loaded"}, missing: []string{"dec.w"},
		},
		{
			name: "wrong shape", file: replace(standardFile("", gotch.Float), fileSpec{"enc.w", []int64{3, 2}, gotch.Float}),
			wantErr:    []string{"wrong shape or dtype: enc.w (model [2 3] Float, checkpoint [3 2] Float)"},
			mismatched: []string{"enc.w"},
		},
		{
			name: "float into an int64 buffer", file: replace(standardFile("", gotch.Float), fileSpec{"enc.ids", []int64{4}, gotch.Float}),
			wantErr: []string{"enc.ids (model [4] Int64, checkpoint [4] Float)"}, mismatched: []string{"enc.ids"},
		},
		{
			name: "every problem listed at once",
			file: append(replace(without(standardFile("", gotch.Float), "dec.w"), fileSpec{"enc.b", []int64{4}, gotch.Float}),
				fileSpec{"pooler.w", []int64{1}, gotch.Float}),
			wantErr: []string{"missing: dec.w", "enc.b (model [3] Float, checkpoint [4] Float)", "unexpected: pooler.w"},
			missing: []string{"dec.w"}, mismatched: []string{"enc.b"}, unexpected: []string{"pooler.w"},
		},
		{
			name: "unexpected keys are reported, not an error",
			file: append(standardFile("", gotch.Float), fileSpec{"pooler.w", []int64{1}, gotch.Float},
				fileSpec{"enc.cache", []int64{2}, gotch.Float}), // a non-persistent buffer is not loaded
			unexpected: []string{"enc.cache", "pooler.w"}, loaded: all,
		},
		{
			name:   "Ignore",
			file:   append(standardFile("", gotch.Float), fileSpec{"pooler.w", []int64{1}, gotch.Float}),
			opt:    LoadOptions{Ignore: func(k string) bool { return strings.HasPrefix(k, "pooler.") }},
			loaded: all,
		},
		{
			name:    "Strict refuses unexpected keys",
			file:    append(standardFile("", gotch.Float), fileSpec{"pooler.w", []int64{1}, gotch.Float}),
			opt:     LoadOptions{Strict: true},
			wantErr: []string{"unexpected: pooler.w"}, unexpected: []string{"pooler.w"},
		},
		{
			name:   "Only loads a subset; the rest is neither missing nor touched",
			file:   without(standardFile("", gotch.Float), "dec.w"),
			opt:    LoadOptions{Only: func(n string) bool { return strings.HasPrefix(n, "enc.") }},
			loaded: []string{"enc.b", "enc.ids", "enc.w"},
		},
		{
			name: "Prefix selects checkpoint keys", file: append(standardFile("model.", gotch.Float), fileSpec{"head.x", []int64{1}, gotch.Float}),
			opt: LoadOptions{Prefix: "model."}, loaded: all,
		},
		{
			name: "VarPrefix loads part of the model from a smaller checkpoint",
			file: []fileSpec{{"w", []int64{2, 3}, gotch.Float}, {"b", []int64{3}, gotch.Float}, {"ids", []int64{4}, gotch.Int64}},
			opt:  LoadOptions{VarPrefix: "enc."}, loaded: []string{"enc.b", "enc.ids", "enc.w"},
		},
		{
			name: "VarPrefix reports what the checkpoint lacks by its keys",
			file: []fileSpec{{"w", []int64{2, 3}, gotch.Float}},
			opt:  LoadOptions{VarPrefix: "enc."}, wantErr: []string{"missing: b, ids"}, missing: []string{"b", "ids"},
		},
		{
			name: "Transpose", file: replace(standardFile("", gotch.Float), fileSpec{"dec.w", []int64{2, 3}, gotch.Float}),
			opt:    LoadOptions{Transpose: func(k string) bool { return k == "dec.w" }},
			loaded: all, values: map[string][]float64{"dec.w": {1, 4, 2, 5, 3, 6}},
		},
		{
			name: "Transpose checks the transposed shape", file: standardFile("", gotch.Float),
			opt:     LoadOptions{Transpose: func(k string) bool { return k == "enc.w" }},
			wantErr: []string{"enc.w (model [2 3] Float, checkpoint [2 3] Float transposed)"}, mismatched: []string{"enc.w"},
		},
	}
	dir := t.TempDir()
	for i, tc := range cases {
		// Each case runs on the Safetensors itself (which reads into variables directly or
		// through the staging buffer) and wrapped (a Source that only offers Tensor).
		for _, wrapped := range []bool{false, true} {
			name := tc.name
			if wrapped {
				name += " (wrapped Source)"
			}
			t.Run(name, func(t *testing.T) {
				path := filepath.Join(dir, fmt.Sprintf("%d-%v.safetensors", i, wrapped))
				writeCheckpoint(t, path, tc.file)
				st, err := OpenSafetensors(path)
				if err != nil {
					t.Fatal(err)
				}
				defer st.Close()
				var src Source = st
				if wrapped {
					src = wrapper{st}
				}
				vs := testModel(t, standardModel)
				rep, err := LoadInto(vs, src, tc.opt)
				if len(tc.wantErr) == 0 && err != nil {
					t.Fatalf("error: %v", err)
				}
				if len(tc.wantErr) > 0 {
					var le *LoadError
					if !errors.As(err, &le) {
						t.Fatalf("error %v; want a *LoadError", err)
					}
					want := tc.wantErr
					if !wrapped {
						want = append(want, path) // the error names the file
					}
					for _, w := range want {
						if !strings.Contains(err.Error(), w) {
							t.Errorf("error %q lacks %q", err, w)
						}
					}
				}
				if !slices.Equal(rep.Missing, tc.missing) || !slices.Equal(rep.Unexpected, tc.unexpected) {
					t.Errorf("report missing %v unexpected %v; want %v %v", rep.Missing, rep.Unexpected, tc.missing, tc.unexpected)
				}
				var mis []string
				for _, m := range rep.Mismatched {
					mis = append(mis, strings.Fields(m)[0])
				}
				if !slices.Equal(mis, tc.mismatched) {
					t.Errorf("report mismatched %v; want keys %v", rep.Mismatched, tc.mismatched)
				}
				if rep.Loaded != len(tc.loaded) {
					t.Errorf("loaded %d; want %d", rep.Loaded, len(tc.loaded))
				}
				// The VarStore's own tensors: vs.Variables() returns struct copies that do not keep
				// the C tensors alive once vs is unreachable.
				vars := storeVariables(vs)
				defer runtime.KeepAlive(vs)
				for _, s := range standardModel {
					v := vars[s.name].t
					n := int(numel(s.shape))
					want := filled(n, -7) // untouched, also after any failed load
					if slices.Contains(tc.loaded, s.name) {
						want = seq(n)
					}
					if w, ok := tc.values[s.name]; ok {
						want = w
					}
					if got := values(t, v); !closeEnough(got, want) {
						t.Errorf("%s = %v; want %v", s.name, got, want)
					}
					if v.DType() != s.dt {
						t.Errorf("%s became %v", s.name, v.DType())
					}
				}
			})
		}
	}
}

// wrapper hides everything but the Source methods of a checkpoint, as Sources that rename
// keys do.
type wrapper struct{ Source }

// TestLoadIntoFromTorchFile loads a torch.save state dict (tied weights, a transposed view, a
// storage offset, F16/BF16 storages, a 0-d tensor) into float32 variables.
func TestLoadIntoFromTorchFile(t *testing.T) {
	want := readExpected(t)
	specs := []varSpec{
		{name: "embed.weight", shape: []int64{4, 3}, dt: gotch.Float},
		{name: "lm_head.weight", shape: []int64{4, 3}, dt: gotch.Float},
		{name: "proj.weight", shape: []int64{3, 2}, dt: gotch.Float},
		{name: "proj.bias", shape: []int64{2}, dt: gotch.Float},
		{name: "norm.weight", shape: []int64{3}, dt: gotch.Float},
		{name: "half.bf16", shape: []int64{2, 2}, dt: gotch.Float},
		{name: "position_ids", shape: []int64{1, 5}, dt: gotch.Int64, buffer: true},
		{name: "num_batches_tracked", shape: []int64{}, dt: gotch.Int64, buffer: true},
	}
	for _, file := range []string{"state_p2.bin", "state_legacy.bin"} {
		t.Run(file, func(t *testing.T) {
			src, err := Open(filepath.Join("testdata/torch", file))
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			vs := testModel(t, specs)
			rep, err := LoadInto(vs, src, LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Loaded != len(specs) || len(rep.Unexpected) != len(want)-len(specs) {
				t.Errorf("report %+v", rep)
			}
			vars := storeVariables(vs)
			defer runtime.KeepAlive(vs)
			for _, s := range specs {
				if got := values(t, vars[s.name].t); !closeEnough(got, want[s.name].Values) {
					t.Errorf("%s = %v; want %v", s.name, got, want[s.name].Values)
				}
			}
		})
	}
}

func TestSaveVarStore(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.safetensors")
	vs := testModel(t, standardModel)
	if err := SaveVarStore(path, vs, map[string]string{"step": "7"}); err != nil {
		t.Fatal(err)
	}
	st, err := OpenSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := st.Names(), []string{"dec.w", "enc.b", "enc.ids", "enc.w"}; !slices.Equal(got, want) {
		t.Errorf("saved %v; want %v (no non-persistent buffer)", got, want)
	}
	if st.Metadata["format"] != "pt" || st.Metadata["step"] != "7" {
		t.Errorf("metadata %v; want format=pt (transformers requires it) and step=7", st.Metadata)
	}
	// The round trip reproduces every variable.
	back := testModel(t, standardModel)
	err = torchx.NoGrad(func() error {
		for _, v := range storeVariables(back) {
			if err := v.t.Fill_(ts.FloatScalar(0)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadInto(back, st, LoadOptions{Strict: true}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	for name, v := range storeVariables(back) {
		want := -7.0
		if !v.persistent {
			want = 0 // not saved, so not restored
		}
		if got := values(t, v.t); !closeEnough(got, filled(len(got), want)) {
			t.Errorf("%s = %v after the round trip", name, got)
		}
	}
	runtime.KeepAlive(back)

	// A failed save leaves the previous file as it was, and no temporary file behind.
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	bad := testModel(t, []varSpec{{name: "z", shape: []int64{2}, dt: gotch.ComplexFloat}})
	if err := SaveVarStore(path, bad, nil); err == nil || !strings.Contains(err.Error(), "ComplexFloat") {
		t.Errorf("saving a complex variable: %v", err)
	}
	target := filepath.Join(dir, "a_dir")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := SaveVarStore(target, vs, nil); err == nil || !strings.Contains(err.Error(), target) {
		t.Errorf("saving over a directory: %v", err)
	}
	after, err := os.ReadFile(path)
	if err != nil || !slices.Equal(before, after) {
		t.Errorf("file changed by failed saves (%v)", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}
