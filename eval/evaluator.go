package eval

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/imgcap/imgcap/internal/atomicfile"
)

// Captioner generates one caption per image file, in order.
type Captioner func(ctx context.Context, imagePaths []string) ([]string, error)

// DefaultBatchSize is the Evaluator's batch size when none is set.
const DefaultBatchSize = 16

// Evaluator captions a set of images with a model, writes the captions as
// a COCO results file, scores them against references, prints a table and
// saves the scores.
type Evaluator struct {
	// Captioner produces the captions (required).
	Captioner Captioner
	// Refs are the reference captions; images are captioned in Refs.ImageIDs
	// order (required).
	Refs *References
	// ImageDir is joined with Refs.FileNames[id] to find an image file.
	ImageDir string
	// Paths, if set, gives an image's file path by id (overrides ImageDir).
	Paths map[string]string
	// BatchSize is the number of images per Captioner call (default 16).
	BatchSize int
	// Options are the scoring options (metrics, bootstrap, ...).
	Options Options
	// ResultsPath, if set, receives the COCO results JSON.
	ResultsPath string
	// ScoresPath, if set, receives the scores JSON (ScoreReport).
	ScoresPath string
	// Out, if set, receives the score table and warnings.
	Out io.Writer
	// Progress, if set, is called after each batch.
	Progress func(done, total int)
}

// Run captions every reference image, then scores the captions. It returns
// the report with the scores. The context is checked between batches.
func (e *Evaluator) Run(ctx context.Context) (*ScoreReport, error) {
	if e.Captioner == nil {
		return nil, errors.New("evaluator: no captioner")
	}
	if e.Refs == nil || len(e.Refs.ImageIDs) == 0 {
		return nil, errors.New("evaluator: no reference images")
	}
	bs := e.BatchSize
	if bs == 0 {
		bs = DefaultBatchSize
	}
	if bs < 0 {
		return nil, fmt.Errorf("evaluator: batch size %d", bs)
	}
	ids := e.Refs.ImageIDs
	paths := make([]string, len(ids))
	for i, id := range ids {
		p, err := e.imagePath(id)
		if err != nil {
			return nil, err
		}
		paths[i] = p
	}
	cands := make([]Candidate, 0, len(ids))
	for start := 0; start < len(ids); start += bs {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("evaluator: stopped after %d of %d images: %w", start, len(ids), err)
		}
		end := min(start+bs, len(ids))
		caps, err := e.Captioner(ctx, paths[start:end])
		if err != nil {
			return nil, fmt.Errorf("evaluator: captioning images %d-%d (%s ...): %w", start, end-1, paths[start], err)
		}
		if len(caps) != end-start {
			return nil, fmt.Errorf("evaluator: captioner returned %d captions for %d images", len(caps), end-start)
		}
		for k, c := range caps {
			cands = append(cands, Candidate{ImageID: ids[start+k], Caption: c})
		}
		if e.Progress != nil {
			e.Progress(end, len(ids))
		}
	}
	if e.ResultsPath != "" {
		if err := writeResultsFile(e.ResultsPath, cands); err != nil {
			return nil, err
		}
	}
	refs := make([][]string, len(ids))
	texts := make([]string, len(ids))
	for i, id := range ids {
		refs[i] = e.Refs.Captions[id]
		texts[i] = cands[i].Caption
	}
	res, scoreErr := Score(ids, refs, texts, e.Options)
	if res == nil {
		return nil, scoreErr
	}
	rep := &ScoreReport{Results: e.ResultsPath, Tokenization: tokenizationName(e.Options.PreTokenized), Result: res}
	if e.ScoresPath != "" {
		if err := writeJSONFile(e.ScoresPath, rep); err != nil {
			return nil, err
		}
	}
	if e.Out != nil {
		if scoreErr != nil {
			fmt.Fprintf(e.Out, "warning: %v\n", scoreErr)
		}
		if err := WriteTable(e.Out, res); err != nil {
			return nil, err
		}
	}
	if scoreErr != nil && e.Options.Metrics != nil {
		return rep, scoreErr
	}
	return rep, nil
}

func (e *Evaluator) imagePath(id string) (string, error) {
	if p, ok := e.Paths[id]; ok {
		return p, nil
	}
	if fn, ok := e.Refs.FileNames[id]; ok {
		return filepath.Join(e.ImageDir, fn), nil
	}
	return "", fmt.Errorf("evaluator: no file for image %s (no Paths entry and no file_name in the references)", id)
}

func writeResultsFile(path string, cands []Candidate) error {
	var buf bytes.Buffer
	if err := WriteCOCOResults(&buf, cands); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return atomicfile.WriteFile(path, buf.Bytes())
}
