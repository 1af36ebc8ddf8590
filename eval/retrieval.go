package eval

import (
	"fmt"
	"math"
	"slices"
)

// RetrievalScores are recall and rank statistics for one direction.
type RetrievalScores struct {
	R1         float64 `json:"R@1"`         // fraction of queries with the answer at rank 1
	R5         float64 `json:"R@5"`         // fraction with the answer in the top 5
	R10        float64 `json:"R@10"`        // fraction with the answer in the top 10
	MedianRank float64 `json:"median_rank"` // median 1-based rank
	MeanRank   float64 `json:"mean_rank"`   // mean 1-based rank
	// Ranks are the 1-based ranks of the first correct item per query.
	Ranks []int `json:"-"`
}

// RetrievalResult holds both retrieval directions.
type RetrievalResult struct {
	ImageToText RetrievalScores `json:"image_to_text"` // images as queries, texts retrieved
	TextToImage RetrievalScores `json:"text_to_image"` // texts as queries, images retrieved
}

// Retrieval computes image->text and text->image Recall@1/5/10 and median
// and mean rank from a similarity matrix. sim[i][t] is the similarity of
// image i and text t; textToImage[t] is the image that text t describes
// (an image may have several texts). For image->text, an image's rank is
// the best rank among its correct texts; for text->image, a text's rank is
// the rank of its image. Ranks are 1-based; ties are broken in favour of
// the lower index (the order a stable descending sort gives), so a constant
// similarity matrix does not get perfect recall. Every image must have at
// least one text, and similarities must not be NaN.
func Retrieval(sim [][]float64, textToImage []int) (*RetrievalResult, error) {
	nImg, nTxt := len(sim), len(textToImage)
	if nImg == 0 || nTxt == 0 {
		return nil, fmt.Errorf("retrieval: empty input (%d images, %d texts)", nImg, nTxt)
	}
	hasText := make([]bool, nImg)
	for t, i := range textToImage {
		if i < 0 || i >= nImg {
			return nil, fmt.Errorf("retrieval: textToImage[%d] = %d out of range [0, %d)", t, i, nImg)
		}
		hasText[i] = true
	}
	for i, row := range sim {
		if len(row) != nTxt {
			return nil, fmt.Errorf("retrieval: sim[%d] has %d columns, want %d (one per text)", i, len(row), nTxt)
		}
		if !hasText[i] {
			return nil, fmt.Errorf("retrieval: image %d has no text in textToImage", i)
		}
		for t, v := range row {
			if math.IsNaN(v) {
				return nil, fmt.Errorf("retrieval: sim[%d][%d] is NaN", i, t)
			}
		}
	}
	// rank of item c among scores: 1 + #{better} + #{equal with lower index}.
	rankOf := func(score func(k int) float64, n, c int) int {
		sc := score(c)
		r := 1
		for k := 0; k < n; k++ {
			if v := score(k); v > sc || v == sc && k < c {
				r++
			}
		}
		return r
	}
	i2t := make([]int, nImg)
	for i := range sim {
		row := sim[i]
		// The best-ranked correct text is the highest-scoring one (lowest
		// index on ties), so one rank computation per image suffices.
		c := -1
		for t, img := range textToImage {
			if img == i && (c < 0 || row[t] > row[c]) {
				c = t
			}
		}
		i2t[i] = rankOf(func(k int) float64 { return row[k] }, nTxt, c)
	}
	t2i := make([]int, nTxt)
	for t, img := range textToImage {
		t2i[t] = rankOf(func(k int) float64 { return sim[k][t] }, nImg, img)
	}
	return &RetrievalResult{ImageToText: rankStats(i2t), TextToImage: rankStats(t2i)}, nil
}

// rankStats summarises 1-based ranks.
func rankStats(ranks []int) RetrievalScores {
	s := RetrievalScores{Ranks: ranks}
	n := float64(len(ranks))
	sum := 0.0
	for _, r := range ranks {
		if r <= 1 {
			s.R1++
		}
		if r <= 5 {
			s.R5++
		}
		if r <= 10 {
			s.R10++
		}
		sum += float64(r)
	}
	s.R1 /= n
	s.R5 /= n
	s.R10 /= n
	s.MeanRank = sum / n
	sorted := slices.Clone(ranks)
	slices.Sort(sorted)
	m := len(sorted) / 2
	if len(sorted)%2 == 1 {
		s.MedianRank = float64(sorted[m])
	} else {
		s.MedianRank = float64(sorted[m-1]+sorted[m]) / 2
	}
	return s
}
