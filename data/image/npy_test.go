package image

import (
	"bytes"
	"encoding/binary"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestNPYRoundTrip(t *testing.T) {
	cases := []struct {
		name string
		a    *Array
	}{
		{"float32 2d", NewFloat32Array([]int{2, 3}, []float32{1, -2.5, 3, float32(math.Inf(1)), 0, 1e-30})},
		{"int64 1d", NewInt64Array([]int{4}, []int64{-1, 0, 1 << 40, math.MinInt64})},
		{"uint8 3d", NewUint8Array([]int{1, 2, 2}, []uint8{0, 1, 254, 255})},
		{"float64 scalar", &Array{Dtype: "float64", Shape: []int{}, F64: []float64{math.Pi}}},
		{"int32 empty", &Array{Dtype: "int32", Shape: []int{0, 5}, I32: []int32{}}},
		{"bool", &Array{Dtype: "bool", Shape: []int{3}, Bool: []bool{true, false, true}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteNPY(&buf, c.a); err != nil {
				t.Fatal(err)
			}
			// NumPy aligns the data start to 64 bytes.
			hl := int(binary.LittleEndian.Uint16(buf.Bytes()[8:]))
			if (10+hl)%64 != 0 {
				t.Errorf("data offset %d not 64-aligned", 10+hl)
			}
			got, err := ReadNPY(&buf)
			if err != nil {
				t.Fatal(err)
			}
			if got.Dtype != c.a.Dtype || !reflect.DeepEqual(got.Shape, c.a.Shape) || got.Len() != c.a.Len() {
				t.Fatalf("got %s %v, want %s %v", got.Dtype, got.Shape, c.a.Dtype, c.a.Shape)
			}
			if !reflect.DeepEqual(got.Float64s(), c.a.Float64s()) {
				t.Errorf("data %v, want %v", got.Float64s(), c.a.Float64s())
			}
		})
	}
}

// rawNPY builds a .npy file by hand, independently of WriteNPY.
func rawNPY(version byte, header string, data []byte) []byte {
	var b bytes.Buffer
	b.WriteString("\x93NUMPY")
	b.WriteByte(version)
	b.WriteByte(0)
	if version == 1 {
		_ = binary.Write(&b, binary.LittleEndian, uint16(len(header)))
	} else {
		_ = binary.Write(&b, binary.LittleEndian, uint32(len(header)))
	}
	b.WriteString(header)
	b.Write(data)
	return b.Bytes()
}

func TestReadNPYVariants(t *testing.T) {
	be := make([]byte, 8)
	binary.BigEndian.PutUint32(be, math.Float32bits(1.5))
	binary.BigEndian.PutUint32(be[4:], math.Float32bits(-2))
	cases := []struct {
		name  string
		file  []byte
		dtype string
		shape []int
		vals  []float64
	}{
		{"v1 1d trailing comma", rawNPY(1, "{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }\n", []byte{7, 8, 9}),
			"uint8", []int{3}, []float64{7, 8, 9}},
		{"v2 header", rawNPY(2, "{'descr': '|u1', 'fortran_order': False, 'shape': (1, 2)}\n", []byte{1, 2}),
			"uint8", []int{1, 2}, []float64{1, 2}},
		{"big endian f4, keys reordered", rawNPY(1, "{'shape': (2,), 'fortran_order': False, 'descr': '>f4'}\n", be),
			"float32", []int{2}, []float64{1.5, -2}},
		{"scalar", rawNPY(1, "{'descr': '<i8', 'fortran_order': False, 'shape': (), }\n", []byte{5, 0, 0, 0, 0, 0, 0, 0}),
			"int64", []int{}, []float64{5}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, err := ReadNPY(bytes.NewReader(c.file))
			if err != nil {
				t.Fatal(err)
			}
			if a.Dtype != c.dtype || !reflect.DeepEqual(a.Shape, c.shape) || !reflect.DeepEqual(a.Float64s(), c.vals) {
				t.Errorf("got %s %v %v, want %s %v %v", a.Dtype, a.Shape, a.Float64s(), c.dtype, c.shape, c.vals)
			}
		})
	}
}

func TestReadNPYErrors(t *testing.T) {
	cases := []struct {
		name, want string
		file       []byte
	}{
		{"bad magic", "bad magic", []byte("NOTNUMPY\x00\x00")},
		{"fortran", "fortran_order", rawNPY(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }\n", make([]byte, 4))},
		{"dtype", "unsupported descr", rawNPY(1, "{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }\n", make([]byte, 8))},
		{"truncated data", "reading 4 elements", rawNPY(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }\n", make([]byte, 7))},
		{"missing shape", "missing key \"shape\"", rawNPY(1, "{'descr': '<f4', 'fortran_order': False}\n", nil)},
		{"version", "unsupported format version", rawNPY(9, "", nil)},
		{"huge shape", "too many elements", rawNPY(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (100000000, 100000000, 100000000), }\n", nil)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ReadNPY(bytes.NewReader(c.file))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want it to contain %q", err, c.want)
			}
		})
	}
}

func TestWriteNPYShapeMismatch(t *testing.T) {
	err := WriteNPY(&bytes.Buffer{}, NewFloat32Array([]int{2, 2}, []float32{1, 2, 3}))
	if err == nil {
		t.Fatal("want an error for 3 values in a 2x2 array")
	}
}

func TestReadFixtureNPY(t *testing.T) {
	cases := []struct {
		path  string
		dtype string
		shape []int
	}{
		{"testdata/hf/blip_caption/pixel_values.npy", "float32", []int{2, 3, 64, 64}},
		{"testdata/hf/vit_gpt2/pixel_values.npy", "float32", []int{2, 3, 48, 48}},
		{"testdata/hf/images/img0_jpg_rgb.npy", "uint8", []int{83, 97, 3}},
	}
	for _, c := range cases {
		a, err := ReadNPYFile(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if a.Dtype != c.dtype || !reflect.DeepEqual(a.Shape, c.shape) || a.Len() != a.dataLen() {
			t.Errorf("%s: %s %v (%d values), want %s %v", c.path, a.Dtype, a.Shape, a.dataLen(), c.dtype, c.shape)
		}
		// Writing it back must reproduce NumPy's bytes exactly.
		var buf bytes.Buffer
		if err := WriteNPY(&buf, a); err != nil {
			t.Fatal(err)
		}
		orig, _ := readFile(c.path)
		if !bytes.Equal(buf.Bytes(), orig) {
			t.Errorf("%s: re-encoded bytes differ from NumPy's", c.path)
		}
	}
}
