package data

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"sort"
	"testing"
	"unicode/utf8"
)

// Fuzz tests: every parser must return (never panic) on any input, and whatever it returns must satisfy
// the record invariants. Seeds are the real samples (cut to keep each run fast) plus hand-made edge cases.

func addSeedFiles(f *testing.F, maxBytes int, files ...string) {
	for _, name := range files {
		b, err := os.ReadFile(td(name))
		if err != nil {
			f.Fatal(err)
		}
		if len(b) > maxBytes {
			b = b[:maxBytes]
		}
		f.Add(b)
	}
}

// checkBuilder verifies the invariants of parsed images.
func checkBuilder(t *testing.T, b *builder) {
	t.Helper()
	names := map[string]bool{}
	for _, im := range b.images {
		if err := checkName(im.name); err != nil {
			t.Fatalf("image name accepted: %v", err)
		}
		if names[im.name] {
			t.Fatalf("image %q twice", im.name)
		}
		names[im.name] = true
		ids := map[int64]bool{}
		for _, c := range im.caps {
			if c.clean == "" || cleanCaption(c.clean) != c.clean || !utf8.ValidString(c.clean) {
				t.Fatalf("caption %q of %q not clean", c.clean, im.name)
			}
			if cleanCaption(c.raw) != c.clean {
				t.Fatalf("raw %q does not clean to %q", c.raw, c.clean)
			}
			if ids[c.id] {
				t.Fatalf("caption id %d twice in %q", c.id, im.name)
			}
			ids[c.id] = true
		}
	}
	for _, p := range b.problems {
		if p.Reason == "" || p.Action == "" || p.Error() == "" {
			t.Fatalf("incomplete problem %+v", p)
		}
	}
}

func FuzzFlickrToken(f *testing.F) {
	addSeedFiles(f, 4096, "Flickr8k.token.first200images.txt", "Flickr8k.token.lines6726-6740_anomaly.txt",
		"Flickr8k.lemma.token.first1000lines.txt", "results_20130124.token.first10lines_as_quoted.txt")
	for _, s := range []string{"", "\n", "#", "#0\t", "a#0\t", "a.jpg.1#0\tx\na.jpg#0\ty\n", "a.jpg.1#0\tx\na.jpg#1\ty\n",
		"a.jpg#999999999\tx", "a.jpg#0 \t x", utf8BOM + "a.jpg#0\tx\r\n", "a.jpg#00\tx\na.jpg#0\ty"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b := parseFlickrToken("f", data)
		checkBuilder(t, b)
		for _, im := range b.images {
			if len(im.caps) == 0 {
				t.Fatalf("image %q without captions", im.name)
			}
			for i := 1; i < len(im.caps); i++ {
				if im.caps[i].id < im.caps[i-1].id {
					t.Fatalf("captions of %q not ordered by number", im.name)
				}
			}
		}
	})
}

func FuzzFlickr8kCSV(f *testing.F) {
	addSeedFiles(f, 4096, "captions.first200images.txt", "captions.header_plus_lines1082-1086_1852-1856.txt")
	for _, s := range []string{"", "image,caption", "image, caption\n", "image,caption\na,\"b\nc\"\n", "image,caption\n\"a\n",
		"image,caption\na,\"x\"\"\n", "image,caption\r\na,b\r\n", "image,caption\na\n,\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := parseFlickr8kCSV("f", data)
		if err != nil {
			return
		}
		checkBuilder(t, b)
	})
}

func FuzzFlickr30kCSV(f *testing.F) {
	addSeedFiles(f, 4096, "results.synthetic.csv", "VARIANT_NOT_ORIGINAL.results_csv_comma_mangled.first11lines.txt")
	for _, s := range []string{"", "image_name| comment_number| comment\n", "image_name| comment_number| comment\na| 4   x\n",
		"image_name| comment_number| comment\na| 4\n", "image_name| comment_number| comment\na|4|\n", "image_name|comment_number|comment\n|||\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := parseFlickr30kCSV("f", data)
		if err != nil {
			return
		}
		checkBuilder(t, b)
	})
}

func FuzzCOCOJSON(f *testing.F) {
	addSeedFiles(f, 4096, "captions_val2014.subset2.json")
	for _, s := range []string{"", "{}", "[]", `{"images": []}`, `{"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [{"image_id": 1, "id": 1, "caption": "x"}]}`,
		`{"images": [{"id": 1e3, "file_name": 5}], "annotations": [{"image_id": null, "id": "1", "caption": [1]}]}`,
		`{"annotations": [{"image_id": 1, "id": 2, "caption": "a\u00e9\ud83d\ude00\ud800"}], "images": [{"id": 1, "file_name": "x"}]}`,
		`{"images": [{"id": 99999999999999999999, "file_name": "a"}]}`, `{"images": [[[[[]]]]]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := parseCOCO("f", data)
		if err != nil {
			return
		}
		checkBuilder(t, b)
		ids := map[int64]bool{}
		for _, im := range b.images {
			if !im.hasID || ids[im.id] {
				t.Fatalf("image id %d missing or twice", im.id)
			}
			ids[im.id] = true
		}
		// Differential check against encoding/json on clean input.
		if len(b.problems) > 0 || nonCanonicalKeys(data) {
			return
		}
		want, ok := cocoReference(data)
		if !ok {
			t.Fatalf("parseCOCO accepted input encoding/json rejects")
		}
		var got []string
		for _, im := range b.images {
			got = append(got, fmt.Sprint(im.id, im.name))
			for _, c := range im.caps {
				got = append(got, fmt.Sprintf("%d %q", c.id, c.raw))
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("parseCOCO %q\nencoding/json %q", got, want)
		}
	})
}

// nonCanonicalKeys reports input where encoding/json's case-insensitive key matching could differ from
// the exact matching of the COCO reader.
func nonCanonicalKeys(data []byte) bool {
	lower := bytes.ToLower(data)
	for _, k := range []string{`"id"`, `"file_name"`, `"image_id"`, `"caption"`, `"images"`, `"annotations"`, `\u`} {
		if bytes.Count(lower, []byte(k)) != bytes.Count(data, []byte(k)) || k == `\u` && bytes.Contains(data, []byte(k)) {
			return true
		}
	}
	return false
}

// cocoReference is the obvious encoding/json implementation of parseCOCO for clean input.
func cocoReference(data []byte) ([]string, bool) {
	var doc struct {
		Images []struct {
			ID       int64  `json:"id"`
			FileName string `json:"file_name"`
		} `json:"images"`
		Annotations []struct {
			ImageID int64  `json:"image_id"`
			ID      int64  `json:"id"`
			Caption string `json:"caption"`
		} `json:"annotations"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, false
	}
	var out []string
	for _, im := range doc.Images {
		out = append(out, fmt.Sprint(im.ID, im.FileName))
		var caps []int
		for k, a := range doc.Annotations {
			if a.ImageID == im.ID {
				caps = append(caps, k)
			}
		}
		sort.SliceStable(caps, func(i, j int) bool { return doc.Annotations[caps[i]].ID < doc.Annotations[caps[j]].ID })
		for _, k := range caps {
			out = append(out, fmt.Sprintf("%d %q", doc.Annotations[k].ID, doc.Annotations[k].Caption))
		}
	}
	return out, true
}

func FuzzKarpathyJSON(f *testing.F) {
	addSeedFiles(f, 4096, "dataset_flickr8k.excerpt3.json", "dataset_coco.first_image_record.wrapped.json")
	for _, s := range []string{"", "{}", `{"images": null}`, `{"images": [{"filename": "a", "sentences": null}]}`,
		`{"images": [{"filepath": "d/", "filename": "a", "split": "restval", "cocoid": 3, "sentences": [{"raw": " ", "sentid": 1}, {"sentid": 2}]}]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := parseKarpathy("f", data)
		if err != nil {
			return
		}
		checkBuilder(t, b)
	})
}

// jsonTree decodes any JSON value with jsonReader into the shapes encoding/json produces for `any` with
// UseNumber, for differential testing.
func jsonTree(r *jsonReader) (any, error) {
	switch c := r.peek(); {
	case c == '{':
		m := map[string]any{}
		err := r.object(func(key []byte) error {
			k := string(key)
			v, err := jsonTree(r)
			m[k] = v
			return err
		})
		return m, err
	case c == '[':
		a := []any{}
		err := r.array(func(int) error {
			v, err := jsonTree(r)
			a = append(a, v)
			return err
		})
		return a, err
	case c == '"':
		return r.str()
	case c == 't':
		return true, r.literal("true")
	case c == 'f':
		return false, r.literal("false")
	case c == 'n':
		return nil, r.literal("null")
	default:
		text, _, err := r.number()
		return json.Number(text), err
	}
}

// FuzzJSONReader checks jsonReader against encoding/json: the same inputs are valid and decode to the
// same values.
func FuzzJSONReader(f *testing.F) {
	addSeedFiles(f, 4096, "captions_val2014.subset2.json", "dataset_flickr8k.excerpt3.json")
	for _, s := range []string{`""`, `"\u00e9\ud83d\ude00"`, `"\ud800\u0041"`, `"\ud800"`, "\"\xff\xfe\"", `"\/\b\f\n\r\t\\\""`, `-0`, `-0.5e+3`,
		`1.`, `01`, `[1,]`, `{"a":1,"a":2}`, `{"a" 1}`, `[tru]`, "\"a\x01\"", `"\x"`, `"\u12"`, ` [ ] `, `{}x`, `123456789012345678901234567890`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if bytes.HasPrefix(data, []byte(utf8BOM)) {
			return // jsonReader accepts a BOM, encoding/json does not
		}
		r := newJSONReader(data)
		got, err := jsonTree(r)
		if err == nil {
			err = r.end()
		}
		valid := json.Valid(data)
		if (err == nil) != valid {
			t.Fatalf("jsonReader err %v, encoding/json valid %v", err, valid)
		}
		var want any
		if valid {
			dec := json.NewDecoder(bytes.NewReader(data))
			dec.UseNumber()
			if derr := dec.Decode(&want); derr != nil {
				t.Fatal(derr)
			}
		}
		if err == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("jsonReader %#v, encoding/json %#v", got, want)
		}
	})
}
