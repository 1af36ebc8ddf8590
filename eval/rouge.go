package eval

import "strings"

// RougeBeta is ROUGE-L's recall weight.
const RougeBeta = 1.2

// ROUGEL computes ROUGE-L as pycocoevalcap's Rouge() does: per image, the
// LCS-based precision and recall against each reference, P = max precision,
// R = max recall (taken separately), F = (1+b^2)PR / (R + b^2 P) with b = 1.2
// (0 when P or R is 0); corpus value = mean over images. Words are split on
// single spaces (Python's split(" ")), so an empty candidate is one empty word.
func ROUGEL(cands []string, refs [][]string) (corpus float64, perImage []float64) {
	perImage = make([]float64, len(cands))
	vocab := map[string]int32{}
	intern := func(s string) []int32 {
		parts := strings.Split(s, " ")
		out := make([]int32, len(parts))
		for i, p := range parts {
			id, ok := vocab[p]
			if !ok {
				id = int32(len(vocab))
				vocab[p] = id
			}
			out[i] = id
		}
		return out
	}
	var row []int32
	sum := 0.0
	for i, c := range cands {
		tc := intern(c)
		pmax, rmax := 0.0, 0.0
		for _, r := range refs[i] {
			tr := intern(r)
			var l int
			l, row = lcs(tr, tc, row)
			p := float64(l) / float64(len(tc))
			rc := float64(l) / float64(len(tr))
			pmax = max(pmax, p)
			rmax = max(rmax, rc)
		}
		s := 0.0
		if pmax != 0 && rmax != 0 {
			b2 := RougeBeta * RougeBeta
			s = ((1 + b2) * pmax * rmax) / (rmax + b2*pmax)
		}
		perImage[i] = s
		sum += s
	}
	if len(cands) == 0 {
		return 0, perImage
	}
	return sum / float64(len(cands)), perImage
}

// lcs returns the length of the longest common subsequence of a and b,
// using row as scratch space.
func lcs(a, b []int32, row []int32) (int, []int32) {
	if len(a) < len(b) {
		a, b = b, a
	}
	if cap(row) < len(b)+1 {
		row = make([]int32, len(b)+1)
	}
	row = row[:len(b)+1]
	clear(row)
	for i := range a {
		var diag int32
		for j := range b {
			up := row[j+1]
			if a[i] == b[j] {
				row[j+1] = diag + 1
			} else if row[j] > up {
				row[j+1] = row[j]
			}
			diag = up
		}
	}
	return int(row[len(b)]), row
}
