package eval

import "math"

// CIDErSigma is the Gaussian length-penalty width of CIDEr-D.
const CIDErSigma = 6.0

// CIDErD computes CIDEr-D as pycocoevalcap's Cider() does, for tokenized
// candidates and references (words split on whitespace). It returns the
// corpus value (mean over images) and the per-image values.
//
// Definition (coco-caption): for n = 1..4, each sentence is a vector of
// n-gram counts times idf(g) = log(N) - log(max(1, df(g))), where N is the
// number of images and df(g) the number of images whose reference set
// contains g; per image, sum over its references of
// sum_g min(c_g, r_g) r_g / (|c| |r|) * exp(-(lc - lr)^2 / (2 sigma^2)),
// averaged over n, divided by the number of references and multiplied by 10.
// Quirk kept: the lengths lc, lr count bigrams, max(0, words-1).
// Per-image values depend on the whole set through df and N.
func CIDErD(cands []string, refs [][]string) (corpus float64, perImage []float64) {
	x := newGramIndex()
	cs, rs := indexAll(x, cands, refs)
	return ciderIndexed(x, cs, rs)
}

// ciderVec is a sentence's tf-idf vector (aligned with sentence.grams).
type ciderVec struct {
	val    []float64
	norm   [maxN]float64
	length float64
}

func ciderIndexed(x *gramIndex, cs []sentence, rs [][]sentence) (float64, []float64) {
	n := len(cs)
	if n == 0 {
		return 0, nil
	}
	// Document frequency over the reference sets.
	df := make([]float64, len(x.order))
	seen := make([]int32, len(x.order))
	for i := range seen {
		seen[i] = -1
	}
	for i, refs := range rs {
		for _, r := range refs {
			for _, g := range r.grams {
				if seen[g.id] != int32(i) {
					seen[g.id] = int32(i)
					df[g.id]++
				}
			}
		}
	}
	refLen := math.Log(float64(n))
	logDF := make([]float64, len(df))
	for i, d := range df {
		logDF[i] = math.Log(math.Max(1, d))
	}
	toVec := func(s sentence, v *ciderVec) {
		v.val = v.val[:0]
		v.norm = [maxN]float64{}
		v.length = 0
		for _, g := range s.grams {
			o := x.order[g.id] - 1
			w := float64(g.count) * (refLen - logDF[g.id])
			v.val = append(v.val, w)
			v.norm[o] += w * w
			if o == 1 {
				v.length += float64(g.count)
			}
		}
		for k := range v.norm {
			v.norm[k] = math.Sqrt(v.norm[k])
		}
	}
	const twoSigma2 = 2 * CIDErSigma * CIDErSigma
	scores := make([]float64, n)
	var cv, rv ciderVec
	dense := make([]float64, len(x.order)) // reference vector, scattered by gram id
	sum := 0.0
	for i := range cs {
		toVec(cs[i], &cv)
		var score [maxN]float64
		for _, r := range rs[i] {
			toVec(r, &rv)
			for q, g := range r.grams {
				dense[g.id] = rv.val[q]
			}
			var val [maxN]float64
			// Candidate n-grams in first-occurrence order, as pycocoevalcap sums them.
			for p, g := range cs[i].grams {
				if vr := dense[g.id]; vr != 0 {
					val[x.order[g.id]-1] += math.Min(cv.val[p], vr) * vr
				}
			}
			for _, g := range r.grams {
				dense[g.id] = 0
			}
			delta := cv.length - rv.length
			pen := math.Pow(math.E, -(delta*delta)/twoSigma2)
			for k := range val {
				if cv.norm[k] != 0 && rv.norm[k] != 0 {
					val[k] /= cv.norm[k] * rv.norm[k]
				}
				score[k] += val[k] * pen
			}
		}
		avg := (score[0] + score[1] + score[2] + score[3]) / maxN
		if len(rs[i]) > 0 {
			avg /= float64(len(rs[i]))
		}
		avg *= 10
		scores[i] = avg
		sum += avg
	}
	return sum / float64(n), scores
}
