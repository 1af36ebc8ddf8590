package weights

import (
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/torchx"
)

func TestSafetensorsRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.safetensors")
	tensors := map[string]*ts.Tensor{}
	err := torchx.Locked(func() error {
		mk := func(name string, data any, shape []int64, dt gotch.DType) error {
			x, err := ts.OfSlice(data)
			if err != nil {
				return err
			}
			if len(shape) == 0 {
				x, err = x.Squeeze(true) // gotch's View cannot make a 0-d shape
			} else {
				x, err = x.View(shape, true)
			}
			if err != nil {
				return err
			}
			if x, err = x.Totype(dt, true); err != nil {
				return err
			}
			tensors[name] = x
			return nil
		}
		for _, c := range []struct {
			name  string
			data  any
			shape []int64
			dt    gotch.DType
		}{
			{"a.weight", []float32{1, 2.5, -3, 4, 5, 6e-8}, []int64{2, 3}, gotch.Float},
			{"ids", []int64{1, -2, 1 << 40, 7}, []int64{4}, gotch.Int64},
			{"half.bf16", []float32{1.5, -2, 3.25}, []int64{3}, gotch.BFloat16},
			{"mask", []int64{1, 0}, []int64{2}, gotch.Bool},
			{"scalar", []float64{3.14159}, []int64{}, gotch.Double},
		} {
			if err := mk(c.name, c.data, c.shape, c.dt); err != nil {
				return err
			}
		}
		empty, err := ts.Zeros([]int64{0, 3}, gotch.Float, gotch.CPU)
		if err != nil {
			return err
		}
		tensors["empty"] = empty
		// A non-contiguous view is written in logical order.
		tr, err := tensors["a.weight"].Transpose(0, 1, false)
		if err != nil {
			return err
		}
		tensors["a.transposed"] = tr
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteSafetensors(path, tensors, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	// The header is the reference layout: JSON padded to 8 bytes, with dtype codes and offsets.
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(raw[:8])
	if n%8 != 0 {
		t.Errorf("header length %d is not a multiple of 8", n)
	}
	var header map[string]json.RawMessage
	if err := json.Unmarshal(raw[8:8+n], &header); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"a.weight": "F32", "ids": "I64", "half.bf16": "BF16", "mask": "BOOL", "scalar": "F64"} {
		var e stEntry
		if err := json.Unmarshal(header[name], &e); err != nil || e.DType != want {
			t.Errorf("%s: header %s; want dtype %s", name, header[name], want)
		}
	}
	if !strings.Contains(string(header["__metadata__"]), `"format":"pt"`) {
		t.Errorf("metadata %s", header["__metadata__"])
	}

	st, err := OpenSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if got := strings.Join(st.Names(), ","); got != "a.transposed,a.weight,empty,half.bf16,ids,mask,scalar" {
		t.Errorf("names %s", got)
	}
	for name, want := range tensors {
		got, err := st.Tensor(name)
		if err != nil {
			t.Fatal(err)
		}
		if got.DType() != want.DType() {
			t.Errorf("%s: dtype %v; want %v", name, got.DType(), want.DType())
		}
		gs, _ := got.Size()
		ws, _ := want.Size()
		if !slices.Equal(gs, ws) {
			t.Errorf("%s: shape %v; want %v", name, gs, ws)
		}
		if eq, err := got.Equal(want, false); err != nil || !eq {
			t.Errorf("%s: values differ after the round trip (%v)", name, err)
		}
	}
}

func TestSafetensorsRejectsMalformed(t *testing.T) {
	file := func(header string, data int) []byte {
		b := make([]byte, 8, 8+len(header)+data)
		binary.LittleEndian.PutUint64(b, uint64(len(header)))
		b = append(b, header...)
		return append(b, make([]byte, data)...)
	}
	cases := []struct {
		name string
		raw  []byte
		want string
	}{
		{"too short", []byte{1, 2, 3}, "not a safetensors file"},
		{"header longer than file", file(`{}`, 0)[:9], "header length"},
		{"bad JSON", file(`{"a":`, 0), "header JSON"},
		{"unknown dtype", file(`{"a":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}}`, 1), "unsupported dtype"},
		{"range beyond data", file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 4), "does not fit"},
		{"range does not match shape", file(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, 8), "does not fit"},
		{"negative dim", file(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, 4), "bad shape"},
		{"overlap", file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8), "overlap"},
		{"bad metadata", file(`{"__metadata__":{"a":1}}`, 0), "__metadata__"},
	}
	dir := t.TempDir()
	for _, tc := range cases {
		path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
		if err := os.WriteFile(path, tc.raw, 0o644); err != nil {
			t.Fatal(err)
		}
		st, err := OpenSafetensors(path)
		if err == nil {
			st.Close()
			t.Errorf("%s: opened; want an error mentioning %q", tc.name, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: err %q; want one naming the file and %q", tc.name, err, tc.want)
		}
	}
}
