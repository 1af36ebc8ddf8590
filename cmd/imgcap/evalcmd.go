package main

import (
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/imgcap/imgcap/runner"
	"github.com/imgcap/imgcap/torchx"
)

func init() {
	var o runner.EvalOptions
	var runDir string
	cmd := &cobra.Command{
		Use:   "eval --run RUN_DIR [--split test] [--max-images N] [--out DIR]",
		Short: "Caption a dataset split with a trained run and score it (BLEU, METEOR (no paraphrase), ROUGE-L, CIDEr-D)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runDir == "" {
				return usageError{errNeedFlag("--run")}
			}
			dev, err := torchx.ParseDevice(globals.device)
			if err != nil {
				return usageError{err}
			}
			_, err = runner.Evaluate(cmd.Context(), runDir, o, runner.Env{Device: dev, Out: cmd.OutOrStdout(), Logger: slog.Default()})
			return err
		},
	}
	cmd.Flags().StringVar(&runDir, "run", "", "run directory written by imgcap train")
	cmd.Flags().StringVar(&o.Split, "split", "", "split to caption (default: the run's eval.split)")
	cmd.Flags().IntVar(&o.MaxImages, "max-images", 0, "caption at most this many images (0 = all)")
	cmd.Flags().StringVar(&o.OutDir, "out", "", "output folder for results.json and scores.json (default RUN/eval-SPLIT)")
	cmd.Flags().IntVar(&o.Bootstrap, "ci", 0, "bootstrap resamples for 95% confidence intervals (0 = none)")
	cmd.Flags().IntVar(&o.Show, "show", 0, "print this many generated captions beside a human one")
	rootCmd.AddCommand(cmd)
}
