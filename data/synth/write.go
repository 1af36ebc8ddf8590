package synth

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"image/jpeg"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
)

// Options configures Generate.
type Options struct {
	// Format is the annotation layout: "flickr8k" or "coco".
	Format string
	// N is the number of images.
	N int
	// OutDir is the dataset root; it must be empty or absent unless Overwrite is set.
	OutDir string
	// Seed selects the dataset; the same Options give byte-identical files.
	Seed int64
	// Size is the side of the square images in pixels (32..4096); 0 means 64.
	Size int
	// ImageFormat is "jpg" (default) or "png".
	ImageFormat string
	// JPEGQuality is the JPEG quality 1..100; 0 means 95.
	JPEGQuality int
	// Overwrite allows writing into a non-empty OutDir (files of the same name are replaced, others kept).
	Overwrite bool
	// Workers is the number of goroutines encoding images; 0 means GOMAXPROCS.
	Workers int
}

// Formats lists the supported annotation layouts.
var Formats = []string{"flickr8k", "coco"}

// withDefaults fills zero values.
func (o Options) withDefaults() Options {
	if o.Size == 0 {
		o.Size = 64
	}
	if o.ImageFormat == "" {
		o.ImageFormat = "jpg"
	}
	if o.JPEGQuality == 0 {
		o.JPEGQuality = 95
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	return o
}

// Validate reports every invalid option at once.
func (o Options) Validate() error {
	o = o.withDefaults()
	var errs []error
	if o.Format != "flickr8k" && o.Format != "coco" {
		errs = append(errs, fmt.Errorf("format %q: want flickr8k or coco", o.Format))
	}
	if o.N < 1 || o.N > 10_000_000 {
		errs = append(errs, fmt.Errorf("n = %d: want 1..10000000 images", o.N))
	}
	if o.OutDir == "" {
		errs = append(errs, errors.New("no output directory"))
	}
	if o.Size < 32 || o.Size > 4096 {
		errs = append(errs, fmt.Errorf("size %d: want 32..4096 pixels", o.Size))
	}
	if o.ImageFormat != "jpg" && o.ImageFormat != "png" {
		errs = append(errs, fmt.Errorf("image format %q: want jpg or png", o.ImageFormat))
	}
	if o.JPEGQuality < 1 || o.JPEGQuality > 100 {
		errs = append(errs, fmt.Errorf("jpeg quality %d: want 1..100", o.JPEGQuality))
	}
	return errors.Join(errs...)
}

// Result describes a generated dataset.
type Result struct {
	Dir    string   // dataset root
	Format string   // flickr8k or coco
	Scenes []Scene  // with File and Split set
	Files  []string // every file written, relative to Dir, sorted
}

// SplitCounts returns the number of images per split name.
func (r *Result) SplitCounts() map[string]int {
	m := map[string]int{}
	for _, s := range r.Scenes {
		m[s.Split]++
	}
	return m
}

// WriteSummary prints a short human-readable account of r.
func WriteSummary(w io.Writer, r *Result) error {
	counts := r.SplitCounts()
	names := make([]string, 0, len(counts))
	for k := range counts {
		names = append(names, k)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = fmt.Sprintf("%s %d", k, counts[k])
	}
	_, err := fmt.Fprintf(w, "wrote %d synthetic images (%s) with %d captions each in %s layout to %s\n",
		len(r.Scenes), strings.Join(parts, ", "), CaptionsPerImage, r.Format, r.Dir)
	return err
}

// splitSizes divides n images into train/val/test as 80/10/10 (val and test at least 1 each when n >= 3).
func splitSizes(n int) (train, val, test int) {
	if n < 3 {
		return n, 0, 0
	}
	val = max(1, n/10)
	test = max(1, n/10)
	return n - val - test, val, test
}

// Generate draws the scenes, renders and encodes the images and writes the annotation files.
//
// flickr8k layout (as the original release and its Kaggle copy):
//
//	Images/<id>_<hex>.jpg
//	Flickr8k.token.txt                      <file>#<n>\t<caption>, grouped by image, sorted by file name
//	Flickr_8k.trainImages.txt, Flickr_8k.devImages.txt, Flickr_8k.testImages.txt
//	captions.txt                            Kaggle CSV: header "image,caption"
//
// coco layout (MS-COCO 2014 captions; val holds the 10% val and 10% test images):
//
//	train2014/COCO_train2014_<12-digit id>.jpg, val2014/COCO_val2014_<12-digit id>.jpg
//	annotations/captions_train2014.json, annotations/captions_val2014.json
//
// Both also get scenes.json: the ground-truth metadata of every image.
func Generate(opts Options) (*Result, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("synth: %w", err)
	}
	o := opts.withDefaults()
	if err := prepareDir(o.OutDir, o.Overwrite); err != nil {
		return nil, err
	}
	scenes := NewScenes(o.N, o.Size, o.Seed)
	assign(scenes, o, newRNG(o.Seed^0x5eed))
	res := &Result{Dir: o.OutDir, Format: o.Format, Scenes: scenes}
	if err := writeImages(o, scenes); err != nil {
		return nil, err
	}
	for _, s := range scenes {
		res.Files = append(res.Files, s.File)
	}
	var files map[string][]byte
	var err error
	if o.Format == "flickr8k" {
		files, err = flickrFiles(scenes)
	} else {
		files, err = cocoFiles(scenes, newRNG(o.Seed^0xc0c0))
	}
	if err != nil {
		return nil, err
	}
	meta, err := json.MarshalIndent(scenes, "", " ")
	if err != nil {
		return nil, err
	}
	files["scenes.json"] = append(meta, '\n')
	for name, data := range files {
		if err := writeFile(filepath.Join(o.OutDir, name), data); err != nil {
			return nil, err
		}
		res.Files = append(res.Files, name)
	}
	sort.Strings(res.Files)
	return res, nil
}

// prepareDir creates dir, refusing a non-empty one unless overwrite is set.
func prepareDir(dir string, overwrite bool) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("synth: output directory: %w", err)
	case len(entries) > 0 && !overwrite:
		return fmt.Errorf("synth: output directory %s is not empty (use --force / Options.Overwrite to write into it)", dir)
	}
	return os.MkdirAll(dir, 0o755)
}

// assign sets every scene's split and file name. Flickr8k names look like the real ones
// (<10 digits>_<10 hex>.jpg); COCO names carry unique random image ids.
func assign(scenes []Scene, o Options, g *rng) {
	nTrain, nVal, _ := splitSizes(len(scenes))
	used := map[uint64]bool{}
	unique := func(lo, span uint64) uint64 {
		for {
			v := lo + g.next()%span
			if !used[v] {
				used[v] = true
				return v
			}
		}
	}
	for i := range scenes {
		s := &scenes[i]
		split := "train"
		if i >= nTrain+nVal {
			split = "test"
		} else if i >= nTrain {
			split = "val"
		}
		s.Split = split
		if o.Format == "flickr8k" {
			id := unique(1_000_000_000, 9_000_000_000)
			s.File = fmt.Sprintf("Images/%d_%010x.%s", id, g.next()&0xffffffffff, o.ImageFormat)
			continue
		}
		// Real COCO ids are 6-digit numbers; keep ours small too (room for 2n ids).
		id := unique(1, uint64(max(999_999, 2*len(scenes))))
		s.ID = int(id)
		dir := "train2014"
		if split != "train" {
			dir = "val2014"
		}
		s.File = fmt.Sprintf("%s/COCO_%s_%012d.%s", dir, dir, id, o.ImageFormat)
	}
}

func writeFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	return nil
}

// writeImages renders and encodes every scene on o.Workers goroutines; each file depends only on its scene.
func writeImages(o Options, scenes []Scene) error {
	jobs := make(chan int)
	errs := make([]error, o.Workers)
	var wg sync.WaitGroup
	for w := 0; w < o.Workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var buf bytes.Buffer
			for i := range jobs {
				if errs[w] != nil {
					continue // drain
				}
				buf.Reset()
				img := Render(scenes[i])
				var err error
				if o.ImageFormat == "png" {
					err = png.Encode(&buf, img)
				} else {
					err = jpeg.Encode(&buf, img, &jpeg.Options{Quality: o.JPEGQuality})
				}
				if err == nil {
					err = writeFile(filepath.Join(o.OutDir, scenes[i].File), buf.Bytes())
				}
				errs[w] = err
			}
		}(w)
	}
	for i := range scenes {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	return errors.Join(errs...)
}

// baseName is the file name without its directory.
func baseName(s Scene) string { return filepath.Base(s.File) }

// flickrFiles builds the Flickr8k text files.
func flickrFiles(scenes []Scene) (map[string][]byte, error) {
	byName := append([]Scene(nil), scenes...)
	sort.Slice(byName, func(i, j int) bool { return baseName(byName[i]) < baseName(byName[j]) })
	var token bytes.Buffer
	var kaggle bytes.Buffer
	cw := csv.NewWriter(&kaggle)
	if err := cw.Write([]string{"image", "caption"}); err != nil {
		return nil, err
	}
	for _, s := range byName {
		for n, c := range s.Captions {
			fmt.Fprintf(&token, "%s#%d\t%s\n", baseName(s), n, c)
			if err := cw.Write([]string{baseName(s), c}); err != nil {
				return nil, err
			}
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return nil, err
	}
	lists := map[string]*bytes.Buffer{"train": {}, "val": {}, "test": {}}
	for _, s := range scenes {
		fmt.Fprintln(lists[s.Split], baseName(s))
	}
	return map[string][]byte{
		"Flickr8k.token.txt":        token.Bytes(),
		"captions.txt":              kaggle.Bytes(),
		"Flickr_8k.trainImages.txt": lists["train"].Bytes(),
		"Flickr_8k.devImages.txt":   lists["val"].Bytes(),
		"Flickr_8k.testImages.txt":  lists["test"].Bytes(),
	}, nil
}

// COCO JSON records, fields in the order of the real 2014 files.
type cocoInfo struct {
	Description string `json:"description"`
	URL         string `json:"url"`
	Version     string `json:"version"`
	Year        int    `json:"year"`
	Contributor string `json:"contributor"`
	DateCreated string `json:"date_created"`
}

type cocoImage struct {
	License      int    `json:"license"`
	FileName     string `json:"file_name"`
	CocoURL      string `json:"coco_url"`
	Height       int    `json:"height"`
	Width        int    `json:"width"`
	DateCaptured string `json:"date_captured"`
	FlickrURL    string `json:"flickr_url"`
	ID           int    `json:"id"`
}

type cocoLicense struct {
	URL  string `json:"url"`
	ID   int    `json:"id"`
	Name string `json:"name"`
}

type cocoAnnotation struct {
	ImageID int    `json:"image_id"`
	ID      int    `json:"id"`
	Caption string `json:"caption"`
}

type cocoFile struct {
	Info        cocoInfo         `json:"info"`
	Images      []cocoImage      `json:"images"`
	Licenses    []cocoLicense    `json:"licenses"`
	Annotations []cocoAnnotation `json:"annotations"`
}

// cocoFiles builds captions_train2014.json and captions_val2014.json. Annotation ids are unique random
// numbers and annotations are shuffled (not grouped by image), as in the real files.
func cocoFiles(scenes []Scene, g *rng) (map[string][]byte, error) {
	out := map[string][]byte{}
	usedIDs := map[int]bool{}
	for _, part := range []string{"train", "val"} {
		f := cocoFile{
			Info: cocoInfo{Description: "imgcap synthetic shapes (MS-COCO 2014 caption layout)", URL: "",
				Version: "1.0", Year: 2014, Contributor: "imgcap synth", DateCreated: "2014/01/01"},
			Licenses: []cocoLicense{{URL: "", ID: 1, Name: "Synthetic image, no rights reserved"}},
		}
		for _, s := range scenes {
			if (s.Split == "train") != (part == "train") {
				continue
			}
			f.Images = append(f.Images, cocoImage{License: 1, FileName: baseName(s), Height: s.Height, Width: s.Width,
				DateCaptured: "2014-01-01 00:00:00", ID: s.ID})
			for _, c := range s.Captions {
				id := 0
				for id == 0 || usedIDs[id] {
					id = 1 + g.intn(9_999_999)
				}
				usedIDs[id] = true
				f.Annotations = append(f.Annotations, cocoAnnotation{ImageID: s.ID, ID: id, Caption: c})
			}
		}
		for i := len(f.Annotations) - 1; i > 0; i-- {
			j := g.intn(i + 1)
			f.Annotations[i], f.Annotations[j] = f.Annotations[j], f.Annotations[i]
		}
		if f.Images == nil {
			f.Images = []cocoImage{}
		}
		if f.Annotations == nil {
			f.Annotations = []cocoAnnotation{}
		}
		data, err := pythonJSON(f)
		if err != nil {
			return nil, err
		}
		out["annotations/captions_"+part+"2014.json"] = data
	}
	return out, nil
}

// pythonJSON encodes v on one line with Python json.dumps' default separators (", " and ": "), as the real
// COCO files are written. Strings are re-encoded with HTML escaping off; synthetic captions are ASCII.
func pythonJSON(v any) ([]byte, error) {
	var compact bytes.Buffer
	enc := json.NewEncoder(&compact)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	// Insert a space after every ',' and ':' outside strings.
	src := bytes.TrimRight(compact.Bytes(), "\n")
	var out bytes.Buffer
	w := bufio.NewWriter(&out)
	inStr, esc := false, false
	for _, c := range src {
		_ = w.WriteByte(c)
		switch {
		case inStr && esc:
			esc = false
		case inStr && c == '\\':
			esc = true
		case c == '"':
			inStr = !inStr
		case !inStr && (c == ',' || c == ':'):
			_ = w.WriteByte(' ')
		}
	}
	if err := w.Flush(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}
