package image

import (
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
)

func TestToPixelsArithmetic(t *testing.T) {
	cfg, _ := DefaultConfig("BlipImageProcessor")
	p, err := NewProcessor(cfg, DecodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m := rgbFrom(2, 1, 0, 128, 255, 17, 200, 3)
	px := p.ToPixels(m)
	if !reflect.DeepEqual(px.Shape(), []int{3, 1, 2}) {
		t.Fatalf("shape %v", px.Shape())
	}
	// HF: float32(v * (1/255) in float64), then (x - float32(mean)) / float32(std) in float32. CHW order.
	want := func(v uint8, ch int) float32 {
		x := float32(float64(v) * (1.0 / 255))
		return (x - float32(OpenAICLIPMean[ch])) / float32(OpenAICLIPStd[ch])
	}
	exp := []float32{want(0, 0), want(17, 0), want(128, 1), want(200, 1), want(255, 2), want(3, 2)}
	if !reflect.DeepEqual(px.Data, exp) {
		t.Errorf("got %v, want %v", px.Data, exp)
	}
	// Without rescale/normalise values are the raw levels.
	cfg.DoRescale, cfg.DoNormalize = false, false
	p2, _ := NewProcessor(cfg, DecodeOptions{})
	if got := p2.ToPixels(m).Data; got[0] != 0 || got[1] != 17 || got[2] != 128 || got[5] != 3 {
		t.Errorf("raw values %v", got)
	}
}

func TestCenterCrop(t *testing.T) {
	// 4x3 image, red channel = index.
	src := NewRGB(4, 3)
	for i := 0; i < 12; i++ {
		src.Pix[3*i] = uint8(i + 1)
	}
	red := func(m *RGB) []uint8 {
		var out []uint8
		for i := 0; i < m.W*m.H; i++ {
			out = append(out, m.Pix[3*i])
		}
		return out
	}
	cases := []struct {
		h, w  int
		wantW int
		want  []uint8
	}{
		{1, 2, 2, []uint8{6, 7}},             // top = (3-1)//2 = 1, left = (4-2)//2 = 1
		{2, 3, 3, []uint8{1, 2, 3, 5, 6, 7}}, // top 0, left 0
		{3, 6, 6, []uint8{0, 1, 2, 3, 4, 0, 0, 5, 6, 7, 8, 0, 0, 9, 10, 11, 12, 0}}, // padded with zeros
	}
	for _, c := range cases {
		m := CenterCrop(src, c.h, c.w)
		if m.W != c.wantW || !reflect.DeepEqual(red(m), c.want) {
			t.Errorf("crop %dx%d: %dx%d %v, want %v", c.h, c.w, m.W, m.H, red(m), c.want)
		}
	}
}

func TestProcessorShortestEdgeAndCrop(t *testing.T) {
	cfg, _ := DefaultConfig("CLIPImageProcessor")
	cfg.Size = Size{ShortestEdge: 40}
	cfg.CropSize = Size{Height: 32, Width: 32}
	p, err := NewProcessor(cfg, DecodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m := FromImage(testPattern(97, 83))
	g, err := p.Geometry(m)
	if err != nil {
		t.Fatal(err)
	}
	if g.W != 32 || g.H != 32 {
		t.Fatalf("geometry %dx%d", g.W, g.H)
	}
	// Same as resizing to 46x40 (int(40*97/83) = 46) then cropping at top 4, left 7.
	r, _ := Resize(m, 46, 40, Bicubic)
	c, _ := r.Crop(7, 4, 32, 32)
	if !reflect.DeepEqual(g.Pix, c.Pix) {
		t.Error("geometry differs from resize+crop")
	}
	if h, w := cfg.OutputSize(83, 97); h != 32 || w != 32 {
		t.Errorf("OutputSize %dx%d", h, w)
	}
}

func TestStack(t *testing.T) {
	a := Pixels{Data: []float32{1, 2, 3}, C: 3, H: 1, W: 1}
	b := Pixels{Data: []float32{4, 5, 6}, C: 3, H: 1, W: 1}
	data, shape, err := Stack([]Pixels{a, b})
	if err != nil || !reflect.DeepEqual(shape, []int{2, 3, 1, 1}) || !reflect.DeepEqual(data, []float32{1, 2, 3, 4, 5, 6}) {
		t.Errorf("Stack = %v %v %v", data, shape, err)
	}
	if _, _, err := Stack([]Pixels{a, {Data: make([]float32, 6), C: 3, H: 1, W: 2}}); err == nil {
		t.Error("want an error for mismatched shapes")
	}
	if _, _, err := Stack(nil); err == nil {
		t.Error("want an error for no images")
	}
}

func TestNewProcessorValidates(t *testing.T) {
	cfg, _ := DefaultConfig("ViTImageProcessor")
	cfg.Size = Size{}
	if _, err := NewProcessor(cfg, DecodeOptions{}); err == nil {
		t.Error("want an error for an empty size")
	}
}

func TestAugmentDeterministic(t *testing.T) {
	cfg, _ := DefaultConfig("ViTImageProcessor")
	cfg.Size = Size{Height: 32, Width: 32}
	p, _ := NewProcessor(cfg, DecodeOptions{})
	m := FromImage(testPattern(80, 60))
	a := Augment{RandomResizedCrop: true, Scale: [2]float64{0.3, 1}, Ratio: [2]float64{0.75, 4.0 / 3}, HFlip: 0.5,
		Brightness: 0.3, Contrast: 0.3, Saturation: 0.3, Hue: 0.1}
	run := func(seed uint64) [][]float32 {
		r := rand.New(rand.NewPCG(seed, 7))
		var outs [][]float32
		for i := 0; i < 5; i++ {
			px, err := p.PreprocessTrain(m, a, r)
			if err != nil {
				t.Fatal(err)
			}
			if px.H != 32 || px.W != 32 {
				t.Fatalf("size %dx%d", px.W, px.H)
			}
			outs = append(outs, px.Data)
		}
		return outs
	}
	x, y, z := run(1), run(1), run(2)
	if !reflect.DeepEqual(x, y) {
		t.Error("same seed gave different augmentations")
	}
	if reflect.DeepEqual(x, z) {
		t.Error("different seeds gave identical augmentations")
	}
	if reflect.DeepEqual(x[0], x[1]) {
		t.Error("consecutive draws identical")
	}
}

func TestAugmentOffIsEval(t *testing.T) {
	cfg, _ := DefaultConfig("BlipImageProcessor")
	cfg.Size = Size{Height: 24, Width: 24}
	p, _ := NewProcessor(cfg, DecodeOptions{})
	m := FromImage(testPattern(50, 40))
	want, _ := p.Preprocess(m)
	got, err := p.PreprocessTrain(m, Augment{}, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Error("zero Augment must equal the evaluation pipeline")
	}
	// Flip with probability 1 mirrors the evaluation output.
	flipped, _ := p.PreprocessTrain(m, Augment{HFlip: 1}, rand.New(rand.NewPCG(1, 2)))
	g, _ := p.Geometry(m)
	if exp := p.ToPixels(g.FlipHorizontal()); !reflect.DeepEqual(flipped, exp) {
		t.Error("HFlip=1 must mirror the image")
	}
}

// fixedRand returns a fixed sequence of values.
type fixedRand struct {
	v []float64
	i int
}

func (f *fixedRand) Float64() float64 { x := f.v[f.i%len(f.v)]; f.i++; return x }

func TestRandomResizedCropParams(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	scale, ratio := [2]float64{0.08, 1}, [2]float64{3.0 / 4, 4.0 / 3}
	for i := 0; i < 2000; i++ {
		h, w := 30+i%50, 20+i%70
		top, left, ch, cw := RandomResizedCropParams(h, w, scale, ratio, r)
		if ch <= 0 || cw <= 0 || top < 0 || left < 0 || top+ch > h || left+cw > w {
			t.Fatalf("%dx%d: window top %d left %d %dx%d out of bounds", w, h, top, left, cw, ch)
		}
	}
	// First try accepted: u=0.5 -> area fraction 0.54, log-ratio midpoint -> ratio 1: w = h = round(sqrt(0.54*100*100)) = 73;
	// top = int(0.25*(100-73+1)) = 7, left = int(0.75*28) = 21.
	top, left, ch, cw := RandomResizedCropParams(100, 100, scale, ratio, &fixedRand{v: []float64{0.5, 0.5, 0.25, 0.75}})
	if top != 7 || left != 21 || ch != 73 || cw != 73 {
		t.Errorf("got top %d left %d %dx%d, want 7 21 73x73", top, left, cw, ch)
	}
	// Every try rejected (scale 1 with extreme ratio on a 10x100 image) -> fallback: width ratio clamp.
	top, left, ch, cw = RandomResizedCropParams(10, 100, [2]float64{1, 1}, [2]float64{1, 1}, &fixedRand{v: []float64{0.5}})
	if cw != 10 || ch != 10 || top != 0 || left != 45 {
		t.Errorf("fallback: top %d left %d %dx%d, want 0 45 10x10", top, left, cw, ch)
	}
}

func TestColorJitterFactors(t *testing.T) {
	m := rgbFrom(2, 1, 100, 50, 200, 10, 20, 30)
	// Brightness only, factor drawn as 1 + 0.5*(2*u-1) with u = 1 -> 1.5 (permutation draws come first).
	a := Augment{Brightness: 0.5}
	out := ColorJitter(m, a, &fixedRand{v: []float64{0, 0, 0, 0.999999999}})
	for i, v := range m.Pix {
		want := math.Min(255, math.Floor(float64(v)*1.5+0.5))
		if math.Abs(float64(out.Pix[i])-want) > 1 {
			t.Errorf("sample %d: %d, want ~%v", i, out.Pix[i], want)
		}
	}
	// Zero strengths leave the image unchanged.
	if o := ColorJitter(m, Augment{}, &fixedRand{v: []float64{0.3}}); !reflect.DeepEqual(o.Pix, m.Pix) {
		t.Error("no jitter must be the identity")
	}
	// A hue shift of a third of the circle turns pure red into pure green and green into blue.
	// The shift is uniform(-0.5, 0.5) drawn after the three permutation draws: u = 5/6 gives +1/3.
	rg := rgbFrom(2, 1, 255, 0, 0, 0, 255, 0)
	h := ColorJitter(rg, Augment{Hue: 0.5}, &fixedRand{v: []float64{0, 0, 0, 5.0 / 6}})
	if want := []uint8{0, 255, 0, 0, 0, 255}; !reflect.DeepEqual(h.Pix, want) {
		t.Errorf("hue +1/3: %v, want %v", h.Pix, want)
	}
}

func TestAugmentValidate(t *testing.T) {
	bad := []Augment{
		{RandomResizedCrop: true, Scale: [2]float64{0, 1}, Ratio: [2]float64{1, 1}},
		{RandomResizedCrop: true, Scale: [2]float64{0.5, 0.4}, Ratio: [2]float64{1, 1}},
		{RandomResizedCrop: true, Scale: [2]float64{0.5, 1}, Ratio: [2]float64{2, 1}},
		{HFlip: 1.5},
		{Hue: 0.7},
		{Brightness: -1},
	}
	for i, a := range bad {
		if a.Validate() == nil {
			t.Errorf("case %d: want a validation error for %+v", i, a)
		}
	}
	if err := DefaultAugment().Validate(); err != nil {
		t.Error(err)
	}
}
