package eval

import (
	"math"
	"math/rand/v2"
	"slices"

	"github.com/imgcap/imgcap/eval/meteor"
)

// bootstrapCI computes percentile bootstrap confidence intervals over
// images: each resample draws len(images) images with replacement and
// recomputes every corpus score the way the full-set score is computed
// (BLEU and METEOR from summed per-image statistics, ROUGE-L and CIDEr-D as
// means of per-image values). CIDEr-D's document frequencies are not
// recomputed per resample: they stay those of the full set.
func bootstrapCI(res *Result, resamples int, seed uint64, level float64) map[string]Interval {
	n := res.NumImages
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	samples := make(map[string][]float64, len(res.Metrics))
	for _, k := range res.Metrics {
		samples[k] = make([]float64, resamples)
	}
	meanKeys := []string{}
	for _, k := range []string{KeyROUGEL, KeyCIDEr} {
		if _, ok := res.perImage[k]; ok {
			meanKeys = append(meanKeys, k)
		}
	}
	idx := make([]int, n)
	for b := 0; b < resamples; b++ {
		for i := range idx {
			idx[i] = rng.IntN(n)
		}
		if res.bleuStats != nil {
			var tot BleuStats
			for _, i := range idx {
				tot.Add(res.bleuStats[i])
			}
			s := tot.Scores()
			for k, key := range metricKeys[MetricBLEU] {
				samples[key][b] = s[k]
			}
		}
		if res.meteor != nil {
			var agg meteor.Stats
			for _, i := range idx {
				agg.Add(res.meteor[i])
			}
			samples[KeyMETEOR][b] = res.meteorSc.Score(agg)
		}
		for _, key := range meanKeys {
			per := res.perImage[key]
			sum := 0.0
			for _, i := range idx {
				sum += per[i]
			}
			samples[key][b] = sum / float64(n)
		}
	}
	out := make(map[string]Interval, len(samples))
	alpha := (1 - level) / 2
	for key, s := range samples {
		slices.Sort(s)
		out[key] = Interval{Low: quantile(s, alpha), High: quantile(s, 1-alpha)}
	}
	return out
}

// quantile returns the q-quantile of sorted values with linear
// interpolation between order statistics (numpy's default method).
func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	pos := q * float64(len(sorted)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(sorted)-1)
	frac := pos - float64(lo)
	return sorted[lo] + (sorted[hi]-sorted[lo])*frac
}
