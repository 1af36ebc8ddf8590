package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/sugarme/gotch"

	"github.com/imgcap/imgcap/hub"
	"github.com/imgcap/imgcap/runner"
	"github.com/imgcap/imgcap/torchx"
)

// globals holds the values of the flags every subcommand accepts.
var globals struct {
	device    string
	threads   int
	seed      int64
	logLevel  string
	logFormat string
	config    string
	sets      []string
}

// rootCmd is the imgcap command; each subcommand file registers itself in an init function.
var rootCmd = &cobra.Command{
	Use:           "imgcap",
	Short:         "Image captioning on libtorch: train, evaluate, caption, serve",
	SilenceUsage:  true,
	SilenceErrors: true,
	PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
		if err := setupLogging(cmd.ErrOrStderr()); err != nil {
			return err
		}
		if globals.threads < 0 {
			return usageError{fmt.Errorf("--threads %d: want 0 (all cores) or more", globals.threads)}
		}
		if err := torchx.SetThreads(globals.threads); err != nil {
			return err
		}
		if globals.seed != 0 {
			torchx.Seed(globals.seed)
		}
		return nil
	},
}

func init() {
	pf := rootCmd.PersistentFlags()
	pf.StringVar(&globals.device, "device", "auto", "compute device: auto, cpu, cuda or cuda:N")
	pf.IntVar(&globals.threads, "threads", 0, "libtorch intra-op threads (0 = all cores)")
	pf.Int64Var(&globals.seed, "seed", 0, "random seed for libtorch and data order (0 = keep the config's)")
	pf.StringVar(&globals.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	pf.StringVar(&globals.logFormat, "log-format", "text", "log format: text or json")
	pf.StringVar(&globals.config, "config", "", "YAML config file")
	pf.StringArrayVar(&globals.sets, "set", nil, "override a config value: --set train.lr=1e-4 (repeatable)")

	// Every --model (and model.pretrained) accepts a Hugging Face hub id: it is downloaded into
	// the shared Hugging Face cache when missing (HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE honoured).
	runner.ResolveModel = func(ref string) (string, error) {
		return hub.ResolveOrDownload(context.Background(), ref, hub.Options{Progress: os.Stderr})
	}
}

// usageError marks errors caused by wrong command-line use (exit status 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// exitCode maps an error to the process exit status: 2 for usage errors, 1 otherwise.
func exitCode(err error) int {
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	var ie interruptedError
	if errors.As(err, &ie) {
		return 130
	}
	return 1
}

func setupLogging(w io.Writer) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(globals.logLevel)); err != nil {
		return usageError{fmt.Errorf("--log-level %q: want debug, info, warn or error", globals.logLevel)}
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch strings.ToLower(globals.logFormat) {
	case "text":
		h = slog.NewTextHandler(w, opts)
	case "json":
		h = slog.NewJSONHandler(w, opts)
	default:
		return usageError{fmt.Errorf("--log-format %q: want text or json", globals.logFormat)}
	}
	slog.SetDefault(slog.New(h))
	return nil
}

// addInt8Flag registers --int8 on an inference command.
func addInt8Flag(cmd *cobra.Command, p *bool) {
	cmd.Flags().BoolVar(p, "int8", false, "int8 linear layers for CPU inference (dynamic quantization as PyTorch's quantize_dynamic): about 2x faster on CPU, outputs differ slightly from float32")
}

// inferenceDevice is --device for an inference command; with --int8, "auto" means the CPU.
func inferenceDevice(int8 bool) (gotch.Device, error) {
	if int8 && globals.device == "auto" {
		return gotch.CPU, nil
	}
	return torchx.ParseDevice(globals.device)
}
