package meteor

import (
	"slices"
)

// Module indices of the matchers, in the order they run.
const (
	ModuleExact   = 0 // identical words
	ModuleStem    = 1 // different words with the same Snowball stem
	ModuleSynonym = 2 // different words sharing a WordNet synset
	numModules    = 3
)

// Match links word TestPos of the candidate to word RefPos of the reference.
type Match struct {
	RefPos  int // position in the reference
	TestPos int // position in the candidate (test)
	Module  int // ModuleExact, ModuleStem or ModuleSynonym
}

// Alignment is the chosen one-to-one matching between a candidate and a
// reference and its counts.
type Alignment struct {
	Test []string // candidate words (normalized, lower-cased)
	Ref  []string // reference words
	// Matches[j] is the match of reference word j, or nil.
	Matches []*Match
	// Chunks is the number of runs of matches that are contiguous and in the
	// same order in both sentences.
	Chunks int
	// TestFunction / RefFunction mark function words.
	TestFunction, RefFunction []bool
}

// wordInfo is what the matchers need to know about one word.
type wordInfo struct {
	word string
	stem string
	syn  []int32
}

// partial is a search path of the beam search (METEOR's PartialAlignment).
type partial struct {
	matches      []*Match
	usedTest     []bool
	usedRef      []bool
	weighted     int // sum of the int-truncated weighted match counts, both sides
	chunks       int
	idx          int
	lastMatchEnd int
	distance     int
}

func (p *partial) clone() *partial {
	q := *p
	q.matches = slices.Clone(p.matches)
	q.usedTest = slices.Clone(p.usedTest)
	q.usedRef = slices.Clone(p.usedRef)
	return &q
}

// alignWeights are the module weights METEOR's scorer gives its aligner for
// choosing among alignments (exact 1.0, others 0.5). METEOR adds them to an
// int field, so a 0.5 is truncated away: in effect only exact matches count.
var alignWeights = [numModules]float64{1.0, 0.5, 0.5}

// align reproduces METEOR 1.5's Aligner: all exact, stem and synonym
// candidate matches are collected (stem and synonym only between different
// words), a match that is the only candidate for both of its words is fixed,
// and a left-to-right beam search over reference positions picks the
// alignment with the most (weighted) matches, then the fewest chunks, then
// the smallest summed position distance.
func align(test, ref []wordInfo, beam int) (matches []*Match, chunks int) {
	nt, nr := len(test), len(ref)
	cands := make([][]Match, nr)
	covT := make([]int, nt)
	covR := make([]int, nr)
	identical := nt == nr
	for i := range test {
		if identical && test[i].word != ref[i].word {
			identical = false
		}
	}
	add := func(j, i, module int) {
		cands[j] = append(cands[j], Match{RefPos: j, TestPos: i, Module: module})
		covT[i]++
		covR[j]++
	}
	for j := range ref {
		for i := range test {
			if test[i].word == ref[j].word {
				add(j, i, ModuleExact)
			}
		}
	}
	if !identical {
		for j := range ref {
			for i := range test {
				if test[i].stem == ref[j].stem && test[i].word != ref[j].word {
					add(j, i, ModuleStem)
				}
			}
		}
		for j := range ref {
			for i := range test {
				if test[i].word != ref[j].word && intersects(test[i].syn, ref[j].syn) {
					add(j, i, ModuleSynonym)
				}
			}
		}
	}

	start := &partial{matches: make([]*Match, nr), usedTest: make([]bool, nt), usedRef: make([]bool, nr), lastMatchEnd: -1}
	// One-to-one, non-overlapping matches are definite.
	for j := range cands {
		if len(cands[j]) == 1 {
			m := &cands[j][0]
			if covR[j] == 1 && covT[m.TestPos] == 1 {
				start.matches[j] = m
				start.usedRef[j] = true
				start.usedTest[m.TestPos] = true
			}
		}
	}

	best := resolve(cands, start, beam)
	chunks = countChunks(best.matches)
	return best.matches, chunks
}

func intersects(a, b []int32) bool {
	for i, j := 0, 0; i < len(a) && j < len(b); {
		switch {
		case a[i] < b[j]:
			i++
		case a[i] > b[j]:
			j++
		default:
			return true
		}
	}
	return false
}

// comparePartial orders paths best first: more weighted matches, then fewer
// chunks, then smaller distance (METEOR's PARTIAL_COMPARE_TOTAL).
func comparePartial(x, y *partial) int {
	if d := y.weighted - x.weighted; d != 0 {
		if d > 0 {
			return 1
		}
		return -1
	}
	if d := x.chunks - y.chunks; d != 0 {
		return d
	}
	return x.distance - y.distance
}

// addMatch updates a path's statistics for taking match m.
func (p *partial) addMatch(m *Match) {
	w := alignWeights[m.Module]
	// Java: int += double is (int)(int + double), for each side.
	p.weighted = int(float64(p.weighted) + w)
	p.weighted = int(float64(p.weighted) + w)
	if p.lastMatchEnd != -1 && m.TestPos != p.lastMatchEnd {
		p.chunks++
	}
	p.idx = m.RefPos + 1
	p.lastMatchEnd = m.TestPos + 1
}

func abs(a int) int {
	if a < 0 {
		return -a
	}
	return a
}

// resolve is METEOR's beam search, including its quirks: the position
// distance of a newly taken match is added to the path it was extended
// from (not to the new path), which only matters for tie-breaking.
func resolve(cands [][]Match, start *partial, beam int) *partial {
	next := []*partial{start}
	var paths []*partial
	for current := 0; current <= len(cands); current++ {
		paths, next = next, nil
		slices.SortStableFunc(paths, comparePartial)
		for rank := 0; rank < beam && rank < len(paths); rank++ {
			path := paths[rank]
			if current == len(cands) {
				if path.lastMatchEnd != -1 {
					path.chunks++
				}
				next = append(next, path)
				continue
			}
			if path.usedRef[current] {
				if current < path.idx {
					next = append(next, path)
				} else if m := path.matches[path.idx]; m != nil {
					path.addMatch(m)
					path.distance += abs(m.RefPos - m.TestPos)
					next = append(next, path)
				}
				continue
			}
			for k := range cands[current] {
				m := &cands[current][k]
				if path.usedRef[m.RefPos] || path.usedTest[m.TestPos] {
					continue
				}
				np := path.clone()
				np.usedRef[m.RefPos] = true
				np.usedTest[m.TestPos] = true
				np.matches[current] = m
				np.addMatch(m)
				path.distance += abs(m.RefPos - m.TestPos)
				next = append(next, np)
			}
			if path.lastMatchEnd != -1 {
				path.chunks++
				path.lastMatchEnd = -1
			}
			path.idx++
			next = append(next, path)
		}
		if len(next) == 0 {
			next = append(next, paths[0])
		}
	}
	slices.SortStableFunc(next, comparePartial)
	return next[0]
}

// countChunks counts runs of matches that are adjacent in the reference and
// in the candidate, in order (METEOR's getCountAndChunks).
func countChunks(matches []*Match) int {
	chunks := 0
	last := -1
	for _, m := range matches {
		if m == nil {
			if last != -1 {
				chunks++
				last = -1
			}
			continue
		}
		if last != -1 && m.TestPos != last {
			chunks++
		}
		last = m.TestPos + 1
	}
	if last != -1 {
		chunks++
	}
	return chunks
}
