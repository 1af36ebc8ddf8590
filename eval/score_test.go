package eval

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"testing"

	"github.com/imgcap/imgcap/eval/meteor"
)

type fixtureScores struct {
	Corpus    map[string]*float64           `json:"corpus"`
	BleuStats BleuStats                     `json:"bleu_corpus_stats"`
	PerImage  map[string]map[string]float64 `json:"per_image"`
}

var fixtureKeys = []string{KeyBleu1, KeyBleu2, KeyBleu3, KeyBleu4, KeyROUGEL, KeyCIDEr}

// errTracker records the largest absolute and relative errors per key.
type errTracker map[string]*[2]float64

func (e errTracker) check(t *testing.T, what, key string, got, want float64) {
	t.Helper()
	d := math.Abs(got - want)
	rel := 0.0
	if want != 0 {
		rel = d / math.Abs(want)
	}
	m := e[key]
	if m == nil {
		m = &[2]float64{}
		e[key] = m
	}
	m[0] = math.Max(m[0], d)
	m[1] = math.Max(m[1], rel)
	if d > 1e-9*math.Max(1, math.Abs(want)) || math.IsNaN(got) {
		t.Errorf("%s %s = %.17g, want %.17g (diff %.3g)", what, key, got, want, d)
	}
}

func (e errTracker) report(t *testing.T) {
	for _, k := range fixtureKeys {
		if m := e[k]; m != nil {
			t.Logf("%-8s max abs err %.3g, max rel err %.3g", k, m[0], m[1])
		}
	}
}

// scoreFixture scores one fixture set and candidate file, from the
// reference tokenization (pretokenized) or from raw captions.
func scoreFixture(t *testing.T, fs *fixtureSet, which string, pretokenized bool) *Result {
	t.Helper()
	ids := fs.refs.ImageIDs
	refs := make([][]string, len(ids))
	var cands []string
	if pretokenized {
		cands = make([]string, len(ids))
		for i, id := range ids {
			refs[i] = fs.tokenized.Refs[id]
			cands[i] = fs.tokenized.Candidates[which][id]
		}
	} else {
		for i, id := range ids {
			refs[i] = fs.refs.Captions[id]
		}
		cands = fs.candidateCaptions(t, which)
	}
	res, err := Score(ids, refs, cands, Options{
		Metrics: []string{MetricBLEU, MetricROUGE, MetricCIDEr}, PreTokenized: pretokenized,
	})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestScoresMatchFixtures(t *testing.T) {
	for _, mode := range []string{"pretokenized", "raw"} {
		t.Run(mode, func(t *testing.T) {
			errs := errTracker{}
			for _, name := range fixtureSetNames {
				fs := loadFixtureSet(t, name)
				for _, which := range []string{"human", "degraded"} {
					var want fixtureScores
					readJSON(t, filepath.Join("testdata", name, "scores_"+which+".json"), &want)
					res := scoreFixture(t, fs, which, mode == "pretokenized")
					what := name + "/" + which
					for _, k := range fixtureKeys {
						errs.check(t, what+" corpus", k, res.Corpus[k], *want.Corpus[k])
					}
					if *res.BleuStats != want.BleuStats {
						t.Errorf("%s bleu stats %+v, want %+v", what, *res.BleuStats, want.BleuStats)
					}
					if len(want.PerImage) != len(fs.refs.ImageIDs) {
						t.Fatalf("%s: fixture has %d per-image entries", what, len(want.PerImage))
					}
					for id, w := range want.PerImage {
						got, ok := res.PerImage[id]
						if !ok {
							t.Fatalf("%s: no per-image scores for %s", what, id)
						}
						for _, k := range fixtureKeys {
							errs.check(t, fmt.Sprintf("%s image %s", what, id), k, got[k], w[k])
						}
					}
				}
			}
			errs.report(t)
		})
	}
}

// TestScorerFunctions checks the exported scorer entry points on a case
// worked out by hand.
func TestScorerFunctions(t *testing.T) {
	cands := []string{"a dog runs", ""}
	refs := [][]string{{"a dog runs fast", "the cat"}, {"a b"}}
	b := BLEU(cands, refs)
	// Image 0: 3 words, closest reference length 2 ("the cat", tie 4 vs 2 -> shorter).
	if b.Stats[0].TestLen != 3 || b.Stats[0].RefLen != 2 || b.Stats[0].Correct != [4]int{3, 2, 1, 0} || b.Stats[0].Guess != [4]int{3, 2, 1, 0} {
		t.Fatalf("stats %+v", b.Stats[0])
	}
	if math.Abs(b.PerImage[0][0]-1) > 1e-9 || b.PerImage[1][0] != 0 {
		t.Fatalf("per image %v", b.PerImage)
	}
	_, per := ROUGEL(cands, refs)
	// LCS 3, P = 1, R = 3/4 -> F = 2.44*.75/(.75+1.44) = 0.8356...
	if want := 2.44 * 0.75 / (0.75 + 1.44); math.Abs(per[0]-want) > 1e-12 || per[1] != 0 {
		t.Fatalf("rouge %v want %v", per, want)
	}
	c, perC := CIDErD(cands, refs)
	if perC[1] != 0 || perC[0] <= 0 || math.Abs(c-(perC[0]+perC[1])/2) > 1e-15 {
		t.Fatalf("cider %v %v", c, perC)
	}
}

func TestScoreErrors(t *testing.T) {
	if _, err := Score(nil, nil, nil, Options{}); err == nil {
		t.Fatal("no error for empty input")
	}
	if _, err := Score([]string{"1"}, [][]string{{}}, []string{"a"}, Options{}); err == nil {
		t.Fatal("no error for missing references")
	}
	if _, err := Score([]string{"1"}, [][]string{{"a"}}, []string{"a"}, Options{Metrics: []string{"spice"}}); err == nil {
		t.Fatal("no error for unknown metric")
	}
	if _, err := ParseMetrics("bleu,foo"); err == nil {
		t.Fatal("ParseMetrics accepted foo")
	}
	if m, err := ParseMetrics(" CIDEr, bleu ,bleu"); err != nil || len(m) != 2 || m[0] != MetricBLEU || m[1] != MetricCIDEr {
		t.Fatalf("ParseMetrics = %v, %v", m, err)
	}
}

func TestScoreMeteorUnavailable(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "none")
	_, werr := meteor.LoadWordNet(dir)
	if !errors.Is(werr, meteor.ErrNoWordNet) {
		t.Fatalf("LoadWordNet(%s) = %v", dir, werr)
	}
	saved := loadDefaultMeteor
	loadDefaultMeteor = func() (*meteor.Scorer, error) { return nil, fmt.Errorf("meteor: %w", werr) }
	defer func() { loadDefaultMeteor = saved }()
	res, err := Score([]string{"1"}, [][]string{{"a dog"}}, []string{"a dog"}, Options{})
	if !errors.Is(err, ErrMetricUnavailable) || !errors.Is(err, meteor.ErrNoWordNet) {
		t.Fatalf("err = %v", err)
	}
	if res == nil || res.Corpus[KeyBleu1] == 0 || res.Unavailable[KeyMETEOR] == "" {
		t.Fatalf("other metrics must still be computed: %+v", res)
	}
	if _, ok := res.Corpus[KeyMETEOR]; ok {
		t.Fatal("METEOR present")
	}
	t.Logf("error: %v", err)
}

func TestScoreWithMeteor(t *testing.T) {
	sc, err := meteor.Default()
	if errors.Is(err, meteor.ErrNoWordNet) {
		t.Skipf("WordNet absent: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	fs := loadFixtureSet(t, "flickr8k_dev")
	ids := fs.refs.ImageIDs
	refs := make([][]string, len(ids))
	for i, id := range ids {
		refs[i] = fs.refs.Captions[id]
	}
	human, err := Score(ids, refs, fs.candidateCaptions(t, "human"), Options{Meteor: sc, Bootstrap: 200, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	degraded, err := Score(ids, refs, fs.candidateCaptions(t, "degraded"), Options{Meteor: sc})
	if err != nil {
		t.Fatal(err)
	}
	h, d := human.Corpus[KeyMETEOR], degraded.Corpus[KeyMETEOR]
	t.Logf("flickr8k_dev %s: human %.4f degraded %.4f", KeyMETEOR, h, d)
	// Human agreement METEOR on Flickr8k/COCO is typically 0.2-0.3.
	if !(h > 0.15 && h < 0.4 && d < h) {
		t.Fatalf("implausible METEOR: human %v degraded %v", h, d)
	}
	ci := human.CI[KeyMETEOR]
	if !(ci.Low < h && h < ci.High) {
		t.Fatalf("CI %+v does not contain %v", ci, h)
	}
}
