package data

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Each bad input must fail without SkipBad with an error naming the file and line or JSON path, and load
// with SkipBad reporting the problem and keeping the good part.
func TestBadInputProblems(t *testing.T) {
	tests := []struct {
		name, file, content string
		reason              Reason
		where               string // substring of the error: line or JSON path
		images, captions    int    // what remains with SkipBad
	}{
		{"token no tab", "t.token", "a.jpg#0\tok\na.jpg#1\nb.jpg#0\tfine\n", ReasonMalformed, ":2: malformed", 2, 2},
		{"token no number", "t.token", "a.jpg#0\tok\na.jpg#x\tbad\n", ReasonMalformed, ":2: malformed", 1, 1},
		{"token no hash", "t.token", "a.jpg#0\tok\na.jpg\tbad caption\n", ReasonMalformed, ":2: malformed", 1, 1},
		{"token empty caption", "t.token", "a.jpg#0\tok\na.jpg#1\t  \n", ReasonEmptyCaption, ":2: empty caption", 1, 1},
		{"token duplicate key", "t.token", "a.jpg#0\tok\na.jpg#0\tagain\n", ReasonDuplicate, ":2: duplicate key", 1, 1},
		{"token absolute name", "t.token", "a.jpg#0\tok\n/etc/x.jpg#0\tbad\n", ReasonMalformed, ":2: malformed", 1, 1},
		{"token dotdot name", "t.token", "a.jpg#0\tok\n../x.jpg#0\tbad\n", ReasonMalformed, ":2: malformed", 1, 1},
		{"token invalid utf8", "t.token", "a.jpg#0\tok\na.jpg#1\tbad \xff\n", ReasonInvalidCaption, ":2: invalid caption", 1, 1},
		{"token suffix without base", "t.token", "a.jpg#0\tok\nb.jpg.1#0\torphan\n", ReasonAnomalousKey, ":2: anomalous image key", 1, 1},
		{"token suffix clash", "t.token", "a.jpg.1#0\tx\na.jpg#0\tok\n", ReasonAnomalousKey, ":1: anomalous image key", 1, 1},
		{"csv field count", "captions.txt", "image,caption\na.jpg,ok\na.jpg,b,c\n", ReasonMalformed, ":3: malformed", 1, 1},
		{"csv bare quote", "captions.txt", "image,caption\na.jpg,\"x\" y\nb.jpg,ok\n", ReasonMalformed, ":2: malformed", 1, 1},
		{"csv empty caption", "captions.txt", "image,caption\na.jpg,\"\"\nb.jpg,ok\n", ReasonEmptyCaption, ":2: empty caption", 1, 1},
		{"results.csv bad row", "results.csv", "image_name| comment_number| comment\na.jpg| 0| ok\na.jpg\n", ReasonMalformed, ":3: malformed", 1, 1},
		{"results.csv bad number", "results.csv", "image_name| comment_number| comment\na.jpg| 0| ok\na.jpg| x| no\n", ReasonMalformed, ":3: malformed", 1, 1},
		{"results.csv duplicate", "results.csv", "image_name| comment_number| comment\na.jpg| 0| ok\na.jpg| 0| no\n", ReasonDuplicate, ":3: duplicate key", 1, 1},
		{"coco unknown image", "captions_val2014.json",
			`{"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [{"image_id": 1, "id": 5, "caption": "ok"}, {"image_id": 2, "id": 6, "caption": "x"}]}`,
			ReasonUnknownImage, "$.annotations[1]: unknown image", 1, 1},
		{"coco duplicate annotation id", "captions_val2014.json",
			`{"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [{"image_id": 1, "id": 5, "caption": "ok"}, {"image_id": 1, "id": 5, "caption": "x"}]}`,
			ReasonDuplicate, "$.annotations[1]: duplicate key", 1, 1},
		{"coco duplicate image id", "captions_val2014.json",
			`{"images": [{"id": 1, "file_name": "a.jpg"}, {"id": 1, "file_name": "b.jpg"}], "annotations": [{"image_id": 1, "id": 5, "caption": "ok"}]}`,
			ReasonDuplicate, "$.images[1]: duplicate key", 1, 1},
		{"coco duplicate file name", "captions_val2014.json",
			`{"images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "a.jpg"}], "annotations": []}`,
			ReasonDuplicate, "$.images[1]: duplicate key", 1, 0},
		{"coco empty caption", "captions_val2014.json",
			"{\"images\": [{\"id\": 1, \"file_name\": \"a.jpg\"}],\n\"annotations\": [{\"image_id\": 1, \"id\": 5, \"caption\": \" \\n \"}, {\"image_id\": 1, \"id\": 6, \"caption\": \"ok\"}]}",
			ReasonEmptyCaption, ":2:52: $.annotations[0].caption: empty caption", 1, 1},
		{"coco caption not a string", "captions_val2014.json",
			`{"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [{"image_id": 1, "id": 5, "caption": 7}, {"image_id": 1, "id": 6, "caption": "ok"}]}`,
			ReasonMalformed, "$.annotations[0].caption: malformed: annotation left out: want string, got number", 1, 1},
		{"coco fractional id", "captions_val2014.json",
			`{"images": [{"id": 1.5, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg"}], "annotations": []}`,
			ReasonMalformed, "$.images[0].id: malformed: image left out: want integer, got number 1.5", 1, 0},
		{"coco missing caption", "captions_val2014.json",
			`{"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [{"image_id": 1, "id": 5}]}`,
			ReasonMalformed, "$.annotations[0]: malformed: annotation 5 has no \"caption\"", 1, 0},
		{"karpathy bad sentence", "dataset_flickr8k.json",
			`{"images": [{"filename": "1_a.jpg", "split": "train", "sentences": [{"raw": "ok", "sentid": 0}, {"raw": ["x"], "sentid": 1}]}], "dataset": "flickr8k"}`,
			ReasonMalformed, "$.images[0].sentences[1].raw: malformed", 1, 1},
		{"karpathy duplicate sentid", "dataset_flickr8k.json",
			`{"images": [{"filename": "1_a.jpg", "split": "train", "sentences": [{"raw": "ok", "sentid": 0}]}, {"filename": "2_b.jpg", "split": "train", "sentences": [{"raw": "x", "sentid": 0}]}], "dataset": "flickr8k"}`,
			ReasonDuplicate, "$.images[1].sentences[0]: duplicate key", 2, 1},
		{"karpathy duplicate image", "dataset_flickr8k.json",
			`{"images": [{"filename": "1_a.jpg", "sentences": []}, {"filename": "1_a.jpg", "sentences": []}], "dataset": "flickr8k"}`,
			ReasonDuplicate, "$.images[1]: duplicate key", 1, 0},
		{"karpathy no filename", "dataset_flickr8k.json",
			`{"images": [{"filename": "1_a.jpg", "sentences": []}, {"split": "val", "sentences": []}], "dataset": "flickr8k"}`,
			ReasonMalformed, "$.images[1]: malformed", 1, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file := writeTemp(t, tc.file, tc.content)
			_, err := Load(LoadOptions{Annotations: []string{file}})
			var le *LoadError
			if !errors.As(err, &le) {
				t.Fatalf("err %v, want a LoadError", err)
			}
			if len(le.Problems) != 1 || le.Problems[0].Reason != tc.reason {
				t.Fatalf("problems %v, want one %s", le.Problems, tc.reason)
			}
			if msg := err.Error(); !strings.Contains(msg, file) || !strings.Contains(msg, tc.where) {
				t.Errorf("error %q does not name %s and %q", msg, file, tc.where)
			}
			ds, err := Load(LoadOptions{Annotations: []string{file}, SkipBad: true})
			if err != nil {
				t.Fatal(err)
			}
			caps := 0
			for _, r := range ds.Records {
				caps += len(r.Captions)
			}
			if len(ds.Records) != tc.images || caps != tc.captions {
				t.Errorf("with SkipBad: %d images, %d captions; want %d, %d", len(ds.Records), caps, tc.images, tc.captions)
			}
			if len(ds.Problems) != 1 || ds.Problems[0].Action != ActionSkipped {
				t.Errorf("with SkipBad: problems %v", ds.Problems)
			}
		})
	}
}

// Errors that stop reading: the file cannot be parsed further or is not of any known format.
func TestFatalInputErrors(t *testing.T) {
	tests := []struct {
		name, file, content, format, want string
	}{
		{"json syntax", "c.json", "{\"images\": [\n{\"id\": 1,, }]}", "coco", "c.json:2:10: $.images[0]: want object key, got invalid character ','"},
		{"json trailing", "c.json", `{"images": []} x`, "coco", "invalid character 'x' after top-level value"},
		{"json truncated", "c.json", `{"images": [{"id": 1, "file_name": "a`, "coco", "unterminated string"},
		{"json images not array", "c.json", `{"images": {}}`, "coco", "$.images: want array, got object"},
		{"coco without images", "c.json", `{"annotations": []}`, "coco", "no \"images\" array"},
		{"results file as annotations", "r.json", `[{"image_id": 1, "caption": "x"}]`, "auto", "COCO results file"},
		{"results file as coco", "r.json", `[{"image_id": 1, "caption": "x"}]`, "coco", "COCO results file"},
		{"unknown text", "x.txt", "hello world\n", "auto", "cannot detect the annotation format: first line \"hello world\""},
		{"unknown json", "x.json", `{"foo": 1}`, "auto", "cannot detect the annotation format"},
		{"empty", "x.txt", "", "auto", "empty file"},
		{"csv no header", "captions.txt", "a.jpg,caption\n", "flickr8k-csv", "captions.txt:1: want CSV header \"image,caption\""},
		{"results no header", "results.csv", "a.jpg| 0| x\n", "flickr30k-csv", "results.csv:1: want header"},
		{"bad format name", "x.txt", "a.jpg#0\tx\n", "flickr", "unknown data format \"flickr\""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file := writeTemp(t, tc.file, tc.content)
			_, err := Load(LoadOptions{Format: Format(tc.format), Annotations: []string{file}, SkipBad: true})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := Load(LoadOptions{Annotations: []string{td("captions_val2014_fakecap_results.first_entries.json")}}); !errors.Is(err, errResultsFile) {
		t.Errorf("real COCO results file as annotations: %v", err)
	}
	if _, err := Load(LoadOptions{}); err == nil {
		t.Error("no annotations: no error")
	}
	if _, err := Load(LoadOptions{Annotations: []string{td("captions.first200images.txt"), td("captions_val2017.coco-mini.json")}}); err == nil || !strings.Contains(err.Error(), "share one format") {
		t.Errorf("mixed formats: %v", err)
	}
}

func TestDetectFormat(t *testing.T) {
	tests := []struct {
		file string
		want Format
	}{
		{"Flickr8k.token.first200images.txt", FormatFlickrToken},
		{"Flickr8k.lemma.token.first1000lines.txt", FormatFlickrToken},
		{"results_20130124.token.first10lines_as_quoted.txt", FormatFlickrToken},
		{"captions.first200images.txt", FormatFlickr8kCSV},
		{"results.synthetic.csv", FormatFlickr30kCSV},
		{"VARIANT_NOT_ORIGINAL.results_csv_comma_mangled.first11lines.txt", FormatFlickr30kCSV},
		{"captions_val2014.subset47.json", FormatCOCO},
		{"captions_val2017.coco-mini.json", FormatCOCO},
		{"dataset_flickr8k.excerpt.json", FormatKarpathy},
		{"dataset_coco.first_image_record.wrapped.json", FormatKarpathy},
	}
	for _, tc := range tests {
		b, err := os.ReadFile(td(tc.file))
		if err != nil {
			t.Fatal(err)
		}
		got, err := DetectFormat(tc.file, b)
		if err != nil || got != tc.want {
			t.Errorf("%s: %s, %v; want %s", tc.file, got, err, tc.want)
		}
	}
	// Variants: the "image, caption" header, CRLF line ends and a BOM, a space instead of the TAB.
	variants := []struct {
		content string
		want    Format
	}{
		{"image, caption\r\na.jpg,x\r\n", FormatFlickr8kCSV},
		{utf8BOM + "a.jpg#0\tx\n", FormatFlickrToken},
		{"a.jpg#0 x\n", FormatFlickrToken},
		{" \n{\"images\": [], \"annotations\": []}", FormatCOCO},
		{"Caption,Image\na.jpg#0\tx\n", FormatFlickrToken}, // a copy with a stray header line
	}
	for _, v := range variants {
		got, err := DetectFormat("f", []byte(v.content))
		if err != nil || got != v.want {
			t.Errorf("%q: %s, %v; want %s", v.content, got, err, v.want)
		}
	}
}

func TestTextVariants(t *testing.T) {
	tests := []struct {
		name, file, content string
		want                []string // captions of the single image a.jpg
	}{
		{"token CRLF+BOM", "t.token", utf8BOM + "a.jpg#1\tsecond\r\na.jpg#0\tfirst\r\n\r\n", []string{"first", "second"}},
		{"token space separator", "t.token", "a.jpg#0 first one\na.jpg#1\tsecond\n", []string{"first one", "second"}},
		{"token no final newline", "t.token", "a.jpg#0\tfirst", []string{"first"}},
		{"csv spaced header", "captions.txt", "image, caption\na.jpg,\"x, \"\"y\"\"\"\na.jpg,z\n", []string{`x, "y"`, "z"}},
		{"csv non-consecutive rows", "captions.txt", "image,caption\na.jpg,1\nb.jpg,2\na.jpg,3\n", []string{"1", "3"}},
		{"results pipe in caption", "results.csv", "image_name| comment_number| comment\na.jpg| 0| x | y\n", []string{"x | y"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ds, err := Load(LoadOptions{Annotations: []string{writeTemp(t, tc.file, tc.content)}})
			if err != nil {
				t.Fatal(err)
			}
			if ds.Records[0].Name != "a.jpg" || strings.Join(ds.Records[0].Captions, "|") != strings.Join(tc.want, "|") {
				t.Errorf("record %+v, want captions %q", ds.Records[0], tc.want)
			}
		})
	}
}

func TestCleanCaption(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{" ", ""},
		{"a", "a"},
		{"a b", "a b"},
		{"a b ", "a b"},
		{" a b", "a b"},
		{"a  b", "a b"},
		{"Kittens playing with rolls of\nToilet tissue", "Kittens playing with rolls of Toilet tissue"},
		{"cut\n.", "cut ."},
		{"\t a \r\n b \n", "a b"},
		{"caf\u00e9\u00a0bar", "caf\u00e9 bar"},
		{"x\u2003y", "x y"},
	}
	for _, tc := range tests {
		if got := cleanCaption(tc.in); got != tc.want {
			t.Errorf("cleanCaption(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestLeadingNumberIDs(t *testing.T) {
	tests := []struct {
		names  []string
		scheme string
		ids    []int64
	}{
		{[]string{"1000268201_693b08cb0e.jpg", "10002456.jpg"}, IDFlickrPhoto, []int64{1000268201, 10002456}},
		{[]string{"1_a.jpg", "1_b.jpg"}, IDPosition, []int64{1, 2}},          // not distinct
		{[]string{"1_a.jpg", "cat.jpg"}, IDPosition, []int64{1, 2}},          // not all numeric
		{[]string{"12345678901234567_a.jpg"}, IDPosition, []int64{1}},        // too long for exact JSON doubles
		{[]string{"dir/5_a.jpg", "dir/6.png"}, IDFlickrPhoto, []int64{5, 6}}, // base names
		{[]string{"123abc.jpg"}, IDPosition, []int64{1}},                     // digits must end at '_' or '.'
	}
	for _, tc := range tests {
		ims := make([]rawImage, len(tc.names))
		for i, n := range tc.names {
			ims[i].name = n
		}
		scheme := assignIDs(ims)
		var ids []int64
		for _, im := range ims {
			ids = append(ids, im.id)
		}
		if scheme != tc.scheme || !slices.Equal(ids, tc.ids) {
			t.Errorf("%v: %s %v, want %s %v", tc.names, scheme, ids, tc.scheme, tc.ids)
		}
	}
}
