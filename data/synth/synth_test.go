package synth

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	stdimage "image"
	_ "image/jpeg"
	_ "image/png"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// readTree returns every file under dir by relative path.
func readTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = data
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestGenerateDeterministic(t *testing.T) {
	for _, format := range Formats {
		for _, imgFmt := range []string{"jpg", "png"} {
			t.Run(format+"/"+imgFmt, func(t *testing.T) {
				gen := func(seed int64, workers int) map[string][]byte {
					dir := t.TempDir()
					_, err := Generate(Options{Format: format, N: 25, OutDir: dir, Seed: seed, ImageFormat: imgFmt, Workers: workers})
					if err != nil {
						t.Fatal(err)
					}
					return readTree(t, dir)
				}
				a, b, c := gen(7, 1), gen(7, 4), gen(8, 0)
				if len(a) != len(b) {
					t.Fatalf("%d files vs %d", len(a), len(b))
				}
				for name, data := range a {
					if !bytes.Equal(data, b[name]) {
						t.Errorf("%s differs between two runs with the same seed", name)
					}
				}
				if bytes.Equal(a["scenes.json"], c["scenes.json"]) {
					t.Error("different seeds gave the same scenes")
				}
			})
		}
	}
}

// checkCaption verifies one caption against the scene with an independent reading of the words.
func checkCaption(s Scene, c string) error {
	vocab := map[string]bool{}
	for _, w := range Vocabulary() {
		vocab[w] = true
	}
	words := strings.Fields(c)
	if strings.Join(words, " ") != c || c != strings.ToLower(c) {
		return fmt.Errorf("not lower-case single-spaced")
	}
	isColor := map[string]bool{}
	for k := range Palette {
		isColor[k] = true
	}
	shapeSeen, countSeen, sizeSeen, posSeen, bgSeen := 0, "", "", "", false
	for i, w := range words {
		if !vocab[w] {
			return fmt.Errorf("word %q not in the vocabulary", w)
		}
		next := ""
		if i+1 < len(words) {
			next = words[i+1]
		}
		switch {
		case w == "a" || w == "an":
			if want := map[bool]string{true: "an", false: "a"}[strings.ContainsRune("aeiou", rune(next[0]))]; w != want {
				return fmt.Errorf("article %q before %q", w, next)
			}
		case isColor[w]:
			if next == "background" {
				if w != s.Background {
					return fmt.Errorf("background %q, scene has %q", w, s.Background)
				}
				bgSeen = true
			} else if w != s.Color {
				return fmt.Errorf("colour %q, scene has %q", w, s.Color)
			}
		case w == "background":
			if i == 0 || words[i-1] != s.Background {
				return fmt.Errorf("background without its colour")
			}
		case w == "small" || w == "large":
			sizeSeen = w
		case w == "two" || w == "three":
			countSeen = w
		case w == "left" || w == "right" || w == "top" || w == "bottom" || w == "centre":
			if posSeen != "" {
				return fmt.Errorf("two positions")
			}
			posSeen = w
		}
		for _, sh := range Shapes {
			switch w {
			case sh:
				if s.Count != 1 || sh != s.Shape {
					return fmt.Errorf("shape %q, scene has %d %s", w, s.Count, s.Shape)
				}
				shapeSeen++
			case sh + "s":
				if s.Count == 1 || sh != s.Shape {
					return fmt.Errorf("shape %q, scene has %d %s", w, s.Count, s.Shape)
				}
				shapeSeen++
			}
		}
	}
	if shapeSeen != 1 {
		return fmt.Errorf("%d shape words", shapeSeen)
	}
	if want := map[int]string{1: "", 2: "two", 3: "three"}[s.Count]; countSeen != want {
		return fmt.Errorf("count word %q, scene has %d objects", countSeen, s.Count)
	}
	if sizeSeen != "" && sizeSeen != s.Size {
		return fmt.Errorf("size %q, scene has %q", sizeSeen, s.Size)
	}
	if posSeen != "" && posSeen != s.Position {
		return fmt.Errorf("position %q, scene has %q", posSeen, s.Position)
	}
	if !strings.Contains(c, s.Color) {
		return fmt.Errorf("object colour missing")
	}
	if strings.Contains(c, "background") != bgSeen {
		return fmt.Errorf("background mention inconsistent")
	}
	return nil
}

func TestCaptionsTrueToScene(t *testing.T) {
	scenes := NewScenes(3000, 64, 11)
	distinct := map[string]bool{}
	seen := map[string]map[string]bool{"shape": {}, "color": {}, "bg": {}, "size": {}, "pos": {}, "count": {}}
	for _, s := range scenes {
		if len(s.Captions) != CaptionsPerImage {
			t.Fatalf("scene %d: %d captions", s.ID, len(s.Captions))
		}
		uniq := map[string]bool{}
		for _, c := range s.Captions {
			if err := checkCaption(s, c); err != nil {
				t.Fatalf("scene %v: caption %q: %v", s, c, err)
			}
			uniq[c] = true
			// Template identity: replace the scene's words by placeholders.
			tpl := c
			for _, w := range []string{s.Background + " background", s.Color, s.Shape + "s", s.Shape, s.Size, s.Position, "two", "three", "is", "are", "an "} {
				tpl = strings.ReplaceAll(tpl, w, "_")
			}
			distinct[tpl] = true
		}
		if len(uniq) != CaptionsPerImage {
			t.Errorf("scene %d: duplicate captions %v", s.ID, s.Captions)
		}
		if s.Color == s.Background {
			t.Errorf("scene %d: object colour equals background", s.ID)
		}
		seen["shape"][s.Shape] = true
		seen["color"][s.Color] = true
		seen["bg"][s.Background] = true
		seen["size"][s.Size] = true
		seen["pos"][s.Position] = true
		seen["count"][fmt.Sprint(s.Count)] = true
	}
	want := map[string]int{"shape": len(Shapes), "color": len(Colors), "bg": len(Backgrounds), "size": 2, "pos": 5, "count": MaxCount}
	for k, n := range want {
		if len(seen[k]) != n {
			t.Errorf("%s: %d values drawn, want all %d", k, len(seen[k]), n)
		}
	}
	if len(distinct) < len(templates) {
		t.Errorf("only %d caption templates used, have %d", len(distinct), len(templates))
	}
}

// components returns the 4-connected components of pixels exactly equal to col: count, pixel areas and
// centroids.
func components(img *stdimage.RGBA, col [3]uint8) (areas []int, cx, cy []float64) {
	w, h := img.Rect.Dx(), img.Rect.Dy()
	match := func(x, y int) bool {
		p := img.Pix[y*img.Stride+4*x:]
		return p[0] == col[0] && p[1] == col[1] && p[2] == col[2]
	}
	seen := make([]bool, w*h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			if seen[y*w+x] || !match(x, y) {
				continue
			}
			stack := [][2]int{{x, y}}
			seen[y*w+x] = true
			n, sx, sy := 0, 0, 0
			for len(stack) > 0 {
				p := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				n++
				sx += p[0]
				sy += p[1]
				for _, d := range [][2]int{{1, 0}, {-1, 0}, {0, 1}, {0, -1}} {
					qx, qy := p[0]+d[0], p[1]+d[1]
					if qx >= 0 && qy >= 0 && qx < w && qy < h && !seen[qy*w+qx] && match(qx, qy) {
						seen[qy*w+qx] = true
						stack = append(stack, [2]int{qx, qy})
					}
				}
			}
			areas = append(areas, n)
			cx = append(cx, float64(sx)/float64(n)+0.5)
			cy = append(cy, float64(sy)/float64(n)+0.5)
		}
	}
	return areas, cx, cy
}

func TestRenderMatchesMetadata(t *testing.T) {
	for _, size := range []int{32, 64, 100} {
		for _, s := range NewScenes(400, size, int64(size)) {
			img := Render(s)
			fg, bg := Palette[s.Color], Palette[s.Background]
			at := func(x, y int) [3]uint8 {
				p := img.Pix[y*img.Stride+4*x:]
				return [3]uint8{p[0], p[1], p[2]}
			}
			for _, o := range s.Objects {
				if at(o.X, o.Y) != fg {
					t.Fatalf("size %d %v: centre (%d,%d) is %v, want %v", size, s, o.X, o.Y, at(o.X, o.Y), fg)
				}
			}
			for _, c := range [][2]int{{0, 0}, {size - 1, 0}, {0, size - 1}, {size - 1, size - 1}} {
				if at(c[0], c[1]) != bg {
					t.Fatalf("size %d %v: corner %v is %v, want background %v", size, s, c, at(c[0], c[1]), bg)
				}
			}
			// Exactly Count separate blobs of the object colour, all on the named side of the image.
			areas, cx, cy := components(img, fg)
			if len(areas) != s.Count {
				t.Fatalf("size %d %v: %d blobs of the object colour, want %d", size, s, len(areas), s.Count)
			}
			var mx, my float64
			for i := range cx {
				mx += cx[i] / float64(len(cx))
				my += cy[i] / float64(len(cy))
			}
			half, third := float64(size)/2, float64(size)/6
			ok := map[string]bool{
				"left":   mx < half-third,
				"right":  mx > half+third,
				"top":    my < half-third,
				"bottom": my > half+third,
				"centre": mx > half-third && mx < half+third && my > half-third && my < half+third,
			}[s.Position]
			if !ok {
				t.Fatalf("size %d %v: objects centred at (%.1f, %.1f)", size, s, mx, my)
			}
			// Every blob has the area of one object of the recorded shape and size.
			want := refArea(size, s.Shape, s.Size)
			for _, a := range areas {
				if a != want {
					t.Fatalf("size %d %v: blob of %d pixels, one %s %s covers %d", size, s, a, s.Size, s.Shape, want)
				}
			}
		}
		for _, sh := range Shapes {
			if sm, lg := refArea(size, sh, "small"), refArea(size, sh, "large"); lg <= sm {
				t.Errorf("size %d: large %s (%d px) not larger than small (%d px)", size, sh, lg, sm)
			}
		}
	}
}

// refArea is the number of pixels exactly of the object colour in a lone object of that shape and size.
func refArea(size int, shape, sz string) int {
	r, _ := geometry(size, sz)
	s := Scene{Width: size, Height: size, Background: "white", Color: "red", Shape: shape, Size: sz, Count: 1,
		Objects: []Object{{X: size / 2, Y: size / 2, R: r}}}
	areas, _, _ := components(Render(s), Palette["red"])
	return areas[0]
}

// parseFlickrToken is a minimal Flickr8k.token.txt parser: name#n<TAB>caption per line.
func parseFlickrToken(t *testing.T, data []byte) (names []string, caps map[string][]string) {
	t.Helper()
	caps = map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		key, caption, ok := strings.Cut(sc.Text(), "\t")
		name, n, ok2 := strings.Cut(key, "#")
		if !ok || !ok2 || strings.Contains(caption, "\t") {
			t.Fatalf("bad token line %q", sc.Text())
		}
		if n != fmt.Sprint(len(caps[name])) {
			t.Fatalf("caption number %s out of order for %s", n, name)
		}
		if len(caps[name]) == 0 {
			names = append(names, name)
		}
		caps[name] = append(caps[name], caption)
	}
	return names, caps
}

func TestFlickr8kFilesParse(t *testing.T) {
	dir := t.TempDir()
	res, err := Generate(Options{Format: "flickr8k", N: 40, OutDir: dir, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	files := readTree(t, dir)
	names, caps := parseFlickrToken(t, files["Flickr8k.token.txt"])
	if !sort.StringsAreSorted(names) || len(names) != 40 {
		t.Errorf("token file: %d images, sorted %v", len(names), sort.StringsAreSorted(names))
	}
	var meta []Scene
	if err := json.Unmarshal(files["scenes.json"], &meta); err != nil {
		t.Fatal(err)
	}
	byName := map[string]Scene{}
	for _, s := range meta {
		byName[filepath.Base(s.File)] = s
		if _, ok := files[s.File]; !ok {
			t.Errorf("image %s missing", s.File)
		}
		if !strings.HasPrefix(s.File, "Images/") {
			t.Errorf("image path %s", s.File)
		}
	}
	for _, n := range names {
		if fmt.Sprint(caps[n]) != fmt.Sprint(byName[n].Captions) {
			t.Errorf("%s: token captions %v, metadata %v", n, caps[n], byName[n].Captions)
		}
	}
	// Kaggle captions.txt: same rows in the same order.
	rows, err := csv.NewReader(bytes.NewReader(files["captions.txt"])).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(rows[0]) != "[image caption]" || len(rows) != 1+5*40 {
		t.Fatalf("captions.txt header %v, %d rows", rows[0], len(rows))
	}
	for i, n := range names {
		for k := 0; k < 5; k++ {
			if r := rows[1+5*i+k]; r[0] != n || r[1] != caps[n][k] {
				t.Errorf("captions.txt row %d = %v", 1+5*i+k, r)
			}
		}
	}
	// Split lists: disjoint, covering every image, 80/10/10.
	all := map[string]string{}
	for split, file := range map[string]string{"train": "Flickr_8k.trainImages.txt", "val": "Flickr_8k.devImages.txt", "test": "Flickr_8k.testImages.txt"} {
		for _, n := range strings.Fields(string(files[file])) {
			if prev, dup := all[n]; dup {
				t.Errorf("%s in %s and %s", n, prev, split)
			}
			all[n] = split
			if byName[n].Split != split {
				t.Errorf("%s listed in %s, metadata says %s", n, split, byName[n].Split)
			}
		}
	}
	if len(all) != 40 || res.SplitCounts()["train"] != 32 || res.SplitCounts()["val"] != 4 || res.SplitCounts()["test"] != 4 {
		t.Errorf("splits %v over %d images", res.SplitCounts(), len(all))
	}
	// Images decode at the requested size, object centres close to the object colour despite JPEG.
	for _, s := range meta[:10] {
		img, _, err := stdimage.Decode(bytes.NewReader(files[s.File]))
		if err != nil {
			t.Fatal(err)
		}
		if img.Bounds().Dx() != 64 || img.Bounds().Dy() != 64 {
			t.Errorf("%s: %v", s.File, img.Bounds())
		}
		want := Palette[s.Color]
		for _, o := range s.Objects {
			r, g, b, _ := img.At(o.X, o.Y).RGBA()
			got := [3]int{int(r >> 8), int(g >> 8), int(b >> 8)}
			for c := 0; c < 3; c++ {
				if d := got[c] - int(want[c]); d > 40 || d < -40 {
					t.Errorf("%s %v: centre colour %v, want about %v", s.File, s, got, want)
					break
				}
			}
		}
	}
}

func TestCOCOFilesParse(t *testing.T) {
	dir := t.TempDir()
	if _, err := Generate(Options{Format: "coco", N: 30, OutDir: dir, Seed: 5, ImageFormat: "png"}); err != nil {
		t.Fatal(err)
	}
	files := readTree(t, dir)
	var meta []Scene
	if err := json.Unmarshal(files["scenes.json"], &meta); err != nil {
		t.Fatal(err)
	}
	type ann struct {
		ImageID int    `json:"image_id"`
		ID      int    `json:"id"`
		Caption string `json:"caption"`
	}
	type img struct {
		ID       int    `json:"id"`
		FileName string `json:"file_name"`
		Width    int    `json:"width"`
		Height   int    `json:"height"`
	}
	var doc struct {
		Info        map[string]any   `json:"info"`
		Images      []img            `json:"images"`
		Licenses    []map[string]any `json:"licenses"`
		Annotations []ann            `json:"annotations"`
	}
	annIDs := map[int]bool{}
	images := 0
	for _, part := range []string{"train", "val"} {
		raw := files["annotations/captions_"+part+"2014.json"]
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatalf("%s: %v", part, err)
		}
		// Real COCO files: one line, Python separators, keys in this order.
		s := string(raw)
		if strings.Count(s, "\n") != 0 || !strings.HasPrefix(s, `{"info": {"description": `) ||
			!(strings.Index(s, `"images": `) < strings.Index(s, `"licenses": `) && strings.Index(s, `"licenses": `) < strings.Index(s, `"annotations": `)) {
			t.Errorf("%s: layout differs from the COCO files: %.120s", part, s)
		}
		byID := map[int]img{}
		for _, im := range doc.Images {
			byID[im.ID] = im
			want := fmt.Sprintf("COCO_%s2014_%012d.png", part, im.ID)
			if im.FileName != want || im.Width != 64 || im.Height != 64 {
				t.Errorf("image record %+v, want file %s 64x64", im, want)
			}
			if _, ok := files[part+"2014/"+im.FileName]; !ok {
				t.Errorf("missing %s2014/%s", part, im.FileName)
			}
		}
		images += len(doc.Images)
		perImage := map[int][]string{}
		for _, a := range doc.Annotations {
			if annIDs[a.ID] {
				t.Errorf("annotation id %d repeated", a.ID)
			}
			annIDs[a.ID] = true
			if _, ok := byID[a.ImageID]; !ok {
				t.Errorf("annotation %d for unknown image %d", a.ID, a.ImageID)
			}
			perImage[a.ImageID] = append(perImage[a.ImageID], a.Caption)
		}
		for _, s := range meta {
			if _, ok := byID[s.ID]; !ok {
				continue
			}
			got, want := append([]string(nil), perImage[s.ID]...), append([]string(nil), s.Captions...)
			sort.Strings(got)
			sort.Strings(want)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("image %d: captions %v, want %v", s.ID, got, want)
			}
		}
	}
	if images != 30 || len(annIDs) != 150 {
		t.Errorf("%d images, %d annotations; want 30, 150", images, len(annIDs))
	}
}

func TestOptionsValidate(t *testing.T) {
	err := Options{Format: "voc", N: 0, Size: 8, ImageFormat: "gif", JPEGQuality: 101}.Validate()
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{"format \"voc\"", "n = 0", "no output directory", "size 8", "image format \"gif\"", "quality 101"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if err := (Options{Format: "coco", N: 1, OutDir: "x"}).Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

func TestGenerateRefusesNonEmptyDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "keep.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Generate(Options{Format: "flickr8k", N: 3, OutDir: dir}); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("error %v, want a refusal", err)
	}
	if _, err := Generate(Options{Format: "flickr8k", N: 3, OutDir: dir, Overwrite: true}); err != nil {
		t.Errorf("with Overwrite: %v", err)
	}
}

func TestWriteSummary(t *testing.T) {
	res, err := Generate(Options{Format: "coco", N: 10, OutDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteSummary(&b, res); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "wrote 10 synthetic images (test 1, train 8, val 1)") {
		t.Errorf("summary %q", b.String())
	}
}
