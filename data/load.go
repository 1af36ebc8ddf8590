package data

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// LoadOptions says what to read and how to assign splits.
type LoadOptions struct {
	// Format of the annotation files; "" or FormatAuto detects it from each file's content.
	Format Format
	// Annotations are the annotation files. Several files of one format are merged (for example
	// captions_train2017.json and captions_val2017.json); an image may appear in only one of them.
	Annotations []string
	// ImagesDir is the directory image names are relative to; Record.Path joins the two.
	ImagesDir string
	// CheckImages reports every record whose image file is missing (ReasonMissingImage).
	CheckImages bool
	// SplitFiles are split lists, "path" (split named by the file name: Flickr_8k.trainImages.txt -> train,
	// devImages -> val) or "name=path". When given they define the splits: images in no list are unassigned.
	SplitFiles []string
	// SplitFractions, when SplitFiles is empty, assign splits at random by image (see Seed), replacing any
	// split the format carries. Otherwise the format's splits are kept (Karpathy per-image splits; COCO
	// train/val from the file name); Flickr token and CSV files carry none.
	SplitFractions []SplitFraction
	// Seed drives the seeded split.
	Seed uint64
	// Restval is the split Karpathy's "restval" images get: "" means "train" (the usual Karpathy training
	// set, 113,287 COCO images); "restval" keeps them apart.
	Restval string
	// SkipBad leaves out malformed lines, empty captions, duplicates, unknown or missing images and reports
	// them in Dataset.Problems; without it the first such problems make Load fail.
	SkipBad bool
}

// LoadError is returned when the input has problems and LoadOptions.SkipBad is false.
type LoadError struct {
	Problems []Problem // the problems that would be skipped, in the order found (per file, then split lists, then image files)
}

// maxListedProblems bounds how many problems LoadError.Error spells out.
const maxListedProblems = 10

// Error lists the first problems and counts the rest.
func (e *LoadError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d problem(s) in the input (skip them with --skip-bad):", len(e.Problems))
	for i, p := range e.Problems {
		if i == maxListedProblems {
			fmt.Fprintf(&b, "\n  ... and %d more", len(e.Problems)-i)
			break
		}
		b.WriteString("\n  ")
		b.WriteString(p.Error())
	}
	return b.String()
}

// Load reads annotation files into a Dataset. See LoadOptions and the per-format parsers for how each
// file's quirks are handled.
func Load(opts LoadOptions) (*Dataset, error) {
	if len(opts.Annotations) == 0 {
		return nil, errors.New("no annotation files given")
	}
	format, err := ParseFormat(string(opts.Format))
	if err != nil {
		return nil, err
	}
	if len(opts.SplitFiles) == 0 && len(opts.SplitFractions) > 0 {
		if err := checkFractions(opts.SplitFractions); err != nil {
			return nil, err
		}
	}
	specs, err := parseSplitSpecs(opts.SplitFiles)
	if err != nil {
		return nil, err
	}
	if opts.ImagesDir != "" {
		if st, err := os.Stat(opts.ImagesDir); err != nil {
			return nil, fmt.Errorf("images directory: %w", err)
		} else if !st.IsDir() {
			return nil, fmt.Errorf("images directory %s is not a directory", opts.ImagesDir)
		}
	}

	ds := &Dataset{Files: append([]string(nil), opts.Annotations...)}
	var builders []*builder
	for _, file := range opts.Annotations {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		f := format
		if f == FormatAuto {
			if f, err = DetectFormat(file, data); err != nil {
				return nil, err
			}
		}
		if ds.Format == "" {
			ds.Format = f
		} else if f != ds.Format {
			return nil, fmt.Errorf("%s is %s but %s is %s: annotation files must share one format", file, f, ds.Files[0], ds.Format)
		}
		b, err := parseFile(f, file, data)
		if err != nil {
			return nil, err
		}
		builders = append(builders, b)
	}

	images, problems := mergeImages(builders)
	if ds.Format == FormatKarpathy {
		restval := opts.Restval
		if restval == "" {
			restval = "train"
		}
		for i := range images {
			if images[i].split == "restval" {
				images[i].split = restval
			}
		}
	}
	ds.IDScheme = assignIDs(images)

	// Splits.
	names := make([]string, len(images))
	splits := make([]string, len(images))
	for i := range images {
		names[i], splits[i] = images[i].name, images[i].split
	}
	switch {
	case len(specs) > 0:
		ps, err := assignSplitFiles(specs, names, splits)
		if err != nil {
			return nil, err
		}
		problems = append(problems, ps...)
	case len(opts.SplitFractions) > 0:
		splits = seededSplit(names, opts.SplitFractions, opts.Seed)
	}

	// Records.
	keep := make([]bool, len(images))
	for i := range keep {
		keep[i] = true
	}
	if opts.CheckImages {
		ps, err := checkImageFiles(opts.ImagesDir, names, keep)
		if err != nil {
			return nil, err
		}
		problems = append(problems, ps...)
	}
	ds.Records = buildRecords(images, splits, keep, opts.ImagesDir)
	ds.Problems = problems

	if !opts.SkipBad {
		var bad []Problem
		for _, p := range problems {
			if p.Action == ActionSkipped {
				bad = append(bad, p)
			}
		}
		if len(bad) > 0 {
			return nil, &LoadError{Problems: bad}
		}
	}
	return ds, nil
}

// parseFile runs the parser of one format.
func parseFile(f Format, file string, data []byte) (*builder, error) {
	switch f {
	case FormatFlickrToken:
		return parseFlickrToken(file, data), nil
	case FormatFlickr8kCSV:
		return parseFlickr8kCSV(file, data)
	case FormatFlickr30kCSV:
		return parseFlickr30kCSV(file, data)
	case FormatCOCO:
		return parseCOCO(file, data)
	case FormatKarpathy:
		return parseKarpathy(file, data)
	}
	return nil, fmt.Errorf("%s: unknown format %q", file, f)
}

// mergeImages concatenates the images of several files; an image name (or COCO id) seen in an earlier
// file makes the later entry a duplicate.
func mergeImages(bs []*builder) ([]rawImage, []Problem) {
	var problems []Problem
	if len(bs) == 1 {
		return bs[0].images, bs[0].problems
	}
	var out []rawImage
	seen := map[string]string{}
	seenID := map[int64]string{}
	for _, b := range bs {
		problems = append(problems, b.problems...)
		for _, im := range b.images {
			if f, dup := seen[im.name]; dup {
				b.skip(im.loc, ReasonDuplicate, "image %s already read from %s", im.name, f)
				problems = append(problems, b.problems[len(b.problems)-1])
				continue
			}
			if f, dup := seenID[im.id]; im.hasID && dup {
				b.skip(im.loc, ReasonDuplicate, "image id %d already read from %s", im.id, f)
				problems = append(problems, b.problems[len(b.problems)-1])
				continue
			}
			seen[im.name] = b.file
			if im.hasID {
				seenID[im.id] = b.file
			}
			out = append(out, im)
		}
	}
	return out, problems
}

// assignIDs gives every image a numeric id and returns the scheme used (see Record.ID).
func assignIDs(images []rawImage) string {
	all := len(images) > 0
	for i := range images {
		if !images[i].hasID {
			all = false
			break
		}
	}
	if all {
		return IDCOCO
	}
	ids := make([]int64, len(images))
	seen := make(map[int64]struct{}, len(images))
	photo := true
	for i := range images {
		id, ok := leadingNumber(path.Base(images[i].name))
		if _, dup := seen[id]; !ok || dup {
			photo = false
			break
		}
		seen[id] = struct{}{}
		ids[i] = id
	}
	for i := range images {
		if photo {
			images[i].id = ids[i]
		} else {
			images[i].id = int64(i + 1)
		}
		images[i].hasID = true
	}
	if photo {
		return IDFlickrPhoto
	}
	return IDPosition
}

// leadingNumber parses the decimal digits that start s (at most 15, so ids stay exact in JSON doubles),
// followed by '_' or '.' as in Flickr file names (1000268201_693b08cb0e.jpg, 1000092795.jpg).
func leadingNumber(s string) (int64, bool) {
	n := 0
	var v int64
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		v = v*10 + int64(s[n]-'0')
		n++
		if n > 15 {
			return 0, false
		}
	}
	if n == 0 || n == len(s) || (s[n] != '_' && s[n] != '.') {
		return 0, false
	}
	return v, true
}

// buildRecords turns parsed images into records; captions share three backing arrays.
func buildRecords(images []rawImage, splits []string, keep []bool, dir string) []Record {
	nrec, ncap := 0, 0
	for i := range images {
		if keep[i] {
			nrec++
			ncap += len(images[i].caps)
		}
	}
	recs := make([]Record, 0, nrec)
	clean := make([]string, 0, ncap)
	raw := make([]string, 0, ncap)
	ids := make([]int64, 0, ncap)
	for i := range images {
		if !keep[i] {
			continue
		}
		im := &images[i]
		start := len(clean)
		for _, c := range im.caps {
			clean = append(clean, c.clean)
			raw = append(raw, c.raw)
			ids = append(ids, c.id)
		}
		end := len(clean)
		p := im.name
		if dir != "" {
			p = filepath.Join(dir, filepath.FromSlash(im.name))
		}
		recs = append(recs, Record{
			ID:          im.id,
			Name:        im.name,
			Path:        p,
			Split:       splits[i],
			Captions:    clean[start:end:end],
			RawCaptions: raw[start:end:end],
			CaptionIDs:  ids[start:end:end],
		})
	}
	return recs
}

// checkImageFiles marks images whose file is missing. Each directory is listed once (os.ReadDir), which
// is much faster than a stat per image on large datasets.
func checkImageFiles(root string, names []string, keep []bool) ([]Problem, error) {
	byDir := map[string][]int{}
	for i, n := range names {
		d := path.Dir(n)
		byDir[d] = append(byDir[d], i)
	}
	var problems []Problem
	for d, idx := range byDir {
		dir := filepath.Join(root, filepath.FromSlash(d))
		present := map[string]bool{}
		entries, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("checking images: %w", err)
		}
		for _, e := range entries {
			if e.Type().IsRegular() {
				present[e.Name()] = true
			} else if e.Type()&fs.ModeSymlink != 0 {
				if st, err := os.Stat(filepath.Join(dir, e.Name())); err == nil && st.Mode().IsRegular() {
					present[e.Name()] = true
				}
			}
		}
		for _, i := range idx {
			if !present[path.Base(names[i])] {
				keep[i] = false
				problems = append(problems, Problem{File: filepath.Join(dir, path.Base(names[i])), Reason: ReasonMissingImage, Action: ActionSkipped, Detail: "no such file"})
			}
		}
	}
	// Report in dataset order, not map order.
	order := make(map[string]int, len(names))
	for i, n := range names {
		order[filepath.Join(root, filepath.FromSlash(n))] = i
	}
	sortProblems(problems, func(p Problem) int { return order[p.File] })
	return problems, nil
}

func sortProblems(ps []Problem, key func(Problem) int) {
	sort.SliceStable(ps, func(i, j int) bool { return key(ps[i]) < key(ps[j]) })
}

// DetectFormat tells the format of an annotation file from its content: JSON with "annotations" or COCO
// image records is COCO, JSON with "sentences" or "dataset" is Karpathy; a text file is told by its first
// line (CSV header "image,caption", header "image_name| comment_number| comment", or "name#n<TAB>caption").
func DetectFormat(file string, data []byte) (Format, error) {
	trimmed := bytes.TrimLeft(bytes.TrimPrefix(data, []byte(utf8BOM)), " \t\r\n")
	if len(trimmed) == 0 {
		return "", fmt.Errorf("%s: empty file", file)
	}
	if trimmed[0] == '{' || trimmed[0] == '[' {
		return detectJSON(file, data)
	}
	var lines []string // the first two non-blank lines
	eachLine(string(trimmed[:min(len(trimmed), 64<<10)]), func(_ int, line string) {
		if len(lines) < 2 && strings.TrimSpace(line) != "" {
			lines = append(lines, line)
		}
	})
	first := lines[0]
	switch {
	case headerIs(strings.Split(first, ","), "image", "caption"):
		return FormatFlickr8kCSV, nil
	case headerIs(strings.Split(first, "|"), "image_name", "comment_number", "comment"),
		headerIs(strings.Split(first, ","), "image_name", "comment_number", "comment"):
		return FormatFlickr30kCSV, nil
	}
	// A token file is told by its first line, or by its second (some copies have a header line, which
	// the parser then reports as malformed).
	for _, line := range lines {
		key, _, ok := strings.Cut(line, "\t")
		if !ok {
			key, _, _ = strings.Cut(line, " ")
		}
		if _, _, isKey := splitTokenKey(strings.TrimSpace(key)); isKey {
			return FormatFlickrToken, nil
		}
	}
	return "", fmt.Errorf("%s: cannot detect the annotation format: first line %q is not a Flickr token line (name.jpg#0<TAB>caption), a captions.txt header (image,caption) or a results.csv header (image_name| comment_number| comment); give the format explicitly (%s)", file, clip(first), joinFormats())
}

// errDetected stops the JSON walk of detectJSON early.
var errDetected = errors.New("detected")

// detectJSON looks at the top-level keys and the first image record.
func detectJSON(file string, data []byte) (Format, error) {
	r := newJSONReader(data)
	if r.peek() == '[' {
		return "", fmt.Errorf("%s: %w", file, errResultsFile)
	}
	var found Format
	err := r.object(func(key []byte) error {
		switch string(key) {
		case "annotations":
			found = FormatCOCO
			return errDetected
		case "dataset":
			found = FormatKarpathy
			return errDetected
		case "images":
			return r.array(func(int) error {
				if err := r.object(func(k []byte) error {
					switch string(k) {
					case "file_name", "coco_url", "flickr_url":
						found = FormatCOCO
						return errDetected
					case "filename", "sentences", "sentids", "filepath":
						found = FormatKarpathy
						return errDetected
					}
					return r.skip()
				}); err != nil {
					return err
				}
				return errDetected // first record told nothing; stop looking at records
			})
		}
		return r.skip()
	})
	if found != "" {
		return found, nil
	}
	if err != nil && !errors.Is(err, errDetected) {
		return "", jsonFileError(file, data, err)
	}
	return "", fmt.Errorf("%s: cannot detect the annotation format: JSON without \"annotations\" (COCO) or \"images\" records with \"sentences\" (Karpathy); give the format explicitly (%s)", file, joinFormats())
}
