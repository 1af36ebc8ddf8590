package eval

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/imgcap/imgcap/eval/meteor"
)

// Metric names accepted by Options.Metrics and `imgcap score --metrics`.
const (
	MetricBLEU   = "bleu"
	MetricMETEOR = "meteor"
	MetricROUGE  = "rouge"
	MetricCIDEr  = "cider"
)

// AllMetrics lists the metric names in report order.
var AllMetrics = []string{MetricBLEU, MetricMETEOR, MetricROUGE, MetricCIDEr}

// Score keys: pycocoevalcap's names, except METEOR, which is reported as
// "METEOR (no paraphrase)" because it is not the official number (no
// paraphrase module, and imgcap's own function-word and abbreviation lists).
const (
	KeyBleu1  = "Bleu_1"
	KeyBleu2  = "Bleu_2"
	KeyBleu3  = "Bleu_3"
	KeyBleu4  = "Bleu_4"
	KeyMETEOR = meteor.Name
	KeyROUGEL = "ROUGE_L"
	KeyCIDEr  = "CIDEr"
)

// metricKeys maps a metric name to its score keys.
var metricKeys = map[string][]string{
	MetricBLEU:   {KeyBleu1, KeyBleu2, KeyBleu3, KeyBleu4},
	MetricMETEOR: {KeyMETEOR},
	MetricROUGE:  {KeyROUGEL},
	MetricCIDEr:  {KeyCIDEr},
}

// ParseMetrics parses a comma-separated metric list ("bleu,rouge"); empty
// means all metrics. Names are case-insensitive; duplicates are ignored.
func ParseMetrics(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return slices.Clone(AllMetrics), nil
	}
	seen := map[string]bool{}
	for _, f := range strings.Split(s, ",") {
		m := strings.ToLower(strings.TrimSpace(f))
		if _, ok := metricKeys[m]; !ok {
			return nil, fmt.Errorf("unknown metric %q (want %s)", f, strings.Join(AllMetrics, ", "))
		}
		seen[m] = true
	}
	var out []string
	for _, m := range AllMetrics {
		if seen[m] {
			out = append(out, m)
		}
	}
	return out, nil
}

// Options configures Score.
type Options struct {
	// Metrics to compute (MetricBLEU, ...); nil means all.
	Metrics []string
	// PreTokenized skips PTB tokenization: captions are used as given.
	PreTokenized bool
	// Meteor scores METEOR (no paraphrase); nil loads meteor.Default() when
	// METEOR is requested.
	Meteor *meteor.Scorer
	// Bootstrap is the number of bootstrap resamples for confidence
	// intervals; 0 computes none.
	Bootstrap int
	// Seed seeds the bootstrap resampling.
	Seed uint64
	// Level is the confidence level of the intervals; 0 means 0.95.
	Level float64
}

// Interval is a bootstrap confidence interval.
type Interval struct {
	Low  float64 `json:"low"`  // lower bound
	High float64 `json:"high"` // upper bound
}

// BootstrapInfo describes how confidence intervals were computed.
type BootstrapInfo struct {
	Method    string  `json:"method"`    // how the intervals were computed
	Resamples int     `json:"resamples"` // number of bootstrap resamples
	Seed      uint64  `json:"seed"`      // seed of the resampling
	Level     float64 `json:"level"`     // confidence level, e.g. 0.95
}

// Result holds corpus and per-image scores.
type Result struct {
	// Metrics are the score keys computed, in report order.
	Metrics []string `json:"metrics"`
	// NumImages is the number of images scored.
	NumImages int `json:"n_images"`
	// Corpus maps a score key to its corpus value.
	Corpus map[string]float64 `json:"corpus"`
	// CI maps a score key to its bootstrap confidence interval.
	CI map[string]Interval `json:"ci,omitempty"`
	// Bootstrap describes the intervals in CI.
	Bootstrap *BootstrapInfo `json:"bootstrap,omitempty"`
	// BleuStats are BLEU's corpus statistics (as pycocoevalcap prints them).
	BleuStats *BleuStats `json:"bleu_corpus_stats,omitempty"`
	// PerImage maps an image id to its scores.
	PerImage map[string]map[string]float64 `json:"per_image"`
	// Unavailable maps a score key to the reason it could not be computed.
	Unavailable map[string]string `json:"unavailable,omitempty"`
	// ImageIDs is the scoring order.
	ImageIDs []string `json:"-"`
	// TokenizedCandidates are the candidates as scored, in ImageIDs order.
	TokenizedCandidates []string `json:"-"`
	// TokenizedRefs are the references as scored, in ImageIDs order.
	TokenizedRefs [][]string `json:"-"`

	perImage  map[string][]float64
	bleuStats []BleuStats
	meteor    []meteor.Stats
	meteorSc  *meteor.Scorer
}

// loadDefaultMeteor loads the METEOR scorer when Options.Meteor is nil.
var loadDefaultMeteor = meteor.Default

// ErrMetricUnavailable is wrapped by Score's error when a requested metric
// could not be computed (the other metrics are still in the result).
var ErrMetricUnavailable = errors.New("metric unavailable")

// Score tokenizes (unless opts.PreTokenized) and scores candidates against
// references. ids[i] names image i, cands[i] is its candidate and refs[i]
// its references (at least one). References are tokenized in one call and
// candidates in another, in image order, exactly as pycocoevalcap does, so
// that the numbers equal the reference tool's.
//
// When METEOR is requested but WordNet is missing, Score returns the result
// for the other metrics together with an error wrapping ErrMetricUnavailable
// and meteor.ErrNoWordNet; result.Unavailable says why.
func Score(ids []string, refs [][]string, cands []string, opts Options) (*Result, error) {
	if len(ids) != len(cands) || len(ids) != len(refs) {
		return nil, fmt.Errorf("score: %d ids, %d candidate lists, %d reference lists", len(ids), len(cands), len(refs))
	}
	if len(ids) == 0 {
		return nil, errors.New("score: no images to score")
	}
	for i, r := range refs {
		if len(r) == 0 {
			return nil, fmt.Errorf("score: image %s has no reference captions", ids[i])
		}
	}
	metrics := opts.Metrics
	if metrics == nil {
		metrics = AllMetrics
	}
	want := map[string]bool{}
	for _, m := range metrics {
		if _, ok := metricKeys[m]; !ok {
			return nil, fmt.Errorf("score: unknown metric %q", m)
		}
		want[m] = true
	}

	tc, tr := cands, refs
	if !opts.PreTokenized {
		tc, tr = tokenizeForScoring(cands, refs)
	}
	res := &Result{
		NumImages: len(ids), ImageIDs: ids, TokenizedCandidates: tc, TokenizedRefs: tr,
		Corpus: map[string]float64{}, perImage: map[string][]float64{},
	}
	var unavailable error
	x := newGramIndex()
	var cs []sentence
	var rs [][]sentence
	if want[MetricBLEU] || want[MetricCIDEr] {
		cs, rs = indexAll(x, tc, tr)
	}
	for _, m := range AllMetrics {
		if !want[m] {
			continue
		}
		switch m {
		case MetricBLEU:
			b := bleuIndexed(x, cs, rs)
			for k, key := range metricKeys[m] {
				res.Corpus[key] = b.Corpus[k]
				per := make([]float64, len(ids))
				for i := range per {
					per[i] = b.PerImage[i][k]
				}
				res.perImage[key] = per
			}
			total := b.Total
			res.BleuStats = &total
			res.bleuStats = b.Stats
		case MetricMETEOR:
			sc := opts.Meteor
			if sc == nil {
				var err error
				if sc, err = loadDefaultMeteor(); err != nil {
					if res.Unavailable == nil {
						res.Unavailable = map[string]string{}
					}
					res.Unavailable[KeyMETEOR] = err.Error()
					unavailable = fmt.Errorf("%s: %w: %w", KeyMETEOR, ErrMetricUnavailable, err)
					continue
				}
			}
			res.meteorSc = sc
			res.meteor = make([]meteor.Stats, len(ids))
			per := make([]float64, len(ids))
			var agg meteor.Stats
			for i := range ids {
				st := sc.Stats(tc[i], tr[i])
				res.meteor[i] = st
				per[i] = sc.Score(st)
				agg.Add(st)
			}
			res.Corpus[KeyMETEOR] = sc.Score(agg)
			res.perImage[KeyMETEOR] = per
		case MetricROUGE:
			c, per := ROUGEL(tc, tr)
			res.Corpus[KeyROUGEL] = c
			res.perImage[KeyROUGEL] = per
		case MetricCIDEr:
			c, per := ciderIndexed(x, cs, rs)
			res.Corpus[KeyCIDEr] = c
			res.perImage[KeyCIDEr] = per
		}
		if _, ok := res.Corpus[metricKeys[m][0]]; ok {
			res.Metrics = append(res.Metrics, metricKeys[m]...)
		}
	}
	res.PerImage = make(map[string]map[string]float64, len(ids))
	for i, id := range ids {
		s := make(map[string]float64, len(res.Metrics))
		for _, k := range res.Metrics {
			s[k] = res.perImage[k][i]
		}
		res.PerImage[id] = s
	}
	if opts.Bootstrap > 0 {
		level := opts.Level
		if level == 0 {
			level = 0.95
		}
		if level <= 0 || level >= 1 {
			return nil, fmt.Errorf("score: confidence level %v not in (0, 1)", level)
		}
		res.CI = bootstrapCI(res, opts.Bootstrap, opts.Seed, level)
		res.Bootstrap = &BootstrapInfo{Method: "percentile bootstrap over images", Resamples: opts.Bootstrap, Seed: opts.Seed, Level: level}
	}
	return res, unavailable
}

// PerImageScores returns the per-image values of a score key in ImageIDs order.
func (r *Result) PerImageScores(key string) []float64 { return r.perImage[key] }

// tokenizeForScoring tokenizes all references in one call and all
// candidates in another, as pycocoevalcap does.
func tokenizeForScoring(cands []string, refs [][]string) ([]string, [][]string) {
	var flat []string
	for _, r := range refs {
		flat = append(flat, r...)
	}
	tokRefs := PTBTokenize(flat)
	tr := make([][]string, len(refs))
	k := 0
	for i, r := range refs {
		tr[i] = tokRefs[k : k+len(r) : k+len(r)]
		k += len(r)
	}
	return PTBTokenize(cands), tr
}
