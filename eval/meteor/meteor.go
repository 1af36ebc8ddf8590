// Package meteor computes "METEOR (no paraphrase)": a re-implementation of
// the METEOR 1.5 metric for English with its exact, stem and synonym
// matchers but without the paraphrase matcher, whose tables are not
// available here. Scores are NOT the official METEOR numbers that the COCO
// caption evaluation reports; always label them "METEOR (no paraphrase)"
// (Name). They differ from the official numbers for two reasons:
//   - no paraphrase matching (official scores also credit paraphrases and
//     are usually a little higher);
//   - imgcap's own word lists: the function-word list (FunctionWords) and
//     the abbreviation list of the text normalizer (Normalize) were written
//     for imgcap from general grammatical knowledge; they are not the lists
//     distributed with METEOR 1.5 or the Moses tokenizer, so function-word
//     weighting and the splitting of some periods differ.
//
// What follows METEOR 1.5's published method (as run by pycocoevalcap with
// "-l en -norm", task "rank"):
//   - text normalization in the spirit of "-norm" (Normalize, with imgcap's
//     own rules and abbreviation list) and lower-casing;
//   - matchers: exact, stem (Snowball English stemmer, Stem), synonym
//     (WordNet synsets of the word and of its base form, see WordNet.Synsets);
//   - the aligner: candidate matches, fixed unique matches, and the beam
//     search (beam 40) that prefers more exact matches, then fewer chunks,
//     then smaller position distance, with METEOR's int truncation and
//     distance quirks;
//   - scoring with alpha 0.85, beta 0.20, gamma 0.60, delta 0.75 and module
//     weights 1.0, 0.6, 0.8: weighted precision and recall with function
//     words weighted 1-delta and content words delta, Fmean = PR/(aR+(1-a)P),
//     fragmentation penalty gamma*(chunks/avg matches)^beta, score =
//     Fmean*(1-penalty); against several references the best score wins;
//   - corpus score from summed statistics (METEOR's EVAL aggregation), not
//     the mean of per-sentence scores.
//
// Function words: imgcap's categorized English list (FunctionWords), plus
// every token without letters or digits (punctuation, symbols).
// WordNet: the synonym module reads WordNet 3.0 database files (Debian's
// wordnet-base), located by $IMGCAP_WORDNET_DIR or /usr/share/wordnet.
package meteor

import (
	"fmt"
	"math"
	"strings"
	"sync"
)

// Name is the label under which scores of this package must be reported.
const Name = "METEOR (no paraphrase)"

// Caveat is a one-line note to print next to scores labelled Name.
const Caveat = Name + " omits METEOR 1.5's paraphrase module and uses imgcap's own function-word and abbreviation lists; it is not the official METEOR."

// Params are METEOR's scoring parameters.
type Params struct {
	Alpha float64 // weight of recall against precision in Fmean
	Beta  float64 // exponent of the fragmentation penalty
	Gamma float64 // maximum fragmentation penalty
	Delta float64 // weight of content words (function words get 1-Delta)
	// Weights are the module weights for exact, stem and synonym matches.
	Weights [numModules]float64
}

// DefaultParams are METEOR 1.5's English "rank" task parameters.
var DefaultParams = Params{Alpha: 0.85, Beta: 0.20, Gamma: 0.60, Delta: 0.75, Weights: [numModules]float64{1.0, 0.6, 0.8}}

// DefaultBeam is METEOR's aligner beam size.
const DefaultBeam = 40

// Scorer computes METEOR (no paraphrase). It is safe for concurrent use.
type Scorer struct {
	params    Params
	beam      int
	wn        *WordNet
	function  map[string]bool
	normalize bool

	mu    sync.RWMutex
	cache map[string]wordInfo
}

// Option configures a Scorer.
type Option func(*Scorer)

// WithParams sets the scoring parameters.
func WithParams(p Params) Option { return func(s *Scorer) { s.params = p } }

// WithBeam sets the aligner beam size.
func WithBeam(n int) Option { return func(s *Scorer) { s.beam = n } }

// WithFunctionWords replaces the function-word list (default
// FunctionWords). Tokens without letters or digits remain function tokens.
func WithFunctionWords(words []string) Option {
	return func(s *Scorer) {
		s.function = make(map[string]bool, len(words))
		for _, w := range words {
			s.function[strings.ToLower(w)] = true
		}
	}
}

// WithoutNormalization skips Normalize (input is then
// only lower-cased and split on whitespace).
func WithoutNormalization() Option { return func(s *Scorer) { s.normalize = false } }

// New returns a Scorer that uses wn for the synonym module. wn must not be nil.
func New(wn *WordNet, opts ...Option) (*Scorer, error) {
	if wn == nil {
		return nil, fmt.Errorf("meteor: %w: the synonym module needs WordNet data", ErrNoWordNet)
	}
	s := &Scorer{params: DefaultParams, beam: DefaultBeam, wn: wn, normalize: true, cache: map[string]wordInfo{}}
	WithFunctionWords(FunctionWords)(s)
	for _, o := range opts {
		o(s)
	}
	if s.beam < 1 {
		return nil, fmt.Errorf("meteor: beam size %d < 1", s.beam)
	}
	return s, nil
}

// Default returns a Scorer with METEOR 1.5's parameters, imgcap's word
// lists and the WordNet found by WordNetDir; the error wraps ErrNoWordNet when WordNet is missing.
func Default() (*Scorer, error) {
	wn, err := DefaultWordNet()
	if err != nil {
		return nil, fmt.Errorf("meteor: %w", err)
	}
	return New(wn)
}

// Stats are METEOR's sufficient statistics for a candidate against its
// chosen reference (or summed over a corpus).
type Stats struct {
	TestLen      float64 // candidate length in words
	RefLen       float64 // reference length in words
	TestFunction float64 // function words in the candidate
	RefFunction  float64 // function words in the reference
	// TestContent / RefContent count matched content words per module.
	TestContent, RefContent [numModules]float64
	TestFuncMatch           [numModules]float64 // matched candidate function words per module
	RefFuncMatch            [numModules]float64 // matched reference function words per module
	Chunks                  float64             // number of chunks
	// TestMatches / RefMatches are the total matched words on each side.
	TestMatches, RefMatches float64
}

// Add accumulates o into s as METEOR's EVAL does (a perfect single-chunk
// match contributes no chunks).
func (s *Stats) Add(o Stats) {
	s.TestLen += o.TestLen
	s.RefLen += o.RefLen
	s.TestFunction += o.TestFunction
	s.RefFunction += o.RefFunction
	for i := range s.TestContent {
		s.TestContent[i] += o.TestContent[i]
		s.RefContent[i] += o.RefContent[i]
		s.TestFuncMatch[i] += o.TestFuncMatch[i]
		s.RefFuncMatch[i] += o.RefFuncMatch[i]
	}
	if !o.perfect() {
		s.Chunks += o.Chunks
	}
	s.TestMatches += o.TestMatches
	s.RefMatches += o.RefMatches
}

func (s Stats) perfect() bool {
	return s.TestMatches == s.TestLen && s.RefMatches == s.RefLen && s.Chunks == 1
}

// Breakdown is a score with its components.
type Breakdown struct {
	Precision float64 // weighted precision
	Recall    float64 // weighted recall
	Fmean     float64 // recall-weighted harmonic mean
	Penalty   float64 // fragmentation penalty
	Score     float64 // Fmean * (1 - Penalty), at least 0
}

// Score computes the METEOR score of sufficient statistics with the
// scorer's parameters.
func (sc *Scorer) Score(s Stats) float64 { return sc.Breakdown(s).Score }

// Breakdown computes the score and its components (METEOR's computeMetrics).
func (sc *Scorer) Breakdown(s Stats) Breakdown {
	p := sc.params
	testW := p.Delta*(s.TestLen-s.TestFunction) + (1-p.Delta)*s.TestFunction
	refW := p.Delta*(s.RefLen-s.RefFunction) + (1-p.Delta)*s.RefFunction
	var tm, rm float64
	for i, w := range p.Weights {
		tm += s.TestContent[i] * w * p.Delta
	}
	for i, w := range p.Weights {
		rm += s.RefContent[i] * w * p.Delta
	}
	for i, w := range p.Weights {
		tm += s.TestFuncMatch[i] * w * (1 - p.Delta)
	}
	for i, w := range p.Weights {
		rm += s.RefFuncMatch[i] * w * (1 - p.Delta)
	}
	var b Breakdown
	b.Precision = tm / testW
	b.Recall = rm / refW
	b.Fmean = 1.0 / ((1.0-p.Alpha)/b.Precision + p.Alpha/b.Recall)
	frag := 0.0
	if !s.perfect() {
		frag = s.Chunks / ((s.TestMatches + s.RefMatches) / 2)
	}
	b.Penalty = p.Gamma * math.Pow(frag, p.Beta)
	score := b.Fmean * (1.0 - b.Penalty)
	if math.IsNaN(score) {
		score = 0
	}
	b.Score = math.Max(score, 0)
	return b
}

// prepare normalizes and lower-cases a sentence and returns its words.
func (sc *Scorer) prepare(s string) []string {
	if sc.normalize {
		s = Normalize(s)
	}
	return splitSpaces(strings.ToLower(s))
}

// info returns the cached stem and synsets of a word.
func (sc *Scorer) info(w string) wordInfo {
	sc.mu.RLock()
	wi, ok := sc.cache[w]
	sc.mu.RUnlock()
	if ok {
		return wi
	}
	wi = wordInfo{word: w, stem: Stem(w), syn: sc.wn.Synsets(w)}
	sc.mu.Lock()
	sc.cache[w] = wi
	sc.mu.Unlock()
	return wi
}

func (sc *Scorer) infos(words []string) []wordInfo {
	out := make([]wordInfo, len(words))
	for i, w := range words {
		out[i] = sc.info(w)
	}
	return out
}

// Align aligns a candidate with one reference (both raw text; they are
// normalized and lower-cased first) and returns the alignment and its statistics.
func (sc *Scorer) Align(candidate, reference string) (*Alignment, Stats) {
	return sc.alignWords(sc.prepare(candidate), sc.prepare(reference))
}

// isFunction reports whether a word is a function word: listed (case
// insensitively) or made only of punctuation and symbols.
func (sc *Scorer) isFunction(w string) bool {
	return sc.function[strings.ToLower(w)] || isSymbolToken(w)
}

func (sc *Scorer) alignWords(test, ref []string) (*Alignment, Stats) {
	ti, ri := sc.infos(test), sc.infos(ref)
	matches, chunks := align(ti, ri, sc.beam)
	a := &Alignment{Test: test, Ref: ref, Matches: matches, Chunks: chunks,
		TestFunction: make([]bool, len(test)), RefFunction: make([]bool, len(ref))}
	var st Stats
	st.TestLen, st.RefLen = float64(len(test)), float64(len(ref))
	for i, w := range test {
		if sc.isFunction(w) {
			a.TestFunction[i] = true
			st.TestFunction++
		}
	}
	for j, w := range ref {
		if sc.isFunction(w) {
			a.RefFunction[j] = true
			st.RefFunction++
		}
	}
	for _, m := range matches {
		if m == nil {
			continue
		}
		if a.TestFunction[m.TestPos] {
			st.TestFuncMatch[m.Module]++
		} else {
			st.TestContent[m.Module]++
		}
		if a.RefFunction[m.RefPos] {
			st.RefFuncMatch[m.Module]++
		} else {
			st.RefContent[m.Module]++
		}
		st.TestMatches++
		st.RefMatches++
	}
	st.Chunks = float64(chunks)
	return a, st
}

// Stats scores a candidate against each reference and returns the
// statistics of the best-scoring one (the first on ties), as METEOR does
// for multiple references. With no references the statistics are those of
// an unmatched candidate.
func (sc *Scorer) Stats(candidate string, references []string) Stats {
	test := sc.prepare(candidate)
	best, bestScore := Stats{TestLen: float64(len(test))}, -1.0
	for _, r := range references {
		_, st := sc.alignWords(test, sc.prepare(r))
		if s := sc.Score(st); s > bestScore {
			best, bestScore = st, s
		}
	}
	return best
}
