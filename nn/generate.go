package nn

import (
	"errors"
	"fmt"
	"math"
	"sort"
)

// Stepper is a decoder that generation drives one token at a time. It keeps its own state
// (LSTM state, key/value caches) for rows = batch × beams.
type Stepper interface {
	// Step feeds one token per row and returns the next-token log-probabilities, row-major
	// [rows × vocab], and the vocabulary size.
	Step(tokens []int64) (logProbs []float32, vocab int, err error)
	// Reorder keeps the rows of the decoder state listed in rows (in that order); beam search
	// calls it after choosing which beams continue.
	Reorder(rows []int64) error
}

// SearchOptions control BeamSearch.
type SearchOptions struct {
	Batch         int     // images
	NumBeams      int     // 1 = greedy
	StartID       int64   // first token fed to the decoder
	EndID         int64   // token that ends a caption (-1 = none)
	MaxNewTokens  int     // tokens generated after StartID, EndID included
	MinNewTokens  int     // EndID is forbidden before this many new tokens
	LengthPenalty float64 // finished beam score = sum logprob / length^LengthPenalty
	NoRepeatNgram int     // forbid repeating an n-gram of this size (0 = off)
	EarlyStopping bool    // stop a batch row once NumBeams captions are finished
}

// Hypothesis is one generated sequence (StartID excluded, EndID included when generated).
type Hypothesis struct {
	Tokens []int64
	Score  float64 // length-normalised log-probability
	SumLog float64 // sum of the tokens' log-probabilities
}

// BeamSearch generates the best sequence for each batch row with Hugging Face's beam-search
// rules: 2×beams candidates per step, finished beams scored sum/len^penalty with len counting
// the generated tokens, and a row done when it has NumBeams finished hypotheses and no running
// beam can beat the worst of them (or at once with EarlyStopping). With NumBeams = 1 it is
// greedy decoding. The stepper's rows are batch-major: row = b*NumBeams + k.
func BeamSearch(s Stepper, o SearchOptions) ([]Hypothesis, error) {
	if o.Batch <= 0 || o.NumBeams <= 0 || o.MaxNewTokens <= 0 {
		return nil, fmt.Errorf("beam search: batch %d, beams %d, max new tokens %d must be positive", o.Batch, o.NumBeams, o.MaxNewTokens)
	}
	K := o.NumBeams
	rows := o.Batch * K
	seqs := make([][]int64, rows)
	sums := make([]float64, rows)
	for r := range sums {
		// Only the first beam of a row starts live, so the K beams do not all pick the same token.
		if r%K != 0 {
			sums[r] = math.Inf(-1)
		}
	}
	finished := make([][]Hypothesis, o.Batch)
	done := make([]bool, o.Batch)
	tokens := make([]int64, rows)
	for r := range tokens {
		tokens[r] = o.StartID
	}
	score := func(sum float64, length int) float64 {
		return sum / math.Pow(float64(length), o.LengthPenalty)
	}
	type cand struct {
		row   int
		tok   int64
		total float64
	}
	for step := 0; step < o.MaxNewTokens; step++ {
		logp, vocab, err := s.Step(tokens)
		if err != nil {
			return nil, err
		}
		if len(logp) != rows*vocab {
			return nil, fmt.Errorf("beam search: stepper returned %d log-probs, want %d×%d", len(logp), rows, vocab)
		}
		if o.EndID >= int64(vocab) {
			return nil, fmt.Errorf("beam search: end id %d outside vocabulary of %d", o.EndID, vocab)
		}
		nextRows := make([]int64, 0, rows)
		nextTok := make([]int64, 0, rows)
		nextSums := make([]float64, 0, rows)
		nextSeqs := make([][]int64, 0, rows)
		for b := 0; b < o.Batch; b++ {
			if done[b] {
				// Keep the row's beams in place (their outputs are ignored).
				for k := 0; k < K; k++ {
					r := b*K + k
					nextRows = append(nextRows, int64(r))
					nextTok = append(nextTok, o.endOr0())
					nextSums = append(nextSums, math.Inf(-1))
					nextSeqs = append(nextSeqs, seqs[r])
				}
				continue
			}
			var cands []cand
			for k := 0; k < K; k++ {
				r := b*K + k
				if math.IsInf(sums[r], -1) {
					continue
				}
				lp := logp[r*vocab : (r+1)*vocab]
				banned := bannedTokens(seqs[r], o.NoRepeatNgram)
				for v := 0; v < vocab; v++ {
					x := float64(lp[v])
					if int64(v) == o.EndID && step < o.MinNewTokens {
						continue
					}
					if banned[int64(v)] || math.IsNaN(x) || math.IsInf(x, -1) {
						continue
					}
					cands = append(cands, cand{r, int64(v), sums[r] + x})
				}
			}
			sort.SliceStable(cands, func(i, j int) bool { return cands[i].total > cands[j].total })
			if len(cands) > 2*K {
				cands = cands[:2*K]
			}
			kept := 0
			for rank, c := range cands {
				if kept == K {
					break
				}
				seq := append(append([]int64(nil), seqs[c.row]...), c.tok)
				if c.tok == o.EndID {
					if rank < K {
						finished[b] = addHyp(finished[b], Hypothesis{Tokens: seq, SumLog: c.total, Score: score(c.total, len(seq))}, K)
					}
					continue
				}
				nextRows = append(nextRows, int64(c.row))
				nextTok = append(nextTok, c.tok)
				nextSums = append(nextSums, c.total)
				nextSeqs = append(nextSeqs, seq)
				kept++
			}
			for ; kept < K; kept++ {
				r := b * K
				nextRows = append(nextRows, int64(r))
				nextTok = append(nextTok, o.endOr0())
				nextSums = append(nextSums, math.Inf(-1))
				nextSeqs = append(nextSeqs, seqs[r])
			}
			// Is the row done? HF: enough finished hypotheses and no running beam can do better.
			if len(finished[b]) >= K {
				if o.EarlyStopping {
					done[b] = true
				} else {
					best := math.Inf(-1)
					for k := len(nextSums) - K; k < len(nextSums); k++ {
						best = math.Max(best, nextSums[k])
					}
					worst := finished[b][len(finished[b])-1].Score
					if worst >= score(best, step+1) {
						done[b] = true
					}
				}
			}
		}
		if err := s.Reorder(nextRows); err != nil {
			return nil, err
		}
		tokens, sums, seqs = nextTok, nextSums, nextSeqs
		all := true
		for _, d := range done {
			all = all && d
		}
		if all {
			break
		}
	}
	out := make([]Hypothesis, o.Batch)
	for b := 0; b < o.Batch; b++ {
		hyps := finished[b]
		if !done[b] {
			// Out of tokens: running beams compete with the finished ones at their length.
			for k := 0; k < K; k++ {
				r := b*K + k
				if math.IsInf(sums[r], -1) {
					continue
				}
				hyps = addHyp(hyps, Hypothesis{Tokens: seqs[r], SumLog: sums[r], Score: score(sums[r], len(seqs[r]))}, K)
			}
		}
		if len(hyps) == 0 {
			return nil, errors.New("beam search: no hypothesis survived (every token banned?)")
		}
		out[b] = hyps[0]
	}
	return out, nil
}

func (o SearchOptions) endOr0() int64 {
	if o.EndID >= 0 {
		return o.EndID
	}
	return 0
}

// addHyp inserts h into hyps sorted best first, keeping at most k.
func addHyp(hyps []Hypothesis, h Hypothesis, k int) []Hypothesis {
	i := sort.Search(len(hyps), func(i int) bool { return hyps[i].Score < h.Score })
	hyps = append(hyps, Hypothesis{})
	copy(hyps[i+1:], hyps[i:])
	hyps[i] = h
	if len(hyps) > k {
		hyps = hyps[:k]
	}
	return hyps
}

// bannedTokens lists the tokens that would repeat an n-gram of seq (no_repeat_ngram_size).
func bannedTokens(seq []int64, n int) map[int64]bool {
	if n <= 0 || len(seq) < n-1 {
		return nil
	}
	prefix := seq[len(seq)-(n-1):]
	banned := map[int64]bool{}
	for i := 0; i+n <= len(seq); i++ {
		match := true
		for j := 0; j < n-1; j++ {
			if seq[i+j] != prefix[j] {
				match = false
				break
			}
		}
		if match {
			banned[seq[i+n-1]] = true
		}
	}
	return banned
}
