package data

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// writeSyntheticCOCO writes a captions_train2014.json-like file: nImages images with the real key set and
// 5 captions each (a few with stray spaces or newlines), annotations in a scrambled order.
func writeSyntheticCOCO(tb testing.TB, path string, nImages int) {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	fmt.Fprint(w, `{"info": {"description": "COCO 2014 Dataset", "url": "http://cocodataset.org", "version": "1.0", "year": 2014, "contributor": "COCO Consortium", "date_created": "2017/09/01"}, "images": [`)
	for i := 0; i < nImages; i++ {
		if i > 0 {
			w.WriteString(", ")
		}
		id := 100000 + i*7
		fmt.Fprintf(w, `{"license": 3, "file_name": "COCO_train2014_%012d.jpg", "coco_url": "http://images.cocodataset.org/train2014/COCO_train2014_%012d.jpg", "height": 480, "width": 640, "date_captured": "2013-11-14 11:18:45", "flickr_url": "http://farm4.staticflickr.com/3153/2970773875_164f0c0b83_z.jpg", "id": %d}`, id, id, id)
	}
	fmt.Fprint(w, `], "licenses": [{"url": "http://creativecommons.org/licenses/by-nc-sa/2.0/", "id": 1, "name": "Attribution-NonCommercial-ShareAlike License"}], "annotations": [`)
	words := []string{"A man", "Two dogs", "A woman", "A red bus", "Several people", "A plate of food", "A cat"}
	acts := []string{"riding a", "standing next to a", "sitting on a", "looking at the", "walking down the"}
	things := []string{"bike on a dirt road.", "table in a kitchen. ", "bench near the water", "street with\ncars.", "large \"wooden\" boat."}
	n := nImages * 5
	for k := 0; k < n; k++ {
		if k > 0 {
			w.WriteString(", ")
		}
		j := (k * 7919) % n // scrambled, like the real files
		img := 100000 + (j%nImages)*7
		fmt.Fprintf(w, `{"image_id": %d, "id": %d, "caption": "%s %s %s"}`, img, j+1, words[j%7], acts[j%5], jsonEscape(things[(j/7)%5]))
	}
	w.WriteString("]}")
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
}

func jsonEscape(s string) string {
	q := fmt.Sprintf("%q", s)
	return q[1 : len(q)-1]
}

// BenchmarkLoadCOCO600k loads a 120,000-image, 600,000-caption COCO file (about 100 MB, the size of
// captions_train2014.json + val): read, parse, group, clean.
func BenchmarkLoadCOCO600k(b *testing.B) {
	path := filepath.Join(b.TempDir(), "captions_train2014.json")
	writeSyntheticCOCO(b, path, 120000)
	st, _ := os.Stat(path)
	b.SetBytes(st.Size())
	b.ReportAllocs()
	cpu := processCPUTime()
	for b.Loop() {
		ds, err := Load(LoadOptions{Format: FormatCOCO, Annotations: []string{path}})
		if err != nil {
			b.Fatal(err)
		}
		if len(ds.Records) != 120000 {
			b.Fatalf("%d records", len(ds.Records))
		}
	}
	reportCPU(b, cpu)
}

// reportCPU adds the process CPU time per op since start (includes GC work on other threads).
func reportCPU(b *testing.B, start time.Duration) {
	if end := processCPUTime(); end > 0 && b.N > 0 {
		b.ReportMetric(float64((end-start).Milliseconds())/float64(b.N), "cpu-ms/op")
	}
}

// BenchmarkLoadCOCO600kAuto is the same with format detection.
func BenchmarkLoadCOCO600kAuto(b *testing.B) {
	path := filepath.Join(b.TempDir(), "captions_train2014.json")
	writeSyntheticCOCO(b, path, 120000)
	cpu := processCPUTime()
	for b.Loop() {
		if _, err := Load(LoadOptions{Annotations: []string{path}}); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu)
}

func TestSyntheticCOCO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "captions_train2014.json")
	writeSyntheticCOCO(t, path, 50)
	ds, err := Load(LoadOptions{Annotations: []string{path}})
	if err != nil {
		t.Fatal(err)
	}
	caps := 0
	for _, r := range ds.Records {
		caps += len(r.Captions)
		if r.Split != "train" {
			t.Fatalf("split %q", r.Split)
		}
	}
	if len(ds.Records) != 50 || caps != 250 {
		t.Errorf("%d images, %d captions", len(ds.Records), caps)
	}
}

// BenchmarkDecodeCOCO600kEncodingJSON is the baseline: encoding/json decoding the same file into the
// minimal structs (no grouping or cleaning), to compare machines and show what the hand-written reader buys.
func BenchmarkDecodeCOCO600kEncodingJSON(b *testing.B) {
	path := filepath.Join(b.TempDir(), "captions_train2014.json")
	writeSyntheticCOCO(b, path, 120000)
	type doc struct {
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
	cpu := processCPUTime()
	defer reportCPU(b, cpu)
	for b.Loop() {
		data, err := os.ReadFile(path)
		if err != nil {
			b.Fatal(err)
		}
		var d doc
		if err := json.Unmarshal(data, &d); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoader measures batches per second with fake transforms: "sleep" waits 500µs per item (I/O
// bound, like reading a file), "compute" spends about as long hashing (CPU bound, like decoding a JPEG).
// One op = one batch of 32 items.
func BenchmarkLoader(b *testing.B) {
	recs := make([]Record, 4096)
	for i := range recs {
		recs[i] = Record{Name: fmt.Sprintf("%d.jpg", i), Path: fmt.Sprintf("%d.jpg", i), Captions: []string{"a"}}
	}
	sleep := func(ctx context.Context, rec *Record, s Sample, rng *rand.Rand) (uint64, error) {
		time.Sleep(500 * time.Microsecond)
		return rng.Uint64(), nil
	}
	compute := func(ctx context.Context, rec *Record, s Sample, rng *rand.Rand) (uint64, error) {
		h := fnv.New64a()
		buf := make([]byte, 4096)
		for i := range buf {
			buf[i] = byte(rng.Uint32())
		}
		for i := 0; i < 64; i++ {
			h.Write(buf)
		}
		return h.Sum64(), nil
	}
	for _, tf := range []struct {
		name string
		fn   TransformFunc[uint64]
	}{{"sleep", sleep}, {"compute", compute}} {
		for _, workers := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/workers=%d", tf.name, workers), func(b *testing.B) {
				l, err := NewLoader(recs, LoaderOptions[uint64]{Transform: tf.fn, BatchSize: 32, Workers: workers, Seed: 1, Shuffle: true})
				if err != nil {
					b.Fatal(err)
				}
				it := l.Iter(context.Background(), Position{})
				defer it.Close()
				cpu := processCPUTime()
				for b.Loop() {
					if _, err := it.Next(); err != nil {
						b.Fatal(err)
					}
				}
				reportCPU(b, cpu)
				b.ReportMetric(float64(b.N*32)/b.Elapsed().Seconds(), "items/s")
			})
		}
	}
}

// writeSyntheticKarpathyCOCO writes a dataset_coco.json-like file: nImages records with the real keys,
// 5 sentences each with tokens, splits train/restval/val/test.
func writeSyntheticKarpathyCOCO(tb testing.TB, path string, nImages int) {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	w.WriteString(`{"images": [`)
	splits := []string{"train", "restval", "restval", "train", "val", "test"}
	sent := 0
	for i := 0; i < nImages; i++ {
		if i > 0 {
			w.WriteString(", ")
		}
		id := 100000 + i*3
		dir := "train2014"
		if i%2 == 1 {
			dir = "val2014"
		}
		fmt.Fprintf(w, `{"filepath": "%s", "sentids": [%d, %d, %d, %d, %d], "filename": "COCO_%s_%012d.jpg", "imgid": %d, "split": "%s", "sentences": [`,
			dir, sent, sent+1, sent+2, sent+3, sent+4, dir, id, i, splits[i%len(splits)])
		for k := 0; k < 5; k++ {
			if k > 0 {
				w.WriteString(", ")
			}
			fmt.Fprintf(w, `{"tokens": ["a", "man", "riding", "a", "bike", "on", "a", "dirt", "road"], "raw": "A man riding a bike on a dirt road. ", "imgid": %d, "sentid": %d}`, i, sent)
			sent++
		}
		fmt.Fprintf(w, `], "cocoid": %d}`, id)
	}
	w.WriteString(`], "dataset": "coco"}`)
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkLoadKarpathyCOCO loads a dataset_coco.json-sized file: 123,287 images, 616,435 sentences.
func BenchmarkLoadKarpathyCOCO(b *testing.B) {
	path := filepath.Join(b.TempDir(), "dataset_coco.json")
	writeSyntheticKarpathyCOCO(b, path, 123287)
	st, _ := os.Stat(path)
	b.SetBytes(st.Size())
	b.ReportAllocs()
	cpu := processCPUTime()
	for b.Loop() {
		ds, err := Load(LoadOptions{Format: FormatKarpathy, Annotations: []string{path}})
		if err != nil {
			b.Fatal(err)
		}
		if len(ds.Records) != 123287 {
			b.Fatalf("%d records", len(ds.Records))
		}
	}
	reportCPU(b, cpu)
}

func TestSyntheticKarpathyCOCO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dataset_coco.json")
	writeSyntheticKarpathyCOCO(t, path, 60)
	ds, err := Load(LoadOptions{Annotations: []string{path}})
	if err != nil {
		t.Fatal(err)
	}
	s := Inspect(ds)
	got := map[string]int{}
	for _, sp := range s.Splits {
		got[sp.Name] = sp.Images
	}
	// 60 images cycling train, restval, restval, train, val, test; restval merged into train.
	if want := map[string]int{"train": 40, "val": 10, "test": 10}; !reflect.DeepEqual(got, want) || s.Captions != 300 {
		t.Errorf("splits %v (want %v), %d captions", got, want, s.Captions)
	}
	if ds.Records[1].Name != "val2014/COCO_val2014_000000100003.jpg" || ds.Records[1].ID != 100003 || ds.IDScheme != IDCOCO {
		t.Errorf("record %+v", ds.Records[1])
	}
}
