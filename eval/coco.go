package eval

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// References holds reference captions per image in a fixed image order.
type References struct {
	// ImageIDs is the image order: the "images" array of a COCO annotations
	// file, or first appearance in "annotations" when there is no "images".
	ImageIDs []string
	// Captions maps an image id to its reference captions in file order.
	Captions map[string][]string
	// FileNames maps an image id to its "file_name" when the file gives one.
	FileNames map[string]string
}

// Candidate is one entry of a COCO results file.
type Candidate struct {
	ImageID string `json:"image_id"` // canonical image id (integers in decimal)
	Caption string `json:"caption"`  // the generated caption
}

// ReadCOCORefs reads reference captions from a COCO captions annotations
// file ({"images":[{"id","file_name"}], "annotations":[{"image_id","caption"}]}).
func ReadCOCORefs(path string) (*References, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseCOCORefs(path, data)
}

// ParseCOCORefs parses a COCO captions annotations document; name is used in errors.
func ParseCOCORefs(name string, data []byte) (*References, error) {
	type image struct {
		ID       json.RawMessage `json:"id"`
		FileName string          `json:"file_name"`
	}
	type annotation struct {
		ImageID json.RawMessage `json:"image_id"`
		Caption *string         `json:"caption"`
	}
	var images []image
	var anns []annotation
	sawImages, sawAnns := false, false
	err := walkObject(name, data, func(key string, dec *json.Decoder) error {
		var err error
		switch key {
		case "images":
			sawImages = true
			err = walkArray(name, data, dec, "images", func(path string, raw json.RawMessage, off int64) error {
				var im image
				if err := decodeAt(name, data, raw, off, path, &im); err != nil {
					return err
				}
				images = append(images, im)
				return nil
			})
		case "annotations":
			sawAnns = true
			err = walkArray(name, data, dec, "annotations", func(path string, raw json.RawMessage, off int64) error {
				var a annotation
				if err := decodeAt(name, data, raw, off, path, &a); err != nil {
					return err
				}
				anns = append(anns, a)
				return nil
			})
		default:
			var skip json.RawMessage
			err = dec.Decode(&skip)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if !sawAnns {
		return nil, fmt.Errorf("%s: no \"annotations\" array: not a COCO captions annotations file", name)
	}
	if len(anns) == 0 {
		return nil, fmt.Errorf("%s: \"annotations\" is empty: no reference captions", name)
	}
	refs := &References{Captions: map[string][]string{}, FileNames: map[string]string{}}
	known := map[string]bool{}
	for i, im := range images {
		id, err := parseID(im.ID)
		if err != nil {
			return nil, fmt.Errorf("%s: images[%d].id: %v", name, i, err)
		}
		if known[id] {
			return nil, fmt.Errorf("%s: images[%d].id %s: duplicate image id", name, i, id)
		}
		known[id] = true
		refs.ImageIDs = append(refs.ImageIDs, id)
		if im.FileName != "" {
			refs.FileNames[id] = im.FileName
		}
	}
	for i, a := range anns {
		id, err := parseID(a.ImageID)
		if err != nil {
			return nil, fmt.Errorf("%s: annotations[%d].image_id: %v", name, i, err)
		}
		if a.Caption == nil {
			return nil, fmt.Errorf("%s: annotations[%d].caption: missing (a captions file needs a string caption per annotation)", name, i)
		}
		if sawImages && !known[id] {
			return nil, fmt.Errorf("%s: annotations[%d].image_id %s is not in \"images\"", name, i, id)
		}
		if !sawImages && !known[id] {
			known[id] = true
			refs.ImageIDs = append(refs.ImageIDs, id)
		}
		refs.Captions[id] = append(refs.Captions[id], *a.Caption)
	}
	return refs, nil
}

// ReadCOCOResults reads a COCO results file: [{"image_id", "caption"}, ...].
// It rejects an empty list and duplicate candidates for one image.
func ReadCOCOResults(path string) ([]Candidate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseCOCOResults(path, data)
}

// ParseCOCOResults parses a COCO results document; name is used in errors.
func ParseCOCOResults(name string, data []byte) ([]Candidate, error) {
	type entry struct {
		ImageID json.RawMessage `json:"image_id"`
		Caption *string         `json:"caption"`
	}
	var out []Candidate
	first := map[string]int{}
	err := walkTopArray(name, data, func(path string, raw json.RawMessage, off int64) error {
		var e entry
		if err := decodeAt(name, data, raw, off, path, &e); err != nil {
			return err
		}
		id, err := parseID(e.ImageID)
		if err != nil {
			return fmt.Errorf("%s: %s.image_id: %v", name, path, err)
		}
		if e.Caption == nil {
			return fmt.Errorf("%s: %s.caption: missing", name, path)
		}
		if j, dup := first[id]; dup {
			return fmt.Errorf("%s: %s: duplicate candidate for image_id %s (first at [%d]); give exactly one caption per image", name, path, id, j)
		}
		first[id] = len(out)
		out = append(out, Candidate{ImageID: id, Caption: *e.Caption})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no results (empty list)", name)
	}
	return out, nil
}

// WriteCOCOResults writes candidates as a COCO results JSON array. Numeric
// image ids are written as numbers, others as strings.
func WriteCOCOResults(w io.Writer, cands []Candidate) error {
	type entry struct {
		ImageID json.RawMessage `json:"image_id"`
		Caption string          `json:"caption"`
	}
	es := make([]entry, len(cands))
	for i, c := range cands {
		es[i] = entry{ImageID: idJSON(c.ImageID), Caption: c.Caption}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	return enc.Encode(es)
}

// idJSON renders an image id: integers as JSON numbers, anything else as a string.
func idJSON(id string) json.RawMessage {
	if _, err := strconv.ParseInt(id, 10, 64); err == nil {
		return json.RawMessage(id)
	}
	b, _ := json.Marshal(id)
	return b
}

// parseID accepts an integer or a string id and returns its canonical text
// (integers in decimal), so 42 and "42" name the same image.
func parseID(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", errors.New("missing")
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", err
		}
		if s == "" {
			return "", errors.New("empty string")
		}
		return s, nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return "", fmt.Errorf("want an integer or a string, got %s", raw)
	}
	if i, err := n.Int64(); err == nil {
		return strconv.FormatInt(i, 10), nil
	}
	f, err := n.Float64()
	if err != nil || f != float64(int64(f)) {
		return "", fmt.Errorf("want an integer or a string, got %s", raw)
	}
	return strconv.FormatInt(int64(f), 10), nil
}

// jsonError turns a decoding error at byte offset base of data into a
// message with the file name, line:column and JSON path.
func jsonError(name string, data []byte, base int64, path string, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		// A streaming decoder's offsets are not absolute: locate the first
		// syntax error of the whole document instead.
		off := base + se.Offset
		var whole *json.SyntaxError
		if errors.As(json.Unmarshal(data, new(any)), &whole) {
			off, se = whole.Offset, whole
		}
		line, col := lineCol(data, off)
		return fmt.Errorf("%s:%d:%d: malformed JSON: %v", name, line, col, se)
	case errors.As(err, &te):
		line, col := lineCol(data, base+te.Offset)
		if te.Field != "" {
			if path != "" {
				path += "."
			}
			path += te.Field
		}
		if path == "" {
			path = "(top level)"
		}
		return fmt.Errorf("%s:%d:%d: %s: want %s, got a JSON %s", name, line, col, path, jsonTypeName(te.Type.Kind().String()), te.Value)
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		line, col := lineCol(data, int64(len(data)))
		return fmt.Errorf("%s:%d:%d: malformed JSON: unexpected end of file", name, line, col)
	}
	return fmt.Errorf("%s: %s: %v", name, path, err)
}

func jsonTypeName(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "struct", "map":
		return "an object"
	case "slice", "array":
		return "an array"
	case "bool":
		return "a boolean"
	case "ptr":
		return "a value"
	}
	return "a number"
}

// decodeAt unmarshals raw, which starts at byte off of data, reporting errors by position and path.
func decodeAt(name string, data []byte, raw json.RawMessage, off int64, path string, v any) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return jsonError(name, data, off, path, err)
	}
	return nil
}

// skipSpace returns the offset of the next value at or after off (past
// white space, commas and colons).
func skipSpace(data []byte, off int64) int64 {
	for off < int64(len(data)) {
		switch data[off] {
		case ' ', '\t', '\n', '\r', ',', ':':
			off++
		default:
			return off
		}
	}
	return off
}

// kindAt names the JSON value starting at off.
func kindAt(data []byte, off int64) string {
	if off >= int64(len(data)) {
		return "nothing"
	}
	switch data[off] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// walkTopArray calls fn for each element of a top-level JSON array.
func walkTopArray(name string, data []byte, fn func(path string, raw json.RawMessage, off int64) error) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return fmt.Errorf("%s: empty file", name)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := walkArray(name, data, dec, "", fn); err != nil {
		return err
	}
	return expectEOF(name, data, dec)
}

// walkObject calls fn for each key of a top-level JSON object; fn must
// consume the key's value from dec.
func walkObject(name string, data []byte, fn func(key string, dec *json.Decoder) error) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return fmt.Errorf("%s: empty file", name)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	start := skipSpace(data, 0)
	tok, err := dec.Token()
	if err != nil {
		return jsonError(name, data, 0, "", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		line, col := lineCol(data, start)
		return fmt.Errorf("%s:%d:%d: top level: want an object, got %s", name, line, col, kindAt(data, start))
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return jsonError(name, data, 0, "", err)
		}
		key, _ := tok.(string)
		if err := fn(key, dec); err != nil {
			var se *json.SyntaxError
			if errors.As(err, &se) || errors.Is(err, io.ErrUnexpectedEOF) {
				return jsonError(name, data, 0, key, err)
			}
			return err
		}
	}
	if _, err := dec.Token(); err != nil {
		return jsonError(name, data, 0, "", err)
	}
	return expectEOF(name, data, dec)
}

// walkArray reads a JSON array from dec and calls fn for each element with
// its path ("key[i]") and byte offset.
func walkArray(name string, data []byte, dec *json.Decoder, key string, fn func(path string, raw json.RawMessage, off int64) error) error {
	start := skipSpace(data, dec.InputOffset())
	tok, err := dec.Token()
	if err != nil {
		return jsonError(name, data, 0, key, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		line, col := lineCol(data, start)
		where := key
		if where == "" {
			where = "top level"
		}
		return fmt.Errorf("%s:%d:%d: %s: want an array, got %s", name, line, col, where, kindAt(data, start))
	}
	for i := 0; dec.More(); i++ {
		off := skipSpace(data, dec.InputOffset())
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return jsonError(name, data, 0, fmt.Sprintf("%s[%d]", key, i), err)
		}
		if err := fn(fmt.Sprintf("%s[%d]", key, i), raw, off); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil {
		return jsonError(name, data, 0, key, err)
	}
	return nil
}

// expectEOF reports trailing data after the top-level value.
func expectEOF(name string, data []byte, dec *json.Decoder) error {
	off := skipSpace(data, dec.InputOffset())
	if off < int64(len(data)) {
		line, col := lineCol(data, off)
		return fmt.Errorf("%s:%d:%d: malformed JSON: data after the top-level value", name, line, col)
	}
	return nil
}

// lineCol converts a byte offset into 1-based line and column numbers.
func lineCol(data []byte, off int64) (int, int) {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	if off < 0 {
		off = 0
	}
	before := data[:off]
	line := bytes.Count(before, []byte{'\n'}) + 1
	col := int(off) - (bytes.LastIndexByte(before, '\n') + 1) + 1
	return line, col
}

// joinIDs renders up to max ids for messages.
func joinIDs(ids []string, max int) string {
	if len(ids) <= max {
		return strings.Join(ids, ", ")
	}
	return strings.Join(ids[:max], ", ") + fmt.Sprintf(", ... (%d more)", len(ids)-max)
}
