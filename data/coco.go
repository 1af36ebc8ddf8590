package data

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// span locates a decoded string in a fieldReader's arena.
type span struct{ off, n int32 }

// fieldReader reads the fields of schema elements (an image, an annotation). A value of the wrong kind,
// or an integer with a fraction or out of range, is skipped and recorded as the element's schema problem
// (bad) so that the caller can leave the element out and go on; syntax errors are returned and stop the
// parse. Null counts as absent, as with encoding/json. Strings are decoded into one arena.
type fieldReader struct {
	r       *jsonReader
	arena   []byte
	bad     bool   // a field of the current element had the wrong type
	badWhat string // its description, for the problem report
	badLoc  location
}

// reset starts a new element.
func (f *fieldReader) reset() { f.bad = false }

// markBad records the first schema problem of the current element.
func (f *fieldReader) markBad(format string, args ...any) {
	if f.bad {
		return
	}
	f.bad = true
	f.badWhat = fmt.Sprintf(format, args...)
	f.badLoc = location{off: f.r.pos, path: f.r.pathString()}
}

// int64 reads an integer field.
func (f *fieldReader) int64() (v int64, present bool, err error) {
	r := f.r
	if isNull, err := r.null(); isNull || err != nil {
		return 0, false, err
	}
	if c := r.peek(); c != '-' && (c < '0' || c > '9') {
		f.markBad("want integer, got %s", r.kind())
		return 0, false, r.skip()
	}
	// Fast path: a non-negative integer of at most 18 digits, the common case.
	d, p := r.data, r.pos
	for p < len(d) && p-r.pos < 18 && d[p] >= '0' && d[p] <= '9' {
		v = v*10 + int64(d[p]-'0')
		p++
	}
	if n := p - r.pos; n > 0 && n < 18 && (n == 1 || d[r.pos] != '0') && (p == len(d) || d[p] != '.' && d[p] != 'e' && d[p] != 'E') {
		r.pos = p
		return v, true, nil
	}
	v = 0
	start := r.pos
	text, integer, err := r.number()
	if err != nil {
		return 0, false, err
	}
	if !integer {
		r.pos = start
		f.markBad("want integer, got number %s", text)
		r.pos = start + len(text)
		return 0, false, nil
	}
	end := r.pos
	r.pos = start
	if v, err = r.int64(); err == nil {
		return v, true, nil
	}
	f.markBad("integer %s out of range", text)
	r.pos = end
	return 0, false, nil
}

// str reads a string field into the arena.
func (f *fieldReader) str() (s span, present bool, err error) {
	r := f.r
	if isNull, err := r.null(); isNull || err != nil {
		return span{}, false, err
	}
	if r.peek() != '"' {
		f.markBad("want string, got %s", r.kind())
		return span{}, false, r.skip()
	}
	off := len(f.arena)
	if f.arena, err = r.strAppend(f.arena); err != nil {
		return span{}, false, err
	}
	if len(f.arena) > 1<<31-1 {
		return span{}, false, r.errorf("more than 2 GiB of strings")
	}
	return span{int32(off), int32(len(f.arena) - off)}, true, nil
}

// text converts the arena to a string once; get slices it.
type arenaText string

func (t arenaText) get(s span) string { return string(t[s.off : s.off+s.n]) }

// errResultsFile explains a COCO results file given as annotations.
var errResultsFile = errors.New("top level is an array: this looks like a COCO results file ([{\"image_id\", \"caption\"}]), not caption annotations")

// cocoImage is one element of a COCO "images" array.
type cocoImage struct {
	id   int64
	name span
	off  int // byte offset of the element
	idx  int // position in the array
}

// cocoAnn is one element of a COCO "annotations" array.
type cocoAnn struct {
	imageID, id int64
	caption     span
	idx         int // position in the array
	off         int // byte offset of the caption value (or of the element when it has none)
}

// parseCOCO reads MS-COCO caption annotations (captions_{train,val}{2014,2017}.json):
// {"images": [{"id", "file_name", ...}], "annotations": [{"image_id", "id", "caption"}], ...}.
// Images keep their file order; an image's captions are ordered by annotation id (the file lists
// annotations in no particular order). Images without annotations are kept (with no captions). Every
// image gets the split named by the file name (captions_train2014.json -> train), if any.
func parseCOCO(file string, data []byte) (*builder, error) {
	r := newJSONReader(data)
	if r.peek() == '[' {
		return nil, fmt.Errorf("%s: %w", file, errResultsFile)
	}
	b := newBuilder(file, data, 0)
	f := &fieldReader{r: r, arena: make([]byte, 0, len(data)/3)}
	var images []cocoImage
	var anns []cocoAnn
	sawImages := false
	err := r.object(func(key []byte) error {
		switch string(key) {
		case "images":
			sawImages = true
			return r.array(func(i int) error {
				f.reset()
				im := cocoImage{off: r.pos, idx: i}
				var hasID, hasName bool
				err := r.object(func(k []byte) error {
					var err error
					switch string(k) {
					case "id":
						im.id, hasID, err = f.int64()
					case "file_name":
						im.name, hasName, err = f.str()
					default:
						err = r.skip()
					}
					return err
				})
				if err != nil {
					return err
				}
				loc := location{off: im.off, pathFmt: "$.images[%d]", p1: i}
				switch {
				case f.bad:
					b.skip(f.badLoc, ReasonMalformed, "image left out: %s", f.badWhat)
				case !hasID:
					b.skip(loc, ReasonMalformed, "image has no \"id\"")
				case !hasName:
					b.skip(loc, ReasonMalformed, "image %d has no \"file_name\"", im.id)
				default:
					images = append(images, im)
				}
				return nil
			})
		case "annotations":
			anns = make([]cocoAnn, 0, len(data)/160) // real files: 150-170 bytes per annotation and image
			return r.array(func(i int) error {
				f.reset()
				a := cocoAnn{idx: i, off: r.pos}
				var hasImage, hasID, hasCaption bool
				err := r.object(func(k []byte) error {
					var err error
					switch string(k) {
					case "image_id":
						a.imageID, hasImage, err = f.int64()
					case "id":
						a.id, hasID, err = f.int64()
					case "caption":
						a.off = r.pos
						a.caption, hasCaption, err = f.str()
					default:
						err = r.skip()
					}
					return err
				})
				if err != nil {
					return err
				}
				loc := location{off: a.off, pathFmt: "$.annotations[%d]", p1: i}
				switch {
				case f.bad:
					b.skip(f.badLoc, ReasonMalformed, "annotation left out: %s", f.badWhat)
				case !hasImage:
					b.skip(loc, ReasonMalformed, "annotation has no \"image_id\"")
				case !hasID:
					b.skip(loc, ReasonMalformed, "annotation has no \"id\"")
				case !hasCaption:
					b.skip(loc, ReasonMalformed, "annotation %d has no \"caption\"", a.id)
				default:
					anns = append(anns, a)
				}
				return nil
			})
		default:
			return r.skip()
		}
	})
	if err == nil {
		err = r.end()
	}
	if err != nil {
		return nil, jsonFileError(file, data, err)
	}
	if !sawImages {
		return nil, fmt.Errorf("%s: no \"images\" array: not a COCO captions file", file)
	}
	text := arenaText(f.arena)
	f.arena = nil

	// Images: check names, ids and file names unique (first wins).
	b.images = make([]rawImage, 0, len(images))
	b.index = make(map[string]int, len(images))
	byID := newIDIndex(len(images))
	for _, im := range images {
		loc := location{off: im.off, pathFmt: "$.images[%d]", p1: im.idx}
		name := text.get(im.name)
		if err := checkName(name); err != nil {
			b.skip(loc, ReasonMalformed, "image %d: %v", im.id, err)
			continue
		}
		if _, dup := byID.get(im.id); dup {
			b.skip(loc, ReasonDuplicate, "image id %d seen before", im.id)
			continue
		}
		if _, dup := b.index[name]; dup {
			b.skip(loc, ReasonDuplicate, "image %d: file_name %q seen before", im.id, name)
			continue
		}
		byID.put(im.id, int32(len(b.images)))
		b.index[name] = len(b.images)
		b.images = append(b.images, rawImage{name: name, id: im.id, hasID: true, loc: loc})
	}

	// Annotations: group by image with a counting pass, so 600k captions cost two linear passes.
	owner := make([]int32, len(anns))
	counts := make([]int32, len(b.images)+1)
	annIDs := make([]int64, len(anns))
	for k := range anns {
		annIDs[k] = anns[k].id
	}
	dupAnn := duplicateIDs(annIDs)
	for k := range anns {
		a := &anns[k]
		owner[k] = -1
		loc := location{off: a.off, pathFmt: "$.annotations[%d]", p1: a.idx}
		j, ok := byID.get(a.imageID)
		if !ok {
			b.skip(loc, ReasonUnknownImage, "annotation %d: image_id %d is not in \"images\"", a.id, a.imageID)
			continue
		}
		if dupAnn != nil {
			if _, dup := dupAnn[a.id]; dup {
				b.skip(loc, ReasonDuplicate, "annotation id %d seen before", a.id)
				continue
			}
			dupAnn[a.id] = struct{}{}
		}
		owner[k] = j
		counts[j+1]++
	}
	for j := 1; j < len(counts); j++ {
		counts[j] += counts[j-1]
	}
	all := make([]rawCaption, counts[len(counts)-1])
	fill := append([]int32(nil), counts[:len(b.images)]...)
	for k := range anns {
		j := owner[k]
		if j < 0 {
			continue
		}
		a := &anns[k]
		raw := text.get(a.caption)
		// jsonReader yields valid UTF-8 (invalid bytes become U+FFFD, as with encoding/json).
		clean := cleanCaption(raw)
		if clean == "" {
			loc := location{off: a.off, pathFmt: "$.annotations[%d].caption", p1: a.idx}
			b.skip(loc, ReasonEmptyCaption, "annotation %d of image %d: caption %q is empty", a.id, a.imageID, raw)
			continue
		}
		all[fill[j]] = rawCaption{clean: clean, raw: raw, id: a.id}
		fill[j]++
	}
	split := splitFromFileName(file)
	for j := range b.images {
		caps := all[counts[j]:fill[j]:fill[j]]
		sortCaptionsByID(caps)
		b.images[j].caps = caps
		b.images[j].split = split
	}
	return b, nil
}

// duplicateIDs returns nil when all ids are distinct, else an empty set to track first occurrences with.
// Compact id ranges (COCO annotation ids are below 1M) are checked with a bitmap, others by sorting; both
// are much cheaper than a 600k-entry map.
func duplicateIDs(ids []int64) map[int64]struct{} {
	if len(ids) == 0 {
		return nil
	}
	lo, hi := slices.Min(ids), slices.Max(ids)
	if span := uint64(hi - lo); hi-lo >= 0 && span < 64*uint64(len(ids))+4096 {
		seen := make([]uint64, span/64+1)
		for _, id := range ids {
			d := uint64(id - lo)
			if seen[d/64]&(1<<(d%64)) != 0 {
				return make(map[int64]struct{}, len(ids))
			}
			seen[d/64] |= 1 << (d % 64)
		}
		return nil
	}
	ids = slices.Clone(ids)
	slices.Sort(ids)
	for i := 1; i < len(ids); i++ {
		if ids[i] == ids[i-1] {
			return make(map[int64]struct{}, len(ids))
		}
	}
	return nil
}

// idIndex maps image ids to positions: a dense table when the ids are compact (COCO ids are below
// 600,000 for 123k images), a map otherwise.
type idIndex struct {
	dense  []int32 // position+1, 0 = absent; ids below cap(dense) live here
	sparse map[int64]int32
}

func newIDIndex(n int) *idIndex {
	return &idIndex{dense: make([]int32, 0, 8*n+1024), sparse: map[int64]int32{}}
}

func (x *idIndex) get(id int64) (int32, bool) {
	if id >= 0 && id < int64(cap(x.dense)) {
		if id >= int64(len(x.dense)) {
			return 0, false
		}
		v := x.dense[id]
		return v - 1, v != 0
	}
	v, ok := x.sparse[id]
	return v, ok
}

func (x *idIndex) put(id int64, pos int32) {
	if id >= 0 && id < int64(cap(x.dense)) {
		if id >= int64(len(x.dense)) {
			x.dense = x.dense[:id+1]
		}
		x.dense[id] = pos + 1
		return
	}
	x.sparse[id] = pos
}

// splitFromFileName derives a split from an annotation file name: captions_train2014.json -> train,
// captions_val2017.json -> val, image_info_test2014.json -> test; "" when none matches.
func splitFromFileName(file string) string {
	base := strings.ToLower(filepath.Base(file))
	for _, s := range []string{"restval", "train", "val", "test"} {
		if strings.Contains(base, s) {
			return s
		}
	}
	return ""
}

// jsonFileError turns a jsonReader error into one naming the file, line, column and JSON path.
func jsonFileError(file string, data []byte, err error) error {
	var je *jsonError
	if !errors.As(err, &je) {
		return fmt.Errorf("%s: %w", file, err)
	}
	b := &builder{data: data}
	line, col := b.lineCol(je.Offset)
	return fmt.Errorf("%s:%d:%d: %s: %s", file, line, col, je.Path, je.Msg)
}

// karpathyImage is one element of a Karpathy "images" array.
type karpathyImage struct {
	dir, name, split span
	hasDir, hasSplit bool
	cocoid           int64
	hasCOCOID        bool
	sents            []karpathySentence
	off, idx         int
}

// karpathySentence is one element of an image's "sentences".
type karpathySentence struct {
	raw span
	id  int64
	off int
	idx int
}

// parseKarpathy reads Karpathy's dataset_{flickr8k,flickr30k,coco}.json:
// {"images": [{"filepath"?, "filename", "split", "cocoid"?, "sentences": [{"raw", "sentid", ...}]}],
// "dataset": ...}. The image name is filepath/filename when filepath is present (COCO). Captions are the
// "raw" texts in file order ("tokens" are ignored: tokenizing is the tokenizer's job). Records with an
// empty sentence list (the Flickr8k copy whose test captions were blanked) are kept without captions.
// A bad sentence leaves out only itself. The "restval" split is kept as is here; Load maps it
// (LoadOptions.Restval).
func parseKarpathy(file string, data []byte) (*builder, error) {
	r := newJSONReader(data)
	if r.peek() == '[' {
		return nil, fmt.Errorf("%s: %w", file, errResultsFile)
	}
	b := newBuilder(file, data, 0)
	f := &fieldReader{r: r, arena: make([]byte, 0, len(data)/4)}
	sf := &fieldReader{r: r} // sentence fields, sharing f's arena
	var images []karpathyImage
	sawImages := false
	err := r.object(func(key []byte) error {
		if string(key) != "images" {
			return r.skip()
		}
		sawImages = true
		return r.array(func(i int) error {
			f.reset()
			im := karpathyImage{off: r.pos, idx: i}
			var hasName bool
			err := r.object(func(k []byte) error {
				var err error
				switch string(k) {
				case "filepath":
					im.dir, im.hasDir, err = f.str()
				case "filename":
					im.name, hasName, err = f.str()
				case "split":
					im.split, im.hasSplit, err = f.str()
				case "cocoid":
					im.cocoid, im.hasCOCOID, err = f.int64()
				case "sentences":
					if isNull, err := r.null(); isNull || err != nil {
						return err
					}
					if r.peek() != '[' {
						f.markBad("sentences: want array, got %s", r.kind())
						return r.skip()
					}
					err = r.array(func(j int) error {
						sf.reset()
						sf.arena = f.arena
						s := karpathySentence{off: r.pos, idx: j}
						var hasRaw, hasID bool
						err := r.object(func(k []byte) error {
							var err error
							switch string(k) {
							case "raw":
								s.off = r.pos
								s.raw, hasRaw, err = sf.str()
							case "sentid":
								s.id, hasID, err = sf.int64()
							default:
								err = r.skip()
							}
							return err
						})
						f.arena = sf.arena
						if err != nil {
							return err
						}
						loc := location{off: s.off, pathFmt: "$.images[%d].sentences[%d]", p1: i, p2: j}
						switch {
						case sf.bad:
							b.skip(sf.badLoc, ReasonMalformed, "sentence left out: %s", sf.badWhat)
						case !hasRaw:
							b.skip(loc, ReasonMalformed, "sentence has no \"raw\"")
						case !hasID:
							b.skip(loc, ReasonMalformed, "sentence has no \"sentid\"")
						default:
							im.sents = append(im.sents, s)
						}
						return nil
					})
				default:
					err = r.skip()
				}
				return err
			})
			if err != nil {
				return err
			}
			loc := location{off: im.off, pathFmt: "$.images[%d]", p1: i}
			switch {
			case f.bad:
				b.skip(f.badLoc, ReasonMalformed, "image left out: %s", f.badWhat)
			case !hasName:
				b.skip(loc, ReasonMalformed, "image has no \"filename\"")
			default:
				images = append(images, im)
			}
			return nil
		})
	})
	if err == nil {
		err = r.end()
	}
	if err != nil {
		return nil, jsonFileError(file, data, err)
	}
	if !sawImages {
		return nil, fmt.Errorf("%s: no \"images\" array: not a Karpathy split file", file)
	}
	text := arenaText(f.arena)
	f.arena = nil

	b.images = make([]rawImage, 0, len(images))
	b.index = make(map[string]int, len(images))
	var sentIDs []int64
	for _, im := range images {
		for _, s := range im.sents {
			sentIDs = append(sentIDs, s.id)
		}
	}
	dupSent := duplicateIDs(sentIDs)
	for _, im := range images {
		loc := location{off: im.off, pathFmt: "$.images[%d]", p1: im.idx}
		name := text.get(im.name)
		if dir := strings.TrimSuffix(text.get(im.dir), "/"); im.hasDir && dir != "" {
			name = dir + "/" + name
		}
		if err := checkName(name); err != nil {
			b.skip(loc, ReasonMalformed, "%v", err)
			continue
		}
		if _, dup := b.index[name]; dup {
			b.skip(loc, ReasonDuplicate, "image %q seen before", name)
			continue
		}
		k := b.imageIndex(name, loc)
		img := &b.images[k]
		img.id, img.hasID = im.cocoid, im.hasCOCOID
		if im.hasSplit {
			img.split = text.get(im.split)
		}
		img.caps = make([]rawCaption, 0, len(im.sents))
		for _, s := range im.sents {
			if dupSent != nil {
				if _, dup := dupSent[s.id]; dup {
					b.skip(location{off: s.off, pathFmt: "$.images[%d].sentences[%d]", p1: im.idx, p2: s.idx}, ReasonDuplicate, "sentid %d seen before", s.id)
					continue
				}
				dupSent[s.id] = struct{}{}
			}
			b.addCaption(k, text.get(s.raw), s.id, location{off: s.off, pathFmt: "$.images[%d].sentences[%d].raw", p1: im.idx, p2: s.idx})
		}
	}
	return b, nil
}
