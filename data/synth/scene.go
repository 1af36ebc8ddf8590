// Package synth generates a synthetic image-captioning dataset of simple coloured shapes on plain backgrounds,
// with five varied captions per image that are always true to the picture, written in the real Flickr8k or
// MS-COCO 2014 file layouts. A small model learns it in minutes on a CPU, so demos, tests and benchmarks can
// train and evaluate end to end without downloading anything.
//
// Generation is metadata first: a seeded generator draws each scene (background, shape, colour, size, count,
// position and the objects' pixel geometry), the image is rendered from that metadata and the captions are
// written from it. The same Options give byte-identical files.
package synth

import (
	"fmt"
	"sort"
	"strings"
)

// Shapes are the object kinds, singular.
var Shapes = []string{"circle", "square", "triangle", "diamond"}

// Colors are the object colours, in draw order.
var Colors = []string{"red", "green", "blue", "yellow", "purple", "orange", "white", "black"}

// Backgrounds are the background colours.
var Backgrounds = []string{"white", "black", "gray", "blue", "green"}

// Sizes are the object size words.
var Sizes = []string{"small", "large"}

// Positions are the regions a group of objects occupies.
var Positions = []string{"left", "right", "top", "bottom", "centre"}

// MaxCount is the largest number of objects in a scene.
const MaxCount = 3

// Palette gives the RGB value of every colour word used for objects and backgrounds.
var Palette = map[string][3]uint8{
	"red":    {220, 40, 40},
	"green":  {40, 170, 60},
	"blue":   {40, 80, 210},
	"yellow": {240, 210, 40},
	"purple": {140, 60, 180},
	"orange": {245, 140, 30},
	"white":  {245, 245, 245},
	"black":  {20, 20, 20},
	"gray":   {128, 128, 128},
}

// Object is one drawn shape: centre (X, Y) in pixels (the pixel whose centre is the shape's centre) and R, its
// half extent in pixels (circle radius, half the square's side, ...).
type Object struct {
	X int `json:"x"` // centre column
	Y int `json:"y"` // centre row
	R int `json:"r"` // half extent
}

// Scene is the metadata of one image: a background and Count identical objects (same shape, colour and size)
// placed together in one region, plus the captions derived from it.
type Scene struct {
	ID         int      `json:"id"`         // index (flickr8k) or COCO image id
	File       string   `json:"file"`       // image path relative to the dataset root
	Split      string   `json:"split"`      // train, val or test
	Width      int      `json:"width"`      // image width in pixels
	Height     int      `json:"height"`     // image height in pixels
	Background string   `json:"background"` // background colour word
	Shape      string   `json:"shape"`      // object shape word (singular)
	Color      string   `json:"color"`      // object colour word
	Size       string   `json:"size"`       // small or large
	Position   string   `json:"position"`   // left, right, top, bottom or centre
	Count      int      `json:"count"`      // number of objects, 1..MaxCount
	Objects    []Object `json:"objects"`    // pixel geometry of each object
	Captions   []string `json:"captions"`   // CaptionsPerImage true captions
}

// rng is a PCG-style 64-bit generator (64-bit LCG with an xorshift-multiply output), implemented here so that
// the sequence depends only on this code, never on the Go version.
type rng struct{ state uint64 }

func newRNG(seed int64) *rng {
	r := &rng{state: uint64(seed)*0x9E3779B97F4A7C15 + 0x2545F4914F6CDD1D}
	r.next()
	return r
}

func (r *rng) next() uint64 {
	r.state = r.state*6364136223846793005 + 1442695040888963407
	z := r.state
	z = (z ^ (z >> 33)) * 0xff51afd7ed558ccd
	z = (z ^ (z >> 33)) * 0xc4ceb9fe1a85ec53
	return z ^ (z >> 33)
}

// intn returns a value in [0, n) (n > 0); the modulo bias is negligible for the small n used here.
func (r *rng) intn(n int) int { return int(r.next() % uint64(n)) }

func (r *rng) pick(list []string) string { return list[r.intn(len(list))] }

// geometry returns the object half extent for a size word and the spacing between neighbouring object centres
// for an image of side s.
func geometry(s int, size string) (r, spacing int) {
	spacing = s / 4
	if size == "small" {
		return max(2, (s*6+50)/100), spacing
	}
	// Neighbouring objects must not touch: 2r+1 <= spacing.
	return max(3, min((s*11+50)/100, (spacing-1)/2)), spacing
}

// layout places count objects of half extent r in region pos of an s×s image, shifted by (jx, jy).
func layout(s int, pos string, count, r, spacing, jx, jy int) []Object {
	cx, cy := s/2, s/2
	switch pos {
	case "left":
		cx = s / 4
	case "right":
		cx = s - 1 - s/4
	case "top":
		cy = s / 4
	case "bottom":
		cy = s - 1 - s/4
	}
	cx += jx
	cy += jy
	var offs [][2]int
	half := spacing / 2
	switch {
	case count == 1:
		offs = [][2]int{{0, 0}}
	case pos == "left" || pos == "right": // stacked vertically
		if count == 2 {
			offs = [][2]int{{0, -half}, {0, spacing - half}}
		} else {
			offs = [][2]int{{0, -spacing}, {0, 0}, {0, spacing}}
		}
	case pos == "top" || pos == "bottom": // side by side
		if count == 2 {
			offs = [][2]int{{-half, 0}, {spacing - half, 0}}
		} else {
			offs = [][2]int{{-spacing, 0}, {0, 0}, {spacing, 0}}
		}
	default: // centre: a compact pair or triangle around the middle
		if count == 2 {
			offs = [][2]int{{-half, 0}, {spacing - half, 0}}
		} else {
			offs = [][2]int{{0, -half}, {-half, spacing - half}, {spacing - half, spacing - half}}
		}
	}
	objs := make([]Object, len(offs))
	for i, o := range offs {
		objs[i] = Object{X: cx + o[0], Y: cy + o[1], R: r}
	}
	return objs
}

// NewScenes draws n scenes of side size from seed, with captions; File and Split are left empty.
func NewScenes(n, size int, seed int64) []Scene {
	g := newRNG(seed)
	scenes := make([]Scene, n)
	for i := range scenes {
		s := Scene{ID: i, Width: size, Height: size}
		s.Background = g.pick(Backgrounds)
		for {
			s.Color = g.pick(Colors)
			if s.Color != s.Background {
				break
			}
		}
		s.Shape = g.pick(Shapes)
		s.Size = g.pick(Sizes)
		s.Position = g.pick(Positions)
		s.Count = 1 + g.intn(MaxCount)
		r, spacing := geometry(size, s.Size)
		j := max(1, size/32) // jitter of the whole group, in pixels
		jx, jy := g.intn(2*j+1)-j, g.intn(2*j+1)-j
		s.Objects = layout(size, s.Position, s.Count, r, spacing, jx, jy)
		s.Captions = captions(s, g)
		scenes[i] = s
	}
	return scenes
}

// Words used by the caption templates.
var (
	countWords = map[int]string{2: "two", 3: "three"}
	locPhrases = map[string]string{
		"left": "on the left", "right": "on the right", "top": "at the top", "bottom": "at the bottom",
		"centre": "in the centre",
	}
	locOfImage = map[string]string{
		"left": "on the left of the image", "right": "on the right of the image", "top": "at the top of the image",
		"bottom": "at the bottom of the image", "centre": "in the centre of the image",
	}
)

// article returns "a" or "an" for the word that follows.
func article(next string) string {
	if strings.ContainsRune("aeiou", rune(next[0])) {
		return "an"
	}
	return "a"
}

// nounPhrase is "a red circle", "two small green squares", ...
func nounPhrase(s Scene, withSize bool) string {
	words := []string{}
	if withSize {
		words = append(words, s.Size)
	}
	words = append(words, s.Color)
	if s.Count == 1 {
		words = append(words, s.Shape)
		return article(words[0]) + " " + strings.Join(words, " ")
	}
	words = append(words, s.Shape+"s")
	return countWords[s.Count] + " " + strings.Join(words, " ")
}

func background(s Scene) string {
	return article(s.Background) + " " + s.Background + " background"
}

// templates produce captions; every one states only facts recorded in the scene.
var templates = []func(s Scene) string{
	func(s Scene) string { return nounPhrase(s, true) + " " + locPhrases[s.Position] },
	func(s Scene) string { return nounPhrase(s, false) + " on " + background(s) },
	func(s Scene) string {
		return nounPhrase(s, true) + " " + locPhrases[s.Position] + " of " + background(s)
	},
	func(s Scene) string {
		return background(s) + " with " + nounPhrase(s, true) + " " + locPhrases[s.Position]
	},
	func(s Scene) string {
		verb := "is"
		if s.Count > 1 {
			verb = "are"
		}
		return "there " + verb + " " + nounPhrase(s, true) + " " + locPhrases[s.Position]
	},
	func(s Scene) string { return nounPhrase(s, true) + " on " + background(s) },
	func(s Scene) string { return nounPhrase(s, false) + " " + locOfImage[s.Position] },
	func(s Scene) string { return "a picture of " + nounPhrase(s, true) + " " + locPhrases[s.Position] },
}

// CaptionsPerImage is the number of captions each scene gets, as in Flickr8k and (mostly) COCO.
const CaptionsPerImage = 5

// captions picks CaptionsPerImage distinct templates in random order and fills them from s.
func captions(s Scene, g *rng) []string {
	idx := make([]int, len(templates))
	for i := range idx {
		idx[i] = i
	}
	for i := len(idx) - 1; i > 0; i-- {
		j := g.intn(i + 1)
		idx[i], idx[j] = idx[j], idx[i]
	}
	out := make([]string, CaptionsPerImage)
	for k := range out {
		out[k] = templates[idx[k]](s)
	}
	return out
}

// Vocabulary returns every word a caption can contain, sorted.
func Vocabulary() []string {
	set := map[string]bool{}
	add := func(text string) {
		for _, w := range strings.Fields(text) {
			set[w] = true
		}
	}
	for _, l := range [][]string{Shapes, Colors, Backgrounds, Sizes} {
		for _, w := range l {
			add(w)
		}
	}
	for _, sh := range Shapes {
		add(sh + "s")
	}
	for _, m := range []map[string]string{locPhrases, locOfImage} {
		for _, v := range m {
			add(v)
		}
	}
	for _, v := range countWords {
		add(v)
	}
	add("a an on with there is are background picture of")
	out := make([]string, 0, len(set))
	for w := range set {
		out = append(out, w)
	}
	sort.Strings(out)
	return out
}

// String summarises a scene for messages.
func (s Scene) String() string {
	return fmt.Sprintf("%d %s %s %s(s) %s on %s", s.Count, s.Size, s.Color, s.Shape, s.Position, s.Background)
}
