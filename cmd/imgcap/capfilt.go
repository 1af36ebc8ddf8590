package main

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/imgcap/imgcap/config"
	"github.com/imgcap/imgcap/runner"
)

func init() {
	var int8 bool
	var o runner.CapFiltOptions
	var splitFiles []string
	cmd := &cobra.Command{
		Use:   "capfilt --captioner MODEL --filter MODEL --data ANNOTATIONS --images DIR [--threshold 0.5] [--samples 1] [--out DIR]",
		Short: "BLIP's CapFilt: add synthetic captions and drop the captions the ITM filter rejects",
		Long: `CapFilt bootstraps a captioning dataset as BLIP does (Li et al. 2022, section 3.3): the captioner
(any captioning model; BLIP uses its own, e.g. Salesforce/blip-image-captioning-large with
--prompt "a picture of ") writes --samples synthetic captions per image by nucleus sampling
(--top-p 0.9, repetition penalty 1.1 for BLIP captioners), and the filter (a BLIP retrieval
model, e.g. Salesforce/blip-itm-large-coco) keeps the web and synthetic captions whose
image-text matching probability is at least --threshold. It writes OUT/annotations.json
(COCO captions format: every image, with the captions kept) and OUT/report.json (every caption
with its source, probability and verdict).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case o.Captioner == "":
				return usageError{errNeedFlag("--captioner")}
			case o.Filter == "":
				return usageError{errNeedFlag("--filter")}
			case o.Data.Annotations == "":
				return usageError{errNeedFlag("--data")}
			case o.Threshold < 0 || o.Threshold > 1:
				return usageError{fmt.Errorf("--threshold %g: want a probability in [0, 1]", o.Threshold)}
			case o.Samples < 0:
				return usageError{fmt.Errorf("--samples %d: want 0 or more", o.Samples)}
			}
			dc := config.Default().Data
			dc.Annotations, dc.Images, dc.Format = o.Data.Annotations, o.Data.Images, o.Data.Format
			dc.SplitFiles = map[string]string{}
			for _, sf := range splitFiles {
				name, file, ok := strings.Cut(sf, "=")
				if !ok {
					return usageError{fmt.Errorf("--split-file %q: want NAME=FILE", sf)}
				}
				dc.SplitFiles[name] = file
			}
			if o.Split == "" && len(dc.SplitFiles) == 0 {
				dc.SplitFractions = []float64{1, 0, 0} // every image, whatever the format's splits
			}
			o.Data = dc
			dev, err := inferenceDevice(int8)
			if err != nil {
				return usageError{err}
			}
			if globals.seed != 0 {
				o.Seed = globals.seed
			}
			_, err = runner.CapFilt(cmd.Context(), o, runner.Env{Device: dev, Int8: int8, Progress: cmd.ErrOrStderr(), Out: cmd.OutOrStdout(), Logger: slog.Default()})
			return err
		},
	}
	addInt8Flag(cmd, &int8)
	f := cmd.Flags()
	f.StringVar(&o.Captioner, "captioner", "", "captioning model folder, hub id or run")
	f.StringVar(&o.Filter, "filter", "", "BLIP retrieval model folder, hub id or blip_retrieval run (the ITM filter)")
	f.StringVar(&o.Data.Annotations, "data", "", "annotation file of the images to bootstrap (any format imgcap reads)")
	f.StringVar(&o.Data.Images, "images", "", "image folder of --data")
	f.StringVar(&o.Data.Format, "format", "auto", "format of --data: auto, flickr-token, flickr8k-csv, flickr30k-csv, karpathy, coco")
	f.StringArrayVar(&splitFiles, "split-file", nil, "NAME=FILE: a split's image list (repeatable)")
	f.StringVar(&o.Split, "split", "", "only the images of this split (default: every image)")
	f.Float64Var(&o.Threshold, "threshold", runner.CapFiltThreshold, "ITM match probability a caption needs to be kept (BLIP: 0.5)")
	f.IntVar(&o.Samples, "samples", 1, "synthetic captions per image")
	f.StringVar(&o.Prompt, "prompt", "", "text the captioner continues (BLIP's captioner: \"a picture of \"); excluded from the captions")
	f.Float64Var(&o.TopP, "top-p", runner.CapFiltTopP, "nucleus sampling probability mass")
	f.IntVar(&o.MaxNewTokens, "max-new-tokens", 0, "longest synthetic caption in tokens (0 = the captioner's default)")
	f.IntVar(&o.MinNewTokens, "min-new-tokens", 0, "shortest synthetic caption in tokens")
	f.Int64Var(&o.Seed, "sample-seed", 1, "seed of the sampler")
	f.IntVar(&o.BatchSize, "batch-size", 8, "images per batch")
	f.IntVar(&o.MaxImages, "max-images", 0, "stop after this many images (0 = all)")
	f.StringVar(&o.OutDir, "out", "runs/capfilt", "output folder for annotations.json and report.json")
	rootCmd.AddCommand(cmd)
}
