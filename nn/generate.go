package nn

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Decoder is what Generate drives: a model conditioned on its inputs (image features, …) that
// owns its state (key/value caches, LSTM state) for a fixed number of rows. Generate calls it
// only from the goroutine that called Generate (torch work stays on a locked OS thread).
type Decoder interface {
	// Step appends tokens[r] to row r (the same count n >= 1 for every row; n > 1 happens once,
	// for the prompt) and returns the raw logits of each row's last position, row-major
	// [rows × vocab], and vocab. The decoder must not keep tokens (Generate reuses them).
	// Generate may overwrite logits and is done with them before the next call.
	Step(tokens [][]int64) (logits []float32, vocab int, err error)
	// Reorder keeps the listed rows of the state, in that order (len(rows) == current rows;
	// a row may be listed more than once).
	Reorder(rows []int64) error
}

// GenerateOptions control Generate. The names follow Hugging Face's GenerationConfig;
// GenerationConfig.Options builds them from a model's generation_config.json.
type GenerateOptions struct {
	NumBeams      int     // 1: greedy (or sampling); > 1: beam search
	MaxNewTokens  int     // tokens generated after the prompt, EOS included (>= 1)
	MinNewTokens  int     // every EOS is forbidden (-inf) until this many new tokens exist
	LengthPenalty float64 // beam: a finished score is sum logprob / new_len^LengthPenalty (HF's default is 1; 0 is no normalisation)
	// EarlyStopping (HF early_stopping=True) ends a beam search row as soon as it has NumBeams
	// finished hypotheses; false is HF's heuristic (stop when the step's best candidate, scored
	// at the current length, cannot beat the worst finished one).
	EarlyStopping bool
	// EarlyStoppingNever is HF early_stopping="never": stop only when no candidate can improve,
	// bounding with MaxNewTokens when LengthPenalty > 0. Exclusive with EarlyStopping.
	EarlyStoppingNever bool
	NoRepeatNgram      int     // forbid repeating any n-gram of this size (0 = off), over prompt + new tokens
	RepetitionPenalty  float64 // HF repetition_penalty: seen tokens' scores ×p if < 0, ÷p otherwise (0 or 1 = off)
	EOS                []int64 // any of these ends a row (empty: rows run to MaxNewTokens)
	PadID              int64   // fed to (and emitted by) rows that have finished
	DoSample           bool    // sample instead of argmax (NumBeams must be 1)
	Temperature        float64 // sampling: logits ÷ Temperature (0 means 1)
	TopK               int     // sampling: keep the TopK best tokens (0 = off)
	TopP               float64 // sampling: keep the most likely tokens until their probability exceeds TopP (0 or 1 = off)
	Seed               int64   // sampling: seed of the random source (math/rand/v2 PCG)
	OutputScores       bool    // greedy/sampling: fill Sequence.StepScores
}

// Sequence is one generated sequence.
type Sequence struct {
	// Tokens are the new tokens only (the prompt excluded), EOS included when generated. Beam
	// search appends EOS[0], as HF does, whichever EOS ended the hypothesis.
	Tokens []int64
	// Score is HF's sequences_scores for beam search (sum of the processed log-probs /
	// new_len^LengthPenalty); for greedy and sampling it is the sum over Tokens of the
	// log-softmax of the processed (and warped) scores that chose them.
	Score float64
	// StepScores, with OutputScores (greedy/sampling), holds HF's `scores` for this row: the
	// processed (and warped) logits of every step, also after the row finished.
	StepScores [][]float32
}

// beamDeadScore is HF's initial score of beams 1..K-1, so that at the first step only beam 0
// of each row (all beams hold the same prompt) proposes candidates.
const beamDeadScore = -1e9

// genSeedStream is the second PCG word; the first is the user's seed.
const genSeedStream = 0x9e3779b97f4a7c15

// Generate continues each prompt with greedy search, beam search or sampling, reproducing the
// decisions of Hugging Face transformers 4.36.2 (greedy_search, beam_search with
// BeamSearchScorer, sample) and its logits processors (repetition_penalty,
// no_repeat_ngram_size, min_length/min_new_tokens) and warpers (temperature, top_k, top_p).
//
// prompts[b] is the decoder prompt of batch row b (e.g. [decoder_start] or [bos, w1, w2]); all
// prompts must have the same length. d must hold len(prompts)*NumBeams rows, batch-major
// (row = b*NumBeams + k); its first Step receives each prompt on all of its beams' rows.
// Greedy search and sampling never call Reorder; beam search calls it only when the surviving
// beams are not already in place, and not after the last step.
//
// The context is checked before every decoder step. The per-row work (log-softmax, processors,
// warpers) runs on up to GOMAXPROCS goroutines; results do not depend on it.
//
// Beam scores are computed in float64 from the float32 logits (HF works in float32), so a
// near-tie closer than float32 rounding may resolve differently; exact ties are broken by the
// lower index, where torch.topk leaves the order unspecified. Sampling is reproducible for a
// Seed but cannot reproduce torch's random stream.
func Generate(ctx context.Context, d Decoder, prompts [][]int64, o GenerateOptions) ([]Sequence, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	if len(prompts) == 0 {
		return nil, errors.New("generate: no prompts")
	}
	for b, p := range prompts {
		if len(p) == 0 {
			return nil, fmt.Errorf("generate: prompt %d is empty (it needs at least the start token)", b)
		}
		if len(p) != len(prompts[0]) {
			return nil, fmt.Errorf("generate: prompt %d has %d tokens but prompt 0 has %d; prompts must have the same length", b, len(p), len(prompts[0]))
		}
	}
	g := &generation{ctx: ctx, d: d, o: o, promptLen: len(prompts[0])}
	if o.NumBeams > 1 {
		return g.beamSearch(prompts)
	}
	return g.greedyOrSample(prompts)
}

func (o *GenerateOptions) validate() error {
	var bad []string
	check := func(ok bool, format string, args ...any) {
		if !ok {
			bad = append(bad, fmt.Sprintf(format, args...))
		}
	}
	finite := func(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
	check(o.NumBeams >= 1, "NumBeams %d < 1", o.NumBeams)
	check(o.MaxNewTokens >= 1, "MaxNewTokens %d < 1", o.MaxNewTokens)
	check(o.MinNewTokens >= 0, "MinNewTokens %d < 0", o.MinNewTokens)
	check(o.NoRepeatNgram >= 0, "NoRepeatNgram %d < 0", o.NoRepeatNgram)
	check(finite(o.LengthPenalty), "LengthPenalty %v is not finite", o.LengthPenalty)
	check(finite(o.RepetitionPenalty) && o.RepetitionPenalty >= 0, "RepetitionPenalty %v must be > 0 (0 = off)", o.RepetitionPenalty)
	check(!(o.EarlyStopping && o.EarlyStoppingNever), "EarlyStopping and EarlyStoppingNever are exclusive")
	for _, e := range o.EOS {
		check(e >= 0, "EOS id %d < 0", e)
	}
	check(len(o.EOS) == 0 || o.PadID >= 0, "PadID %d < 0", o.PadID)
	if o.DoSample {
		check(o.NumBeams == 1, "sampling with NumBeams %d > 1 (beam sampling) is not supported", o.NumBeams)
		check(finite(o.Temperature) && o.Temperature >= 0, "Temperature %v must be > 0 (0 = 1)", o.Temperature)
		check(o.TopK >= 0, "TopK %d < 0", o.TopK)
		check(o.TopP >= 0 && o.TopP <= 1, "TopP %v outside (0, 1] (0 = off)", o.TopP)
	}
	if len(bad) > 0 {
		return fmt.Errorf("generate: invalid options: %s", strings.Join(bad, "; "))
	}
	return nil
}

// generation is the state shared by the search strategies.
type generation struct {
	ctx       context.Context
	d         Decoder
	o         GenerateOptions
	promptLen int
	vocab     int // known after the first step
}

// step runs the decoder once and checks what it returned.
func (g *generation) step(t int, tokens [][]int64) ([]float32, error) {
	if err := g.ctx.Err(); err != nil {
		return nil, fmt.Errorf("generate: before step %d: %w", t, err)
	}
	logits, vocab, err := g.d.Step(tokens)
	if err != nil {
		return nil, fmt.Errorf("generate: step %d: %w", t, err)
	}
	if vocab <= 0 || len(logits) != len(tokens)*vocab {
		return nil, fmt.Errorf("generate: step %d: decoder returned %d logits for %d rows × vocab %d", t, len(logits), len(tokens), vocab)
	}
	if g.vocab == 0 {
		g.vocab = vocab
		for _, e := range g.o.EOS {
			if e >= int64(vocab) {
				return nil, fmt.Errorf("generate: EOS id %d outside the vocabulary of %d", e, vocab)
			}
		}
		if len(g.o.EOS) > 0 && g.o.PadID >= int64(vocab) {
			return nil, fmt.Errorf("generate: PadID %d outside the vocabulary of %d", g.o.PadID, vocab)
		}
	} else if vocab != g.vocab {
		return nil, fmt.Errorf("generate: step %d: vocabulary changed from %d to %d", t, g.vocab, vocab)
	}
	return logits, nil
}

func (g *generation) isEOS(tok int64) bool { return slices.Contains(g.o.EOS, tok) }

// greedyOrSample is HF's greedy_search and sample: one row per prompt, finished rows emit PadID,
// stop when every row has finished or MaxNewTokens are generated.
func (g *generation) greedyOrSample(prompts [][]int64) ([]Sequence, error) {
	o := &g.o
	rows := len(prompts)
	hist := make([][]int64, rows) // prompt + generated tokens (pads included), what HF's input_ids hold
	tokens := make([][]int64, rows)
	for r, p := range prompts {
		hist[r] = slices.Clone(p)
		tokens[r] = slices.Clone(p)
	}
	var rng *rand.Rand
	if o.DoSample {
		rng = rand.New(rand.NewPCG(uint64(o.Seed), genSeedStream))
	}
	out := make([]Sequence, rows)
	finished := make([]bool, rows)
	var logp []float64           // sampling: log-probs of each row
	lse := make([]float64, rows) // greedy: log Σ exp of each row's scores
	for t := 1; t <= o.MaxNewTokens; t++ {
		logits, err := g.step(t, tokens)
		if err != nil {
			return nil, err
		}
		V := g.vocab
		if o.DoSample {
			logp = slices.Grow(logp[:0], rows*V)[:rows*V]
		}
		// Rows are scored in parallel (in place: logits are ours until the next step); the
		// tokens are chosen in row order, so that sampling is reproducible.
		err = genParallel(rows, V, func(r int) error {
			s := logits[r*V : (r+1)*V]
			genProcess(o, g.promptLen, hist[r], s)
			if o.DoSample {
				genWarp(o, s)
			}
			if finished[r] {
				return nil
			}
			if o.DoSample {
				err = genLogSoftmax(logp[r*V:(r+1)*V], s)
			} else {
				lse[r], err = genLogSumExp(s)
			}
			if err != nil {
				return fmt.Errorf("generate: step %d, row %d: %w", t, r, err)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		allDone := true
		for r := range rows {
			s := logits[r*V : (r+1)*V]
			if o.OutputScores {
				out[r].StepScores = append(out[r].StepScores, slices.Clone(s))
			}
			tok := o.PadID
			if !finished[r] {
				if o.DoSample {
					lp := logp[r*V : (r+1)*V]
					if tok = genDraw(rng, lp); tok < 0 {
						return nil, fmt.Errorf("generate: step %d, row %d: every token has probability 0", t, r)
					}
					out[r].Score += lp[tok]
				} else {
					tok = int64(genArgmax(s))
					if math.IsInf(lse[r], -1) {
						out[r].Score = math.Inf(-1) // every token was banned; HF's argmax picks 0
					} else {
						out[r].Score += float64(s[tok]) - lse[r]
					}
				}
				out[r].Tokens = append(out[r].Tokens, tok)
				finished[r] = g.isEOS(tok)
			}
			allDone = allDone && finished[r]
			hist[r] = append(hist[r], tok)
			tokens[r] = append(tokens[r][:0], tok)
		}
		if allDone {
			break
		}
	}
	return out, nil
}

// beamHyp is a finished (or, at the end, running) beam: new tokens without the EOS.
type beamHyp struct {
	score  float64
	tokens []int64
	eos    bool
}

// beamHyps is HF's BeamHypotheses: the NumBeams best hypotheses of one batch row.
type beamHyps struct {
	beams []beamHyp
	worst float64
}

// add is BeamHypotheses.add with generated_len = newLen (prompt excluded, EOS counted).
func (h *beamHyps) add(o *GenerateOptions, tokens []int64, sumLogProbs float64, newLen int, eos bool) {
	score := sumLogProbs / math.Pow(float64(newLen), o.LengthPenalty)
	if len(h.beams) >= o.NumBeams && score <= h.worst {
		return
	}
	h.beams = append(h.beams, beamHyp{score: score, tokens: tokens, eos: eos})
	if len(h.beams) <= o.NumBeams {
		h.worst = min(score, h.worst)
		return
	}
	// Drop the worst; among equal scores the one added first (HF sorts (score, index) pairs).
	w := 0
	for i, b := range h.beams {
		if b.score < h.beams[w].score {
			w = i
		}
	}
	h.beams = slices.Delete(h.beams, w, w+1)
	h.worst = math.Inf(1)
	for _, b := range h.beams {
		h.worst = min(h.worst, b.score)
	}
}

// isDone is BeamHypotheses.is_done(best, cur_len, decoder_prompt_len) with
// cur_len - decoder_prompt_len = t, the new tokens including the one chosen this step; best is
// the best of the step's candidates (HF: next_scores.max()).
func (h *beamHyps) isDone(o *GenerateOptions, best float64, t int) bool {
	if len(h.beams) < o.NumBeams {
		return false
	}
	if o.EarlyStopping {
		return true
	}
	n := t
	if o.EarlyStoppingNever && o.LengthPenalty > 0 {
		n = o.MaxNewTokens // HF: max_length - decoder_prompt_len
	}
	return h.worst >= best/math.Pow(float64(n), o.LengthPenalty)
}

// best is HF's sorted(beams, key=score).pop(): the highest score, the last added among equals.
func (h *beamHyps) best() beamHyp {
	b := h.beams[0]
	for _, x := range h.beams[1:] {
		if x.score >= b.score {
			b = x
		}
	}
	return b
}

// beamSearch is HF's beam_search with BeamSearchScorer (num_beam_groups 1, one returned
// sequence per prompt).
func (g *generation) beamSearch(prompts [][]int64) ([]Sequence, error) {
	o := &g.o
	K := o.NumBeams
	B := len(prompts)
	rows := B * K
	hist := make([][]int64, rows) // prompt + new tokens of each running beam
	tokens := make([][]int64, rows)
	score := make([]float64, rows) // running sum of processed log-probs
	for r := range rows {
		hist[r] = slices.Clone(prompts[r/K])
		tokens[r] = slices.Clone(prompts[r/K])
		if r%K != 0 {
			score[r] = beamDeadScore
		}
	}
	hyps := make([]beamHyps, B)
	for b := range hyps {
		hyps[b].worst = 1e9
	}
	done := make([]bool, B)
	// HF takes the top max(2, 1+len(eos)) * num_beams candidates, so that at least num_beams of
	// them are not EOS.
	nCand := max(2, 1+len(o.EOS)) * K
	src := make([]int64, rows)
	nextTok := make([]int64, rows)
	nextScore := make([]float64, rows)
	var cand []float64
	for t := 1; ; t++ {
		logits, err := g.step(t, tokens)
		if err != nil {
			return nil, err
		}
		V := g.vocab
		cand = slices.Grow(cand[:0], rows*V)[:rows*V]
		// Candidate scores of all live rows in parallel: log-softmax, processors, + beam score.
		err = genParallel(rows, V, func(r int) error {
			if done[r/K] {
				return nil
			}
			c := cand[r*V : (r+1)*V]
			if err := genLogSoftmax(c, logits[r*V:(r+1)*V]); err != nil {
				return fmt.Errorf("generate: step %d, row %d: %w", t, r, err)
			}
			genProcess(o, g.promptLen, hist[r], c)
			for v := range c {
				c[v] += score[r]
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		allDone := true
		for b := range B {
			base := b * K
			if !done[b] {
				cb := cand[base*V : (base+K)*V]
				top := genTopN(cb, min(nCand, K*V))
				filled := 0
				for rank, i := range top {
					r, tok := base+i/V, int64(i%V)
					if g.isEOS(tok) {
						// An EOS outside the top num_beams candidates is not a hypothesis.
						if rank < K {
							hyps[b].add(o, slices.Clone(hist[r][g.promptLen:]), cb[i], t, true)
						}
					} else {
						j := base + filled
						src[j], nextTok[j], nextScore[j] = int64(r), tok, cb[i]
						filled++
					}
					if filled == K {
						break
					}
				}
				if filled < K {
					return nil, fmt.Errorf("generate: step %d, batch row %d: fewer than %d candidates that are not EOS (vocabulary %d)", t, b, K, V)
				}
				done[b] = hyps[b].isDone(o, cb[top[0]], t)
			}
			if done[b] {
				// A finished row's beams no longer matter: leave them in place and feed pads.
				for k := range K {
					j := base + k
					src[j], nextTok[j], nextScore[j] = int64(j), o.PadID, score[j]
				}
			}
			allDone = allDone && done[b]
		}
		identity := true
		next := make([][]int64, rows)
		for j := range rows {
			if done[j/K] {
				next[j] = hist[j]
				continue
			}
			identity = identity && src[j] == int64(j)
			next[j] = append(slices.Clone(hist[src[j]]), nextTok[j])
		}
		hist = next
		copy(score, nextScore)
		if allDone || t == o.MaxNewTokens {
			break
		}
		if !identity {
			if err := g.d.Reorder(slices.Clone(src)); err != nil {
				return nil, fmt.Errorf("generate: step %d: reorder: %w", t, err)
			}
		}
		for j := range rows {
			tokens[j] = append(tokens[j][:0], nextTok[j])
		}
	}
	out := make([]Sequence, B)
	for b := range B {
		if !done[b] {
			// Out of tokens: the running beams compete with the finished ones at their length.
			for k := range K {
				r := b*K + k
				hyps[b].add(o, slices.Clone(hist[r][g.promptLen:]), score[r], len(hist[r])-g.promptLen, false)
			}
		}
		best := hyps[b].best()
		seq := Sequence{Tokens: best.tokens, Score: best.score}
		if best.eos {
			seq.Tokens = append(seq.Tokens, o.EOS[0])
		}
		out[b] = seq
	}
	return out, nil
}

// genProcess applies HF's logits processors, in HF's order, to one row's scores (logits for
// greedy/sampling, log-probs for beam search); hist is the row's prompt + generated tokens.
func genProcess[T float32 | float64](o *GenerateOptions, promptLen int, hist []int64, s []T) {
	inf := T(math.Inf(-1))
	if p := o.RepetitionPenalty; p != 0 && p != 1 {
		seen := make(map[int64]bool, len(hist))
		for _, tok := range hist {
			if tok < 0 || tok >= int64(len(s)) || seen[tok] {
				continue
			}
			seen[tok] = true
			if s[tok] < 0 {
				s[tok] *= T(p)
			} else {
				s[tok] /= T(p)
			}
		}
	}
	for _, tok := range genBannedNgram(hist, o.NoRepeatNgram) {
		if tok >= 0 && tok < int64(len(s)) {
			s[tok] = inf
		}
	}
	if len(hist)-promptLen < o.MinNewTokens {
		for _, e := range o.EOS {
			s[e] = inf
		}
	}
}

// genBannedNgram lists the tokens that would complete an n-gram already in seq (HF's
// NoRepeatNGramLogitsProcessor).
func genBannedNgram(seq []int64, n int) []int64 {
	if n <= 0 || len(seq)+1 < n {
		return nil
	}
	prefix := seq[len(seq)-(n-1):]
	var banned []int64
	for i := 0; i+n <= len(seq); i++ {
		if slices.Equal(seq[i:i+n-1], prefix) {
			banned = append(banned, seq[i+n-1])
		}
	}
	return banned
}

// genWarp applies HF's sampling warpers in HF's order: temperature, top-k, top-p (each
// keeping at least one token).
func genWarp(o *GenerateOptions, s []float32) {
	inf := float32(math.Inf(-1))
	if t := o.Temperature; t != 0 && t != 1 {
		for i := range s {
			s[i] /= float32(t)
		}
	}
	if k := o.TopK; k > 0 && k < len(s) {
		// Remove what is below the k-th largest score (ties with it stay).
		sorted := slices.Clone(s)
		slices.Sort(sorted)
		kth := sorted[len(s)-k]
		for i := range s {
			if s[i] < kth {
				s[i] = inf
			}
		}
	}
	if p := o.TopP; p > 0 && p < 1 {
		// Ascending order; drop the tokens whose cumulative probability is <= 1-p, keep the last.
		order := make([]int, len(s))
		for i := range order {
			order[i] = i
		}
		slices.SortStableFunc(order, func(a, b int) int {
			switch {
			case s[a] < s[b]:
				return -1
			case s[a] > s[b]:
				return 1
			}
			return 0
		})
		logp := make([]float64, len(s))
		if genLogSoftmax(logp, s) != nil {
			return
		}
		cum := 0.0
		for _, i := range order[:len(order)-1] {
			cum += math.Exp(logp[i])
			if cum > 1-p {
				break
			}
			s[i] = inf
		}
	}
}

// genLogSumExp is log Σ exp(src) in float64 (-inf for a row of only -inf); NaN or +inf is an
// error.
func genLogSumExp[T float32 | float64](src []T) (float64, error) {
	m := math.Inf(-1)
	for _, x := range src {
		v := float64(x)
		if math.IsNaN(v) || math.IsInf(v, 1) {
			return 0, fmt.Errorf("decoder produced a %v logit", v)
		}
		m = max(m, v)
	}
	if math.IsInf(m, -1) {
		return m, nil
	}
	sum := 0.0
	for _, x := range src {
		sum += math.Exp(float64(x) - m)
	}
	return m + math.Log(sum), nil
}

// genLogSoftmax writes the log-softmax of src into dst in float64 (a row of only -inf stays
// -inf).
func genLogSoftmax[T float32 | float64](dst []float64, src []T) error {
	lse, err := genLogSumExp(src)
	if err != nil {
		return err
	}
	if math.IsInf(lse, -1) {
		lse = 0
	}
	for i, x := range src {
		dst[i] = float64(x) - lse
	}
	return nil
}

// genArgmax is the first index of the largest score (torch.argmax).
func genArgmax(s []float32) int {
	best := 0
	for i, x := range s {
		if x > s[best] {
			best = i
		}
	}
	return best
}

// genDraw samples an index from log-probabilities (-1 if all are -inf).
func genDraw(rng *rand.Rand, logp []float64) int64 {
	u := rng.Float64()
	cum, last := 0.0, int64(-1)
	for i, lp := range logp {
		if math.IsInf(lp, -1) {
			continue
		}
		cum += math.Exp(lp)
		last = int64(i)
		if u < cum {
			return last
		}
	}
	return last // rounding left u just above the total
}

// genParallel runs f(0), …, f(n-1), each costing about size, on up to GOMAXPROCS goroutines
// when the work is large enough to pay for them. It returns the error of the lowest index.
func genParallel(n, size int, f func(i int) error) error {
	workers := min(n, runtime.GOMAXPROCS(0), n*size/(1<<15)+1)
	errs := make([]error, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				errs[i] = f(i)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// genTopN returns the indices of the n largest scores, best first; among equal scores the
// lower index comes first.
func genTopN(s []float64, n int) []int {
	top := make([]int, 0, n+1)
	for i, x := range s {
		if len(top) == n && x <= s[top[n-1]] {
			continue
		}
		p := len(top)
		for p > 0 && s[top[p-1]] < x {
			p--
		}
		top = slices.Insert(top, p, i)
		if len(top) > n {
			top = top[:n]
		}
	}
	return top
}
