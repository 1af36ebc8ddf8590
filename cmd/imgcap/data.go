package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/imgcap/imgcap/data"
)

func init() { rootCmd.AddCommand(newDataCmd()) }

// newDataCmd is `imgcap data`, the parent of the dataset subcommands.
func newDataCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "data",
		Short: "Work with caption datasets (Flickr8k, Flickr30k, COCO, Karpathy splits)",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newDataInspectCmd())
	return cmd
}

// newDataInspectCmd is `imgcap data inspect`: load annotation files and print their counts and problems.
func newDataInspectCmd() *cobra.Command {
	var (
		o         data.InspectOptions
		format    string
		fractions string
	)
	cmd := &cobra.Command{
		Use:   "inspect --annotations FILE[,FILE] [--format F] [--images DIR] [--splits a.txt,b.txt] [--skip-bad] [--json]",
		Short: "Print image, caption and split counts of a dataset and every problem found in it",
		Long: "inspect reads caption annotations (Flickr8k.token.txt, Kaggle captions.txt, Flickr30k results_20130124.token\n" +
			"or results.csv, COCO captions_*.json, Karpathy dataset_*.json), assigns splits (split lists, the format's own\n" +
			"splits, or a seeded random split with --split-fractions and --seed) and prints images, captions and captions per\n" +
			"image per split, and the problems found (malformed lines, empty captions, duplicates, unknown or missing images)\n" +
			"with the file and line or JSON path of the first of each kind. Without --skip-bad any problem is an error.\n" +
			"With --images, every image file is checked.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := data.ParseFormat(format)
			if err != nil {
				return usageError{err}
			}
			if len(o.Annotations) == 0 {
				return usageError{errors.New("--annotations is required")}
			}
			if fractions != "" {
				if len(o.SplitFiles) > 0 {
					return usageError{errors.New("--splits and --split-fractions exclude each other")}
				}
				if o.SplitFractions, err = data.ParseSplitFractions(fractions); err != nil {
					return usageError{fmt.Errorf("--split-fractions: %w", err)}
				}
			}
			o.Format = f
			o.CheckImages = o.ImagesDir != ""
			o.Seed = uint64(globals.seed)
			return data.RunInspect(cmd.OutOrStdout(), o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&format, "format", "auto", "annotation format: auto, flickr-token, flickr8k-csv, flickr30k-csv, karpathy or coco")
	fl.StringSliceVar(&o.Annotations, "annotations", nil, "annotation file(s), comma-separated or repeated")
	fl.StringVar(&o.ImagesDir, "images", "", "images directory; every image file is checked when given")
	fl.StringSliceVar(&o.SplitFiles, "splits", nil, "split lists, \"path\" (split named by the file: trainImages -> train, dev -> val) or \"name=path\"")
	fl.StringVar(&fractions, "split-fractions", "", "seeded random split by image, e.g. train=0.8,val=0.1,test=0.1 (seed: --seed)")
	fl.StringVar(&o.Restval, "restval", "train", "split for Karpathy restval images (train merges them as in the Karpathy split)")
	fl.BoolVar(&o.SkipBad, "skip-bad", false, "leave out bad lines, captions and images and report them instead of failing")
	fl.BoolVar(&o.JSON, "json", false, "print the summary as JSON")
	return cmd
}
