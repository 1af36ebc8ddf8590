package eval

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var noMeteor = []string{MetricBLEU, MetricROUGE, MetricCIDEr}

func TestRunScoreFixtures(t *testing.T) {
	for _, name := range fixtureSetNames {
		for _, which := range []string{"human", "degraded"} {
			dir := filepath.Join("testdata", name)
			out := filepath.Join(t.TempDir(), "scores.json")
			var buf bytes.Buffer
			err := RunScore(ScoreOptions{
				RefsPath: filepath.Join(dir, "refs.json"), ResultsPath: filepath.Join(dir, "candidates_"+which+".json"),
				Metrics: noMeteor, OutPath: out,
			}, &buf)
			if err != nil {
				t.Fatal(err)
			}
			var want fixtureScores
			readJSON(t, filepath.Join(dir, "scores_"+which+".json"), &want)
			var got struct {
				Corpus    map[string]float64            `json:"corpus"`
				BleuStats BleuStats                     `json:"bleu_corpus_stats"`
				PerImage  map[string]map[string]float64 `json:"per_image"`
				NumImages int                           `json:"n_images"`
			}
			readJSON(t, out, &got)
			if got.NumImages != 250 || len(got.PerImage) != 250 || got.BleuStats != want.BleuStats {
				t.Fatalf("%s/%s: n=%d per_image=%d stats=%+v", name, which, got.NumImages, len(got.PerImage), got.BleuStats)
			}
			for _, k := range fixtureKeys {
				if d := math.Abs(got.Corpus[k] - *want.Corpus[k]); d > 1e-9 {
					t.Errorf("%s/%s %s: %v want %v", name, which, k, got.Corpus[k], *want.Corpus[k])
				}
				for id, w := range want.PerImage {
					if d := math.Abs(got.PerImage[id][k] - w[k]); d > 1e-9*math.Max(1, math.Abs(w[k])) {
						t.Errorf("%s/%s image %s %s: %v want %v", name, which, id, k, got.PerImage[id][k], w[k])
					}
				}
			}
			table := buf.String()
			if !strings.Contains(table, "Bleu_1") || !strings.Contains(table, "CIDEr") || !strings.Contains(table, "images scored: 250") {
				t.Fatalf("table:\n%s", table)
			}
		}
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const smallRefs = `{"images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg"}, {"id": 3, "file_name": "c.jpg"}],
 "annotations": [
  {"image_id": 1, "id": 10, "caption": "A dog runs on the grass."},
  {"image_id": 1, "id": 11, "caption": "A brown dog is running."},
  {"image_id": 2, "id": 20, "caption": "Two children play soccer."},
  {"image_id": 3, "id": 30, "caption": "A man rides a bike."}]}`

func TestRunScoreErrors(t *testing.T) {
	dir := t.TempDir()
	refs := writeFile(t, dir, "refs.json", smallRefs)
	cases := []struct {
		name, results, refs string
		want                []string // substrings of the error
	}{
		{"malformed", "[{\"image_id\": 1, \"caption\": \"x\"},\n {\"image_id\": 2 \"caption\": \"y\"}]", "", []string{"bad.json:2:", "malformed JSON"}},
		{"empty file", "  \n", "", []string{"bad.json", "empty file"}},
		{"empty list", "[]", "", []string{"bad.json", "no results"}},
		{"duplicate", `[{"image_id": 1, "caption": "x"}, {"image_id": 2, "caption": "y"}, {"image_id": 1, "caption": "z"}]`, "", []string{"bad.json", "[2]", "duplicate candidate for image_id 1", "[0]"}},
		{"unknown id", `[{"image_id": 1, "caption": "x"}, {"image_id": 99, "caption": "y"}]`, "", []string{"bad.json", "99", "without references"}},
		{"missing caption", `[{"image_id": 1}]`, "", []string{"bad.json", "[0].caption", "missing"}},
		{"wrong type", `[{"image_id": 1, "caption": 5}]`, "", []string{"bad.json:1:", "caption", "number"}},
		{"bad id", `[{"image_id": {"x": 1}, "caption": "a"}]`, "", []string{"bad.json", "[0].image_id"}},
		{"not a list", `{"image_id": 1, "caption": "a"}`, "", []string{"bad.json:1:", "object"}},
		{"refs no annotations", `[{"image_id": 1, "caption": "x"}]`, `{"images": []}`, []string{"badrefs.json", "annotations"}},
		{"refs unknown image", `[{"image_id": 1, "caption": "x"}]`, `{"images": [{"id": 1}], "annotations": [{"image_id": 2, "caption": "a"}]}`, []string{"badrefs.json", "annotations[0].image_id 2", "not in \"images\""}},
		{"refs malformed", `[{"image_id": 1, "caption": "x"}]`, `{"images": [}`, []string{"badrefs.json:1:", "malformed"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := writeFile(t, dir, "bad.json", c.results)
			r := refs
			if c.refs != "" {
				r = writeFile(t, dir, "badrefs.json", c.refs)
			}
			err := RunScore(ScoreOptions{RefsPath: r, ResultsPath: res, Metrics: noMeteor}, &bytes.Buffer{})
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	if err := RunScore(ScoreOptions{RefsPath: refs}, &bytes.Buffer{}); err == nil {
		t.Fatal("no error without results")
	}
	if err := RunScore(ScoreOptions{RefsPath: filepath.Join(dir, "nope.json"), ResultsPath: refs}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "nope.json") {
		t.Fatalf("missing file: %v", err)
	}
}

func TestRunScoreMissingCandidates(t *testing.T) {
	dir := t.TempDir()
	refs := writeFile(t, dir, "refs.json", smallRefs)
	// String ids are accepted and equal numeric ones.
	res := writeFile(t, dir, "res.json", `[{"image_id": "1", "caption": "a dog runs on grass"}, {"image_id": 3, "caption": "a man rides a bicycle"}]`)
	var out, warn bytes.Buffer
	scores := filepath.Join(dir, "s.json")
	err := RunScore(ScoreOptions{RefsPath: refs, ResultsPath: res, Metrics: noMeteor, Warn: &warn, OutPath: scores, JSON: true}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(warn.String(), "1 of 3 images") || !strings.Contains(warn.String(), ": 2;") || !strings.Contains(warn.String(), "only the 2 images") {
		t.Fatalf("warning: %q", warn.String())
	}
	var rep struct {
		NumImages     int      `json:"n_images"`
		MissingImages []string `json:"missing_images"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("--json output: %v\n%s", err, out.String())
	}
	if rep.NumImages != 2 || len(rep.MissingImages) != 1 || rep.MissingImages[0] != "2" {
		t.Fatalf("report %+v", rep)
	}
	err = RunScore(ScoreOptions{RefsPath: refs, ResultsPath: res, Metrics: noMeteor, Strict: true}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "no candidate") {
		t.Fatalf("strict: %v", err)
	}
}

func TestRunScoreCI(t *testing.T) {
	dir := filepath.Join("testdata", "coco_dev")
	run := func(seed uint64) *bytes.Buffer {
		var buf bytes.Buffer
		err := RunScore(ScoreOptions{RefsPath: filepath.Join(dir, "refs.json"), ResultsPath: filepath.Join(dir, "candidates_human.json"),
			Metrics: noMeteor, CI: true, Resamples: 300, Seed: seed, JSON: true}, &buf)
		if err != nil {
			t.Fatal(err)
		}
		return &buf
	}
	a, b, c := run(1), run(1), run(2)
	if a.String() != b.String() {
		t.Fatal("same seed, different output")
	}
	if a.String() == c.String() {
		t.Fatal("different seeds, same intervals")
	}
	var rep struct {
		Corpus    map[string]float64  `json:"corpus"`
		CI        map[string]Interval `json:"ci"`
		Bootstrap BootstrapInfo       `json:"bootstrap"`
	}
	if err := json.Unmarshal(a.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Bootstrap.Resamples != 300 || rep.Bootstrap.Level != 0.95 {
		t.Fatalf("bootstrap info %+v", rep.Bootstrap)
	}
	for _, k := range fixtureKeys {
		ci, v := rep.CI[k], rep.Corpus[k]
		if !(ci.Low < v && v < ci.High) || ci.High-ci.Low > 0.5*v {
			t.Errorf("%s: %v not inside a plausible CI %+v", k, v, ci)
		}
	}
	// The table shows the intervals.
	var tbl bytes.Buffer
	if err := RunScore(ScoreOptions{RefsPath: filepath.Join(dir, "refs.json"), ResultsPath: filepath.Join(dir, "candidates_human.json"),
		Metrics: noMeteor, CI: true, Resamples: 50}, &tbl); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(tbl.String(), "95% CI") || !strings.Contains(tbl.String(), "[0.") {
		t.Fatalf("table:\n%s", tbl.String())
	}
}

func TestQuantile(t *testing.T) {
	s := []float64{1, 2, 3, 4, 5}
	for _, c := range []struct{ q, want float64 }{{0, 1}, {1, 5}, {0.5, 3}, {0.25, 2}, {0.1, 1.4}} {
		if got := quantile(s, c.q); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("quantile(%v) = %v want %v", c.q, got, c.want)
		}
	}
}

func TestRunScoreGivenReferences(t *testing.T) {
	dir := t.TempDir()
	res := writeFile(t, dir, "res.json", `[{"image_id": 7, "caption": "a dog runs on grass"}]`)
	refs := &References{ImageIDs: []string{"7"}, Captions: map[string][]string{"7": {"a dog runs on the grass", "a brown dog running"}}}
	var out bytes.Buffer
	opts := ScoreOptions{RefsPath: "dataset split", Refs: refs, ResultsPath: res, Metrics: noMeteor, JSON: true}
	if err := RunScore(opts, &out); err != nil {
		t.Fatal(err)
	}
	var rep struct {
		NumImages int                `json:"n_images"`
		Corpus    map[string]float64 `json:"corpus"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.NumImages != 1 || rep.Corpus[KeyBleu1] <= 0 {
		t.Fatalf("report %+v", rep)
	}
	// A candidate for an image the given references lack is an error naming both sources.
	bad := writeFile(t, dir, "bad.json", `[{"image_id": 8, "caption": "x"}]`)
	opts.ResultsPath = bad
	if err := RunScore(opts, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "dataset split") {
		t.Fatalf("unknown image: %v", err)
	}
}
