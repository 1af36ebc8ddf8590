package eval

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imgcap/imgcap/eval/meteor"
)

// synthCaptions builds a deterministic caption set that looks like COCO /
// Flickr data: nImages images, each with nRefs raw references and one
// candidate drawn from the same scene (so that n-grams overlap as they do
// for real models), with capitals, commas and final periods.
func synthCaptions(nImages, nRefs int) (ids []string, refs [][]string, cands []string) {
	subjects := []string{"a man", "a woman", "two dogs", "a young boy", "a little girl", "a group of people",
		"a black dog", "a brown horse", "an older man", "three children", "a skier", "a surfer", "a cat",
		"a person", "two men", "a baseball player", "a bus", "a train", "a plate of food", "a giraffe"}
	verbs := []string{"is riding", "runs across", "is playing with", "stands next to", "is sitting on",
		"jumps over", "walks along", "is holding", "looks at", "is eating", "is parked near", "rides down"}
	objects := []string{"a bike", "the grass", "a red ball", "a wooden bench", "the street", "a frisbee",
		"a surfboard", "a snowy hill", "a large building", "a kite", "the water", "a table", "a fence"}
	places := []string{"in the park", "on the beach", "in a field", "near the lake", "on a city street",
		"in the snow", "at night", "in front of a crowd", "under a tree", "on a sunny day", ""}
	adjs := []string{"", "", "happy ", "small ", "white ", "busy ", "old "}
	rng := rand.New(rand.NewPCG(42, 4242))
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
	caption := func(s, v, o string) string {
		c := s + " " + v + " " + pick(adjs) + o
		if p := pick(places); p != "" {
			if rng.IntN(3) == 0 {
				c += ","
			}
			c += " " + p
		}
		if rng.IntN(2) == 0 {
			c = strings.ToUpper(c[:1]) + c[1:]
		}
		if rng.IntN(3) != 0 {
			c += " ."
		} else if rng.IntN(2) == 0 {
			c += "."
		}
		return c
	}
	for i := 0; i < nImages; i++ {
		ids = append(ids, fmt.Sprint(100000+i))
		s, v, o := pick(subjects), pick(verbs), pick(objects)
		var r []string
		for j := 0; j < nRefs; j++ {
			// References mostly describe the same scene with variations.
			ss, vv, oo := s, v, o
			if rng.IntN(3) == 0 {
				ss = pick(subjects)
			}
			if rng.IntN(3) == 0 {
				vv = pick(verbs)
			}
			if rng.IntN(4) == 0 {
				oo = pick(objects)
			}
			r = append(r, caption(ss, vv, oo))
		}
		refs = append(refs, r)
		cs, cv, co := s, v, o
		if rng.IntN(2) == 0 {
			cv = pick(verbs)
		}
		cands = append(cands, caption(cs, cv, co))
	}
	return ids, refs, cands
}

// cpuTime returns the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchLoop runs fn b.N times and also reports the process CPU time per
// operation ("cpu-ms/op"), which, unlike wall time, does not grow when
// other processes compete for the cores (run with -cpu 1).
func benchLoop(b *testing.B, fn func()) {
	b.Helper()
	start := cpuTime()
	n := 0
	for b.Loop() {
		fn()
		n++
	}
	if n > 0 {
		b.ReportMetric(float64(cpuTime()-start)/float64(n)/1e6, "cpu-ms/op")
	}
}

// BenchmarkScore5000 scores 5,000 images x 5 references with BLEU-1..4,
// ROUGE-L and CIDEr-D, PTB tokenization included (the full `imgcap score`
// path). Run with -cpu 1 for the single-core number.
func BenchmarkScore5000(b *testing.B) {
	ids, refs, cands := synthCaptions(5000, 5)
	opts := Options{Metrics: []string{MetricBLEU, MetricROUGE, MetricCIDEr}}
	benchLoop(b, func() {
		if _, err := Score(ids, refs, cands, opts); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkScore5000PreTokenized is BenchmarkScore5000 without tokenization.
func BenchmarkScore5000PreTokenized(b *testing.B) {
	ids, refs, cands := synthCaptions(5000, 5)
	tc, tr := tokenizeForScoring(cands, refs)
	opts := Options{Metrics: []string{MetricBLEU, MetricROUGE, MetricCIDEr}, PreTokenized: true}
	benchLoop(b, func() {
		if _, err := Score(ids, tr, tc, opts); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkPTBTokenize5000 tokenizes the 30,000 captions of the 5,000-image set.
func BenchmarkPTBTokenize5000(b *testing.B) {
	_, refs, cands := synthCaptions(5000, 5)
	benchLoop(b, func() {
		tokenizeForScoring(cands, refs)
	})
}

// BenchmarkPTBTokenizeFixtures tokenizes the real fixture captions (with
// their quotes, parentheses and clitics).
func BenchmarkPTBTokenizeFixtures(b *testing.B) {
	var all []string
	for _, name := range fixtureSetNames {
		fs := loadFixtureSet(b, name)
		for _, id := range fs.refs.ImageIDs {
			all = append(all, fs.refs.Captions[id]...)
		}
	}
	b.ReportMetric(float64(len(all)), "captions/op")
	benchLoop(b, func() {
		PTBTokenize(all)
	})
}

// BenchmarkScore5000Bootstrap adds 1,000 bootstrap resamples.
func BenchmarkScore5000Bootstrap(b *testing.B) {
	ids, refs, cands := synthCaptions(5000, 5)
	tc, tr := tokenizeForScoring(cands, refs)
	opts := Options{Metrics: []string{MetricBLEU, MetricROUGE, MetricCIDEr}, PreTokenized: true, Bootstrap: 1000}
	benchLoop(b, func() {
		if _, err := Score(ids, tr, tc, opts); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkMeteor5000 scores METEOR (no paraphrase) on the 5,000-image set.
func BenchmarkMeteor5000(b *testing.B) {
	sc, err := meteor.Default()
	if err != nil {
		b.Skip(err)
	}
	ids, refs, cands := synthCaptions(5000, 5)
	tc, tr := tokenizeForScoring(cands, refs)
	opts := Options{Metrics: []string{MetricMETEOR}, PreTokenized: true, Meteor: sc}
	benchLoop(b, func() {
		if _, err := Score(ids, tr, tc, opts); err != nil {
			b.Fatal(err)
		}
	})
}
