package eval

import (
	"bytes"
	"context"
	"errors"
	"math"
	"path/filepath"
	"strings"
	"testing"
)

func TestEvaluatorFakeCaptioner(t *testing.T) {
	fs := loadFixtureSet(t, "coco_dev")
	want := map[string]string{} // image path -> human candidate
	for _, c := range fs.cands["human"] {
		want[filepath.Join("/images", fs.refs.FileNames[c.ImageID])] = c.Caption
	}
	var batches []int
	captioner := func(ctx context.Context, paths []string) ([]string, error) {
		batches = append(batches, len(paths))
		out := make([]string, len(paths))
		for i, p := range paths {
			c, ok := want[p]
			if !ok {
				return nil, errors.New("unknown image " + p)
			}
			out[i] = c
		}
		return out, nil
	}
	dir := t.TempDir()
	var table bytes.Buffer
	progress := 0
	ev := &Evaluator{
		Captioner: captioner, Refs: fs.refs, ImageDir: "/images", BatchSize: 64,
		Options:     Options{Metrics: noMeteor},
		ResultsPath: filepath.Join(dir, "results.json"), ScoresPath: filepath.Join(dir, "scores.json"),
		Out: &table, Progress: func(done, total int) { progress = done },
	}
	rep, err := ev.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(batches) != 4 || batches[0] != 64 || batches[3] != 250-3*64 || progress != 250 {
		t.Fatalf("batches %v progress %d", batches, progress)
	}
	// The results file is a valid COCO results file that RunScore accepts
	// and scores to the reference numbers.
	cands, err := ReadCOCOResults(ev.ResultsPath)
	if err != nil || len(cands) != 250 {
		t.Fatalf("results file: %v (%d)", err, len(cands))
	}
	var fixture fixtureScores
	readJSON(t, filepath.Join("testdata", "coco_dev", "scores_human.json"), &fixture)
	for _, k := range fixtureKeys {
		if math.Abs(rep.Corpus[k]-*fixture.Corpus[k]) > 1e-9 {
			t.Errorf("%s: %v want %v", k, rep.Corpus[k], *fixture.Corpus[k])
		}
	}
	var saved struct {
		Corpus map[string]float64 `json:"corpus"`
	}
	readJSON(t, ev.ScoresPath, &saved)
	if saved.Corpus[KeyCIDEr] != rep.Corpus[KeyCIDEr] {
		t.Fatal("scores file differs from the result")
	}
	if !strings.Contains(table.String(), "CIDEr") {
		t.Fatalf("table: %s", table.String())
	}
}

func TestEvaluatorErrors(t *testing.T) {
	refs, err := ParseCOCORefs("refs.json", []byte(smallRefs))
	if err != nil {
		t.Fatal(err)
	}
	ok := func(ctx context.Context, p []string) ([]string, error) { return make([]string, len(p)), nil }
	short := func(ctx context.Context, p []string) ([]string, error) { return []string{"x"}, nil }
	failing := func(ctx context.Context, p []string) ([]string, error) { return nil, errors.New("boom") }
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	cases := []struct {
		name string
		ev   *Evaluator
		ctx  context.Context
		want string
	}{
		{"no captioner", &Evaluator{Refs: refs}, context.Background(), "no captioner"},
		{"no refs", &Evaluator{Captioner: ok}, context.Background(), "no reference images"},
		{"wrong count", &Evaluator{Captioner: short, Refs: refs, BatchSize: 2}, context.Background(), "returned 1 captions for 2 images"},
		{"captioner error", &Evaluator{Captioner: failing, Refs: refs}, context.Background(), "boom"},
		{"cancelled", &Evaluator{Captioner: ok, Refs: refs}, ctx, "context canceled"},
		{"no path", &Evaluator{Captioner: ok, Refs: &References{ImageIDs: []string{"7"}, Captions: map[string][]string{"7": {"a"}}}}, context.Background(), "no file for image 7"},
	}
	for _, c := range cases {
		_, err := c.ev.Run(c.ctx)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
}
