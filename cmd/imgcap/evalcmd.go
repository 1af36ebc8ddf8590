package main

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/imgcap/imgcap/config"
	"github.com/imgcap/imgcap/runner"
)

func init() {
	var int8 bool
	var o runner.EvalOptions
	var runDir, model string
	var dc config.DataConfig
	var splitFiles []string
	var beams, maxNew int
	cmd := &cobra.Command{
		Use:   "eval (--run RUN_DIR | --model DIR --data ANNOTATIONS [--images DIR]) [--split test] [--max-images N] [--out DIR]",
		Short: "Caption a dataset split with a trained run or a Hugging Face model folder and score it (BLEU, METEOR (no paraphrase), ROUGE-L, CIDEr-D)",
		Long: `With --run, the run's own data and eval settings are used. With --model (a Hugging Face
model folder or a transformer run), the dataset is --data (an annotation file in any format
imgcap reads) with --images, or the data section of --config; splits come from --split-file
name=FILE, the format's own splits, or the config.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if (runDir == "") == (model == "") {
				return usageError{errors.New("give exactly one of --run and --model")}
			}
			dev, err := inferenceDevice(int8)
			if err != nil {
				return usageError{err}
			}
			env := runner.Env{Device: dev, Int8: int8, Out: cmd.OutOrStdout(), Logger: slog.Default()}
			if model != "" {
				cfg := config.Default()
				if globals.config != "" {
					if cfg, err = loadConfig(); err != nil {
						return err
					}
				}
				if dc.Annotations != "" {
					cfg.Data.Annotations, cfg.Data.Images, cfg.Data.Format = dc.Annotations, dc.Images, dc.Format
					cfg.Data.SplitFiles = map[string]string{}
				}
				for _, sf := range splitFiles {
					name, file, ok := strings.Cut(sf, "=")
					if !ok {
						return usageError{fmt.Errorf("--split-file %q: want NAME=FILE", sf)}
					}
					cfg.Data.SplitFiles[name] = file
				}
				if cfg.Data.Annotations == "" {
					return usageError{errors.New("--model needs a dataset: --data ANNOTATIONS (or --config with a data section)")}
				}
				if beams > 0 {
					cfg.Eval.NumBeams = beams
				}
				if maxNew > 0 {
					cfg.Eval.MaxNewTokens = maxNew
				}
				_, err = runner.EvaluateModel(cmd.Context(), model, cfg.Data, cfg.Eval, o, env)
				return err
			}
			_, err = runner.Evaluate(cmd.Context(), runDir, o, env)
			return err
		},
	}
	addInt8Flag(cmd, &int8)
	cmd.Flags().StringVar(&runDir, "run", "", "run directory written by imgcap train")
	cmd.Flags().StringVar(&model, "model", "", "Hugging Face model folder or transformer run directory")
	cmd.Flags().StringVar(&dc.Annotations, "data", "", "annotation file of the dataset to caption (with --model)")
	cmd.Flags().StringVar(&dc.Images, "images", "", "image folder of --data")
	cmd.Flags().StringVar(&dc.Format, "format", "auto", "format of --data: auto, flickr-token, flickr8k-csv, flickr30k-csv, karpathy, coco")
	cmd.Flags().StringArrayVar(&splitFiles, "split-file", nil, "NAME=FILE: a split's image list (repeatable)")
	cmd.Flags().IntVar(&beams, "num-beams", 0, "beam width (0 = the config's eval.num_beams)")
	cmd.Flags().IntVar(&maxNew, "max-new-tokens", 0, "longest caption (0 = the config's eval.max_new_tokens)")
	cmd.Flags().StringVar(&o.Prompt, "prompt", "", "text every caption continues")
	cmd.Flags().StringVar(&o.Split, "split", "", "split to caption (default: the run's eval.split)")
	cmd.Flags().IntVar(&o.MaxImages, "max-images", 0, "caption at most this many images (0 = all)")
	cmd.Flags().StringVar(&o.OutDir, "out", "", "output folder for results.json and scores.json (default RUN/eval-SPLIT)")
	cmd.Flags().IntVar(&o.Bootstrap, "ci", 0, "bootstrap resamples for 95% confidence intervals (0 = none)")
	cmd.Flags().IntVar(&o.Show, "show", 0, "print this many generated captions beside a human one")
	rootCmd.AddCommand(cmd)
}
