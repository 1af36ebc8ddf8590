package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/imgcap/imgcap/models"
	"github.com/imgcap/imgcap/runner"
)

// errNeedFlag reports a missing required flag.
func errNeedFlag(name string) error { return fmt.Errorf("%s is required", name) }

func init() {
	var int8 bool
	var runDir, model, promptIDs, pixelValues string
	var asJSON bool
	var o models.GenerateOptions
	cmd := &cobra.Command{
		Use:   "caption (--run RUN_DIR | --model DIR) [--num-beams N] [--max-new-tokens N] [--prompt TEXT] IMAGE...",
		Short: "Caption image files with a trained run or a Hugging Face model folder",
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if (runDir == "") == (model == "") {
				return usageError{errors.New("give exactly one of --run and --model")}
			}
			if len(args) == 0 && pixelValues == "" {
				return usageError{errors.New("no images given")}
			}
			if pixelValues != "" && len(args) > 0 {
				return usageError{errors.New("--pixel-values replaces the image files: give one or the other")}
			}
			dev, err := inferenceDevice(int8)
			if err != nil {
				return usageError{err}
			}
			if promptIDs != "" {
				if o.Prompt != "" {
					return usageError{errors.New("give --prompt or --prompt-ids, not both")}
				}
				if o.PromptIDs, err = parseIDs(promptIDs); err != nil {
					return usageError{fmt.Errorf("--prompt-ids: %w", err)}
				}
			}
			if _, err := os.Stat(filepath.Join(runDir, runner.HFConfigFile)); runDir != "" && err == nil {
				model, runDir = runDir, "" // a transformer run is a model folder
			}
			if model != "" || pixelValues != "" {
				dir := model
				if dir == "" {
					dir = runDir
				}
				caps, err := runner.CaptionModel(cmd.Context(), dir, args, runner.CaptionOptions{Generate: o, PixelValues: pixelValues}, runner.Env{Device: dev, Int8: int8, Logger: slog.Default()})
				if err != nil {
					return err
				}
				return printCaptions(cmd.OutOrStdout(), args, caps, asJSON)
			}
			caps, err := runner.CaptionFiles(cmd.Context(), runDir, args, o, runner.Env{Device: dev, Int8: int8, Logger: slog.Default()})
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
	addInt8Flag(cmd, &int8)
	cmd.Flags().StringVar(&runDir, "run", "", "run directory written by imgcap train")
	cmd.Flags().StringVar(&model, "model", "", "Hugging Face model folder (VisionEncoderDecoder ViT+GPT-2, BLIP) or a transformer run directory")
	cmd.Flags().StringVar(&o.Prompt, "prompt", "", "text every caption continues (tokenized with the model's tokenizer)")
	cmd.Flags().StringVar(&promptIDs, "prompt-ids", "", "prompt as comma-separated token ids, exactly as the model's Hugging Face generate() takes them")
	cmd.Flags().StringVar(&pixelValues, "pixel-values", "", "caption preprocessed pixels from a .npy file [B,C,H,W] instead of image files")
	cmd.Flags().IntVar(&o.MinNewTokens, "min-new-tokens", 0, "no end token before this many new tokens")
	cmd.Flags().BoolVar(&o.DoSample, "sample", false, "sample instead of greedy/beam search")
	cmd.Flags().Float64Var(&o.Temperature, "temperature", 0, "sampling temperature (0 = the model's default)")
	cmd.Flags().IntVar(&o.TopK, "top-k", 0, "sample from the k most likely tokens (0 = the model's default)")
	cmd.Flags().Float64Var(&o.TopP, "top-p", 0, "nucleus sampling probability mass (0 = the model's default)")
	cmd.Flags().Int64Var(&o.Seed, "sample-seed", 0, "seed of the sampler")
	cmd.Flags().IntVar(&o.NumBeams, "num-beams", 0, "beam width (1 = greedy; 0 = the model's default)")
	cmd.Flags().IntVar(&o.MaxNewTokens, "max-new-tokens", 0, "longest caption in tokens (0 = the model's maximum)")
	cmd.Flags().Float64Var(&o.LengthPenalty, "length-penalty", 0, "beam score = log-probability / length^penalty (0 = the model's default)")
	cmd.Flags().IntVar(&o.NoRepeatNgram, "no-repeat-ngram", 0, "forbid repeating n-grams of this size")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	rootCmd.AddCommand(cmd)
}

// parseIDs parses comma-separated token ids.
func parseIDs(s string) ([]int64, error) {
	var out []int64
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not a token id", f)
		}
		out = append(out, v)
	}
	return out, nil
}

// printCaptions prints one caption per image (or pixel row): tab-separated text, or JSON with
// ids, text and score. Captions without text (no tokenizer) print their ids.
func printCaptions(w io.Writer, names []string, caps []models.Caption, asJSON bool) error {
	type row struct {
		Image string `json:"image"`
		models.Caption
	}
	rows := make([]row, len(caps))
	noText := false
	for i, c := range caps {
		name := fmt.Sprintf("pixel_values[%d]", i)
		if i < len(names) {
			name = names[i]
		}
		rows[i] = row{name, c}
		noText = noText || c.Text == "" && len(c.IDs) > 0
	}
	if noText {
		fmt.Fprintln(os.Stderr, "imgcap: the model folder has no tokenizer files: captions are token ids only (text needs a tokenizer)")
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	for _, r := range rows {
		if r.Text == "" && len(r.IDs) > 0 {
			fmt.Fprintf(w, "%s\tids %v\n", r.Image, r.IDs)
			continue
		}
		fmt.Fprintf(w, "%s\t%s\n", r.Image, r.Text)
	}
	return nil
}
