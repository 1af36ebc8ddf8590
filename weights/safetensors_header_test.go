package weights

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// stFile assembles a safetensors file from a raw header and data bytes of value 0.
func stFile(header string, data int) []byte {
	b := make([]byte, 8, 8+len(header)+data)
	binary.LittleEndian.PutUint64(b, uint64(len(header)))
	b = append(b, header...)
	return append(b, make([]byte, data)...)
}

// TestSafetensorsHeaderAccepts checks that valid headers, including the legal corner cases
// of the format, parse to the expected tensors and metadata.
func TestSafetensorsHeaderAccepts(t *testing.T) {
	cases := []struct {
		name    string
		raw     []byte
		want    map[string]stEntry
		wantMet map[string]string
	}{
		{"two tensors, out of file order",
			stFile(`{"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]},"a":{"dtype":"I8","shape":[2,2],"data_offsets":[0,4]}}`, 12),
			map[string]stEntry{"a": {"I8", []int64{2, 2}, [2]int64{0, 4}}, "b": {"F32", []int64{2}, [2]int64{4, 12}}}, nil},
		{"scalar", stFile(`{"s":{"dtype":"F64","shape":[],"data_offsets":[0,8]}}`, 8),
			map[string]stEntry{"s": {"F64", []int64{}, [2]int64{0, 8}}}, nil},
		{"empty tensors anywhere", stFile(`{"e":{"dtype":"F32","shape":[0,3],"data_offsets":[2,2]},"x":{"dtype":"F16","shape":[1],"data_offsets":[0,2]},"z":{"dtype":"BOOL","shape":[0],"data_offsets":[2,2]}}`, 2),
			map[string]stEntry{"e": {"F32", []int64{0, 3}, [2]int64{2, 2}}, "x": {"F16", []int64{1}, [2]int64{0, 2}}, "z": {"BOOL", []int64{0}, [2]int64{2, 2}}}, nil},
		{"metadata, padding and unknown fields", stFile(`{"__metadata__":{"format":"pt"},"w":{"dtype":"BF16","shape":[1],"data_offsets":[0,2],"extra":true}}   `, 2),
			map[string]stEntry{"w": {"BF16", []int64{1}, [2]int64{0, 2}}}, map[string]string{"format": "pt"}},
		{"null metadata, leading whitespace", stFile(` {"__metadata__":null}`, 0), map[string]stEntry{}, nil},
		{"no tensors", stFile(`{}`, 0), map[string]stEntry{}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, err := parseSafetensors("x.safetensors", bytes.NewReader(tc.raw), int64(len(tc.raw)))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(h.entries, tc.want) {
				t.Errorf("entries %v; want %v", h.entries, tc.want)
			}
			if !reflect.DeepEqual(h.metadata, tc.wantMet) {
				t.Errorf("metadata %v; want %v", h.metadata, tc.wantMet)
			}
			if want := int64(len(tc.raw)) - stDataLen(tc.want); h.dataOff != want {
				t.Errorf("data offset %d; want %d", h.dataOff, want)
			}
		})
	}
}

func stDataLen(entries map[string]stEntry) int64 {
	var n int64
	for _, e := range entries {
		n = max(n, e.Offsets[1])
	}
	return n
}

// TestSafetensorsHeaderRejects gives one malformed file per rule of the format and checks the
// error names the file, the tensor at fault (where there is one) and the problem.
func TestSafetensorsHeaderRejects(t *testing.T) {
	hugeLen := make([]byte, 16)
	binary.LittleEndian.PutUint64(hugeLen, maxHeaderBytes+1)
	cases := []struct {
		name   string
		raw    []byte
		tensor string // the tensor the error must name, if any
		want   string
	}{
		{"shorter than the length field", []byte{1, 2, 3}, "", "fewer than the 8"},
		{"header over the size limit", hugeLen, "", "exceeds the 104857600-byte limit"},
		{"header longer than the file", stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, 4)[:20], "", "truncated"},
		{"header too short", stFile(`{`, 0), "", "too short"},
		{"not UTF-8", stFile("{\"a\xff\":1}", 0), "", "not valid UTF-8"},
		{"bad JSON", stFile(`{"a":`, 0), "", "header JSON"},
		{"not an object", stFile(`[1, 2]`, 0), "", "want an object"},
		{"data after the object", stFile(`{} {}`, 0), "", "after the header object"},
		{"duplicate key", stFile(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`, 2), "", `duplicate key "a"`},
		{"entry not an object", stFile(`{"a":[1]}`, 0), "a", "want {"},
		{"missing dtype", stFile(`{"a":{"shape":[1],"data_offsets":[0,4]}}`, 4), "a", `missing "dtype"`},
		{"missing shape", stFile(`{"a":{"dtype":"F32","data_offsets":[0,4]}}`, 4), "a", `missing "shape"`},
		{"null shape", stFile(`{"a":{"dtype":"F32","shape":null,"data_offsets":[0,4]}}`, 4), "a", `missing "shape"`},
		{"missing offsets", stFile(`{"a":{"dtype":"F32","shape":[1]}}`, 4), "a", `missing "data_offsets"`},
		{"three offsets", stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}`, 4), "a", "want [begin, end]"},
		{"fractional dimension", stFile(`{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}`, 4), "a", "want {"},
		{"unknown dtype", stFile(`{"a":{"dtype":"F9","shape":[1],"data_offsets":[0,1]}}`, 1), "a", `unsupported dtype "F9"`},
		{"spec dtype not loadable", stFile(`{"a":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}}`, 1), "a", "valid safetensors but cannot be loaded"},
		{"negative dimension", stFile(`{"a":{"dtype":"F32","shape":[2,-1],"data_offsets":[0,4]}}`, 4), "a", "negative dimension"},
		{"size overflow", stFile(`{"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,4]}}`, 4), "a", "overflows"},
		{"negative offset", stFile(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[-1,0]}}`, 1), "a", "negative data_offsets"},
		{"end before begin", stFile(`{"a":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}}`, 4), "a", "end before they begin"},
		{"range does not match shape", stFile(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, 8), "a", "it holds 8 bytes, the shape needs 12"},
		{"truncated data", stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, 10), "b", "(truncated?)"},
		{"overlap", stFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8), "b", "overlap"},
		{"gap at the start", stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8), "a", "4 unindexed data bytes before"},
		{"gap in the middle", stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[6,10]}}`, 10), "b", "2 unindexed data bytes before"},
		{"trailing bytes", stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, 7), "a", "3 unindexed trailing data bytes"},
		{"data but no tensors", stFile(`{}`, 5), "", "5 unindexed trailing data bytes"},
		{"empty tensor past the data", stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"e":{"dtype":"F32","shape":[0],"data_offsets":[8,8]}}`, 4), "e", "does not fit"},
		{"bad metadata", stFile(`{"__metadata__":{"a":1}}`, 0), "", "__metadata__ must map strings to strings"},
	}
	dir := t.TempDir()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Through the file API, so that the error names the real path.
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".safetensors")
			if err := os.WriteFile(path, tc.raw, 0o644); err != nil {
				t.Fatal(err)
			}
			st, err := OpenSafetensors(path)
			if err == nil {
				st.Close()
				t.Fatalf("opened; want an error mentioning %q", tc.want)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) || !strings.HasPrefix(msg, path+":") {
				t.Errorf("err %q; want one starting with the file name and mentioning %q", msg, tc.want)
			}
			if tc.tensor != "" && !strings.Contains(msg, `"`+tc.tensor+`"`) {
				t.Errorf("err %q does not name tensor %q", msg, tc.tensor)
			}
		})
	}
}

// TestSafetensorsTruncatedAfterOpen checks that a file cut short after it was opened gives a
// clear error when a tensor is read, not a bare EOF.
func TestSafetensorsTruncatedAfterOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cut.safetensors")
	raw := stFile(`{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}}`, 8)
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := OpenSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := os.Truncate(path, int64(len(raw)-2)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if ok, err := st.readRaw("a", buf); !ok || err != nil {
		t.Fatalf("tensor a: %v %v", ok, err)
	}
	_, err = st.readRaw("b", buf)
	if err == nil || !strings.Contains(err.Error(), "tensor b") || !strings.Contains(err.Error(), "truncated after it was opened") {
		t.Errorf("err %v; want one naming tensor b and the truncation", err)
	}
}

// FuzzSafetensorsHeader feeds arbitrary headers and data lengths to the header checks (pure
// Go: no file, no libtorch). Whatever they accept must satisfy the format's invariants, parse
// the same through the file-level reader, and survive a re-encoding unchanged.
func FuzzSafetensorsHeader(f *testing.F) {
	seeds := []struct {
		header string
		data   uint32
	}{
		{`{"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"b":{"dtype":"I64","shape":[],"data_offsets":[24,32]}}`, 32},
		{`{"__metadata__":{"format":"pt"},"e":{"dtype":"BOOL","shape":[0],"data_offsets":[0,0]}}  `, 0},
		{`{"a":{"dtype":"F16","shape":[1],"data_offsets":[0,2]},"a":{"dtype":"F16","shape":[1],"data_offsets":[2,4]}}`, 4},
		{`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8},
		{`{"a":{"dtype":"BF16","shape":[-1],"data_offsets":[0,2]}}`, 2},
		{`{"a":{"dtype":"U8","shape":[9223372036854775807,2],"data_offsets":[0,1]}}`, 1},
		{`{"a":{"dtype":"F8_E5M2","shape":[1],"data_offsets":[0,1]}}`, 1},
		{`{"__metadata__":{"k":1}}`, 0},
		{`[]`, 0},
		{"{\"\xff\":1}", 0},
	}
	for _, s := range seeds {
		f.Add([]byte(s.header), s.data)
	}
	f.Fuzz(func(t *testing.T, header []byte, dataLen uint32) {
		dataLen %= 1 << 16 // the data is materialised below: keep it small
		entries, meta, err := parseSafetensorsHeader("f", header, int64(dataLen))
		// The file-level reader must agree with the header checks on the same bytes.
		raw := stFile(string(header), int(dataLen))
		h, ferr := parseSafetensors("f", bytes.NewReader(raw), int64(len(raw)))
		if len(header) <= maxHeaderBytes && len(header) >= 2 && (err == nil) != (ferr == nil) {
			t.Fatalf("header check: %v; file reader: %v", err, ferr)
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f: ") {
				t.Fatalf("error %q does not start with the file name", err)
			}
			return
		}
		if ferr == nil && (!reflect.DeepEqual(h.entries, entries) || h.dataOff != int64(8+len(header))) {
			t.Fatalf("file reader: %v at %d; header check: %v", h.entries, h.dataOff, entries)
		}
		type span struct{ b, e int64 }
		var spans []span
		for name, e := range entries {
			dt, ok := stDType(e.DType)
			if !ok {
				t.Fatalf("%s: accepted dtype %q", name, e.DType)
			}
			n := int64(dt.Size())
			for _, d := range e.Shape {
				if d < 0 {
					t.Fatalf("%s: accepted shape %v", name, e.Shape)
				}
				if d != 0 && n > math.MaxInt64/d {
					t.Fatalf("%s: accepted overflowing shape %v", name, e.Shape)
				}
				n *= d
			}
			if e.Offsets[0] < 0 || e.Offsets[1]-e.Offsets[0] != n || e.Offsets[1] > int64(dataLen) {
				t.Fatalf("%s: accepted range %v for %d bytes in %d", name, e.Offsets, n, dataLen)
			}
			spans = append(spans, span{e.Offsets[0], e.Offsets[1]})
		}
		sort.Slice(spans, func(i, j int) bool {
			return spans[i].b < spans[j].b || spans[i].b == spans[j].b && spans[i].e < spans[j].e
		})
		var at int64
		for _, s := range spans {
			if s.b != at {
				t.Fatalf("accepted ranges %v: not a tiling", spans)
			}
			at = s.e
		}
		if at != int64(dataLen) {
			t.Fatalf("accepted ranges %v covering %d of %d bytes", spans, at, dataLen)
		}
		// Re-encoding what was accepted gives a header that parses to the same thing.
		out := map[string]any{}
		for name, e := range entries {
			out[name] = e
		}
		if meta != nil {
			out["__metadata__"] = meta
		}
		hj, jerr := json.Marshal(out)
		if jerr != nil {
			t.Fatal(jerr)
		}
		entries2, meta2, err := parseSafetensorsHeader("f", hj, int64(dataLen))
		if err != nil {
			t.Fatalf("re-encoded header %s: %v", hj, err)
		}
		if !reflect.DeepEqual(entries2, entries) || !reflect.DeepEqual(meta2, meta) {
			t.Fatalf("re-encoded header %s parses to %v %v; want %v %v", hj, entries2, meta2, entries, meta)
		}
	})
}
