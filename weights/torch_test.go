package weights

import (
	"archive/zip"
	"bufio"
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/torchx"
)

// The fixtures in testdata/torch are written by testdata/make_torch_fixtures.py, which emulates
// torch.save with CPython's own pickler; expected.json lists every tensor's dtype, shape and
// values.

type expectedTensor struct {
	DType  string    `json:"dtype"`
	Shape  []int64   `json:"shape"`
	Values []float64 `json:"values"`
}

func readExpected(t *testing.T) map[string]expectedTensor {
	t.Helper()
	var want map[string]expectedTensor
	if err := ReadConfigJSON("testdata/torch", "expected.json", &want); err != nil {
		t.Fatal(err)
	}
	return want
}

// values returns a tensor's elements as float64s, in row-major order.
func values(t *testing.T, x *ts.Tensor) []float64 {
	t.Helper()
	var out []float64
	err := torchx.Locked(func() error {
		d, err := x.Totype(gotch.Double, false)
		if err != nil {
			return err
		}
		defer d.Drop()
		c, err := d.Contiguous(false)
		if err != nil {
			return err
		}
		defer c.Drop()
		out = make([]float64, c.Numel())
		if len(out) == 0 {
			return nil
		}
		return c.CopyData(out, uint(len(out)))
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func closeEnough(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Abs(a[i]-b[i]) > 1e-6*math.Max(1, math.Abs(b[i])) {
			return false
		}
	}
	return true
}

// checkSource compares every tensor of src with want: names, Info, and the values Tensor reads.
func checkSource(t *testing.T, src Source, want map[string]expectedTensor) {
	t.Helper()
	var names []string
	for n := range want {
		names = append(names, n)
	}
	slices.Sort(names)
	if got := src.Names(); !slices.Equal(got, names) {
		t.Errorf("names %v; want %v", got, names)
	}
	for _, name := range names {
		w := want[name]
		dt, shape, ok := src.Info(name)
		if !ok {
			t.Errorf("%s: Info reports it absent", name)
			continue
		}
		if stDTypes[dt] != w.DType || !slices.Equal(shape, w.Shape) {
			t.Errorf("%s: Info %v %v; want %s %v", name, dt, shape, w.DType, w.Shape)
		}
		x, err := src.Tensor(name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got := torchx.SizeOrNil(x); !slices.Equal(got, w.Shape) || x.DType() != dt {
			t.Errorf("%s: tensor %v %v; want %v %v", name, x.DType(), got, dt, w.Shape)
		}
		if got := values(t, x); !closeEnough(got, w.Values) {
			t.Errorf("%s: values %v; want %v", name, got, w.Values)
		}
		x.Drop()
	}
	if _, _, ok := src.Info("no.such"); ok {
		t.Error("Info finds a tensor that is not there")
	}
	if _, err := src.Tensor("no.such"); err == nil {
		t.Error("Tensor reads a tensor that is not there")
	}
}

func TestTorchFileLayouts(t *testing.T) {
	want := readExpected(t)
	for _, file := range []string{
		"state_p2.bin",      // zip, protocol 2 (torch.save's default): GLOBAL, BINPUT/BINGET
		"state_p4.bin",      // zip, protocol 4: STACK_GLOBAL, MEMOIZE, FRAME; another archive name
		"state_deflate.bin", // zip with compressed storage records
		"state_legacy.bin",  // the pre-1.6 stream format
	} {
		t.Run(file, func(t *testing.T) {
			tf, err := OpenTorch(filepath.Join("testdata/torch", file))
			if err != nil {
				t.Fatal(err)
			}
			defer tf.Close()
			checkSource(t, tf, want)
		})
	}
}

func TestTorchFilePlainDict(t *testing.T) {
	src, err := Open("testdata/torch/plain_dict.bin")
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	checkSource(t, src, map[string]expectedTensor{"w": {DType: "F32", Shape: []int64{2}, Values: []float64{1, 2}}})
}

func TestTorchFileRefusals(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	zipOf := func(name string, records map[string][]byte) string {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		for n, b := range records {
			w, err := zw.Create(n)
			if err != nil {
				t.Fatal(err)
			}
			w.Write(b)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		return write(name, buf.Bytes())
	}
	p2, err := os.ReadFile("testdata/torch/state_p2.bin")
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(p2), int64(len(p2)))
	if err != nil {
		t.Fatal(err)
	}
	records := map[string][]byte{}
	for _, f := range zr.File {
		b, err := readRecord(f, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		records[f.Name] = b
	}
	without := func(drop string) map[string][]byte {
		out := map[string][]byte{}
		for k, v := range records {
			if k != drop {
				out[k] = v
			}
		}
		return out
	}
	with := func(name string, b []byte) map[string][]byte {
		out := without("")
		out[name] = b
		return out
	}
	tar := make([]byte, 1024)
	copy(tar[257:], "ustar")
	legacy, err := os.ReadFile("testdata/torch/state_legacy.bin")
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name, path, want string
	}{
		{"GLOBAL os.system", "testdata/torch/evil_os_system.bin", "global os.system"},
		{"STACK_GLOBAL builtins.eval among tensors", "testdata/torch/evil_eval_p4.bin", "global builtins.eval"},
		{"legacy file calling eval", "testdata/torch/evil_legacy.bin", "global __builtin__.eval"},
		{"training checkpoint", "testdata/torch/nested.bin", `entry "epoch" is an int, not a tensor`},
		{"missing file", filepath.Join(dir, "nope.bin"), "no such file"},
		{"not a checkpoint", write("text.bin", []byte("hello")), "not a PyTorch checkpoint"},
		{"empty file", write("empty.bin", nil), "not a PyTorch checkpoint"},
		{"tar", write("old.tar", tar), "tar checkpoint"},
		{"torchscript", zipOf("script.pt", with("archive/constants.pkl", []byte{0x80, 2, '.'})), "TorchScript"},
		{"zip without data.pkl", zipOf("nodata.bin", without("archive/data.pkl")), "data.pkl"},
		{"storage record missing", zipOf("nostorage.bin", without("archive/data/0")), `storage "0" has no record`},
		{"storage record short", zipOf("short.bin", with("archive/data/0", []byte{1, 2, 3})), "holds 3 bytes"},
		{"big-endian", zipOf("big.bin", with("archive/byteorder", []byte("big"))), "byte order"},
		{"truncated pickle", zipOf("trunc.bin", with("archive/data.pkl", records["archive/data.pkl"][:200])), "truncated"},
		{"bad magic", write("magic.bin", append([]byte{0x80, 2, 'K', 7, '.'}, legacy[15:]...)), "magic number"},
		{"truncated legacy data", write("legacy_trunc.bin", legacy[:len(legacy)-1]), "past the end"},
		{"unsupported storage", zipOf("complex.bin", with("archive/data.pkl",
			bytes.Replace(records["archive/data.pkl"], []byte("ctorch\nFloatStorage\n"), []byte("ctorch\nComplexFloatStorage\n"), 1))),
			"torch.ComplexFloatStorage is not supported"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src, err := Open(tc.path)
			if err == nil {
				src.Close()
				t.Fatalf("opened; want an error mentioning %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.path) {
				t.Errorf("error %q; want one naming %s and %q", err, tc.path, tc.want)
			}
			t.Log(err)
		})
	}
}

// TestScanPickle checks the opcode pre-scan on hand-written pickles.
func TestScanPickle(t *testing.T) {
	cases := []struct {
		name, pickle, want string // want "" means accepted
	}{
		{"empty dict", "\x80\x02}q\x00.", ""},
		{"OrderedDict", "\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01.", ""},
		{"protocol 0 INST", "(ios\nsystem\nS'echo'\np0\n.", "global os.system"},
		{"copy_reg reconstructor", "\x80\x02ccopy_reg\n_reconstructor\n.", "global copy_reg._reconstructor"},
		{"STACK_GLOBAL literal", "\x80\x04\x8c\x08builtins\x94\x8c\x04exec\x94\x93.", "global builtins.exec"},
		{"STACK_GLOBAL from memo", "\x80\x04\x8c\x02os\x94\x8c\x06system\x94N0h\x00h\x01\x93.", "global os.system"},
		{"STACK_GLOBAL allowed", "\x80\x04\x8c\x0bcollections\x94\x8c\x0bOrderedDict\x94\x93)R.", ""},
		{"STACK_GLOBAL computed", "\x80\x04\x8c\x02os\x8c\x06system\x86\x93.", "not string literals"},
		{"EXT1", "\x80\x02\x82\x01.", "EXT1"},
		{"out-of-band buffer", "\x80\x05\x97.", "out-of-band"},
		{"unknown opcode", "\x80\x02\xff.", "unknown pickle opcode 0xff"},
		{"no STOP", "\x80\x02}", "truncated"},
		{"protocol 6", "\x80\x06.", "protocol 6"},
		{"torch storage", "\x80\x02ctorch\nBFloat16Storage\n.", ""},
		{"torch.cuda storage", "\x80\x02ctorch.cuda\nHalfStorage\n.", ""},
		{"torch other", "\x80\x02ctorch\nload\n.", "global torch.load"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			input := tc.pickle
			if tc.want == "" {
				input += "trailing bytes are not read"
			}
			n, err := scanPickle(bufio.NewReader(strings.NewReader(input)), allowedGlobal)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.want == "" && n != int64(len(tc.pickle)):
				t.Errorf("length %d; want %d", n, len(tc.pickle))
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v; want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestShardedTorch(t *testing.T) {
	src, file, err := OpenDir("testdata/torch/sharded")
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if filepath.Base(file) != TorchIndexName {
		t.Errorf("OpenDir used %s", file)
	}
	checkSource(t, src, map[string]expectedTensor{
		"a.weight": {DType: "F32", Shape: []int64{2, 2}, Values: []float64{1, 2, 3, 4}},
		"a.bias":   {DType: "F32", Shape: []int64{2}, Values: []float64{5, 6}},
		"b.weight": {DType: "F16", Shape: []int64{1, 2}, Values: []float64{0.5, 1.5}},
	})
}

func TestExpectedFixtureIsComplete(t *testing.T) {
	// Guards the fixture itself: the cases the loader must handle are all present.
	raw, err := os.ReadFile("testdata/torch/expected.json")
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]expectedTensor
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	dtypes := map[string]bool{}
	for _, w := range want {
		dtypes[w.DType] = true
	}
	for _, d := range []string{"F32", "F16", "BF16", "F64", "I64", "I32", "U8", "BOOL"} {
		if !dtypes[d] {
			t.Errorf("fixture has no %s tensor", d)
		}
	}
	for _, name := range []string{"proj.weight", "proj.bias", "lm_head.weight", "scale", "empty", "param"} {
		if _, ok := want[name]; !ok {
			t.Errorf("fixture lacks %s", name)
		}
	}
}
