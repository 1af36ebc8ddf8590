package data

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// rawCaption is a caption as parsed, before records are built.
type rawCaption struct {
	clean, raw string
	id         int64
}

// rawImage is an image as parsed from one annotation file.
type rawImage struct {
	name  string
	id    int64 // COCO id when hasID
	hasID bool
	split string
	caps  []rawCaption
	loc   location // where the image was first seen
}

// location is where something was read: a text line, or a JSON byte offset and path.
type location struct {
	line int    // text files: 1-based line
	off  int    // JSON files: byte offset (line and column are computed on demand)
	path string // JSON path, or:
	// pathFmt with one or two %d verbs filled from p1, p2: the path is only formatted when a problem is
	// reported, which keeps 600k-element files fast.
	pathFmt string
	p1, p2  int
}

// jsonPath returns the JSON path of loc, "" for text locations.
func (l location) jsonPath() string {
	switch {
	case l.path != "" || l.pathFmt == "":
		return l.path
	case strings.Count(l.pathFmt, "%d") == 2:
		return fmt.Sprintf(l.pathFmt, l.p1, l.p2)
	default:
		return fmt.Sprintf(l.pathFmt, l.p1)
	}
}

// builder collects the images of one annotation file and the problems found in it.
type builder struct {
	file     string
	data     []byte // the file content, to turn JSON offsets into line:column
	lines    []int  // offsets of line starts, built on first use
	images   []rawImage
	index    map[string]int
	problems []Problem
}

func newBuilder(file string, data []byte, sizeHint int) *builder {
	return &builder{file: file, data: data, index: make(map[string]int, sizeHint), images: make([]rawImage, 0, sizeHint)}
}

// report records a problem at loc.
func (b *builder) report(loc location, reason Reason, action Action, format string, args ...any) {
	p := Problem{File: b.file, Line: loc.line, Path: loc.jsonPath(), Reason: reason, Action: action, Detail: fmt.Sprintf(format, args...)}
	if loc.line == 0 && p.Path != "" {
		p.Line, p.Column = b.lineCol(loc.off)
	}
	b.problems = append(b.problems, p)
}

// skip records a problem whose line/value/caption was left out.
func (b *builder) skip(loc location, reason Reason, format string, args ...any) {
	b.report(loc, reason, ActionSkipped, format, args...)
}

// lineCol converts a byte offset of b.data to a 1-based line and byte column.
func (b *builder) lineCol(off int) (int, int) {
	if b.lines == nil {
		b.lines = []int{0}
		for i := 0; ; {
			j := bytes.IndexByte(b.data[i:], '\n')
			if j < 0 {
				break
			}
			i += j + 1
			b.lines = append(b.lines, i)
		}
	}
	l := sort.SearchInts(b.lines, off+1) - 1
	if l < 0 {
		l = 0
	}
	return l + 1, off - b.lines[l] + 1
}

// imageIndex returns the index of the named image, creating it.
func (b *builder) imageIndex(name string, loc location) int {
	if i, ok := b.index[name]; ok {
		return i
	}
	b.index[name] = len(b.images)
	b.images = append(b.images, rawImage{name: name, loc: loc})
	return len(b.images) - 1
}

// checkName validates an image name taken from the annotations: it must be a relative '/'-separated path
// that stays inside the images directory (no "..", "." or empty elements), valid UTF-8, without control
// characters or backslashes.
func checkName(name string) error {
	if name == "" {
		return fmt.Errorf("empty image name")
	}
	elemStart, checkedUTF8 := 0, false
	for i := 0; i <= len(name); i++ {
		if i < len(name) {
			c := name[i]
			switch {
			case c < 0x20 || c == 0x7f:
				return fmt.Errorf("image name %q contains control characters", name)
			case c == '\\':
				return fmt.Errorf("image name %q contains a backslash (use '/')", name)
			case c >= utf8.RuneSelf && !checkedUTF8:
				if !utf8.ValidString(name) {
					return fmt.Errorf("image name %q is not valid UTF-8", name)
				}
				checkedUTF8 = true
			}
			if c != '/' {
				continue
			}
		}
		if e := name[elemStart:i]; e == "" || e == "." || e == ".." {
			return fmt.Errorf("image name %q is not a relative path inside the images directory", name)
		}
		elemStart = i + 1
	}
	return nil
}

// addCaption cleans a caption and adds it to image i, reporting empty or invalid captions.
// It returns false when the caption was skipped.
func (b *builder) addCaption(i int, raw string, id int64, loc location) bool {
	if !utf8.ValidString(raw) {
		b.skip(loc, ReasonInvalidCaption, "caption of %s is not valid UTF-8: %q", b.images[i].name, raw)
		return false
	}
	c := cleanCaption(raw)
	if c == "" {
		b.skip(loc, ReasonEmptyCaption, "caption of %s is empty (raw %q)", b.images[i].name, raw)
		return false
	}
	b.images[i].caps = append(b.images[i].caps, rawCaption{clean: c, raw: raw, id: id})
	return true
}

// cleanCaption trims a caption and collapses every run of white space (spaces, tabs, newlines, Unicode
// spaces) to a single space. Already clean captions are returned without copying.
func cleanCaption(s string) string {
	prevSpace := true // a leading space is not clean
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if unicode.IsSpace(r) {
				return cleanUnicode(s)
			}
			i += size - 1
			prevSpace = false
			continue
		}
		if asciiSpace[c] {
			if c != ' ' || prevSpace {
				return cleanASCII(s)
			}
			prevSpace = true
			continue
		}
		prevSpace = false
	}
	if prevSpace && s != "" {
		return s[:len(s)-1] // a single trailing space
	}
	return s
}

// cleanASCII is cleanCaption's slow path when s has no byte >= 0x80 before its first defect; it copies
// whole words at a time.
func cleanASCII(s string) string {
	buf := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		for i < len(s) && s[i] < utf8.RuneSelf && asciiSpace[s[i]] {
			i++
		}
		start := i
		for i < len(s) && !(s[i] < utf8.RuneSelf && asciiSpace[s[i]]) {
			if s[i] >= utf8.RuneSelf {
				return cleanUnicode(s)
			}
			i++
		}
		if start == i {
			break
		}
		if len(buf) > 0 {
			buf = append(buf, ' ')
		}
		buf = append(buf, s[start:i]...)
	}
	return string(buf)
}

// cleanUnicode is cleanCaption for text with non-ASCII runes (Unicode spaces such as U+00A0 count).
func cleanUnicode(s string) string {
	return strings.Join(strings.FieldsFunc(s, unicode.IsSpace), " ")
}

// asciiSpace marks the ASCII bytes unicode.IsSpace accepts.
var asciiSpace = [utf8.RuneSelf]bool{'\t': true, '\n': true, '\v': true, '\f': true, '\r': true, ' ': true}

// sortCaptionsByID orders an image's captions by id (stable for equal ids).
func sortCaptionsByID(caps []rawCaption) {
	if len(caps) > 12 {
		sort.SliceStable(caps, func(i, j int) bool { return caps[i].id < caps[j].id })
		return
	}
	for i := 1; i < len(caps); i++ { // insertion sort: 5 or 6 captions, usually in order
		for j := i; j > 0 && caps[j].id < caps[j-1].id; j-- {
			caps[j], caps[j-1] = caps[j-1], caps[j]
		}
	}
}
