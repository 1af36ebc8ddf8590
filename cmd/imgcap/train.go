package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/imgcap/imgcap/config"
	"github.com/imgcap/imgcap/runner"
	"github.com/imgcap/imgcap/torchx"
	"github.com/imgcap/imgcap/train"
)

// interruptedError makes the process exit with status 130 after a clean SIGINT/SIGTERM stop.
type interruptedError struct{ err error }

func (e interruptedError) Error() string { return e.err.Error() }
func (e interruptedError) Unwrap() error { return e.err }

func init() {
	var resume bool
	cmd := &cobra.Command{
		Use:   "train --config FILE [--resume] [--set key=value ...]",
		Short: "Train a model from a YAML config (VGG16+LSTM today)",
		Long: `Train runs the shared trainer on the model and data the config names. The run directory
(train.out_dir) receives config.yaml, checkpoints (written atomically), metrics.jsonl and
loss/metric plots. SIGINT or SIGTERM finishes the step in progress, saves a checkpoint and
exits with status 130; --resume continues exactly where the run stopped.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if globals.config == "" {
				return usageError{config.ErrNoConfig}
			}
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			if globals.seed != 0 {
				cfg.Train.Seed = globals.seed
			}
			yml, err := config.YAML(cfg)
			if err != nil {
				return err
			}
			dev, err := torchx.ParseDevice(globals.device)
			if err != nil {
				return usageError{err}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			res, err := runner.Train(ctx, cfg, yml, resume, runner.Env{
				Device: dev, Progress: cmd.ErrOrStderr(), Out: cmd.OutOrStdout(), Logger: slog.Default(),
			})
			if errors.Is(err, train.ErrInterrupted) {
				fmt.Fprintf(cmd.ErrOrStderr(), "stopped at step %d; checkpoint saved. Resume with: imgcap train --config %s --resume\n", res.Step, globals.config)
				return interruptedError{err}
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "trained %d steps (%.2f epochs, %s); loss %.4f; run: %s\n", res.Step, res.Epoch, res.Stopped, res.Loss, res.RunDir)
			if res.BestCheckpoint != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "best %s = %.4f at step %d: %s\n", res.BestMetric, res.BestValue, res.BestStep, res.BestCheckpoint)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&resume, "resume", false, "continue from the newest checkpoint of the run directory")
	rootCmd.AddCommand(cmd)
}
