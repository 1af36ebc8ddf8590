package main

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestSplitListFlags(t *testing.T) {
	tests := []struct {
		args                []string
		images, texts, rest []string
	}{
		{[]string{"--model", "M", "--images", "a.jpg", "b.jpg", "--texts", "a dog", "a cat", "--json"},
			[]string{"a.jpg", "b.jpg"}, []string{"a dog", "a cat"}, []string{"--model", "M", "--json"}},
		{[]string{"--texts=x", "--images", "a.jpg", "--device", "cpu", "--images", "b.jpg"},
			[]string{"a.jpg", "b.jpg"}, []string{"x"}, []string{"--device", "cpu"}},
		{[]string{"stray", "--images", "a.jpg", "-h"}, []string{"a.jpg"}, nil, []string{"stray", "-h"}},
		{[]string{"--images", "a.jpg", "--", "--texts"}, []string{"a.jpg"}, nil, []string{"--", "--texts"}},
	}
	for _, tt := range tests {
		var images, texts []string
		rest := splitListFlags(tt.args, map[string]*[]string{"images": &images, "texts": &texts})
		if !reflect.DeepEqual(images, tt.images) || !reflect.DeepEqual(texts, tt.texts) || !reflect.DeepEqual(rest, tt.rest) {
			t.Errorf("%q: images %q, texts %q, rest %q", tt.args, images, texts, rest)
		}
	}
}

// TestMatchAndCapFiltCLI runs imgcap match and capfilt on runner's BLIP fixtures (tiny random
// Hugging Face checkpoints with a made-up tokenizer).
func TestMatchAndCapFiltCLI(t *testing.T) {
	fx := filepath.Join("..", "..", "runner", "testdata", "blip")
	img0, img1 := filepath.Join(fx, "images", "img0.png"), filepath.Join(fx, "images", "img1.png")
	out, errOut, code := runCLI(t, "", "match", "--model", filepath.Join(fx, "retrieval"), "--images", img0, img1,
		"--texts", "t205 t11 t57 t9", "t77 t301 t5", "--json", "--threads", "1")
	if code != 0 {
		t.Fatalf("match: exit %d: %s", code, errOut)
	}
	var res struct {
		ITMProb [][]float64 `json:"itm_prob"`
		ITC     [][]float64 `json:"itc"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.ITMProb) != 2 || len(res.ITMProb[0]) != 2 {
		t.Fatalf("match JSON %s: %v", out, err)
	}
	// transformers 4.36.2: itm_probs[0][0] 0.52076, itc_similarity[1][1] -0.50982.
	if d := res.ITMProb[0][0] - 0.5207586; d > 1e-4 || d < -1e-4 {
		t.Errorf("ITM probability %v", res.ITMProb)
	}
	for _, bad := range [][]string{
		{"match", "--images", img0, "--texts", "x"},
		{"match", "--model", filepath.Join(fx, "retrieval"), "--texts", "x"},
		{"match", "--model", filepath.Join(fx, "retrieval"), "--images", img0, "--texts", "x", "--bogus"},
		{"capfilt", "--captioner", filepath.Join(fx, "caption"), "--data", "x.json"},
		{"capfilt", "--captioner", "a", "--filter", "b", "--data", "x.json", "--threshold", "2"},
	} {
		if _, errOut, code := runCLI(t, "", bad...); code != 2 {
			t.Errorf("%q: exit %d (%s), want 2", bad, code, errOut)
		}
	}
	dir := t.TempDir()
	out, errOut, code = runCLI(t, "", "capfilt", "--captioner", filepath.Join(fx, "caption"), "--filter", filepath.Join(fx, "retrieval"),
		"--data", filepath.Join(fx, "images", "captions.json"), "--images", filepath.Join(fx, "images"), "--samples", "2",
		"--max-new-tokens", "5", "--out", dir, "--threads", "1")
	if code != 0 || !strings.Contains(out, "kept") {
		t.Fatalf("capfilt: exit %d: %s %s", code, out, errOut)
	}
	out, _, code = runCLI(t, "", "data", "inspect", "--annotations", filepath.Join(dir, "annotations.json"), "--json")
	var inspect struct {
		Format string `json:"format"`
		Images int    `json:"images"`
	}
	if err := json.Unmarshal([]byte(out), &inspect); code != 0 || err != nil || inspect.Format != "coco" || inspect.Images != 2 {
		t.Errorf("the capfilt annotations do not load: exit %d, %s", code, out)
	}
}
