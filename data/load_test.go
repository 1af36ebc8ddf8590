package data

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// oracleRecord is a record as written by testdata/make_oracle.py (Python csv/json, independent of this code).
type oracleRecord struct {
	Name       string   `json:"name"`
	ID         int64    `json:"id"`
	Split      string   `json:"split"`
	Captions   []string `json:"captions"`
	Raw        []string `json:"raw"`
	CaptionIDs []int64  `json:"caption_ids"`
}

func readOracle(t *testing.T, name string) []oracleRecord {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "oracle", name))
	if err != nil {
		t.Fatal(err)
	}
	var recs []oracleRecord
	if err := json.Unmarshal(b, &recs); err != nil {
		t.Fatal(err)
	}
	return recs
}

func td(name string) string { return filepath.Join("testdata", name) }

// compareOracle checks every field of every record against the oracle and returns the number that match.
func compareOracle(t *testing.T, got []Record, want []oracleRecord) int {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("got %d records, want %d", len(got), len(want))
	}
	ok := 0
	for i := 0; i < min(len(got), len(want)); i++ {
		g, w := got[i], want[i]
		caps := func(s []string) []string {
			if s == nil {
				return []string{}
			}
			return s
		}
		ids := func(s []int64) []int64 {
			if s == nil {
				return []int64{}
			}
			return s
		}
		switch {
		case g.Name != w.Name:
			t.Errorf("record %d: name %q, want %q", i, g.Name, w.Name)
		case g.ID != w.ID:
			t.Errorf("record %d (%s): id %d, want %d", i, g.Name, g.ID, w.ID)
		case g.Split != w.Split:
			t.Errorf("record %d (%s): split %q, want %q", i, g.Name, g.Split, w.Split)
		case !reflect.DeepEqual(caps(g.Captions), caps(w.Captions)):
			t.Errorf("record %d (%s): captions\n%q\nwant\n%q", i, g.Name, g.Captions, w.Captions)
		case !reflect.DeepEqual(caps(g.RawCaptions), caps(w.Raw)):
			t.Errorf("record %d (%s): raw captions\n%q\nwant\n%q", i, g.Name, g.RawCaptions, w.Raw)
		case !reflect.DeepEqual(ids(g.CaptionIDs), ids(w.CaptionIDs)):
			t.Errorf("record %d (%s): caption ids %v, want %v", i, g.Name, g.CaptionIDs, w.CaptionIDs)
		default:
			ok++
		}
	}
	return ok
}

func TestLoadMatchesOracle(t *testing.T) {
	tests := []struct {
		file, format, oracle string
		scheme               string
		problems             []Reason // expected problem reasons, in order
	}{
		{"Flickr8k.token.first200images.txt", "flickr-token", "Flickr8k.token.first200images.json", IDFlickrPhoto, nil},
		{"Flickr8k.token.lines6726-6740_anomaly.txt", "flickr-token", "Flickr8k.token.lines6726-6740_anomaly.json", IDFlickrPhoto, []Reason{ReasonAnomalousKey}},
		{"results_20130124.token.first10lines_as_quoted.txt", "flickr-token", "results_20130124.token.first10lines.json", IDFlickrPhoto, nil},
		{"captions.first200images.txt", "flickr8k-csv", "captions.first200images.json", IDFlickrPhoto, nil},
		{"captions.header_plus_lines1082-1086_1852-1856.txt", "flickr8k-csv", "captions.header_plus_lines1082-1086_1852-1856.json", IDFlickrPhoto, nil},
		{"captions_val2014.subset47.json", "coco", "captions_val2014.subset47.json", IDCOCO, nil},
		{"captions_val2017.coco-mini.json", "coco", "captions_val2017.coco-mini.json", IDCOCO, nil},
		{"dataset_flickr8k.excerpt.json", "karpathy", "dataset_flickr8k.excerpt.json", IDFlickrPhoto, nil},
		{"dataset_coco.first_image_record.wrapped.json", "karpathy", "dataset_coco.first_image_record.wrapped.json", IDCOCO, nil},
	}
	for _, tc := range tests {
		for _, format := range []string{tc.format, "auto"} {
			t.Run(tc.file+"/"+format, func(t *testing.T) {
				ds, err := Load(LoadOptions{Format: Format(format), Annotations: []string{td(tc.file)}})
				if err != nil {
					t.Fatal(err)
				}
				if string(ds.Format) != tc.format {
					t.Errorf("format %s, want %s", ds.Format, tc.format)
				}
				if ds.IDScheme != tc.scheme {
					t.Errorf("id scheme %s, want %s", ds.IDScheme, tc.scheme)
				}
				want := readOracle(t, tc.oracle)
				n := compareOracle(t, ds.Records, want)
				t.Logf("%d/%d records equal to the oracle", n, len(want))
				var reasons []Reason
				for _, p := range ds.Problems {
					reasons = append(reasons, p.Reason)
				}
				if !reflect.DeepEqual(reasons, tc.problems) {
					t.Errorf("problems %v, want reasons %v", ds.Problems, tc.problems)
				}
			})
		}
	}
}

func TestFlickr8kAnomalyMerged(t *testing.T) {
	ds, err := Load(LoadOptions{Annotations: []string{td("Flickr8k.token.lines6726-6740_anomaly.txt")}})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Problems) != 1 {
		t.Fatalf("problems %v, want the one merge note", ds.Problems)
	}
	p := ds.Problems[0]
	if p.Line != 6 || p.Action != ActionMerged || !strings.Contains(p.Detail, "2258277193_586949ec62.jpg.1#0 read as 2258277193_586949ec62.jpg#0") {
		t.Errorf("merge note %+v", p)
	}
	r := ds.Records[1]
	if r.Name != "2258277193_586949ec62.jpg" || r.Captions[0] != "people waiting for the subway" || !reflect.DeepEqual(r.CaptionIDs, []int64{0, 1, 2, 3, 4}) {
		t.Errorf("merged record %+v", r)
	}
}

// The Kaggle captions.txt and the original token file hold the same captions: they must load to the same
// records (names, ids, captions), which also proves the photo-id scheme is independent of the format.
func TestKaggleCSVEqualsTokenFile(t *testing.T) {
	a, err := Load(LoadOptions{Annotations: []string{td("Flickr8k.token.first200images.txt")}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Load(LoadOptions{Annotations: []string{td("captions.first200images.txt")}})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a.Records, b.Records) {
		t.Fatal("records differ between Flickr8k.token.txt and captions.txt")
	}
	if len(a.Records) != 200 {
		t.Fatalf("%d records, want 200", len(a.Records))
	}
}

func TestKaggleCSVQuotes(t *testing.T) {
	ds, err := Load(LoadOptions{Annotations: []string{td("captions.header_plus_lines1082-1086_1852-1856.txt")}})
	if err != nil {
		t.Fatal(err)
	}
	// From the fixture README: the token file has `a black " ADHD " t-shirt` as separate tokens.
	if got := ds.Records[0].Captions[4]; got != `Young boy with a black " ADHD " t-shirt nodding off` {
		t.Errorf("caption %q", got)
	}
	if got := ds.Records[1].Captions[2]; got != `These men are standing next to a " Penzance welcomes you " stone .` {
		t.Errorf("caption %q", got)
	}
}

func TestCOCOQuirks(t *testing.T) {
	ds, err := Load(LoadOptions{Annotations: []string{td("captions_val2014.subset47.json")}})
	if err != nil {
		t.Fatal(err)
	}
	six, newline, trimmed := 0, 0, 0
	for _, r := range ds.Records {
		if len(r.Captions) == 6 {
			six++
		}
		for i, raw := range r.RawCaptions {
			if strings.Contains(raw, "\n") {
				newline++
				if strings.ContainsAny(r.Captions[i], "\n\t") {
					t.Errorf("caption %q not cleaned", r.Captions[i])
				}
			}
			if raw != r.Captions[i] {
				trimmed++
			}
		}
		for i := 1; i < len(r.CaptionIDs); i++ {
			if r.CaptionIDs[i] <= r.CaptionIDs[i-1] {
				t.Errorf("%s: caption ids not ascending: %v", r.Name, r.CaptionIDs)
			}
		}
	}
	// Fixture README: 3 images with 6 captions and 4 captions with a newline were selected into the subset.
	if six != 3 || newline != 4 {
		t.Errorf("%d images with 6 captions (want 3), %d captions with newline (want 4)", six, newline)
	}
	if trimmed == 0 {
		t.Error("no caption needed cleaning")
	}
	if ds.Records[0].Split != "val" {
		t.Errorf("split %q from file name, want val", ds.Records[0].Split)
	}
}

func TestCOCOMultipleFiles(t *testing.T) {
	ds, err := Load(LoadOptions{Annotations: []string{td("captions_val2014.subset47.json"), td("captions_val2017.coco-mini.json")}})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Records) != 47+79 {
		t.Errorf("%d records, want 126", len(ds.Records))
	}
	// The same file twice: every image is a duplicate.
	_, err = Load(LoadOptions{Annotations: []string{td("captions_val2017.coco-mini.json"), td("captions_val2017.coco-mini.json")}})
	var le *LoadError
	if !errors.As(err, &le) || len(le.Problems) != 79 || le.Problems[0].Reason != ReasonDuplicate {
		t.Fatalf("err %v", err)
	}
}

func TestKarpathySplitsAndRestval(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "dataset_coco.json")
	doc := `{"images": [
	 {"filepath": "train2014", "filename": "a.jpg", "split": "train", "cocoid": 1, "sentences": [{"raw": "one", "sentid": 10}]},
	 {"filepath": "val2014", "filename": "b.jpg", "split": "restval", "cocoid": 2, "sentences": [{"raw": "two ", "sentid": 11}]},
	 {"filepath": "val2014", "filename": "c.jpg", "split": "val", "cocoid": 3, "sentences": []},
	 {"filepath": "val2014", "filename": "d.jpg", "split": "test", "cocoid": 4, "sentences": [{"tokens": ["x"], "raw": "four", "sentid": 12}]}
	], "dataset": "coco"}`
	if err := os.WriteFile(file, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ restval, want string }{{"", "train"}, {"restval", "restval"}, {"val", "val"}} {
		ds, err := Load(LoadOptions{Annotations: []string{file}, Restval: tc.restval})
		if err != nil {
			t.Fatal(err)
		}
		var splits []string
		for _, r := range ds.Records {
			splits = append(splits, r.Split)
		}
		if want := []string{"train", tc.want, "val", "test"}; !reflect.DeepEqual(splits, want) {
			t.Errorf("restval=%q: splits %v, want %v", tc.restval, splits, want)
		}
		if ds.Records[1].Name != "val2014/b.jpg" || ds.Records[1].Captions[0] != "two" || ds.Records[1].RawCaptions[0] != "two " {
			t.Errorf("record %+v", ds.Records[1])
		}
	}
}

func TestFlickr30kCSV(t *testing.T) {
	ds, err := Load(LoadOptions{Annotations: []string{td("results.synthetic.csv")}})
	if err != nil {
		t.Fatal(err)
	}
	if ds.Format != FormatFlickr30kCSV {
		t.Errorf("format %s", ds.Format)
	}
	tok, err := Load(LoadOptions{Annotations: []string{td("results_20130124.token.first10lines_as_quoted.txt")}})
	if err != nil {
		t.Fatal(err)
	}
	// Same captions as the token file, plus the repaired row.
	if !reflect.DeepEqual(ds.Records[:2], tok.Records) {
		t.Errorf("results.csv records differ from the token file:\n%+v\n%+v", ds.Records[:2], tok.Records)
	}
	last := ds.Records[2]
	if last.Name != "2199200615.jpg" || last.Captions[0] != "A dog runs across the grass ." || last.CaptionIDs[0] != 4 {
		t.Errorf("repaired record %+v", last)
	}
	if len(ds.Problems) != 1 || ds.Problems[0].Action != ActionRepaired || ds.Problems[0].Line != 12 {
		t.Errorf("problems %v", ds.Problems)
	}
	_, err = Load(LoadOptions{Annotations: []string{td("VARIANT_NOT_ORIGINAL.results_csv_comma_mangled.first11lines.txt")}})
	if err == nil || !strings.Contains(err.Error(), "cut at its first comma") {
		t.Errorf("comma-mangled variant: err %v", err)
	}
}

func TestSplitFilesFlickr8k(t *testing.T) {
	ds, err := Load(LoadOptions{
		Annotations: []string{td("Flickr8k.token.first200images.txt")},
		SplitFiles:  []string{td("Flickr_8k.trainImages.txt"), td("Flickr_8k.devImages.txt"), td("Flickr_8k.testImages.txt")},
		SkipBad:     true,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Oracle: the lists read directly.
	want := map[string]string{}
	for _, f := range []struct{ file, split string }{{"Flickr_8k.trainImages.txt", "train"}, {"Flickr_8k.devImages.txt", "val"}, {"Flickr_8k.testImages.txt", "test"}} {
		b, err := os.ReadFile(td(f.file))
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range strings.Fields(string(b)) {
			want[n] = f.split
		}
	}
	counts := map[string]int{}
	for _, r := range ds.Records {
		if r.Split != want[r.Name] {
			t.Errorf("%s: split %q, want %q", r.Name, r.Split, want[r.Name])
		}
		counts[r.Split]++
	}
	if counts["train"] != 157 || counts["val"] != 23 || counts["test"] != 19 || counts[""] != 1 {
		t.Errorf("split counts %v, want train 157 val 23 test 19 unassigned 1", counts)
	}
	// 8000 listed names, 199 of them in this 200-image sample: the rest are unknown images.
	unknown := 0
	for _, p := range ds.Problems {
		if p.Reason == ReasonUnknownImage {
			unknown++
		}
	}
	if unknown != 8000-199 {
		t.Errorf("%d unknown-image problems, want %d", unknown, 8000-199)
	}
	// Without SkipBad, the unknown names are an error naming file and line.
	_, err = Load(LoadOptions{Annotations: []string{td("Flickr8k.token.first200images.txt")}, SplitFiles: []string{td("Flickr_8k.devImages.txt")}})
	if err == nil || !strings.Contains(err.Error(), "Flickr_8k.devImages.txt:1: unknown image") {
		t.Errorf("err %v", err)
	}
}

func TestSplitFilesFlickr30kIDs(t *testing.T) {
	ds, err := Load(LoadOptions{
		Annotations: []string{td("results_20130124.token.first10lines_as_quoted.txt")},
		SplitFiles:  []string{"train=" + td("flickr30k_entities.train.txt"), "val=" + td("flickr30k_entities.val.txt"), td("flickr30k_entities.test.txt")},
		SkipBad:     true,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range ds.Records {
		if r.Split != "train" {
			t.Errorf("%s: split %q, want train (bare ids of flickr30k_entities/train.txt)", r.Name, r.Split)
		}
	}
}

func TestSplitFileConflicts(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.txt")
	b := filepath.Join(dir, "b.txt")
	os.WriteFile(a, []byte("1000268201_693b08cb0e.jpg\n1001773457_577c3a7d70.jpg\n1000268201_693b08cb0e.jpg\n"), 0o644)
	os.WriteFile(b, []byte("\n1001773457_577c3a7d70.jpg\n"), 0o644)
	ds, err := Load(LoadOptions{Annotations: []string{td("Flickr8k.token.first200images.txt")}, SplitFiles: []string{"train=" + a, "test=" + b}, SkipBad: true})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		file   string
		line   int
		reason Reason
	}{{a, 3, ReasonDuplicate}, {b, 2, ReasonSplitConflict}}
	if len(ds.Problems) != len(want) {
		t.Fatalf("problems %v", ds.Problems)
	}
	for i, w := range want {
		p := ds.Problems[i]
		if p.File != w.file || p.Line != w.line || p.Reason != w.reason {
			t.Errorf("problem %d: %v, want %s:%d %s", i, p, w.file, w.line, w.reason)
		}
	}
	if ds.Records[1].Split != "train" {
		t.Errorf("conflicting image in %q, want first listing (train)", ds.Records[1].Split)
	}
	if _, err := Load(LoadOptions{Annotations: []string{td("Flickr8k.token.first200images.txt")}, SplitFiles: []string{a + ".x"}}); err == nil {
		t.Error("split file without a split name in it: no error")
	}
}

func TestSeededSplit(t *testing.T) {
	fr, err := ParseSplitFractions("train=0.8, val=0.1,test=0.1")
	if err != nil {
		t.Fatal(err)
	}
	load := func(file string, seed uint64) map[string]string {
		ds, err := Load(LoadOptions{Annotations: []string{td(file)}, SplitFractions: fr, Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		counts := map[string]int{}
		for _, r := range ds.Records {
			m[r.Name] = r.Split
			counts[r.Split]++
		}
		if counts["train"] != 160 || counts["val"] != 20 || counts["test"] != 20 {
			t.Errorf("counts %v, want 160/20/20", counts)
		}
		return m
	}
	a := load("Flickr8k.token.first200images.txt", 7)
	if b := load("Flickr8k.token.first200images.txt", 7); !reflect.DeepEqual(a, b) {
		t.Error("same seed, different split")
	}
	// The split depends on image names only, not on the file format or order.
	if b := load("captions.first200images.txt", 7); !reflect.DeepEqual(a, b) {
		t.Error("same images and seed from another format, different split")
	}
	if b := load("Flickr8k.token.first200images.txt", 8); reflect.DeepEqual(a, b) {
		t.Error("different seeds, same split")
	}
	// Fractions summing below 1 leave the rest unassigned.
	ds, err := Load(LoadOptions{Annotations: []string{td("Flickr8k.token.first200images.txt")}, SplitFractions: []SplitFraction{{"train", 0.5}}})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(ds.Split("train")); n != 100 || len(ds.Split("")) != 100 {
		t.Errorf("%d train, %d unassigned; want 100/100", n, len(ds.Split("")))
	}
	// Explicit fractions replace the format's splits.
	ds, err = Load(LoadOptions{Annotations: []string{td("captions_val2017.coco-mini.json")}, SplitFractions: fr})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Split("val")) == len(ds.Records) {
		t.Error("fractions did not replace the file-name split")
	}
}

func TestParseSplitFractionsErrors(t *testing.T) {
	for _, s := range []string{"", "train", "train=x", "train=0.8,val=0.3", "train=0", "train=-1", "train=0.5,train=0.5", "=0.5"} {
		if _, err := ParseSplitFractions(s); err == nil {
			t.Errorf("%q: no error", s)
		}
	}
}

func TestCheckImages(t *testing.T) {
	dir := t.TempDir()
	ds, err := Load(LoadOptions{Annotations: []string{td("results_20130124.token.first10lines_as_quoted.txt")}})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, ds.Records[1].Name), []byte("jpeg"), 0o644)
	opts := LoadOptions{Annotations: []string{td("results_20130124.token.first10lines_as_quoted.txt")}, ImagesDir: dir, CheckImages: true}
	_, err = Load(opts)
	var le *LoadError
	if !errors.As(err, &le) || len(le.Problems) != 1 || le.Problems[0].Reason != ReasonMissingImage || le.Problems[0].File != filepath.Join(dir, "1000092795.jpg") {
		t.Fatalf("err %v", err)
	}
	opts.SkipBad = true
	ds, err = Load(opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Records) != 1 || ds.Records[0].Path != filepath.Join(dir, "10002456.jpg") {
		t.Errorf("records %+v", ds.Records)
	}
	// COCO-style names with a directory part.
	os.MkdirAll(filepath.Join(dir, "val2014"), 0o755)
	os.WriteFile(filepath.Join(dir, "val2014", "COCO_val2014_000000391895.jpg"), nil, 0o644)
	ds, err = Load(LoadOptions{Annotations: []string{td("dataset_coco.first_image_record.wrapped.json")}, ImagesDir: dir, CheckImages: true})
	if err != nil || ds.Records[0].Path != filepath.Join(dir, "val2014", "COCO_val2014_000000391895.jpg") {
		t.Errorf("err %v", err)
	}
	if _, err := Load(LoadOptions{Annotations: opts.Annotations, ImagesDir: filepath.Join(dir, "nope")}); err == nil {
		t.Error("missing images dir: no error")
	}
}
