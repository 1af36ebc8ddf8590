package eval

import (
	"math"
	"testing"
)

func TestRetrieval(t *testing.T) {
	// 3 images, 5 texts: texts 0,1 -> image 0; 2,3 -> image 1; 4 -> image 2.
	textToImage := []int{0, 0, 1, 1, 2}
	sim := [][]float64{
		{0.1, 0.9, 0.2, 0.3, 0.0}, // image 0: best text 1 (correct) -> rank 1
		{0.8, 0.1, 0.2, 0.7, 0.9}, // image 1: order 4,0,3,2,1 -> text 3 at rank 3
		{0.5, 0.4, 0.3, 0.2, 0.1}, // image 2: text 4 is last -> rank 5
	}
	res, err := Retrieval(sim, textToImage)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.ImageToText.Ranks; got[0] != 1 || got[1] != 3 || got[2] != 5 {
		t.Fatalf("i2t ranks %v, want [1 3 5]", got)
	}
	// Text columns: t0 (0.1,0.8,0.5) -> image 0 rank 3; t1 (0.9,0.1,0.4) -> rank 1;
	// t2 (0.2,0.2,0.3) -> image 1: image 2 better, image 0 ties with lower index -> rank 3;
	// t3 (0.3,0.7,0.2) -> rank 1; t4 (0.0,0.9,0.1) -> image 2 rank 2.
	want := []int{3, 1, 3, 1, 2}
	for i, r := range res.TextToImage.Ranks {
		if r != want[i] {
			t.Fatalf("t2i ranks %v, want %v", res.TextToImage.Ranks, want)
		}
	}
	i2t := res.ImageToText
	if i2t.R1 != 1.0/3 || i2t.R5 != 1 || i2t.R10 != 1 || i2t.MedianRank != 3 || i2t.MeanRank != 3 {
		t.Fatalf("i2t %+v", i2t)
	}
	t2i := res.TextToImage
	if t2i.R1 != 0.4 || t2i.R5 != 1 || t2i.MedianRank != 2 || math.Abs(t2i.MeanRank-2) > 1e-15 {
		t.Fatalf("t2i %+v", t2i)
	}
}

func TestRetrievalTiesAndErrors(t *testing.T) {
	// A constant matrix must not give perfect recall.
	sim := [][]float64{{1, 1}, {1, 1}}
	res, err := Retrieval(sim, []int{1, 0})
	if err != nil {
		t.Fatal(err)
	}
	if res.ImageToText.Ranks[0] != 2 || res.ImageToText.Ranks[1] != 1 {
		t.Fatalf("tie ranks %v", res.ImageToText.Ranks)
	}
	bad := []struct {
		name string
		sim  [][]float64
		t2i  []int
	}{
		{"empty", nil, nil},
		{"ragged", [][]float64{{1, 2}, {1}}, []int{0, 1}},
		{"out of range", [][]float64{{1}}, []int{3}},
		{"image without text", [][]float64{{1}, {2}}, []int{0}},
		{"nan", [][]float64{{math.NaN()}}, []int{0}},
	}
	for _, b := range bad {
		if _, err := Retrieval(b.sim, b.t2i); err == nil {
			t.Errorf("%s: no error", b.name)
		}
	}
}
