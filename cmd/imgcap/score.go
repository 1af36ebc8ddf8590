package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/imgcap/imgcap/data"
	"github.com/imgcap/imgcap/eval"
	"github.com/imgcap/imgcap/runner"
)

func init() { rootCmd.AddCommand(newScoreCmd()) }

// newScoreCmd builds `imgcap score`: COCO caption metrics of a results file.
func newScoreCmd() *cobra.Command {
	var (
		opts                                eval.ScoreOptions
		metrics, refsFormat, split, splitFs string
	)
	cmd := &cobra.Command{
		Use:   "score --refs REFS --results RESULTS [--metrics bleu,meteor,rouge,cider] [--ci] [--out scores.json] [--json]",
		Short: "Score captions with BLEU-1..4, METEOR (no paraphrase), ROUGE-L and CIDEr-D",
		Long: `Score compares candidate captions with reference captions using the numbers of the
COCO caption evaluation code (pycocoevalcap): PTB tokenization, BLEU-1..4, ROUGE-L and
CIDEr-D equal the reference tool's. METEOR follows METEOR 1.5 without its paraphrase module and with imgcap's own
function-word and abbreviation lists,
and is reported as "METEOR (no paraphrase)": it is not the official METEOR number. It
needs WordNet (Debian's wordnet-base, or $IMGCAP_WORDNET_DIR); when WordNet is missing
METEOR is skipped with a warning, or fails the command if --metrics names it.

--refs is a COCO captions annotations file ({"images", "annotations"}) or, with --refs-format,
any annotation file the dataset loaders read (one --split of it); --results is a COCO
results file ([{"image_id", "caption"}], one caption per image). Candidates for unknown
images, duplicate candidates and malformed files are errors. Reference images without a
candidate are listed in a warning and left out (an error with --strict).

--ci adds percentile bootstrap 95% confidence intervals over images (--resamples; the
global --seed seeds the resampling).
The table goes to stdout (or, with --json, the full JSON report); --out saves the JSON
report: corpus scores, intervals and per-image scores.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.RefsPath == "" || opts.ResultsPath == "" {
				return usageError{errors.New("--refs and --results are required")}
			}
			if cmd.Flags().Changed("metrics") {
				m, err := eval.ParseMetrics(metrics)
				if err != nil {
					return usageError{fmt.Errorf("--metrics: %w", err)}
				}
				opts.Metrics = m
			}
			if opts.Resamples < 1 {
				return usageError{fmt.Errorf("--resamples %d: want at least 1", opts.Resamples)}
			}
			opts.Seed = uint64(globals.seed) // the global --seed seeds the bootstrap
			opts.Warn = cmd.ErrOrStderr()
			if refsFormat != "" {
				refs, err := datasetRefs(opts.RefsPath, refsFormat, splitFs, split)
				if err != nil {
					return err
				}
				opts.Refs = refs
			}
			return eval.RunScore(opts, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.RefsPath, "refs", "", "COCO captions annotations JSON with the reference captions (or any dataset file with --refs-format)")
	f.StringVar(&refsFormat, "refs-format", "", "read --refs with the dataset loaders: auto, flickr-token, flickr8k-csv, flickr30k-csv, karpathy, coco (image ids as imgcap's records give them)")
	f.StringVar(&split, "split", "", "with --refs-format: score only this split")
	f.StringVar(&splitFs, "splits", "", "with --refs-format: comma-separated split list files (name=path or Flickr_8k.*Images.txt)")
	f.StringVar(&opts.ResultsPath, "results", "", `COCO results JSON [{"image_id","caption"}] with the candidates`)
	f.StringVar(&metrics, "metrics", "bleu,meteor,rouge,cider", "comma-separated metrics: bleu, meteor, rouge, cider")
	f.BoolVar(&opts.CI, "ci", false, "add bootstrap confidence intervals over images")
	f.IntVar(&opts.Resamples, "resamples", eval.DefaultResamples, "bootstrap resamples for --ci")
	f.StringVar(&opts.OutPath, "out", "", "write the JSON report (corpus, intervals, per-image scores) to this file")
	f.BoolVar(&opts.JSON, "json", false, "print the JSON report instead of the table")
	f.BoolVar(&opts.Strict, "strict", false, "fail when a reference image has no candidate")
	f.BoolVar(&opts.PreTokenized, "pretokenized", false, "captions are already tokenized: skip PTB tokenization")
	return cmd
}

// datasetRefs reads references with the dataset loaders, optionally one split of them.
func datasetRefs(path, format, splitFiles, split string) (*eval.References, error) {
	f, err := data.ParseFormat(format)
	if err != nil {
		return nil, usageError{fmt.Errorf("--refs-format: %w", err)}
	}
	opts := data.LoadOptions{Format: f, Annotations: []string{path}}
	if splitFiles != "" {
		opts.SplitFiles = strings.Split(splitFiles, ",")
	}
	ds, err := data.Load(opts)
	if err != nil {
		return nil, err
	}
	recs := ds.Records
	if split != "" {
		if recs = ds.Split(split); len(recs) == 0 {
			return nil, fmt.Errorf("%s: split %q has no images (splits: %v)", path, split, ds.Splits())
		}
	}
	refs, _ := runner.References(recs)
	return refs, nil
}
