package nn

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// genLogitsFn is a stateless model: the next-token logits after a row's whole token history.
type genLogitsFn func(hist []int64) []float32

// genHashModel gives every history its own pseudo-random logits in [-scale, scale], plus eosBias
// on the EOS ids, so that beam search meets every kind of decision.
func genHashModel(vocab int, salt uint64, scale, eosBias float64, eos []int64) genLogitsFn {
	return func(hist []int64) []float32 {
		h := salt ^ 0xcbf29ce484222325
		for _, t := range hist {
			h = (h ^ uint64(t)) * 0x100000001b3
		}
		out := make([]float32, vocab)
		for v := range out {
			x := h + uint64(v+1)*0x9e3779b97f4a7c15
			x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
			x = (x ^ (x >> 27)) * 0x94d049bb133111eb
			x ^= x >> 31
			u := float64(x>>11) / (1 << 53)
			out[v] = float32((2*u - 1) * scale)
		}
		for _, e := range eos {
			out[e] += float32(eosBias)
		}
		return out
	}
}

// genFakeDecoder is a Decoder over a genLogitsFn: it keeps each row's history (its "KV cache"), so a
// wrong Reorder changes the logits, and it records how it was driven.
type genFakeDecoder struct {
	fn       genLogitsFn
	hist     [][]int64
	steps    int
	fed      [][][]int64 // tokens of every Step
	reorders [][]int64
	onStep   func(step int)
}

func newGenFakeDecoder(rows int, fn genLogitsFn) *genFakeDecoder {
	return &genFakeDecoder{fn: fn, hist: make([][]int64, rows)}
}

func (d *genFakeDecoder) Step(tokens [][]int64) ([]float32, int, error) {
	if len(tokens) != len(d.hist) {
		return nil, 0, fmt.Errorf("fake: %d rows, want %d", len(tokens), len(d.hist))
	}
	n := len(tokens[0])
	if n < 1 || (d.steps > 0 && n != 1) {
		return nil, 0, fmt.Errorf("fake: step %d feeds %d tokens", d.steps, n)
	}
	d.steps++
	var out []float32
	var fed [][]int64
	vocab := 0
	for r, tk := range tokens {
		if len(tk) != n {
			return nil, 0, fmt.Errorf("fake: row %d has %d tokens, row 0 %d", r, len(tk), n)
		}
		fed = append(fed, slices.Clone(tk))
		d.hist[r] = append(d.hist[r], tk...)
		l := d.fn(d.hist[r])
		vocab = len(l)
		out = append(out, l...)
	}
	d.fed = append(d.fed, fed)
	if d.onStep != nil {
		d.onStep(d.steps)
	}
	return out, vocab, nil
}

func (d *genFakeDecoder) Reorder(rows []int64) error {
	if len(rows) != len(d.hist) {
		return fmt.Errorf("fake: reorder %d rows, have %d", len(rows), len(d.hist))
	}
	next := make([][]int64, len(rows))
	for i, r := range rows {
		next[i] = slices.Clone(d.hist[r])
	}
	d.hist = next
	d.reorders = append(d.reorders, slices.Clone(rows))
	return nil
}

// ---- independent references, written after HF's Python ----

func genRefLogSoftmax(x []float32) []float64 {
	m := math.Inf(-1)
	for _, v := range x {
		m = math.Max(m, float64(v))
	}
	s := 0.0
	for _, v := range x {
		s += math.Exp(float64(v) - m)
	}
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v) - m - math.Log(s)
	}
	return out
}

// genRefProcess: RepetitionPenaltyLogitsProcessor (gather, then scatter), NoRepeatNGramLogitsProcessor
// (dict of n-1 prefixes), MinLength/MinNewTokens (EOS = -inf).
func genRefProcess(o GenerateOptions, promptLen int, ids []int64, s []float64) {
	if p := o.RepetitionPenalty; p != 0 && p != 1 {
		gathered := make([]float64, len(ids))
		for i, t := range ids {
			g := s[t]
			if g < 0 {
				g *= p
			} else {
				g /= p
			}
			gathered[i] = g
		}
		for i, t := range ids {
			s[t] = gathered[i]
		}
	}
	if n := o.NoRepeatNgram; n > 0 && len(ids)+1 >= n {
		ngrams := map[string][]int64{}
		for i := 0; i+n <= len(ids); i++ {
			key := fmt.Sprint(ids[i : i+n-1])
			ngrams[key] = append(ngrams[key], ids[i+n-1])
		}
		for _, t := range ngrams[fmt.Sprint(ids[len(ids)+1-n:])] {
			s[t] = math.Inf(-1)
		}
	}
	if len(ids)-promptLen < o.MinNewTokens {
		for _, e := range o.EOS {
			s[e] = math.Inf(-1)
		}
	}
}

// genRefBeam transliterates HF 4.36.2 beam_search + BeamSearchScorer + BeamHypotheses over a
// stateless model (whole input_ids re-run every step, no cache). It also returns the Reorder
// calls Generate should make: HF's beam_idx where it is not the identity, with rows of
// finished batch items kept in place, none after the last step.
func genRefBeam(fn genLogitsFn, prompts [][]int64, o GenerateOptions) ([]Sequence, [][]int64) {
	K, B, P := o.NumBeams, len(prompts), len(prompts[0])
	lp := o.LengthPenalty
	maxLength := P + o.MaxNewTokens
	var inputIDs [][]int64
	beamScores := make([]float64, B*K)
	for b := range B {
		for k := range K {
			inputIDs = append(inputIDs, slices.Clone(prompts[b]))
			if k > 0 {
				beamScores[b*K+k] = -1e9
			}
		}
	}
	type hyp struct {
		score float64
		ids   []int64
	}
	hyps := make([][]hyp, B)
	worst := make([]float64, B)
	for b := range worst {
		worst[b] = 1e9
	}
	add := func(b int, ids []int64, sum float64, genLen int) {
		score := sum / math.Pow(float64(genLen), lp)
		if len(hyps[b]) < K || score > worst[b] {
			hyps[b] = append(hyps[b], hyp{score, ids})
			if len(hyps[b]) > K {
				type si struct {
					s float64
					i int
				}
				var sorted []si
				for i, h := range hyps[b] {
					sorted = append(sorted, si{h.score, i})
				}
				sort.Slice(sorted, func(x, y int) bool {
					if sorted[x].s != sorted[y].s {
						return sorted[x].s < sorted[y].s
					}
					return sorted[x].i < sorted[y].i
				})
				hyps[b] = slices.Delete(hyps[b], sorted[0].i, sorted[0].i+1)
				worst[b] = sorted[1].s
			} else {
				worst[b] = math.Min(score, worst[b])
			}
		}
	}
	isDone := func(b int, best float64, curLen int) bool {
		if len(hyps[b]) < K {
			return false
		}
		if o.EarlyStopping {
			return true
		}
		if !o.EarlyStoppingNever || lp <= 0 {
			return worst[b] >= best/math.Pow(float64(curLen-P), lp)
		}
		return worst[b] >= best/math.Pow(float64(maxLength-P), lp)
	}
	done := make([]bool, B)
	nTop := max(2, 1+len(o.EOS)) * K
	var perms [][]int64
	for {
		next := make([][]float64, B)
		V := 0
		for r, ids := range inputIDs {
			l := fn(ids)
			V = len(l)
			s := genRefLogSoftmax(l)
			genRefProcess(o, P, ids, s)
			for _, x := range s {
				next[r/K] = append(next[r/K], x+beamScores[r])
			}
		}
		curLen := len(inputIDs[0]) + 1
		nbScores := make([]float64, B*K)
		nbTokens := make([]int64, B*K)
		nbIdx := make([]int, B*K)
		for b := range B {
			if done[b] {
				for k := range K {
					nbScores[b*K+k], nbTokens[b*K+k], nbIdx[b*K+k] = 0, o.PadID, 0
				}
				continue
			}
			order := make([]int, K*V)
			for i := range order {
				order[i] = i
			}
			sort.SliceStable(order, func(x, y int) bool { return next[b][order[x]] > next[b][order[y]] })
			order = order[:min(nTop, len(order))]
			beamIdx := 0
			for rank, i := range order {
				tok, bbi, sc := int64(i%V), b*K+i/V, next[b][i]
				if slices.Contains(o.EOS, tok) {
					if rank >= K {
						continue
					}
					add(b, slices.Clone(inputIDs[bbi]), sc, curLen-P)
				} else {
					nbScores[b*K+beamIdx], nbTokens[b*K+beamIdx], nbIdx[b*K+beamIdx] = sc, tok, bbi
					beamIdx++
				}
				if beamIdx == K {
					break
				}
			}
			done[b] = done[b] || isDone(b, next[b][order[0]], curLen)
		}
		newIDs := make([][]int64, B*K)
		perm := make([]int64, B*K)
		identity := true
		for j := range newIDs {
			newIDs[j] = append(slices.Clone(inputIDs[nbIdx[j]]), nbTokens[j])
			perm[j] = int64(j)
			if !done[j/K] {
				perm[j] = int64(nbIdx[j])
				identity = identity && nbIdx[j] == j
			}
		}
		inputIDs, beamScores = newIDs, nbScores
		if !slices.Contains(done, false) || len(inputIDs[0]) >= maxLength {
			break
		}
		if !identity {
			perms = append(perms, perm)
		}
	}
	var best []hyp
	maxSent := 0
	for b := range B {
		if !done[b] {
			for k := range K {
				r := b*K + k
				add(b, inputIDs[r], beamScores[r], len(inputIDs[r])-P)
			}
		}
		sorted := slices.Clone(hyps[b])
		sort.SliceStable(sorted, func(x, y int) bool { return sorted[x].score < sorted[y].score })
		best = append(best, sorted[len(sorted)-1])
		maxSent = max(maxSent, len(sorted[len(sorted)-1].ids))
	}
	sentMaxLen := min(maxSent+1, maxLength)
	out := make([]Sequence, B)
	for b, h := range best {
		out[b] = Sequence{Tokens: slices.Clone(h.ids[P:]), Score: h.score}
		if len(h.ids) < sentMaxLen {
			out[b].Tokens = append(out[b].Tokens, o.EOS[0])
		}
	}
	return out, perms
}

// genRefGreedy is the argmax chain of each row on its own, with pads after EOS, and the number of
// steps HF runs (until every row has finished).
func genRefGreedy(fn genLogitsFn, prompts [][]int64, o GenerateOptions) ([]Sequence, int) {
	out := make([]Sequence, len(prompts))
	steps := 0
	for b, p := range prompts {
		ids := slices.Clone(p)
		for range o.MaxNewTokens {
			l := fn(ids)
			s := make([]float64, len(l))
			for i, x := range l {
				s[i] = float64(x)
			}
			genRefProcess(o, len(p), ids, s)
			best := 0
			for i := range s {
				if s[i] > s[best] {
					best = i
				}
			}
			out[b].Tokens = append(out[b].Tokens, int64(best))
			ids = append(ids, int64(best))
			if slices.Contains(o.EOS, int64(best)) {
				break
			}
		}
		steps = max(steps, len(out[b].Tokens))
	}
	return out, steps
}

func genPrompts(batch, n int, salt int64) [][]int64 {
	p := make([][]int64, batch)
	for b := range p {
		for i := range n {
			p[b] = append(p[b], (salt+int64(7*b+3*i))%5+1)
		}
	}
	return p
}

func TestGreedyIsArgmaxChain(t *testing.T) {
	tests := []struct {
		name string
		o    GenerateOptions
		plen int
	}{
		{"plain", GenerateOptions{NumBeams: 1, MaxNewTokens: 8, EOS: []int64{0}, PadID: 9}, 1},
		{"prompt and two eos", GenerateOptions{NumBeams: 1, MaxNewTokens: 8, EOS: []int64{0, 4}, PadID: 5}, 3},
		{"no eos", GenerateOptions{NumBeams: 1, MaxNewTokens: 6}, 2},
		{"min new tokens", GenerateOptions{NumBeams: 1, MaxNewTokens: 8, MinNewTokens: 4, EOS: []int64{0}, PadID: 1}, 1},
		{"no repeat bigram", GenerateOptions{NumBeams: 1, MaxNewTokens: 12, NoRepeatNgram: 2, EOS: []int64{0}, PadID: 1}, 2},
		{"repetition penalty", GenerateOptions{NumBeams: 1, MaxNewTokens: 10, RepetitionPenalty: 1.7, EOS: []int64{0}, PadID: 1}, 2},
	}
	for _, tc := range tests {
		for salt := range uint64(6) {
			t.Run(fmt.Sprintf("%s/%d", tc.name, salt), func(t *testing.T) {
				tc.o.OutputScores = true
				fn := genHashModel(10, salt, 3, 1.5, tc.o.EOS)
				prompts := genPrompts(4, tc.plen, int64(salt))
				d := newGenFakeDecoder(len(prompts), fn)
				got, err := Generate(context.Background(), d, prompts, tc.o)
				if err != nil {
					t.Fatal(err)
				}
				want, steps := genRefGreedy(fn, prompts, tc.o)
				if len(d.reorders) != 0 {
					t.Errorf("greedy called Reorder %d times", len(d.reorders))
				}
				if d.steps != steps {
					t.Errorf("%d steps, want %d", d.steps, steps)
				}
				for b := range prompts {
					if !slices.Equal(got[b].Tokens, want[b].Tokens) {
						t.Errorf("row %d: tokens %v, want %v", b, got[b].Tokens, want[b].Tokens)
					}
					// After its EOS a row is fed PadID.
					for s := len(got[b].Tokens) + 1; s < d.steps; s++ {
						if d.fed[s][b][0] != tc.o.PadID {
							t.Errorf("row %d: step %d fed %d, want pad %d", b, s+1, d.fed[s][b][0], tc.o.PadID)
						}
					}
					// StepScores: every step, the processed logits of the row's history.
					if len(got[b].StepScores) != d.steps {
						t.Fatalf("row %d: %d step scores, want %d", b, len(got[b].StepScores), d.steps)
					}
					ids := slices.Clone(prompts[b])
					score := 0.0
					for s := range d.steps {
						l := fn(ids)
						want := make([]float64, len(l))
						for i, x := range l {
							want[i] = float64(x)
						}
						genRefProcess(tc.o, tc.plen, ids, want)
						for i := range want {
							if g := float64(got[b].StepScores[s][i]); g != want[i] && math.Abs(g-want[i]) > 1e-6*math.Max(1, math.Abs(want[i])) {
								t.Fatalf("row %d step %d: score[%d] = %v, want %v", b, s, i, got[b].StepScores[s][i], want[i])
							}
						}
						tok := tc.o.PadID
						if s < len(got[b].Tokens) {
							tok = got[b].Tokens[s]
							score += genRefLogSoftmax(got[b].StepScores[s])[tok]
						}
						ids = append(ids, tok)
					}
					if math.Abs(score-got[b].Score) > 1e-9 {
						t.Errorf("row %d: score %v, want %v", b, got[b].Score, score)
					}
					genCheckNoRepeat(t, tc.o.NoRepeatNgram, append(slices.Clone(prompts[b]), got[b].Tokens...))
					genCheckMinNew(t, tc.o, got[b].Tokens)
				}
			})
		}
	}
}

func genCheckNoRepeat(t *testing.T, n int, seq []int64) {
	t.Helper()
	if n <= 0 {
		return
	}
	seen := map[string]bool{}
	for i := 0; i+n <= len(seq); i++ {
		k := fmt.Sprint(seq[i : i+n])
		if seen[k] {
			t.Errorf("%d-gram %s repeated in %v", n, k, seq)
		}
		seen[k] = true
	}
}

func genCheckMinNew(t *testing.T, o GenerateOptions, tokens []int64) {
	t.Helper()
	for i, tok := range tokens {
		if i < o.MinNewTokens && slices.Contains(o.EOS, tok) {
			t.Errorf("EOS at new token %d < MinNewTokens %d: %v", i+1, o.MinNewTokens, tokens)
		}
	}
}

func TestBeamSearchMatchesHFReference(t *testing.T) {
	type cfg struct {
		beams, vocab, plen, maxNew int
		eos                        []int64
		minNew, ngram              int
		rep                        float64
		round                      bool // round the logits, so that scores tie
		uniform                    bool // all logits equal
	}
	cfgs := []cfg{
		{beams: 2, vocab: 6, plen: 1, maxNew: 6, eos: []int64{0}},
		{beams: 3, vocab: 8, plen: 3, maxNew: 7, eos: []int64{1}},
		{beams: 4, vocab: 5, plen: 2, maxNew: 6, eos: []int64{0, 3}},
		{beams: 3, vocab: 12, plen: 1, maxNew: 8, eos: []int64{2}, minNew: 3, ngram: 2},
		{beams: 2, vocab: 7, plen: 2, maxNew: 6, eos: []int64{0}, rep: 1.3, ngram: 3},
		{beams: 5, vocab: 4, plen: 1, maxNew: 5, eos: []int64{0}},              // vocab < 2·beams: dead beams fill candidates
		{beams: 3, vocab: 2, plen: 1, maxNew: 4, eos: []int64{1}},              // top-k capped at beams·vocab
		{beams: 2, vocab: 6, plen: 1, maxNew: 5},                               // no EOS: running beams only
		{beams: 3, vocab: 5, plen: 1, maxNew: 6, eos: []int64{0}, round: true}, // integer logits: exact ties
		{beams: 2, vocab: 4, plen: 2, maxNew: 5, eos: []int64{1}, round: true},
		{beams: 2, vocab: 4, plen: 1, maxNew: 5, eos: []int64{0}, uniform: true}, // every hypothesis ties
		{beams: 4, vocab: 3000, plen: 2, maxNew: 4, eos: []int64{7}, ngram: 2},   // rows scored in parallel
	}
	type stop struct {
		early, never bool
	}
	stops := []stop{{false, false}, {true, false}, {false, true}}
	cases, reorders := 0, 0
	for ci, c := range cfgs {
		for _, st := range stops {
			for _, lp := range []float64{0.5, 1, 2, 0, -1} {
				for salt := range uint64(4) {
					name := fmt.Sprintf("cfg%d/early=%v,never=%v/lp=%v/%d", ci, st.early, st.never, lp, salt)
					o := GenerateOptions{NumBeams: c.beams, MaxNewTokens: c.maxNew, MinNewTokens: c.minNew,
						LengthPenalty: lp, EarlyStopping: st.early, EarlyStoppingNever: st.never,
						NoRepeatNgram: c.ngram, RepetitionPenalty: c.rep, EOS: c.eos, PadID: int64(c.vocab - 1)}
					// A strong EOS bias makes rows finish at different steps.
					fn := genHashModel(c.vocab, salt+uint64(100*ci), 2.5, 1.2, c.eos)
					if c.round {
						fn = genRoundModel(fn)
					}
					if c.uniform {
						fn = genConstModel(make([]float32, c.vocab)...)
					}
					prompts := genPrompts(3, c.plen, int64(salt))
					for b := range prompts {
						for i := range prompts[b] {
							prompts[b][i] %= int64(c.vocab)
						}
					}
					d := newGenFakeDecoder(len(prompts)*c.beams, fn)
					got, err := Generate(context.Background(), d, prompts, o)
					if err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					want, perms := genRefBeam(fn, prompts, o)
					cases++
					reorders += len(d.reorders)
					for b := range want {
						if !slices.Equal(got[b].Tokens, want[b].Tokens) || math.Abs(got[b].Score-want[b].Score) > 1e-12 {
							t.Errorf("%s: row %d: %v (%.6f), want %v (%.6f)", name, b, got[b].Tokens, got[b].Score, want[b].Tokens, want[b].Score)
						}
						genCheckNoRepeat(t, o.NoRepeatNgram, append(slices.Clone(prompts[b]), got[b].Tokens...))
						genCheckMinNew(t, o, got[b].Tokens)
					}
					if !reflect.DeepEqual(d.reorders, perms) {
						t.Errorf("%s: reorders %v, want %v", name, d.reorders, perms)
					}
				}
			}
		}
	}
	if reorders == 0 {
		t.Errorf("%d cases never reordered: the test does not exercise Reorder", cases)
	}
}

// genRoundModel rounds fn's logits to integers: many candidates and hypotheses then tie exactly,
// which exercises HF's tie rules (topk order, BeamHypotheses eviction, finalize's pop()).
func genRoundModel(fn genLogitsFn) genLogitsFn {
	return func(hist []int64) []float32 {
		l := fn(hist)
		for i := range l {
			l[i] = float32(math.Round(float64(l[i])))
		}
		return l
	}
}

// genBruteBest is the best HF-normalised score over every sequence: ended by EOS (length counted
// with the EOS) or cut at MaxNewTokens.
func genBruteBest(fn genLogitsFn, prompt []int64, o GenerateOptions) float64 {
	best := math.Inf(-1)
	var walk func(ids []int64, sum float64)
	walk = func(ids []int64, sum float64) {
		t := len(ids) - len(prompt) + 1
		s := genRefLogSoftmax(fn(ids))
		for v, x := range s {
			tok := int64(v)
			total := sum + x
			switch {
			case slices.Contains(o.EOS, tok):
				best = math.Max(best, total/math.Pow(float64(t), o.LengthPenalty))
			case t == o.MaxNewTokens:
				best = math.Max(best, total/math.Pow(float64(t), o.LengthPenalty))
			default:
				walk(append(slices.Clone(ids), tok), total)
			}
		}
	}
	walk(slices.Clone(prompt), 0)
	return best
}

// genSeqScore recomputes the HF score of generated tokens (EOS counted in the length).
func genSeqScore(fn genLogitsFn, prompt, tokens []int64, lp float64) float64 {
	ids := slices.Clone(prompt)
	sum := 0.0
	for _, tok := range tokens {
		sum += genRefLogSoftmax(fn(ids))[tok]
		ids = append(ids, tok)
	}
	return sum / math.Pow(float64(len(tokens)), lp)
}

// With as many beams as there are sequences nothing is pruned, and the stopping rules that are
// exact (early_stopping "never"; False with length_penalty <= 0) must find the global optimum.
// Every setting returns a sequence whose score recomputes and never beats the optimum.
func TestBeamSearchVersusBruteForce(t *testing.T) {
	const vocab, maxNew, beams = 3, 3, 16 // 2 words + EOS: 15 live sequences
	eos := []int64{0}
	for _, never := range []bool{true, false} {
		for _, early := range []bool{false, true} {
			if never && early {
				continue
			}
			for _, lp := range []float64{0.5, 1, 2, 0, -1} {
				for salt := range uint64(8) {
					name := fmt.Sprintf("never=%v/early=%v/lp=%v/%d", never, early, lp, salt)
					fn := genHashModel(vocab, salt, 2, 0, nil)
					prompts := [][]int64{{1, 2}, {2, 2}}
					o := GenerateOptions{NumBeams: beams, MaxNewTokens: maxNew, LengthPenalty: lp,
						EarlyStopping: early, EarlyStoppingNever: never, EOS: eos, PadID: 1}
					got, err := Generate(context.Background(), newGenFakeDecoder(2*beams, fn), prompts, o)
					if err != nil {
						t.Fatal(err)
					}
					for b, p := range prompts {
						opt := genBruteBest(fn, p, o)
						if s := genSeqScore(fn, p, got[b].Tokens, lp); math.Abs(s-got[b].Score) > 1e-12 {
							t.Errorf("%s row %d: score %v, but %v recomputes to %v", name, b, got[b].Score, got[b].Tokens, s)
						}
						if got[b].Score > opt+1e-12 {
							t.Errorf("%s row %d: score %v beats the optimum %v", name, b, got[b].Score, opt)
						}
						if (never || (!early && lp <= 0)) && math.Abs(got[b].Score-opt) > 1e-12 {
							t.Errorf("%s row %d: score %v, optimum %v", name, b, got[b].Score, opt)
						}
					}
				}
			}
		}
	}
}

// genLastTokenTable: tokens 0 = start, 1 = end, 2 = "a", 3 = "b"; the distribution depends on the
// last token only. Greedy: a end (0.6·0.4 = 0.24). Best: b end (0.4·0.95 = 0.38).
func genLastTokenTable() genLogitsFn {
	probs := [][]float64{
		{1e-9, 1e-9, 0.6, 0.4},
		{1e-9, 0.5, 0.2, 0.3},
		{1e-9, 0.4, 0.3, 0.3},
		{1e-9, 0.95, 0.05, 1e-9},
	}
	return func(hist []int64) []float32 {
		out := make([]float32, 4)
		for i, p := range probs[hist[len(hist)-1]] {
			out[i] = float32(math.Log(p))
		}
		return out
	}
}

// A case worked by hand through HF's code (K=2, length_penalty 1, prompt [start]):
// step 2 finishes "b end" (-0.9676/2) and "a end" (-1.4271/2). With early_stopping True that
// is num_beams hypotheses: done. Otherwise is_done compares the worst, -0.7136, with the best
// candidate -0.9676/2: not done. Step 3 finishes "a b end" (-1.7661/3), which evicts "a end",
// and is_done compares the worst, -1.7661/3, with the best candidate -1.7661 / (3 new tokens):
// equal, done. Either way the answer is "b end" scored over 2 new tokens (prompt excluded, EOS
// counted). Beams after step 1: [a, b] = rows [0, 0]; after step 2: [a a, a b] = rows [0, 0].
func TestBeamSearchWorkedExample(t *testing.T) {
	fn := genLastTokenTable()
	for _, tc := range []struct {
		early    bool
		steps    int
		reorders [][]int64
	}{
		{false, 3, [][]int64{{0, 0}, {0, 0}}},
		{true, 2, [][]int64{{0, 0}}},
	} {
		o := GenerateOptions{NumBeams: 2, MaxNewTokens: 6, LengthPenalty: 1, EarlyStopping: tc.early, EOS: []int64{1}, PadID: 0}
		d := newGenFakeDecoder(2, fn)
		got, err := Generate(context.Background(), d, [][]int64{{0}}, o)
		if err != nil {
			t.Fatal(err)
		}
		norm := math.Log(1 + 2e-9)
		want := (math.Log(0.4) + math.Log(0.95) - 2*norm) / 2
		if !slices.Equal(got[0].Tokens, []int64{3, 1}) || math.Abs(got[0].Score-want) > 1e-6 {
			t.Errorf("early=%v: %v %.5f, want [3 1] %.5f", tc.early, got[0].Tokens, got[0].Score, want)
		}
		if d.steps != tc.steps {
			t.Errorf("early=%v: %d steps, want %d", tc.early, d.steps, tc.steps)
		}
		if !reflect.DeepEqual(d.reorders, tc.reorders) {
			t.Errorf("early=%v: reorders %v, want %v", tc.early, d.reorders, tc.reorders)
		}
	}
	// Ties: with a uniform model "end" (-log 4 over 1 token) and "w1 end" (-2 log 4 over 2) score
	// the same; HF's finalize pops the hypothesis added last.
	uniform := genConstModel(0, 0, 0, 0)
	got, err := Generate(context.Background(), newGenFakeDecoder(2, uniform), [][]int64{{2}}, GenerateOptions{NumBeams: 2, MaxNewTokens: 5, LengthPenalty: 1, EOS: []int64{0}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got[0].Tokens, []int64{1, 0}) || math.Abs(got[0].Score+math.Log(4)) > 1e-12 {
		t.Errorf("uniform model: %v %v, want [1 0] %v", got[0].Tokens, got[0].Score, -math.Log(4))
	}
	// Greedy takes "a end".
	got, err = Generate(context.Background(), newGenFakeDecoder(1, fn), [][]int64{{0}}, GenerateOptions{NumBeams: 1, MaxNewTokens: 6, EOS: []int64{1}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got[0].Tokens, []int64{2, 1}) {
		t.Errorf("greedy %v, want [2 1]", got[0].Tokens)
	}
}

// Beam search with one beam is greedy search (HF's rules make it stop at the first EOS).
func TestOneBeamIsGreedy(t *testing.T) {
	for salt := range uint64(10) {
		for _, early := range []bool{false, true} {
			o := GenerateOptions{NumBeams: 1, MaxNewTokens: 9, LengthPenalty: 1.5, EarlyStopping: early,
				MinNewTokens: 1, NoRepeatNgram: 3, EOS: []int64{0}, PadID: 0}
			fn := genHashModel(9, salt, 3, 1.0, o.EOS)
			prompts := genPrompts(3, 2, int64(salt))
			greedy, err := Generate(context.Background(), newGenFakeDecoder(3, fn), prompts, o)
			if err != nil {
				t.Fatal(err)
			}
			g := &generation{ctx: context.Background(), d: newGenFakeDecoder(3, fn), o: o, promptLen: 2}
			beam, err := g.beamSearch(prompts)
			if err != nil {
				t.Fatal(err)
			}
			for b := range prompts {
				if !slices.Equal(greedy[b].Tokens, beam[b].Tokens) {
					t.Errorf("salt %d early %v row %d: greedy %v, one beam %v", salt, early, b, greedy[b].Tokens, beam[b].Tokens)
				}
			}
		}
	}
}

// genConstModel ignores the history.
func genConstModel(logits ...float32) genLogitsFn {
	return func([]int64) []float32 { return slices.Clone(logits) }
}

func TestSampling(t *testing.T) {
	fn := genHashModel(12, 7, 3, 0.5, []int64{0})
	prompts := genPrompts(4, 2, 1)
	run := func(o GenerateOptions) []Sequence {
		t.Helper()
		got, err := Generate(context.Background(), newGenFakeDecoder(len(prompts), fn), prompts, o)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	tokens := func(s []Sequence) string {
		var b strings.Builder
		for _, x := range s {
			fmt.Fprint(&b, x.Tokens)
		}
		return b.String()
	}
	base := GenerateOptions{NumBeams: 1, MaxNewTokens: 10, EOS: []int64{0}, PadID: 0, DoSample: true, Temperature: 1.3}
	greedy := tokens(run(GenerateOptions{NumBeams: 1, MaxNewTokens: 10, EOS: []int64{0}}))

	seen := map[string]bool{}
	for seed := range int64(5) {
		o := base
		o.Seed = seed
		a, b := tokens(run(o)), tokens(run(o))
		if a != b {
			t.Errorf("seed %d: not reproducible: %s vs %s", seed, a, b)
		}
		seen[a] = true
	}
	if len(seen) < 4 {
		t.Errorf("5 seeds gave only %d different samples", len(seen))
	}
	for _, tc := range []struct {
		name string
		mod  func(*GenerateOptions)
	}{
		{"top_k 1", func(o *GenerateOptions) { o.TopK = 1 }},
		{"tiny top_p", func(o *GenerateOptions) { o.TopP = 1e-9 }},
		{"top_p 0 from config", func(o *GenerateOptions) { o.TopP = math.SmallestNonzeroFloat64 }},
	} {
		for seed := range int64(3) {
			o := base
			o.Seed = seed
			tc.mod(&o)
			if got := tokens(run(o)); got != greedy {
				t.Errorf("%s seed %d: %s, want greedy %s", tc.name, seed, got, greedy)
			}
		}
	}
	// StepScores are the warped scores: temperature then top-k.
	o := base
	o.TopK, o.OutputScores = 3, true
	got := run(o)
	raw := fn(prompts[0])
	kept := 0
	for i, s := range got[0].StepScores[0] {
		if math.IsInf(float64(s), -1) {
			continue
		}
		kept++
		if want := raw[i] / float32(1.3); s != want {
			t.Errorf("warped score[%d] = %v, want %v", i, s, want)
		}
	}
	if kept != 3 {
		t.Errorf("top_k 3 kept %d tokens", kept)
	}
}

// The empirical distribution of many draws matches the warped softmax (chi-square, fixed seed).
func TestSamplingDistribution(t *testing.T) {
	logits := []float32{1.0, 0.5, 0, -0.5, 2, -1, 0.25}
	tests := []struct {
		name string
		o    GenerateOptions
		keep []bool // which tokens survive the warpers
		temp float64
	}{
		{"temperature 1", GenerateOptions{Temperature: 1}, nil, 1},
		{"temperature 0.5", GenerateOptions{Temperature: 0.5}, nil, 0.5},
		{"top_k 3", GenerateOptions{TopK: 3}, []bool{true, true, false, false, true, false, false}, 1},
		// softmax: 4 .49, 0 .18, 1 .11, 6 .086, 2 .067, 3 .040, 5 .024: ascending, the cumulative
		// probability passes 1-0.7 at token 1, so top_p 0.7 keeps 1, 0, 4.
		{"top_p 0.7", GenerateOptions{TopP: 0.7}, []bool{true, true, false, false, true, false, false}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			const rows, steps = 2000, 10
			o := tc.o
			o.NumBeams, o.MaxNewTokens, o.DoSample, o.Seed = 1, steps, true, 42
			prompts := make([][]int64, rows)
			for i := range prompts {
				prompts[i] = []int64{0}
			}
			got, err := Generate(context.Background(), newGenFakeDecoder(rows, genConstModel(logits...)), prompts, o)
			if err != nil {
				t.Fatal(err)
			}
			counts := make([]float64, len(logits))
			for _, s := range got {
				for _, tok := range s.Tokens {
					counts[tok]++
				}
			}
			p := make([]float64, len(logits))
			sum := 0.0
			for i, l := range logits {
				if tc.keep == nil || tc.keep[i] {
					p[i] = math.Exp(float64(l) / tc.temp)
					sum += p[i]
				}
			}
			chi2, df := 0.0, -1
			for i := range p {
				exp := p[i] / sum * rows * steps
				if exp == 0 {
					if counts[i] != 0 {
						t.Errorf("token %d drawn %v times, but it was filtered out", i, counts[i])
					}
					continue
				}
				chi2 += (counts[i] - exp) * (counts[i] - exp) / exp
				df++
			}
			// 99.9 % quantiles of chi-square for 1..6 degrees of freedom.
			crit := []float64{0, 10.83, 13.82, 16.27, 18.47, 20.52, 22.46}[df]
			if chi2 > crit {
				t.Errorf("chi-square %.2f > %.2f (df %d): counts %v", chi2, crit, df, counts)
			}
		})
	}
}

func TestGenerateRejects(t *testing.T) {
	ok := GenerateOptions{NumBeams: 1, MaxNewTokens: 3, EOS: []int64{1}}
	tests := []struct {
		name    string
		prompts [][]int64
		mod     func(*GenerateOptions)
		want    string
	}{
		{"unequal prompts", [][]int64{{0}, {0, 2}}, nil, "same length"},
		{"empty prompt", [][]int64{{}}, nil, "empty"},
		{"no prompts", nil, nil, "no prompts"},
		{"beams", [][]int64{{0}}, func(o *GenerateOptions) { o.NumBeams = 0 }, "NumBeams"},
		{"max new", [][]int64{{0}}, func(o *GenerateOptions) { o.MaxNewTokens = 0 }, "MaxNewTokens"},
		{"min new", [][]int64{{0}}, func(o *GenerateOptions) { o.MinNewTokens = -1 }, "MinNewTokens"},
		{"eos outside vocab", [][]int64{{0}}, func(o *GenerateOptions) { o.EOS = []int64{4} }, "EOS id 4"},
		{"negative eos", [][]int64{{0}}, func(o *GenerateOptions) { o.EOS = []int64{-1} }, "EOS id -1"},
		{"pad outside vocab", [][]int64{{0}}, func(o *GenerateOptions) { o.PadID = 7 }, "PadID 7"},
		{"top_p", [][]int64{{0}}, func(o *GenerateOptions) { o.DoSample, o.TopP = true, 1.5 }, "TopP"},
		{"temperature", [][]int64{{0}}, func(o *GenerateOptions) { o.DoSample, o.Temperature = true, -1 }, "Temperature"},
		{"top_k", [][]int64{{0}}, func(o *GenerateOptions) { o.DoSample, o.TopK = true, -2 }, "TopK"},
		{"beam sampling", [][]int64{{0}}, func(o *GenerateOptions) { o.DoSample, o.NumBeams = true, 2 }, "beam sampling"},
		{"early stopping modes", [][]int64{{0}}, func(o *GenerateOptions) { o.EarlyStopping, o.EarlyStoppingNever = true, true }, "exclusive"},
		{"length penalty", [][]int64{{0}}, func(o *GenerateOptions) { o.LengthPenalty = math.NaN() }, "LengthPenalty"},
		{"repetition penalty", [][]int64{{0}}, func(o *GenerateOptions) { o.RepetitionPenalty = -1 }, "RepetitionPenalty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := ok
			if tc.mod != nil {
				tc.mod(&o)
			}
			d := newGenFakeDecoder(len(tc.prompts)*max(1, o.NumBeams), genLastTokenTable())
			_, err := Generate(context.Background(), d, tc.prompts, o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

// When the processors ban every token, greedy search takes token 0 with score -inf (torch.argmax
// of an all -inf row) and sampling fails.
func TestEverythingBanned(t *testing.T) {
	o := GenerateOptions{NumBeams: 1, MaxNewTokens: 3, NoRepeatNgram: 1}
	fn := genConstModel(0, 1)
	got, err := Generate(context.Background(), newGenFakeDecoder(1, fn), [][]int64{{0}}, o)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got[0].Tokens, []int64{1, 0, 0}) || !math.IsInf(got[0].Score, -1) {
		t.Errorf("greedy: %v %v, want [1 0 0] -Inf", got[0].Tokens, got[0].Score)
	}
	o.DoSample = true
	if _, err := Generate(context.Background(), newGenFakeDecoder(1, fn), [][]int64{{0}}, o); err == nil || !strings.Contains(err.Error(), "probability 0") {
		t.Errorf("sampling: %v", err)
	}
}

type genNaNDecoder struct{ *genFakeDecoder }

func (d genNaNDecoder) Step(tokens [][]int64) ([]float32, int, error) {
	l, v, err := d.genFakeDecoder.Step(tokens)
	if d.steps == 2 {
		l[3] = float32(math.NaN())
	}
	return l, v, err
}

func TestGenerateStopsOnCancelAndBadLogits(t *testing.T) {
	for _, beams := range []int{1, 3} {
		ctx, cancel := context.WithCancel(context.Background())
		d := newGenFakeDecoder(2*beams, genHashModel(6, 1, 1, 0, nil))
		d.onStep = func(step int) {
			if step == 3 {
				cancel()
			}
		}
		o := GenerateOptions{NumBeams: beams, MaxNewTokens: 10, LengthPenalty: 1}
		_, err := Generate(ctx, d, [][]int64{{0}, {1}}, o)
		if !errors.Is(err, context.Canceled) || d.steps != 3 {
			t.Errorf("beams %d: err %v after %d steps, want context.Canceled after 3", beams, err, d.steps)
		}
		cancel()

		f := genNaNDecoder{newGenFakeDecoder(2*beams, genHashModel(6, 1, 1, 0, nil))}
		if _, err := Generate(context.Background(), f, [][]int64{{0}, {1}}, o); err == nil || !strings.Contains(err.Error(), "NaN") {
			t.Errorf("beams %d: NaN logits gave %v", beams, err)
		}
	}
}

// ---- Hugging Face fixtures: greedy decisions replayed from the logits HF recorded ----

// genReadNpy reads a little-endian float32 or int64 .npy file.
func genReadNpy(t *testing.T, path string) (shape []int, f32 []float32, i64 []int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 10 || string(b[1:6]) != "NUMPY" {
		t.Fatalf("%s: not an npy file", path)
	}
	hlen, off := int(binary.LittleEndian.Uint16(b[8:10])), 10
	if b[6] >= 2 {
		hlen, off = int(binary.LittleEndian.Uint32(b[8:12])), 12
	}
	header, data := string(b[off:off+hlen]), b[off+hlen:]
	m := regexp.MustCompile(`'shape': \(([^)]*)\)`).FindStringSubmatch(header)
	if m == nil {
		t.Fatalf("%s: no shape in %q", path, header)
	}
	for _, f := range strings.Split(m[1], ",") {
		if f = strings.TrimSpace(f); f != "" {
			n, _ := strconv.Atoi(f)
			shape = append(shape, n)
		}
	}
	switch {
	case strings.Contains(header, "'<f4'"):
		for i := 0; i+4 <= len(data); i += 4 {
			f32 = append(f32, math.Float32frombits(binary.LittleEndian.Uint32(data[i:])))
		}
	case strings.Contains(header, "'<i8'"):
		for i := 0; i+8 <= len(data); i += 8 {
			i64 = append(i64, int64(binary.LittleEndian.Uint64(data[i:])))
		}
	default:
		t.Fatalf("%s: unsupported dtype in %q", path, header)
	}
	return shape, f32, i64
}

// genReplayDecoder returns the logits HF's generate() saw ([steps, batch, vocab]) and checks that it
// is fed the tokens HF fed (the expected sequences, pads included).
type genReplayDecoder struct {
	t      *testing.T
	scores []float32
	seqs   [][]int64
	vocab  int
	pos    int // tokens fed so far
	steps  int
}

func (d *genReplayDecoder) Step(tokens [][]int64) ([]float32, int, error) {
	rows := len(d.seqs)
	for r, tk := range tokens {
		if want := d.seqs[r][d.pos : d.pos+len(tk)]; !slices.Equal(tk, want) {
			d.t.Errorf("step %d row %d: fed %v, HF fed %v", d.steps+1, r, tk, want)
		}
	}
	d.pos += len(tokens[0])
	l := d.scores[d.steps*rows*d.vocab : (d.steps+1)*rows*d.vocab]
	d.steps++
	return slices.Clone(l), d.vocab, nil
}

func (d *genReplayDecoder) Reorder([]int64) error {
	d.t.Error("greedy search called Reorder")
	return nil
}

func TestGreedyReplaysHuggingFace(t *testing.T) {
	tests := []struct {
		name     string
		eos, pad int64
	}{
		{"gen_vitgpt2_gen_greedy", 299, 299},
		{"gen_vitgpt2_gen_greedy_prompt", 299, 299},
		{"gen_blip_gen_greedy_noprompt", 102, 0}, // BLIP stops on sep_token_id and pads with 0
		{"gen_blip_gen_greedy_prompt", 102, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sshape, scores, _ := genReadNpy(t, "testdata/"+tc.name+"_scores.npy")
			ishape, _, ids := genReadNpy(t, "testdata/"+tc.name+".npy")
			steps, batch, vocab, cols := sshape[0], sshape[1], sshape[2], ishape[1]
			plen := cols - steps
			var seqs, prompts [][]int64
			for b := range batch {
				seqs = append(seqs, ids[b*cols:(b+1)*cols])
				prompts = append(prompts, slices.Clone(seqs[b][:plen]))
			}
			d := &genReplayDecoder{t: t, scores: scores, seqs: seqs, vocab: vocab}
			o := GenerateOptions{NumBeams: 1, MaxNewTokens: steps, EOS: []int64{tc.eos}, PadID: tc.pad, OutputScores: true}
			got, err := Generate(context.Background(), d, prompts, o)
			if err != nil {
				t.Fatal(err)
			}
			if d.steps != steps {
				t.Errorf("%d steps, HF ran %d", d.steps, steps)
			}
			for b := range batch {
				want := seqs[b][plen:]
				if i := slices.Index(want, tc.eos); i >= 0 {
					want = want[:i+1]
				}
				if !slices.Equal(got[b].Tokens, want) {
					t.Errorf("row %d: %v, HF %v", b, got[b].Tokens, want)
				}
				for s := range steps {
					if !slices.Equal(got[b].StepScores[s], scores[(s*batch+b)*vocab:(s*batch+b+1)*vocab]) {
						t.Errorf("row %d step %d: scores differ from HF's", b, s)
					}
				}
			}
		})
	}
}

// genBenchDecoder returns fixed pseudo-random logits, so that a benchmark times Generate itself.
type genBenchDecoder struct {
	logits []float32
	vocab  int
}

func (d *genBenchDecoder) Step([][]int64) ([]float32, int, error) {
	return slices.Clone(d.logits), d.vocab, nil
}

func (d *genBenchDecoder) Reorder([]int64) error { return nil }

// BenchmarkGenerate: batch 8, GPT-2's vocabulary, 20 new tokens.
func BenchmarkGenerate(b *testing.B) {
	const vocab, batch = 50257, 8
	for _, beams := range []int{1, 3} {
		b.Run(fmt.Sprintf("beams=%d", beams), func(b *testing.B) {
			fn := genHashModel(vocab, 1, 4, 0, nil)
			d := &genBenchDecoder{vocab: vocab}
			prompts := make([][]int64, batch)
			for i := range batch * beams {
				d.logits = append(d.logits, fn([]int64{int64(i)})...)
				prompts[i/beams] = []int64{1}
			}
			o := GenerateOptions{NumBeams: beams, MaxNewTokens: 20, LengthPenalty: 1, EOS: []int64{0}}
			for b.Loop() {
				if _, err := Generate(context.Background(), d, prompts, o); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
