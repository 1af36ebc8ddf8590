package data

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// utf8BOM is stripped from the start of text files.
const utf8BOM = "\xEF\xBB\xBF"

// eachLine calls fn for every line of data (1-based number, without the line end; CRLF and a final line
// without newline are handled; a UTF-8 BOM at the start is dropped).
func eachLine(data string, fn func(n int, line string)) {
	data = strings.TrimPrefix(data, utf8BOM)
	for n := 1; len(data) > 0; n++ {
		line := data
		if i := strings.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = ""
		}
		fn(n, strings.TrimSuffix(line, "\r"))
	}
}

// parseCaptionNumber parses the n of "name.jpg#n": 1 to 9 decimal digits.
func parseCaptionNumber(s string) (int64, bool) {
	if s == "" || len(s) > 9 {
		return 0, false
	}
	var v int64
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		v = v*10 + int64(s[i]-'0')
	}
	return v, true
}

// addNumberedCaption adds caption number num of the named image, reporting malformed names and duplicate
// (image, number) keys. The first occurrence of a key wins.
func (b *builder) addNumberedCaption(name string, num int64, caption string, loc location, key string) {
	if err := checkName(name); err != nil {
		b.skip(loc, ReasonMalformed, "%s: %v", key, err)
		return
	}
	i := b.imageIndex(name, loc)
	for _, c := range b.images[i].caps {
		if c.id == num {
			b.skip(loc, ReasonDuplicate, "caption key %s seen before", key)
			return
		}
	}
	b.addCaption(i, caption, num, loc)
}

// dropEmptyImages removes images whose every caption was skipped (text formats create an image only
// through its captions).
func (b *builder) dropEmptyImages() {
	out := b.images[:0]
	for _, im := range b.images {
		if len(im.caps) > 0 {
			out = append(out, im)
		}
	}
	b.images = out
	b.index = nil
}

// parseFlickrToken reads the Flickr8k.token.txt / results_20130124.token layout:
//
//	1000268201_693b08cb0e.jpg#0<TAB>A child in a pink dress is climbing up a set of stairs in an entry way .
//
// Blank lines are ignored. A space instead of the TAB (seen in some copies) is accepted. Captions of an
// image are grouped even when its lines are not consecutive, and ordered by n.
//
// The Flickr8k anomaly "2258277193_586949ec62.jpg.1#0" (the image has #1..#4 but no #0) is merged into
// "2258277193_586949ec62.jpg#0" and reported with ActionMerged: the text after the extension is a
// stray suffix, the caption describes that image, and the image file "....jpg.1" does not exist.
// Such a key is merged only when the image without the suffix exists and lacks that caption number;
// otherwise it is a problem (ReasonAnomalousKey, skipped).
func parseFlickrToken(file string, data []byte) *builder {
	text := string(data)
	b := newBuilder(file, nil, strings.Count(text, "\n")/5+1)
	eachLine(text, func(n int, line string) {
		loc := location{line: n}
		if strings.TrimSpace(line) == "" {
			return
		}
		key, caption, ok := strings.Cut(line, "\t")
		if !ok {
			// Some copies have a space instead of the TAB: accept "key caption" when key ends in #digits.
			key, caption, ok = strings.Cut(line, " ")
			if _, _, isKey := splitTokenKey(key); !ok || !isKey {
				b.skip(loc, ReasonMalformed, "want \"<image>#<n><TAB><caption>\", got %q", clip(line))
				return
			}
		}
		key = strings.TrimSpace(key)
		name, num, isKey := splitTokenKey(key)
		if !isKey {
			b.skip(loc, ReasonMalformed, "key %q is not <image>#<n> with a decimal caption number n", clip(key))
			return
		}
		b.addNumberedCaption(name, num, caption, loc, key)
	})
	b.mergeSuffixedKeys()
	for i := range b.images {
		sortCaptionsByID(b.images[i].caps)
	}
	b.dropEmptyImages()
	return b
}

// splitTokenKey splits "name.jpg#3" into the image name and caption number.
func splitTokenKey(key string) (name string, num int64, ok bool) {
	h := strings.LastIndexByte(key, '#')
	if h < 0 {
		return "", 0, false
	}
	num, ok = parseCaptionNumber(key[h+1:])
	return key[:h], num, ok
}

// imageExts are the extensions after which a ".<digits>" suffix marks an anomalous key.
var imageExts = []string{".jpg", ".jpeg", ".png"}

// suffixedBase returns "x.jpg" for "x.jpg.1" (an image extension followed by "." and digits).
func suffixedBase(name string) (string, bool) {
	dot := strings.LastIndexByte(name, '.')
	if dot < 0 {
		return "", false
	}
	if _, ok := parseCaptionNumber(name[dot+1:]); !ok {
		return "", false
	}
	base := name[:dot]
	lower := strings.ToLower(base)
	for _, e := range imageExts {
		if strings.HasSuffix(lower, e) {
			return base, true
		}
	}
	return "", false
}

// mergeSuffixedKeys resolves keys like "x.jpg.1#0" (see parseFlickrToken).
func (b *builder) mergeSuffixedKeys() {
	for i := range b.images {
		im := &b.images[i]
		base, ok := suffixedBase(im.name)
		if !ok || len(im.caps) == 0 {
			continue
		}
		j, exists := b.index[base]
		if !exists {
			for _, c := range im.caps {
				b.skip(im.loc, ReasonAnomalousKey, "%s#%d: image name has a suffix after the extension and there is no image %s", im.name, c.id, base)
			}
			im.caps = nil
			continue
		}
		target := &b.images[j]
		for _, c := range im.caps {
			dup := false
			for _, t := range target.caps {
				if t.id == c.id {
					dup = true
				}
			}
			if dup {
				b.skip(im.loc, ReasonAnomalousKey, "%s#%d: image name has a suffix after the extension and %s#%d exists", im.name, c.id, base, c.id)
				continue
			}
			target.caps = append(target.caps, c)
			b.report(im.loc, ReasonAnomalousKey, ActionMerged, "%s#%d read as %s#%d (suffix after the extension; that image has no #%d)", im.name, c.id, base, c.id, c.id)
		}
		im.caps = nil
	}
}

// clip shortens long input echoed in messages.
func clip(s string) string {
	const max = 120
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}

// parseFlickr8kCSV reads the Kaggle Flickr8k captions.txt: a CSV file (RFC 4180, Python csv minimal
// quoting: captions with ',' or '"' are quoted and inner quotes doubled) with the header "image,caption"
// ("image, caption" also accepted). Rows of an image need not be consecutive; caption ids are the row's
// position among its image's rows.
func parseFlickr8kCSV(file string, data []byte) (*builder, error) {
	text := strings.TrimPrefix(string(data), utf8BOM)
	b := newBuilder(file, nil, strings.Count(text, "\n")/5+1)
	r := csv.NewReader(strings.NewReader(text))
	r.FieldsPerRecord = -1
	r.ReuseRecord = true
	header, err := r.Read()
	if err == io.EOF {
		return nil, fmt.Errorf("%s: empty file, want CSV header \"image,caption\"", file)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if !headerIs(header, "image", "caption") {
		return nil, fmt.Errorf("%s:1: want CSV header \"image,caption\", got %q", file, clip(strings.Join(header, ",")))
	}
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			b.skip(location{line: pe.Line}, ReasonMalformed, "CSV: %v", pe.Err)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		line, _ := r.FieldPos(0)
		loc := location{line: line}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		if len(rec) != 2 {
			b.skip(loc, ReasonMalformed, "want 2 fields (image,caption), got %d", len(rec))
			continue
		}
		name := strings.TrimSpace(rec[0])
		if err := checkName(name); err != nil {
			b.skip(loc, ReasonMalformed, "%v", err)
			continue
		}
		i := b.imageIndex(name, loc)
		b.addCaption(i, rec[1], int64(len(b.images[i].caps)), loc)
	}
	b.dropEmptyImages()
	return b, nil
}

// headerIs compares header fields case-insensitively, ignoring surrounding spaces.
func headerIs(got []string, want ...string) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if !strings.EqualFold(strings.TrimSpace(got[i]), want[i]) {
			return false
		}
	}
	return true
}

// parseFlickr30kCSV reads the Kaggle Flickr30k results.csv: header "image_name| comment_number| comment",
// rows "1000092795.jpg| 0| Two young guys ...". It is not a comma CSV (captions contain commas): each line
// is split at its first two '|'; fields are trimmed; a '|' inside a caption stays part of it.
//
// The known defective row "2199200615.jpg| 4   A dog runs across the grass ." (no '|' after the comment
// number) is repaired when unambiguous - two fields, the second a number, white space and text - and
// reported with ActionRepaired. The comma-mangled copies ("image_name,comment_number,comment", captions
// cut at their first comma) are refused.
func parseFlickr30kCSV(file string, data []byte) (*builder, error) {
	text := string(data)
	b := newBuilder(file, nil, strings.Count(text, "\n")/5+1)
	var headerErr error
	seenHeader := false
	eachLine(text, func(n int, line string) {
		if headerErr != nil {
			return
		}
		loc := location{line: n}
		if !seenHeader {
			if strings.TrimSpace(line) == "" {
				return
			}
			seenHeader = true
			switch {
			case headerIs(strings.Split(line, "|"), "image_name", "comment_number", "comment"):
				return
			case headerIs(strings.Split(line, ","), "image_name", "comment_number", "comment"):
				headerErr = fmt.Errorf("%s:%d: comma-separated results.csv: in these copies every caption is cut at its first comma, so they cannot be read faithfully; use the original '|' file or results_20130124.token", file, n)
			default:
				headerErr = fmt.Errorf("%s:%d: want header \"image_name| comment_number| comment\", got %q", file, n, clip(line))
			}
			return
		}
		if strings.TrimSpace(line) == "" {
			return
		}
		f := strings.SplitN(line, "|", 3)
		var numText, caption string
		switch len(f) {
		case 3:
			// The separator is "| "; the raw caption is what follows it.
			numText, caption = strings.TrimSpace(f[1]), strings.TrimPrefix(f[2], " ")
		case 2:
			t := strings.TrimSpace(f[1])
			end := 0
			for end < len(t) && t[end] >= '0' && t[end] <= '9' {
				end++
			}
			rest := t[end:]
			if end == 0 || rest == "" || (rest[0] != ' ' && rest[0] != '\t') || strings.TrimSpace(rest) == "" {
				b.skip(loc, ReasonMalformed, "want \"image_name| comment_number| comment\", got %q", clip(line))
				return
			}
			numText, caption = t[:end], strings.TrimLeft(rest, " \t")
			b.report(loc, ReasonRepairedRow, ActionRepaired, "no '|' between comment_number and comment in %q; read as number %s, comment %q", clip(line), numText, strings.TrimSpace(rest))
		default:
			b.skip(loc, ReasonMalformed, "want \"image_name| comment_number| comment\", got %q", clip(line))
			return
		}
		name := strings.TrimSpace(f[0])
		num, ok := parseCaptionNumber(numText)
		if !ok {
			b.skip(loc, ReasonMalformed, "comment_number %q is not a small decimal number", clip(numText))
			return
		}
		b.addNumberedCaption(name, num, caption, loc, name+"| "+strconv.FormatInt(num, 10))
	})
	if headerErr != nil {
		return nil, headerErr
	}
	if !seenHeader {
		return nil, fmt.Errorf("%s: empty file, want header \"image_name| comment_number| comment\"", file)
	}
	for i := range b.images {
		sortCaptionsByID(b.images[i].caps)
	}
	b.dropEmptyImages()
	return b, nil
}

// parseSplitList reads a split file: one image per line (a file name like Flickr_8k.trainImages.txt, or a
// bare id like flickr30k_entities train.txt). Blank lines are ignored; lines are trimmed.
func parseSplitList(data []byte, fn func(line int, name string)) {
	eachLine(string(data), func(n int, line string) {
		if s := strings.TrimSpace(line); s != "" {
			fn(n, s)
		}
	})
}
