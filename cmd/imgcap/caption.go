package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/imgcap/imgcap/models"
	"github.com/imgcap/imgcap/runner"
	"github.com/imgcap/imgcap/torchx"
)

// errNeedFlag reports a missing required flag.
func errNeedFlag(name string) error { return fmt.Errorf("%s is required", name) }

func init() {
	var runDir, model string
	var asJSON bool
	var o models.GenerateOptions
	cmd := &cobra.Command{
		Use:   "caption --run RUN_DIR [--num-beams N] [--max-new-tokens N] IMAGE...",
		Short: "Caption image files with a trained run",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if model != "" {
				return errors.New("--model (Hugging Face folders: ViT+GPT-2, BLIP) is not implemented yet (issues #6, #7); use --run with a VGG16+LSTM run")
			}
			if runDir == "" {
				return usageError{errNeedFlag("--run")}
			}
			dev, err := torchx.ParseDevice(globals.device)
			if err != nil {
				return usageError{err}
			}
			caps, err := runner.CaptionFiles(cmd.Context(), runDir, args, o, runner.Env{Device: dev, Logger: slog.Default()})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				type row struct {
					Image   string `json:"image"`
					Caption string `json:"caption"`
				}
				rows := make([]row, len(args))
				for i := range args {
					rows[i] = row{args[i], caps[i]}
				}
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(rows)
			}
			for i, c := range caps {
				fmt.Fprintf(out, "%s\t%s\n", args[i], c)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&runDir, "run", "", "run directory written by imgcap train")
	cmd.Flags().StringVar(&model, "model", "", "Hugging Face model folder (not implemented yet)")
	cmd.Flags().IntVar(&o.NumBeams, "num-beams", 1, "beam width (1 = greedy)")
	cmd.Flags().IntVar(&o.MaxNewTokens, "max-new-tokens", 0, "longest caption in tokens (0 = the model's maximum)")
	cmd.Flags().Float64Var(&o.LengthPenalty, "length-penalty", 1, "beam score = log-probability / length^penalty")
	cmd.Flags().IntVar(&o.NoRepeatNgram, "no-repeat-ngram", 0, "forbid repeating n-grams of this size")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	rootCmd.AddCommand(cmd)
}
