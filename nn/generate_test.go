package nn

import (
	"math"
	"reflect"
	"testing"
)

// tableStepper is a decoder whose next-token distribution depends only on the last token:
// logp[last][next]. It keeps per-row histories so Reorder is checked too.
type tableStepper struct {
	logp    [][]float64
	history [][]int64 // tokens fed so far, per row
	calls   int
}

func newTableStepper(rows int, probs [][]float64) *tableStepper {
	lp := make([][]float64, len(probs))
	for i, row := range probs {
		lp[i] = make([]float64, len(row))
		for j, p := range row {
			lp[i][j] = math.Log(p)
		}
	}
	return &tableStepper{logp: lp, history: make([][]int64, rows)}
}

func (s *tableStepper) Step(tokens []int64) ([]float32, int, error) {
	s.calls++
	v := len(s.logp)
	out := make([]float32, 0, len(tokens)*v)
	for r, tok := range tokens {
		s.history[r] = append(s.history[r], tok)
		for _, x := range s.logp[tok] {
			out = append(out, float32(x))
		}
	}
	return out, v, nil
}

func (s *tableStepper) Reorder(rows []int64) error {
	next := make([][]int64, len(rows))
	for i, r := range rows {
		next[i] = append([]int64(nil), s.history[r]...)
	}
	s.history = next
	return nil
}

// Tokens: 0 = start, 1 = end, 2 = "a", 3 = "b".
// From start: a 0.6, b 0.4. After a: end 0.4, a 0.3, b 0.3. After b: end 0.95, a 0.05.
// Greedy: a end (0.6*0.4 = 0.24). Best sequence: b end (0.4*0.95 = 0.38).
var probs = [][]float64{
	{1e-9, 1e-9, 0.6, 0.4},
	{1e-9, 0.5, 0.2, 0.3}, // only reached when 1 is not the end token
	{1e-9, 0.4, 0.3, 0.3},
	{1e-9, 0.95, 0.05, 1e-9},
}

func TestBeamSearch(t *testing.T) {
	tests := []struct {
		name string
		opts SearchOptions
		want []int64
	}{
		{"greedy", SearchOptions{Batch: 1, NumBeams: 1, StartID: 0, EndID: 1, MaxNewTokens: 5, LengthPenalty: 1}, []int64{2, 1}},
		{"beam finds better", SearchOptions{Batch: 1, NumBeams: 2, StartID: 0, EndID: 1, MaxNewTokens: 5, LengthPenalty: 0}, []int64{3, 1}},
		{"min tokens", SearchOptions{Batch: 1, NumBeams: 1, StartID: 0, EndID: 1, MaxNewTokens: 5, MinNewTokens: 2, LengthPenalty: 1}, []int64{2, 2, 1}},
		{"max tokens cuts", SearchOptions{Batch: 1, NumBeams: 1, StartID: 0, EndID: 1, MaxNewTokens: 1, LengthPenalty: 1}, []int64{2}},
		{"no repeat unigram", SearchOptions{Batch: 1, NumBeams: 1, StartID: 0, EndID: -1, MaxNewTokens: 3, NoRepeatNgram: 1, LengthPenalty: 1}, []int64{2, 1, 3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newTableStepper(tc.opts.Batch*tc.opts.NumBeams, probs)
			got, err := BeamSearch(s, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got[0].Tokens, tc.want) {
				t.Errorf("tokens %v, want %v", got[0].Tokens, tc.want)
			}
		})
	}
}

func TestBeamSearchScoresAndBatch(t *testing.T) {
	s := newTableStepper(2*3, probs)
	got, err := BeamSearch(s, SearchOptions{Batch: 2, NumBeams: 3, StartID: 0, EndID: 1, MaxNewTokens: 6, LengthPenalty: 1})
	if err != nil {
		t.Fatal(err)
	}
	for b, h := range got {
		if !reflect.DeepEqual(h.Tokens, []int64{3, 1}) {
			t.Errorf("row %d: tokens %v, want [3 1]", b, h.Tokens)
		}
		wantSum := math.Log(0.4) + math.Log(0.95)
		if math.Abs(h.SumLog-wantSum) > 1e-6 || math.Abs(h.Score-wantSum/2) > 1e-6 {
			t.Errorf("row %d: sum %v score %v, want %v and %v", b, h.SumLog, h.Score, wantSum, wantSum/2)
		}
	}
	// Every surviving row's history is a consistent prefix: start, then its tokens.
	for r, h := range s.history {
		if len(h) == 0 || h[0] != 0 {
			t.Errorf("row %d history %v does not start with the start token", r, h)
		}
	}
}

func TestBeamSearchErrors(t *testing.T) {
	s := newTableStepper(1, probs)
	if _, err := BeamSearch(s, SearchOptions{Batch: 0, NumBeams: 1, MaxNewTokens: 3}); err == nil {
		t.Error("batch 0 accepted")
	}
	if _, err := BeamSearch(s, SearchOptions{Batch: 1, NumBeams: 1, MaxNewTokens: 3, EndID: 9}); err == nil {
		t.Error("end id outside vocabulary accepted")
	}
}

func TestBannedTokens(t *testing.T) {
	tests := []struct {
		seq  []int64
		n    int
		want map[int64]bool
	}{
		{[]int64{5, 6, 5}, 2, map[int64]bool{6: true}},
		{[]int64{5, 6, 7}, 2, map[int64]bool{}},
		{[]int64{1, 2, 3, 1, 2}, 3, map[int64]bool{3: true}},
		{[]int64{1}, 0, nil},
	}
	for _, tc := range tests {
		got := bannedTokens(tc.seq, tc.n)
		if len(got) != len(tc.want) {
			t.Errorf("bannedTokens(%v,%d) = %v, want %v", tc.seq, tc.n, got, tc.want)
			continue
		}
		for k := range tc.want {
			if !got[k] {
				t.Errorf("bannedTokens(%v,%d) = %v, want %v", tc.seq, tc.n, got, tc.want)
			}
		}
	}
}
