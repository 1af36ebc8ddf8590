package image

import (
	"fmt"
	"reflect"
	"testing"
)

// grey1D makes a 1-row image whose R=G=B follow vals.
func grey1D(vals ...uint8) *RGB {
	m := NewRGB(len(vals), 1)
	for i, v := range vals {
		m.Set(i, 0, v, v, v)
	}
	return m
}

func redRow(m *RGB) []uint8 {
	out := make([]uint8, m.W)
	for x := range out {
		out[x], _, _ = m.At(x, 0)
	}
	return out
}

// Expected values below were derived by hand from PIL's Resample.c arithmetic (see comments), not by running
// this code: centre = (x+0.5)*scale, taps from int(centre-support+0.5) to int(centre+support+0.5) clamped,
// weights normalised in float64, rounded to 22-bit fixed point, sum + 2^21 shifted right by 22, clamped.
func TestResizeHandComputed(t *testing.T) {
	cases := []struct {
		name string
		in   []uint8
		w    int
		f    Filter
		want []uint8
	}{
		// bilinear 2->4: weights (1), (.75,.25), (.25,.75), (1): 0.25*255=63.75 -> 64.25 floor 64; 191.25 -> 191.
		{"bilinear up 2->4", []uint8{0, 255}, 4, Bilinear, []uint8{0, 64, 191, 255}},
		// bicubic 2->4: first output weights (1.0882, -0.0882) -> negative -> 0; second (0.7929, 0.2071):
		// 2^21 + 255*868820 >> 22 = 53; third mirrored: 2^21 + 255*3325484 >> 22 = 202; last overshoots -> 255.
		{"bicubic up 2->4", []uint8{0, 255}, 4, Bicubic, []uint8{0, 53, 202, 255}},
		// box 4->2 averages pairs, plus the 0.5 bias then floor: (10+20)/2 = 15, (30+40)/2 = 35.
		{"box down 4->2", []uint8{10, 20, 30, 40}, 2, Box, []uint8{15, 35}},
		// nearest: source index floor((x+0.5)*scale).
		{"nearest down 4->2", []uint8{10, 20, 30, 40}, 2, Nearest, []uint8{20, 40}},
		{"nearest up 2->4", []uint8{10, 20}, 4, Nearest, []uint8{10, 10, 20, 20}},
		// bilinear 4->2: scale 2, support 2, ss 0.5. Output 0: centre 1, taps 0..2 with f(-.25)=.75, f(.25)=.75,
		// f(.75)=.25 -> /1.75 -> fixed 1797559, 1797559, 599186: 2^21+10k0+20k1+30k2 = 73999502 >> 22 = 17.
		// Output 1: centre 3, taps 1..3 weights .25,.75,.75: 2^21+20*599186+30*1797559+40*1797559 >> 22 = 33.
		{"bilinear down 4->2", []uint8{10, 20, 30, 40}, 2, Bilinear, []uint8{17, 33}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Resize(grey1D(c.in...), c.w, 1, c.f)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(redRow(got), c.want) {
				t.Errorf("got %v, want %v", redRow(got), c.want)
			}
			// All channels identical, and a transposed (column) image resizes the same way.
			col := NewRGB(1, len(c.in))
			for i, v := range c.in {
				col.Set(0, i, v, v, v)
			}
			gc, err := Resize(col, 1, c.w, c.f)
			if err != nil {
				t.Fatal(err)
			}
			for i := range c.want {
				r, g, b := gc.At(0, i)
				if r != c.want[i] || g != r || b != r {
					t.Errorf("vertical pass: row %d = (%d,%d,%d), want %d", i, r, g, b, c.want[i])
				}
			}
		})
	}
}

func TestResizeConstantImageStaysConstant(t *testing.T) {
	src := NewRGB(37, 23)
	for i := 0; i < len(src.Pix); i += 3 {
		src.Pix[i], src.Pix[i+1], src.Pix[i+2] = 200, 17, 255
	}
	for _, f := range []Filter{Nearest, Bilinear, Bicubic, Lanczos, Box, Hamming} {
		for _, sz := range [][2]int{{5, 3}, {37, 11}, {80, 23}, {100, 61}, {1, 1}} {
			t.Run(fmt.Sprintf("%s/%dx%d", f, sz[0], sz[1]), func(t *testing.T) {
				m, err := Resize(src, sz[0], sz[1], f)
				if err != nil {
					t.Fatal(err)
				}
				if m.W != sz[0] || m.H != sz[1] {
					t.Fatalf("size %dx%d", m.W, m.H)
				}
				for i := 0; i < len(m.Pix); i += 3 {
					if m.Pix[i] != 200 || m.Pix[i+1] != 17 || m.Pix[i+2] != 255 {
						t.Fatalf("pixel %d = %v", i/3, m.Pix[i:i+3])
					}
				}
			})
		}
	}
}

func TestResizeSameSizeCopies(t *testing.T) {
	src := rgbFrom(2, 1, 1, 2, 3, 4, 5, 6)
	m, err := Resize(src, 2, 1, Bicubic)
	if err != nil {
		t.Fatal(err)
	}
	m.Pix[0] = 99
	if src.Pix[0] != 1 {
		t.Error("same-size resize must return a copy")
	}
}

func TestResizeErrors(t *testing.T) {
	src := NewRGB(4, 4)
	cases := []struct {
		w, h int
		f    Filter
	}{{0, 4, Bilinear}, {4, -1, Bilinear}, {2, 2, Filter(9)}}
	for _, c := range cases {
		if _, err := Resize(src, c.w, c.h, c.f); err == nil {
			t.Errorf("Resize(%d, %d, %v): want an error", c.w, c.h, c.f)
		}
	}
}

func TestParseFilter(t *testing.T) {
	cases := map[string]Filter{"bicubic": Bicubic, "BILINEAR": Bilinear, "3": Bicubic, "antialias": Lanczos, "nearest": Nearest, "5": Hamming}
	for s, want := range cases {
		got, err := ParseFilter(s)
		if err != nil || got != want {
			t.Errorf("ParseFilter(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	if _, err := ParseFilter("sinc"); err == nil {
		t.Error("want an error for an unknown filter")
	}
}
