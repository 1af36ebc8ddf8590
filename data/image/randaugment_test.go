package image

import (
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// imageOf builds a w×h image from a function giving each pixel's (r, g, b).
func imageOf(w, h int, f func(x, y int) (uint8, uint8, uint8)) *RGB {
	m := NewRGB(w, h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			r, g, b := f(x, y)
			m.Set(x, y, r, g, b)
		}
	}
	return m
}

// runOp applies one op with an explicit argument to a copy of m.
func runOp(m *RGB, op raOp, arg float64) *RGB {
	st := raState{cur: m}
	st.apply(op, arg)
	return st.cur
}

func samePix(t *testing.T, what string, got, want *RGB) {
	t.Helper()
	if got.W != want.W || got.H != want.H {
		t.Fatalf("%s: size %dx%d, want %dx%d", what, got.W, got.H, want.W, want.H)
	}
	for i := range want.Pix {
		if got.Pix[i] != want.Pix[i] {
			p := i / 3
			t.Errorf("%s: pixel (%d,%d) channel %d = %d, want %d", what, p%want.W, p/want.W, i%3, got.Pix[i], want.Pix[i])
			return
		}
	}
}

func TestRandAugmentValueOps(t *testing.T) {
	// Channel 0 takes three levels from 0 (a plain stretch: 255/51 = 5), channel 1 two levels above 0 (BLIP's
	// uint8 wrap of -low turns the whole channel white), channel 2 is constant (unchanged).
	ac := imageOf(3, 2, func(x, y int) (uint8, uint8, uint8) {
		return []uint8{0, 17, 51}[x], []uint8{10, 60}[y], 7
	})
	acWant := imageOf(3, 2, func(x, y int) (uint8, uint8, uint8) {
		return []uint8{0, 85, 255}[x], 255, 7
	})

	// Equalize on a 64x64 image. Channel 0: 1024 zeros, 1024 of 100, 2048 of 200 -> step = (4096-2048)//255 = 8,
	// 0 -> (4+0)//8 = 0, 100 -> (4+1024)//8 = 128, 200 -> (4+2048)//8 = 256 -> 255. Channel 1 is constant
	// (step 0: unchanged). Channel 2: one 250 among 4095 tens -> step 16, 10 -> 8//16 = 0, 250 -> 4103//16 -> 255.
	eq := imageOf(64, 64, func(x, y int) (uint8, uint8, uint8) {
		i := y*64 + x
		c0 := uint8(200)
		if i < 1024 {
			c0 = 0
		} else if i < 2048 {
			c0 = 100
		}
		c2 := uint8(10)
		if i == 4095 {
			c2 = 250
		}
		return c0, 50, c2
	})
	eqWant := imageOf(64, 64, func(x, y int) (uint8, uint8, uint8) {
		r, _, b := eq.At(x, y)
		return map[uint8]uint8{0: 0, 100: 128, 200: 255}[r], 50, map[uint8]uint8{10: 0, 250: 255}[b]
	})

	lv := imageOf(4, 1, func(x, y int) (uint8, uint8, uint8) {
		v := []uint8{0, 77, 201, 255}[x]
		return v, v, v
	})
	lut := func(f func(v int) int) *RGB {
		return imageOf(4, 1, func(x, y int) (uint8, uint8, uint8) {
			r, _, _ := lv.At(x, y)
			v := uint8(f(int(r)))
			return v, v, v
		})
	}

	tests := []struct {
		name string
		in   *RGB
		op   raOp
		arg  float64
		want *RGB
	}{
		{"Identity", lv, raIdentity, 0, lv},
		{"AutoContrast", ac, raAutoContrast, 0, acWant},
		{"Equalize", eq, raEqualize, 0, eqWant},
		// Brightness: trunc(min(v*factor, 255)); 201*0.5 = 100.5 -> 100, 77*1.9 = 146.3 -> 146.
		{"Brightness 0.5", lv, raBrightness, 0.5, lut(func(v int) int { return v / 2 })},
		{"Brightness 1.9", lv, raBrightness, 1.9, lut(func(v int) int { return min(255, v*19/10) })},
		{"Brightness 1 (BLIP's M=5)", lv, raBrightness, 1, lv},
		{"Solarize 128", lv, raSolarize, 128, lut(func(v int) int {
			if v < 128 {
				return v
			}
			return 255 - v
		})},
		{"Posterize 2", lv, raPosterize, 2, lut(func(v int) int { return v & 0xc0 })},
		{"Posterize 0 (mask wraps to 0)", lv, raPosterize, 0, lut(func(v int) int { return 0 })},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			orig := tc.in.Clone()
			samePix(t, tc.name, runOp(tc.in, tc.op, tc.arg), tc.want)
			if !reflect.DeepEqual(orig.Pix, tc.in.Pix) {
				t.Error("the input was modified")
			}
		})
	}
}

func TestRandAugmentSharpness(t *testing.T) {
	// A 3x3 image of 13s with a 0 in the middle: the degenerate centre is (8*13*1 + 0*5)/13 = 8, the border keeps
	// the input. factor 0.5: 8 + 0.5*(0-8) = 4. factor 1.9: 8 + 1.9*(0-8) = -7.2 -> truncated to -7, which
	// numpy's uint8 cast wraps to 249 (BLIP does not clip).
	in := imageOf(3, 3, func(x, y int) (uint8, uint8, uint8) {
		if x == 1 && y == 1 {
			return 0, 0, 0
		}
		return 13, 13, 13
	})
	for _, tc := range []struct {
		factor float64
		centre uint8
	}{{0.5, 4}, {1.9, 249}, {1, 0}} {
		got := runOp(in, raSharpness, tc.factor)
		want := in.Clone()
		want.Set(1, 1, tc.centre, tc.centre, tc.centre)
		samePix(t, "sharpness", got, want)
	}
	// Factor 0 is the whole degenerate image, borders reflected (BORDER_REFLECT_101): compare with a direct
	// float64 evaluation (these sums are exact, so rounding cannot differ).
	m := imageOf(5, 4, func(x, y int) (uint8, uint8, uint8) {
		return uint8(13 * ((x*3 + y*5) % 19)), uint8(13 * x), uint8(13 * y * y % 256)
	})
	got := runOp(m, raSharpness, 0)
	refl := func(i, n int) int {
		if i < 0 {
			return -i
		}
		if i >= n {
			return 2*n - 2 - i
		}
		return i
	}
	for y := 0; y < m.H; y++ {
		for x := 0; x < m.W; x++ {
			for c := 0; c < 3; c++ {
				s := 0.0
				for dy := -1; dy <= 1; dy++ {
					for dx := -1; dx <= 1; dx++ {
						k := 1.0
						if dx == 0 && dy == 0 {
							k = 5
						}
						s += k * float64(m.Pix[3*(refl(y+dy, m.H)*m.W+refl(x+dx, m.W))+c])
					}
				}
				if want := uint8(math.RoundToEven(s / 13)); got.Pix[3*(y*m.W+x)+c] != want {
					t.Fatalf("degenerate (%d,%d,%d) = %d, want %d", x, y, c, got.Pix[3*(y*m.W+x)+c], want)
				}
			}
		}
	}
}

func TestRandAugmentTranslate(t *testing.T) {
	in := imageOf(5, 3, func(x, y int) (uint8, uint8, uint8) { return uint8(10*x + 1), uint8(10*y + 1), 200 })
	shifted := func(dx, dy int) *RGB {
		return imageOf(5, 3, func(x, y int) (uint8, uint8, uint8) {
			sx, sy := x+dx, y+dy
			if sx < 0 || sx >= 5 || sy < 0 || sy >= 3 {
				return 128, 128, 128
			}
			return in.At(sx, sy)
		})
	}
	// BLIP's translate_x_func(img, offset) warps with [[1, 0, -offset], [0, 1, 0]]: output x reads input
	// x + offset, so a positive offset moves the content left (towards x = 0).
	tests := []struct {
		name string
		op   raOp
		off  float64
		want *RGB
	}{
		{"TranslateX +2", raTranslateX, 2, shifted(2, 0)},
		{"TranslateX -3", raTranslateX, -3, shifted(-3, 0)},
		{"TranslateX +5 (all fill)", raTranslateX, 5, shifted(5, 0)},
		{"TranslateY +1", raTranslateY, 1, shifted(0, 1)},
		{"TranslateY -2", raTranslateY, -2, shifted(0, -2)},
		{"TranslateX 0", raTranslateX, 0, in},
		// Half a pixel: the mean of two neighbours rounded half up, the last column half fill.
		{"TranslateX 0.5", raTranslateX, 0.5, imageOf(5, 3, func(x, y int) (uint8, uint8, uint8) {
			r0, g0, b0 := in.At(x, y)
			r1, g1, b1 := uint8(128), uint8(128), uint8(128)
			if x+1 < 5 {
				r1, g1, b1 = in.At(x+1, y)
			}
			avg := func(a, b uint8) uint8 { return uint8((int(a) + int(b) + 1) / 2) }
			return avg(r0, r1), avg(g0, g1), avg(b0, b1)
		})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { samePix(t, tc.name, runOp(in, tc.op, tc.off), tc.want) })
	}
}

func TestRandAugmentRotateQuarterTurn(t *testing.T) {
	// cv2.getRotationMatrix2D((W/2, H/2), 90, 1) on a 4x4 image maps input (sx, sy) to (sy, 4 - sx): output
	// (x, y) reads input (4 - y, x). Because BLIP's centre is (2, 2), not the middle pixel (1.5, 1.5), row 0
	// reads column 4, outside the image, and is fill.
	in := imageOf(4, 4, func(x, y int) (uint8, uint8, uint8) { return uint8(16*y + x), uint8(x), uint8(y) })
	want := imageOf(4, 4, func(x, y int) (uint8, uint8, uint8) {
		if 4-y > 3 {
			return 128, 128, 128
		}
		return in.At(4-y, x)
	})
	samePix(t, "rotate 90", runOp(in, raRotate, 90), want)
	// -90 maps output (x, y) to input (y, 4 - x): column 0 is fill.
	want = imageOf(4, 4, func(x, y int) (uint8, uint8, uint8) {
		if 4-x > 3 {
			return 128, 128, 128
		}
		return in.At(y, 4-x)
	})
	samePix(t, "rotate -90", runOp(in, raRotate, -90), want)
}

// slowWarp is an independent float64 inverse-mapped bilinear warp with a constant outside the image: output
// (x, y) samples input inv(x, y). tol is the error OpenCV's fixed point may add per sample: coordinates rounded
// to 1/32 pixel move a sample by up to 1/64 pixel in x and in y, so by up to spread/32 levels where spread is
// the largest difference in the 3x3 source neighbourhood, plus one level for rounding.
func slowWarp(m *RGB, inv func(x, y float64) (float64, float64), fill uint8) (out *RGB, tol []int) {
	out = NewRGB(m.W, m.H)
	tol = make([]int, len(out.Pix))
	at := func(x, y, c int) float64 {
		if x < 0 || y < 0 || x >= m.W || y >= m.H {
			return float64(fill)
		}
		return float64(m.Pix[3*(y*m.W+x)+c])
	}
	for y := 0; y < m.H; y++ {
		for x := 0; x < m.W; x++ {
			sx, sy := inv(float64(x), float64(y))
			x0, y0 := math.Floor(sx), math.Floor(sy)
			fx, fy := sx-x0, sy-y0
			ix, iy := int(x0), int(y0)
			for c := 0; c < 3; c++ {
				v := (1-fx)*(1-fy)*at(ix, iy, c) + fx*(1-fy)*at(ix+1, iy, c) +
					(1-fx)*fy*at(ix, iy+1, c) + fx*fy*at(ix+1, iy+1, c)
				i := 3*(y*m.W+x) + c
				out.Pix[i] = uint8(math.Floor(v + 0.5))
				lo, hi := 255.0, 0.0
				for dy := -1; dy <= 2; dy++ {
					for dx := -1; dx <= 2; dx++ {
						lo, hi = math.Min(lo, at(ix+dx, iy+dy, c)), math.Max(hi, at(ix+dx, iy+dy, c))
					}
				}
				tol[i] = 1 + int(math.Ceil((hi-lo)/32))
			}
		}
	}
	return out, tol
}

func TestRandAugmentGeometryMatchesSlowWarp(t *testing.T) {
	// A smooth image, so that OpenCV's 1/32-pixel coordinates stay close to exact bilinear sampling.
	m := imageOf(37, 29, func(x, y int) (uint8, uint8, uint8) {
		return uint8(3*x + 2*y), uint8(250 - 4*y), uint8(100 + 2*x - y)
	})
	cx, cy := float64(m.W)/2, float64(m.H)/2
	rot := func(deg float64) func(x, y float64) (float64, float64) {
		// Positive degrees turn the content counter-clockwise on screen; the inverse turns the output
		// coordinates back clockwise about (W/2, H/2).
		a := deg * math.Pi / 180
		return func(x, y float64) (float64, float64) {
			dx, dy := x-cx, y-cy
			return cx + dx*math.Cos(a) - dy*math.Sin(a), cy + dx*math.Sin(a) + dy*math.Cos(a)
		}
	}
	tests := []struct {
		name string
		op   raOp
		arg  float64
		inv  func(x, y float64) (float64, float64)
	}{
		{"Rotate 15", raRotate, 15, rot(15)},
		{"Rotate -15", raRotate, -15, rot(-15)},
		{"Rotate 30", raRotate, 30, rot(30)},
		{"Rotate 7.3", raRotate, 7.3, rot(7.3)},
		{"ShearX 0.15", raShearX, 0.15, func(x, y float64) (float64, float64) { return x - 0.15*y, y }},
		{"ShearX -0.3", raShearX, -0.3, func(x, y float64) (float64, float64) { return x + 0.3*y, y }},
		{"ShearY 0.15", raShearY, 0.15, func(x, y float64) (float64, float64) { return x, y - 0.15*x }},
		{"ShearY -0.09", raShearY, -0.09, func(x, y float64) (float64, float64) { return x, y + 0.09*x }},
		{"TranslateY 2.25", raTranslateY, 2.25, func(x, y float64) (float64, float64) { return x, y + 2.25 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := runOp(m, tc.op, tc.arg)
			want, tol := slowWarp(m, tc.inv, 128)
			fills, over := 0, 0
			for i := range want.Pix {
				d := int(got.Pix[i]) - int(want.Pix[i])
				if d > tol[i] || -d > tol[i] {
					over++
					if over <= 3 {
						p := i / 3
						t.Errorf("(%d,%d) channel %d: %d, float64 warp %d (tolerance %d)", p%m.W, p/m.W, i%3,
							got.Pix[i], want.Pix[i], tol[i])
					}
				}
				if want.Pix[i] == 128 && got.Pix[i] == 128 {
					fills++
				}
			}
			if fills == 0 {
				t.Error("no fill seen")
			}
		})
	}
}

// countRand counts the draws made from a seeded generator.
type countRand struct {
	r *rand.Rand
	n int
}

func (c *countRand) Float64() float64 { c.n++; return c.r.Float64() }

func TestRandAugmentDrawStatistics(t *testing.T) {
	ra := RandAugment{N: 2, M: 5}
	r := &countRand{r: rand.New(rand.NewPCG(11, 12))}
	const images = 40000
	picked := map[raOp]int{}
	applied := map[raOp]int{}
	negative := map[raOp]int{}
	args := map[raOp]map[float64]bool{}
	for i := 0; i < images; i++ {
		n := 0
		ra.draw(r, func(op raOp, ok bool, arg float64) {
			n++
			picked[op]++
			if !ok {
				return
			}
			applied[op]++
			if arg < 0 {
				negative[op]++
			}
			if args[op] == nil {
				args[op] = map[float64]bool{}
			}
			args[op][math.Abs(arg)] = true
		})
		if n != 2 {
			t.Fatalf("image %d: %d ops drawn, want 2", i, n)
		}
	}
	// Each of BLIP's 10 ops is drawn about 2*40000/10 = 8000 times (sd ~85) and applied half of those (sd ~63).
	if len(picked) != 10 {
		t.Fatalf("ops drawn: %v", picked)
	}
	for _, op := range blipRAOps {
		if p := picked[op]; math.Abs(float64(p)-8000) > 400 {
			t.Errorf("%v drawn %d times, want about 8000", op, p)
		}
		if a := applied[op]; math.Abs(float64(a)-float64(picked[op])/2) > 300 {
			t.Errorf("%v applied %d of %d times, want about half", op, a, picked[op])
		}
	}
	// BLIP's magnitudes at M = 5: enhance factor 1.0, shear 0.15, translate 5 px, rotate 15 degrees, each signed
	// op negative about half the time.
	wantArg := map[raOp]float64{raBrightness: 1, raSharpness: 1, raShearX: 0.15, raShearY: 0.15, raTranslateX: 5,
		raTranslateY: 5, raRotate: 15, raIdentity: 0, raAutoContrast: 0, raEqualize: 0}
	for op, want := range wantArg {
		if len(args[op]) != 1 || !args[op][want] {
			t.Errorf("%v arguments %v, want ±%v", op, args[op], want)
		}
	}
	for _, op := range []raOp{raShearX, raShearY, raTranslateX, raTranslateY, raRotate} {
		if neg := negative[op]; math.Abs(float64(neg)-float64(applied[op])/2) > 250 {
			t.Errorf("%v negative %d of %d times, want about half", op, neg, applied[op])
		}
	}
	// Draws: 2 choices + 2 apply draws per image, plus one sign draw per applied signed op.
	signed := 0
	for _, op := range []raOp{raShearX, raShearY, raTranslateX, raTranslateY, raRotate} {
		signed += applied[op]
	}
	if r.n != 4*images+signed {
		t.Errorf("%d draws, want %d", r.n, 4*images+signed)
	}
}

func TestRandAugmentDrawOrder(t *testing.T) {
	in := imageOf(9, 4, func(x, y int) (uint8, uint8, uint8) { return uint8(20 * x), uint8(50 * y), 7 })
	ra := RandAugment{N: 2, M: 5, Ops: []string{"TranslateX", "rotate"}}
	// Choices first (0 -> TranslateX, 0.99 -> Rotate), then TranslateX's apply draw (0.5: applied, BLIP skips
	// only above 0.5) and its sign draw (0.7 > 0.5: -5 px, content moves right), then Rotate's apply draw (0.51:
	// skipped, so no sign draw).
	fr := &fixedRand{v: []float64{0, 0.99, 0.5, 0.7, 0.51}}
	got := ra.Apply(in, fr)
	if fr.i != 5 {
		t.Errorf("%d draws, want 5", fr.i)
	}
	samePix(t, "TranslateX -5", got, runOp(in, raTranslateX, -5))
	// Nothing applied: the input itself comes back.
	if out := ra.Apply(in, &fixedRand{v: []float64{0.3, 0.6, 0.9, 0.9}}); out != in {
		t.Error("with no op applied Apply must return its input")
	}
	if out := (RandAugment{}).Apply(in, &fixedRand{v: []float64{0}}); out != in {
		t.Error("N = 0 must return the input")
	}
}

func TestRandAugmentDeterministic(t *testing.T) {
	m := FromImage(testPattern(48, 40))
	orig := m.Clone()
	run := func(ra RandAugment, seed uint64) [][]uint8 {
		r := rand.New(rand.NewPCG(seed, 99))
		var outs [][]uint8
		for i := 0; i < 40; i++ {
			outs = append(outs, ra.Apply(m, r).Pix)
		}
		return outs
	}
	for _, ra := range []RandAugment{{N: 2, M: 5}, {N: 3, M: 9, Ops: RandAugmentOps()}} {
		a, b, c := run(ra, 1), run(ra, 1), run(ra, 2)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%+v: same seed, different images", ra)
		}
		if reflect.DeepEqual(a, c) {
			t.Errorf("%+v: different seeds, identical images", ra)
		}
		changed := 0
		for _, p := range a {
			if !reflect.DeepEqual(p, m.Pix) {
				changed++
			}
		}
		if changed == 0 || changed == len(a) {
			t.Errorf("%+v: %d of %d images changed, want some but not all", ra, changed, len(a))
		}
	}
	if !reflect.DeepEqual(orig.Pix, m.Pix) {
		t.Error("Apply modified its input")
	}
}

func TestRandAugmentValidate(t *testing.T) {
	tests := []struct {
		ra   RandAugment
		want string // "" = valid
	}{
		{RandAugment{}, ""},
		{RandAugment{N: 2, M: 5}, ""},
		{RandAugment{N: 2, M: 10, Ops: RandAugmentOps()}, ""},
		{RandAugment{N: 1, M: 0, Ops: []string{"rotate", "SHEARX"}}, ""},
		{RandAugment{N: -1, M: 5}, "n -1"},
		{RandAugment{N: 2, M: 10.5}, "magnitude 10.5"},
		{RandAugment{N: 2, M: -1}, "magnitude -1"},
		{RandAugment{N: 2, M: math.NaN()}, "magnitude NaN"},
		{RandAugment{N: 2, M: 5, Ops: []string{"Rotate", "Cutout", "Blur"}}, `"Cutout", "Blur"`},
	}
	for _, tc := range tests {
		err := tc.ra.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", tc.ra, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: error %v, want one naming %s", tc.ra, err, tc.want)
		}
	}
	if err := (Augment{RandAugment: RandAugment{N: -2}}).Validate(); err == nil {
		t.Error("Augment.Validate must check RandAugment")
	}
	if got := BLIPRandAugmentOps(); strings.Join(got, ",") !=
		"Identity,AutoContrast,Brightness,Sharpness,Equalize,ShearX,ShearY,TranslateX,TranslateY,Rotate" {
		t.Errorf("BLIP ops %v", got)
	}
	if n := len(RandAugmentOps()); n != 14 {
		t.Errorf("%d ops, want BLIP's 14", n)
	}
}

func TestPreprocessTrainRandAugment(t *testing.T) {
	cfg, _ := DefaultConfig("BlipImageProcessor")
	cfg.Size = Size{Height: 24, Width: 24}
	p, _ := NewProcessor(cfg, DecodeOptions{})
	m := FromImage(testPattern(50, 40))
	// Always-applied TranslateX by +10 px (M = 10) after the evaluation geometry: draws are the choice, the apply
	// draw and the sign draw (0.2: positive).
	a := Augment{RandAugment: RandAugment{N: 1, M: 10, Ops: []string{"TranslateX"}}}
	got, err := p.PreprocessTrain(m, a, &fixedRand{v: []float64{0, 0.1, 0.2}})
	if err != nil {
		t.Fatal(err)
	}
	g, _ := p.Geometry(m)
	if want := p.ToPixels(runOp(g, raTranslateX, 10)); !reflect.DeepEqual(got, want) {
		t.Error("PreprocessTrain must apply RandAugment to the geometry's output")
	}
	if _, err := p.PreprocessTrain(m, Augment{RandAugment: RandAugment{N: 1, M: 11}}, &fixedRand{v: []float64{0}}); err == nil {
		t.Error("want a validation error for M = 11")
	}
}

func BenchmarkRandAugment(b *testing.B) {
	m := FromImage(testPattern(384, 384))
	for _, name := range RandAugmentOps() {
		b.Run(name, func(b *testing.B) {
			ra := RandAugment{N: 1, M: 7, Ops: []string{name}}
			r := &fixedRand{v: []float64{0, 0, 0}} // chosen, applied, positive sign
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				ra.Apply(m, r)
			}
		})
	}
	b.Run("blip_n2_m5", func(b *testing.B) {
		ra := RandAugment{N: 2, M: 5}
		r := rand.New(rand.NewPCG(1, 2))
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			ra.Apply(m, r)
		}
	})
}
