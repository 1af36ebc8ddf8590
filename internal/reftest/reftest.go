// Package reftest holds test helpers: it compares model outputs with reference arrays (numpy
// .npy files written by Hugging Face transformers) and reads the process's memory use.
package reftest

import (
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/data/image"
	"github.com/imgcap/imgcap/torchx"
)

// Array reads a .npy file or fails the test.
func Array(t testing.TB, path string) *image.Array {
	t.Helper()
	a, err := image.ReadNPYFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// Tensor reads a float32 or int64 .npy file into a CPU tensor or fails the test.
func Tensor(t testing.TB, path string) *ts.Tensor {
	t.Helper()
	a := Array(t, path)
	shape := make([]int64, len(a.Shape))
	for i, d := range a.Shape {
		shape[i] = int64(d)
	}
	var x *ts.Tensor
	var err error
	switch a.Dtype {
	case "float32":
		x, err = ts.OfSlice(a.F32)
	case "int64":
		x, err = ts.OfSlice(a.I64)
	default:
		t.Fatalf("%s: dtype %s not supported", path, a.Dtype)
	}
	if err != nil {
		t.Fatal(err)
	}
	v, err := x.View(shape, true)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// Int64Rows reads a 2-D int64 .npy file as rows.
func Int64Rows(t testing.TB, path string) [][]int64 {
	t.Helper()
	a := Array(t, path)
	if a.Dtype != "int64" || len(a.Shape) != 2 {
		t.Fatalf("%s: %s %v, want 2-D int64", path, a.Dtype, a.Shape)
	}
	var rows [][]int64
	for r := 0; r < a.Shape[0]; r++ {
		rows = append(rows, a.I64[r*a.Shape[1]:(r+1)*a.Shape[1]])
	}
	return rows
}

// Float32s reads a float32 .npy file's values and shape.
func Float32s(t testing.TB, path string) ([]float32, []int) {
	t.Helper()
	a := Array(t, path)
	if a.Dtype != "float32" {
		t.Fatalf("%s: dtype %s, want float32", path, a.Dtype)
	}
	return a.F32, a.Shape
}

// Diff returns max |got − want| and max |want| over two equal-length slices.
func Diff(got, want []float32) (maxDiff, absMax float64) {
	for i := range want {
		maxDiff = math.Max(maxDiff, math.Abs(float64(got[i])-float64(want[i])))
		absMax = math.Max(absMax, math.Abs(float64(want[i])))
	}
	return maxDiff, absMax
}

// Close checks got against the float32 .npy file at path: equal shapes and
// max |Δ| ≤ rel·max(1, max|want|). It reports the measured difference either way.
func Close(t testing.TB, name string, got *ts.Tensor, path string, rel float64) {
	t.Helper()
	want, shape := Float32s(t, path)
	gs, err := got.Size()
	if err != nil {
		t.Fatal(err)
	}
	ws := make([]int64, len(shape))
	for i, d := range shape {
		ws[i] = int64(d)
	}
	if !slices.Equal(gs, ws) {
		t.Fatalf("%s: shape %v, want %v", name, gs, ws)
	}
	vals, err := torchx.Float32s(got)
	if err != nil {
		t.Fatal(err)
	}
	d, m := Diff(vals, want)
	tol := rel * math.Max(1, m)
	if d > tol || math.IsNaN(d) {
		t.Errorf("%s: max |Δ| = %.3g > %.3g (max |want| %.3g)", name, d, tol, m)
	} else {
		t.Logf("%s: max |Δ| = %.3g (tolerance %.3g)", name, d, tol)
	}
}

// Scalar reads a one-element float32 .npy file.
func Scalar(t testing.TB, path string) float64 {
	t.Helper()
	v, _ := Float32s(t, path)
	if len(v) != 1 {
		t.Fatalf("%s: %d values, want 1", path, len(v))
	}
	return float64(v[0])
}

// Value returns a one-element tensor's value.
func Value(t testing.TB, x *ts.Tensor) float64 {
	t.Helper()
	v, err := torchx.Float32s(x)
	if err != nil {
		t.Fatal(err)
	}
	if len(v) != 1 {
		t.Fatal(fmt.Sprintf("%d values, want 1", len(v)))
	}
	return float64(v[0])
}

// RelRMS returns ‖got − want‖ / ‖want‖ (Euclidean norms) over two equal-length slices.
func RelRMS(got, want []float32) float64 {
	var num, den float64
	for i := range want {
		d := float64(got[i]) - float64(want[i])
		num += d * d
		den += float64(want[i]) * float64(want[i])
	}
	if den == 0 {
		return math.Sqrt(num)
	}
	return math.Sqrt(num / den)
}

// RSSBytes is the process's resident set size (VmRSS).
func RSSBytes(t testing.TB) int64 { return ProcStatusBytes(t, "VmRSS") }

// ProcStatusBytes reads a memory figure of this process (VmRSS, VmHWM, ...) from
// /proc/self/status in bytes; the test is skipped where there is none.
func ProcStatusBytes(t testing.TB, field string) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status:", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field+":" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Skipf("no %s in /proc/self/status", field)
	return 0
}
