package image

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The fixtures in testdata/randaugment are BLIP's own op functions (transform/randaugment.py) run by gen.py
// there with numpy 1.24.2 and OpenCV 4.6.0: every op on small images, with explicit arguments.

func loadRGBNPY(t *testing.T, path string) (*RGB, *Array) {
	t.Helper()
	a, err := ReadNPYFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if a.Dtype != "uint8" {
		t.Fatalf("%s: dtype %s", path, a.Dtype)
	}
	n := len(a.Shape)
	return &RGB{W: a.Shape[n-2], H: a.Shape[n-3], Pix: a.U8}, a
}

func TestRandAugmentOpsMatchBLIP(t *testing.T) {
	dir := "testdata/randaugment"
	f, err := os.Open(filepath.Join(dir, "cases.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ins, outs, next := map[string]*RGB{}, map[string]*Array{}, map[string]int{}
	sc := bufio.NewScanner(f)
	cases := 0
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 3 {
			continue
		}
		img, name, argText := fields[0], fields[1], fields[2]
		if ins[img] == nil {
			ins[img], _ = loadRGBNPY(t, filepath.Join(dir, "in_"+img+".npy"))
			_, outs[img] = loadRGBNPY(t, filepath.Join(dir, "out_"+img+".npy"))
		}
		in := ins[img]
		k := next[img]
		next[img]++
		size := 3 * in.W * in.H
		want := outs[img].U8[k*size : (k+1)*size]
		op, ok := parseRAOp(name)
		if !ok {
			t.Fatalf("unknown op %s", name)
		}
		arg := 0.0
		if argText != "-" {
			if arg, err = strconv.ParseFloat(argText, 64); err != nil {
				t.Fatal(err)
			}
		}
		orig := append([]uint8(nil), in.Pix...)
		st := raState{cur: in}
		st.apply(op, arg)
		got := st.cur
		if string(in.Pix) != string(orig) {
			t.Fatalf("%s %s %s modified its input", img, name, argText)
		}
		diff, first := 0, -1
		for i := range want {
			if got.Pix[i] != want[i] {
				diff++
				if first < 0 {
					first = i
				}
			}
		}
		if diff > 0 {
			p := first / 3
			t.Errorf("%s %s(%s): %d of %d samples differ; first at x=%d y=%d c=%d: got %d, BLIP %d",
				img, name, argText, diff, size, p%in.W, p/in.W, first%3, got.Pix[first], want[first])
		}
		cases++
	}
	if cases < 100 {
		t.Fatalf("only %d fixture cases", cases)
	}
}
