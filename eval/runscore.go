package eval

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"text/tabwriter"

	"github.com/imgcap/imgcap/eval/meteor"
	"github.com/imgcap/imgcap/internal/atomicfile"
)

// DefaultResamples is the default number of bootstrap resamples.
const DefaultResamples = 1000

// ScoreOptions are the inputs of `imgcap score`.
type ScoreOptions struct {
	// RefsPath is a COCO captions annotations file with the references.
	RefsPath string
	// Refs, when set, are the references (e.g. a dataset split read by the data package);
	// RefsPath then only names them in messages.
	Refs *References
	// ResultsPath is a COCO results file [{"image_id","caption"}] with the candidates.
	ResultsPath string
	// Metrics to compute; nil means all (METEOR is then skipped with a
	// warning if WordNet is missing, instead of failing).
	Metrics []string
	// CI computes bootstrap confidence intervals.
	CI bool
	// Resamples is the number of bootstrap resamples (default 1000).
	Resamples int
	// Seed seeds the bootstrap.
	Seed uint64
	// OutPath, when set, receives the scores JSON.
	OutPath string
	// JSON prints the scores JSON to the writer instead of a table.
	JSON bool
	// Strict makes images of the references without a candidate an error;
	// by default they are reported and left out of the scores.
	Strict bool
	// PreTokenized skips PTB tokenization.
	PreTokenized bool
	// Warn receives warnings; nil means the output writer.
	Warn io.Writer
}

// ScoreReport is the JSON document `imgcap score` writes: the Result plus
// where the captions came from and which images were left out.
type ScoreReport struct {
	Refs    string `json:"refs,omitempty"`    // references file
	Results string `json:"results,omitempty"` // candidates (COCO results) file
	// Tokenization names the tokenizer applied before scoring.
	Tokenization string `json:"tokenization"`
	// MissingImages are reference images without a candidate (not scored).
	MissingImages []string `json:"missing_images,omitempty"`
	*Result
}

// RunScore implements `imgcap score`: it reads references and candidates,
// checks that they fit together, scores them, prints a table (or JSON) to w
// and writes the JSON report to opts.OutPath when set.
//
// Images of the references without a candidate are reported on opts.Warn
// (count and first ids) and not scored, or are an error with opts.Strict.
// Candidates for images that are not in the references, duplicate
// candidates, empty files and malformed JSON are errors.
func RunScore(opts ScoreOptions, w io.Writer) error {
	warn := opts.Warn
	if warn == nil {
		warn = w
	}
	if opts.RefsPath == "" || opts.ResultsPath == "" {
		return errors.New("score: both the references (--refs) and the results (--results) files are required")
	}
	refs := opts.Refs
	if refs == nil {
		var err error
		if refs, err = ReadCOCORefs(opts.RefsPath); err != nil {
			return err
		}
	}
	cands, err := ReadCOCOResults(opts.ResultsPath)
	if err != nil {
		return err
	}
	ids, refList, candList, missing, err := matchCandidates(refs, opts.RefsPath, cands, opts.ResultsPath)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		msg := fmt.Sprintf("%d of %d images in %s have no candidate in %s: %s",
			len(missing), len(refs.ImageIDs), opts.RefsPath, opts.ResultsPath, joinIDs(missing, 10))
		if opts.Strict {
			return errors.New("score: " + msg)
		}
		fmt.Fprintf(warn, "warning: %s; scoring only the %d images with candidates\n", msg, len(ids))
	}
	metrics := opts.Metrics
	explicit := metrics != nil
	if !explicit {
		metrics = AllMetrics
	}
	so := Options{Metrics: metrics, PreTokenized: opts.PreTokenized, Seed: opts.Seed}
	if opts.CI {
		so.Bootstrap = opts.Resamples
		if so.Bootstrap == 0 {
			so.Bootstrap = DefaultResamples
		}
		if so.Bootstrap < 0 {
			return fmt.Errorf("score: %d bootstrap resamples", so.Bootstrap)
		}
	}
	res, scoreErr := Score(ids, refList, candList, so)
	if res == nil {
		return scoreErr
	}
	if scoreErr != nil && !explicit {
		fmt.Fprintf(warn, "warning: %v (the other metrics are computed)\n", scoreErr)
	}
	rep := &ScoreReport{Refs: opts.RefsPath, Results: opts.ResultsPath, MissingImages: missing, Result: res,
		Tokenization: tokenizationName(opts.PreTokenized)}
	if opts.OutPath != "" {
		if err := writeJSONFile(opts.OutPath, rep); err != nil {
			return err
		}
	}
	if opts.JSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", " ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else if err := WriteTable(w, res); err != nil {
		return err
	}
	if scoreErr != nil && explicit {
		return scoreErr
	}
	return nil
}

func tokenizationName(pre bool) string {
	if pre {
		return "none (pre-tokenized input)"
	}
	return "PTB (Stanford CoreNLP 3.4.1 PTBTokenizer as in pycocoevalcap)"
}

// matchCandidates pairs candidates with references in reference image
// order. It returns the scored ids, their references and candidates, and
// the reference images that have no candidate.
func matchCandidates(refs *References, refsName string, cands []Candidate, candsName string) (ids []string, refList [][]string, candList []string, missing []string, err error) {
	by := make(map[string]string, len(cands))
	var unknown []string
	for _, c := range cands {
		if _, ok := refs.Captions[c.ImageID]; !ok {
			unknown = append(unknown, c.ImageID)
		}
		by[c.ImageID] = c.Caption
	}
	if len(unknown) > 0 {
		return nil, nil, nil, nil, fmt.Errorf("score: %s: %d of %d candidates are for images without references in %s: image_id %s",
			candsName, len(unknown), len(cands), refsName, joinIDs(unknown, 10))
	}
	for _, id := range refs.ImageIDs {
		c, ok := by[id]
		if !ok {
			missing = append(missing, id)
			continue
		}
		if len(refs.Captions[id]) == 0 {
			return nil, nil, nil, nil, fmt.Errorf("score: %s: image %s has a candidate but no reference caption in %s", candsName, id, refsName)
		}
		ids = append(ids, id)
		refList = append(refList, refs.Captions[id])
		candList = append(candList, c)
	}
	return ids, refList, candList, missing, nil
}

// WriteTable prints corpus scores (and intervals, if any) as a table.
func WriteTable(w io.Writer, res *Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	level := ""
	if res.Bootstrap != nil {
		level = fmt.Sprintf("\t%g%% CI", 100*res.Bootstrap.Level)
	}
	fmt.Fprintf(tw, "metric\tscore%s\n", level)
	for _, k := range res.Metrics {
		line := fmt.Sprintf("%s\t%.4f", k, res.Corpus[k])
		if ci, ok := res.CI[k]; ok {
			line += fmt.Sprintf("\t[%.4f, %.4f]", ci.Low, ci.High)
		}
		fmt.Fprintln(tw, line)
	}
	for _, k := range sortedKeys(res.Unavailable) {
		fmt.Fprintf(tw, "%s\tunavailable\n", k)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	extra := ""
	if res.Bootstrap != nil {
		extra = fmt.Sprintf("; %d bootstrap resamples, seed %d", res.Bootstrap.Resamples, res.Bootstrap.Seed)
	}
	_, err := fmt.Fprintf(w, "images scored: %d%s\n", res.NumImages, extra)
	if _, ok := res.Corpus[KeyMETEOR]; ok && err == nil {
		_, err = fmt.Fprintf(w, "note: %s\n", meteor.Caveat)
	}
	return err
}

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }

// writeJSONFile writes v as indented JSON to path atomically (temporary
// file in the same directory, then rename).
func writeJSONFile(path string, v any) error {
	data, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	return atomicfile.WriteFile(path, data)
}
