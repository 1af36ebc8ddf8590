package main

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/imgcap/imgcap/runner"
	"github.com/imgcap/imgcap/torchx"
)

func init() {
	var runDir, model, format, out, dtype string
	cmd := &cobra.Command{
		Use:   "export (--run RUN_DIR | --model DIR) --format hf --out DIR [--dtype fp32|fp16|bf16]",
		Short: "Export a model as a Hugging Face model folder (ViT+GPT-2, BLIP) or safetensors + config (VGG16+LSTM)",
		Long: `Export writes model.safetensors under Hugging Face's parameter names and layouts (GPT-2's
Conv1D [in, out] weights, the tied lm_head left out as transformers does), with config.json,
generation_config.json, preprocessor_config.json and the tokenizer files, so that
transformers' from_pretrained(OUT) loads it. A VGG16+LSTM run exports its weights (torchvision
names for the encoder), model.json and the word vocabulary.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if (runDir == "") == (model == "") {
				return usageError{errors.New("give exactly one of --run and --model")}
			}
			if format != "hf" {
				return usageError{fmt.Errorf("--format %q: only hf is supported", format)}
			}
			if out == "" {
				return usageError{errNeedFlag("--out")}
			}
			dt, err := runner.ParseExportDType(dtype)
			if err != nil {
				return usageError{err}
			}
			dev, err := torchx.ParseDevice(globals.device)
			if err != nil {
				return usageError{err}
			}
			ref := model
			if ref == "" {
				ref = runDir
			}
			files, err := runner.Export(ref, runner.ExportOptions{Out: out, DType: dt}, runner.Env{Device: dev, Logger: slog.Default()})
			if err != nil {
				return err
			}
			for _, f := range files {
				fmt.Fprintf(cmd.OutOrStdout(), "%s/%s\n", out, f)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&runDir, "run", "", "run directory written by imgcap train")
	cmd.Flags().StringVar(&model, "model", "", "Hugging Face model folder")
	cmd.Flags().StringVar(&format, "format", "hf", "output format (hf)")
	cmd.Flags().StringVar(&out, "out", "", "output folder")
	cmd.Flags().StringVar(&dtype, "dtype", "fp32", "stored floating-point type: fp32, fp16 or bf16")
	rootCmd.AddCommand(cmd)
}
