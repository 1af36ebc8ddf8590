package eval

import "math"

// BleuStats are BLEU's sufficient statistics for one image or a corpus.
type BleuStats struct {
	// TestLen is the candidate length in words.
	TestLen int `json:"testlen"`
	// RefLen is the effective reference length: the reference length closest
	// to TestLen (ties to the shorter); for a corpus, the sum over images.
	RefLen int `json:"reflen"`
	// Guess[n-1] is the number of candidate n-grams.
	Guess [maxN]int `json:"guess"`
	// Correct[n-1] is the number of candidate n-grams found in a reference,
	// clipped by the largest count in any single reference.
	Correct [maxN]int `json:"correct"`
}

// Add accumulates o into s.
func (s *BleuStats) Add(o BleuStats) {
	s.TestLen += o.TestLen
	s.RefLen += o.RefLen
	for k := range s.Guess {
		s.Guess[k] += o.Guess[k]
		s.Correct[k] += o.Correct[k]
	}
}

// Scores returns BLEU-1..4 for these statistics with the constants and
// brevity penalty of the COCO caption evaluation code: precisions
// (correct+1e-15)/(guess+1e-9), cumulative geometric means, and the penalty
// exp(1-1/ratio) when ratio = (testlen+1e-15)/(reflen+1e-9) < 1.
func (s BleuStats) Scores() [maxN]float64 {
	const small, tiny = 1e-9, 1e-15
	var out [maxN]float64
	bleu := 1.0
	for k := 0; k < maxN; k++ {
		bleu *= (float64(s.Correct[k]) + tiny) / (float64(s.Guess[k]) + small)
		out[k] = math.Pow(bleu, 1.0/float64(k+1))
	}
	ratio := (float64(s.TestLen) + tiny) / (float64(s.RefLen) + small)
	if ratio < 1 {
		bp := math.Exp(1 - 1/ratio)
		for k := range out {
			out[k] *= bp
		}
	}
	return out
}

// BleuResult holds corpus and per-image BLEU-1..4.
type BleuResult struct {
	// Corpus is corpus BLEU-n from statistics summed over all images.
	Corpus [maxN]float64
	// Total is the summed statistics.
	Total BleuStats
	// PerImage[i] is image i's own BLEU-n (per-sentence brevity penalty).
	PerImage [][maxN]float64
	// Stats[i] is image i's statistics.
	Stats []BleuStats
}

// BLEU computes BLEU-1..4 as pycocoevalcap's Bleu(4) with option "closest".
// cands[i] is image i's tokenized candidate and refs[i] its tokenized
// references (at least one); words are split on whitespace.
func BLEU(cands []string, refs [][]string) BleuResult {
	x := newGramIndex()
	cs, rs := indexAll(x, cands, refs)
	return bleuIndexed(x, cs, rs)
}

// indexAll turns candidates and references into n-gram counts.
func indexAll(x *gramIndex, cands []string, refs [][]string) ([]sentence, [][]sentence) {
	cs := make([]sentence, len(cands))
	rs := make([][]sentence, len(refs))
	nBytes := 0
	for i := range refs {
		for _, r := range refs[i] {
			nBytes += len(r)
		}
	}
	for _, c := range cands {
		nBytes += len(c)
	}
	x.reserve(nBytes/4 + len(cands))
	for i := range refs {
		rs[i] = make([]sentence, len(refs[i]))
		for j, r := range refs[i] {
			rs[i][j] = x.add(r)
		}
	}
	for i, c := range cands {
		cs[i] = x.add(c)
	}
	return cs, rs
}

func bleuIndexed(x *gramIndex, cs []sentence, rs [][]sentence) BleuResult {
	res := BleuResult{PerImage: make([][maxN]float64, len(cs)), Stats: make([]BleuStats, len(cs))}
	maxRef := make([]int32, len(x.order))
	var touched []int32
	for i, c := range cs {
		var st BleuStats
		st.TestLen = c.words
		best := -1
		for _, r := range rs[i] {
			d := abs(r.words - c.words)
			if best < 0 || d < abs(best-c.words) || d == abs(best-c.words) && r.words < best {
				best = r.words
			}
			for _, g := range r.grams {
				if maxRef[g.id] == 0 {
					touched = append(touched, g.id)
				}
				if g.count > maxRef[g.id] {
					maxRef[g.id] = g.count
				}
			}
		}
		if best >= 0 {
			st.RefLen = best
		}
		for k := 0; k < maxN; k++ {
			st.Guess[k] = max(0, c.words-k)
		}
		for _, g := range c.grams {
			st.Correct[x.order[g.id]-1] += int(min(g.count, maxRef[g.id]))
		}
		for _, id := range touched {
			maxRef[id] = 0
		}
		touched = touched[:0]
		res.Stats[i] = st
		res.PerImage[i] = st.Scores()
		res.Total.Add(st)
	}
	res.Corpus = res.Total.Scores()
	return res
}

func abs(a int) int {
	if a < 0 {
		return -a
	}
	return a
}
