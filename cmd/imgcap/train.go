package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/sugarme/gotch"

	"github.com/imgcap/imgcap/config"
	"github.com/imgcap/imgcap/dist"
	"github.com/imgcap/imgcap/runner"
	"github.com/imgcap/imgcap/torchx"
	"github.com/imgcap/imgcap/train"
)

// interruptedError makes the process exit with status 130 after a clean SIGINT/SIGTERM stop.
type interruptedError struct{ err error }

func (e interruptedError) Error() string { return e.err.Error() }
func (e interruptedError) Unwrap() error { return e.err }

// distFlags are train's data-parallel flags.
type distFlags struct {
	nproc, nnodes, nodeRank int
	masterAddr              string
	masterPort              int
	backend                 string
	timeout                 time.Duration
}

func init() {
	var resume bool
	var df distFlags
	cmd := &cobra.Command{
		Use:   "train --config FILE [--resume] [--set key=value ...] [--nproc N [--nnodes M --node-rank K --master-addr HOST --master-port P]]",
		Short: "Train a model from a YAML config, in one process or data-parallel over several",
		Long: `Train runs the shared trainer on the model and data the config names. The run directory
(train.out_dir) receives config.yaml, checkpoints (written atomically), metrics.jsonl and
loss/metric plots. SIGINT or SIGTERM finishes the step in progress, saves a checkpoint and
exits with status 130; --resume continues exactly where the run stopped.

Data-parallel training: --nproc N starts N worker processes on this machine (one per GPU with
--device cuda, else N CPU processes sharing the cores), like torchrun. Each reads its own part
of every batch (train.batch_size is per process), gradients are averaged over the processes
with libtorch's c10d (NCCL on CUDA, Gloo on CPU), and rank 0 alone logs, evaluates and writes
checkpoints. On several machines run the same command on each with --nnodes, --node-rank and
the address and a free port of node 0 (--master-addr, --master-port). Processes started by
another launcher (torchrun, Slurm, Kubernetes) are recognised by the torchrun variables RANK,
WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT. When a worker fails,
the others stop at once with an error; a worker that hangs makes the others fail after
--dist-timeout, which must exceed the longest evaluation (only rank 0 evaluates).`,
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
			if os.Getenv(dist.LaunchedEnv) == "" && (df.nproc > 1 || df.nnodes > 1) {
				if os.Getenv("WORLD_SIZE") != "" {
					return usageError{errors.New("--nproc/--nnodes start workers, but this process already is one (WORLD_SIZE is set by another launcher): drop them")}
				}
				return launchWorkers(cmd, df)
			}
			if df.nproc < 1 || df.nnodes < 1 {
				return usageError{fmt.Errorf("--nproc %d --nnodes %d: want at least 1 of each", df.nproc, df.nnodes)}
			}
			yml, err := config.YAML(cfg)
			if err != nil {
				return err
			}
			env := runner.Env{Progress: cmd.ErrOrStderr(), Out: cmd.OutOrStdout(), Logger: slog.Default()}
			dc, isWorker, err := dist.FromEnv()
			if err != nil {
				return usageError{fmt.Errorf("torchrun environment: %w", err)}
			}
			if env.Device, err = workerDevice(globals.device, dc, isWorker); err != nil {
				return usageError{err}
			}
			rank := 0
			if isWorker && dc.WorldSize > 1 {
				rank = dc.Rank
				if globals.threads == 0 {
					// The processes of a machine share its cores.
					if err := torchx.SetThreads(max(1, runtime.NumCPU()/max(dc.LocalWorldSize, 1))); err != nil {
						return err
					}
				}
				dc.Device, dc.Backend, dc.Timeout = env.Device, df.backend, df.timeout
				g, err := dist.Init(dc)
				if err != nil {
					return fmt.Errorf("rank %d: %w", rank, err)
				}
				defer g.Close()
				env.Dist = g
				env.Logger = slog.Default().With("rank", rank)
				if rank != 0 {
					// Rank 0 reports; the others only warn.
					env.Progress, env.Out = nil, io.Discard
					env.Logger = slog.New(levelAtLeast{slog.Default().Handler(), slog.LevelWarn}).With("rank", rank)
				}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			res, err := runner.Train(ctx, cfg, yml, resume, env)
			if errors.Is(err, train.ErrInterrupted) {
				switch {
				case env.Dist == nil:
					fmt.Fprintf(cmd.ErrOrStderr(), "stopped at step %d; checkpoint saved. Resume with: imgcap train --config %s --resume\n", res.Step, globals.config)
				case rank == 0:
					fmt.Fprintf(cmd.ErrOrStderr(), "stopped at step %d; checkpoint saved. Resume with the same command (the same number of processes) and --resume\n", res.Step)
				}
				return interruptedError{err}
			}
			if err != nil {
				if env.Dist != nil {
					return fmt.Errorf("rank %d: %w", rank, err)
				}
				return err
			}
			if rank != 0 {
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "trained %d steps (%.2f epochs, %s); loss %.4f; run: %s\n", res.Step, res.Epoch, res.Stopped, res.Loss, res.RunDir)
			if res.BestCheckpoint != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "best %s = %.4f at step %d: %s\n", res.BestMetric, res.BestValue, res.BestStep, res.BestCheckpoint)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&resume, "resume", false, "continue from the newest checkpoint of the run directory")
	f.IntVar(&df.nproc, "nproc", 1, "data-parallel worker processes on this machine (like torchrun --nproc-per-node)")
	f.IntVar(&df.nnodes, "nnodes", 1, "machines taking part (each runs the same command with its --node-rank)")
	f.IntVar(&df.nodeRank, "node-rank", 0, "this machine's index among the --nnodes machines")
	f.StringVar(&df.masterAddr, "master-addr", "", "address of the machine of node rank 0 (default 127.0.0.1; required with --nnodes > 1)")
	f.IntVar(&df.masterPort, "master-port", 0, fmt.Sprintf("TCP port of rank 0's rendezvous store (default: a free port on one machine, %d on several)", dist.DefaultPort))
	f.StringVar(&df.backend, "dist-backend", "", "collective backend: gloo (CPU) or nccl (CUDA); default by --device")
	f.DurationVar(&df.timeout, "dist-timeout", dist.DefaultTimeout, "bound of the rendezvous and of every collective; must exceed the longest evaluation")
	rootCmd.AddCommand(cmd)
}

// launchWorkers re-runs this command line as df.nproc worker processes and waits for them.
func launchWorkers(cmd *cobra.Command, df distFlags) error {
	if df.nproc < 1 || df.nnodes < 1 {
		return usageError{fmt.Errorf("--nproc %d --nnodes %d: want at least 1 of each", df.nproc, df.nnodes)}
	}
	if df.nnodes > 1 && df.masterAddr == "" {
		return usageError{errors.New("--nnodes > 1 needs --master-addr (the address of the machine with --node-rank 0)")}
	}
	if df.nodeRank < 0 || df.nodeRank >= df.nnodes {
		return usageError{fmt.Errorf("--node-rank %d: want 0 to %d", df.nodeRank, df.nnodes-1)}
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := dist.Launch(ctx, dist.LaunchOptions{
		NProc: df.nproc, NNodes: df.nnodes, NodeRank: df.nodeRank, MasterAddr: df.masterAddr, MasterPort: df.masterPort,
		Args: os.Args[1:], Stdout: cmd.OutOrStdout(), Stderr: cmd.ErrOrStderr(),
		Logger: slog.Default().With("launcher", true),
	})
	if errors.Is(err, dist.ErrInterrupted) {
		return interruptedError{err}
	}
	return err
}

// workerDevice is the device of this process: --device, where "auto" and "cuda" mean the GPU of
// a worker's local rank when libtorch sees CUDA devices.
func workerDevice(flag string, dc dist.Config, isWorker bool) (gotch.Device, error) {
	dev, err := torchx.ParseDevice(flag)
	if err != nil || !isWorker || dc.WorldSize <= 1 || !dev.IsCuda() {
		return dev, err
	}
	if f := strings.ToLower(strings.TrimSpace(flag)); f == "" || f == "auto" || f == "cuda" {
		n := torchx.CUDADeviceCount()
		if dc.LocalRank >= n {
			return dev, fmt.Errorf("local rank %d has no GPU: libtorch sees %d; start at most %d processes per machine", dc.LocalRank, n, n)
		}
		return gotch.CudaBuilder(uint(dc.LocalRank)), nil
	}
	return dev, nil
}

// levelAtLeast is a slog handler that drops records below a level.
type levelAtLeast struct {
	slog.Handler
	min slog.Level
}

func (h levelAtLeast) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h levelAtLeast) WithAttrs(a []slog.Attr) slog.Handler {
	return levelAtLeast{h.Handler.WithAttrs(a), h.min}
}

func (h levelAtLeast) WithGroup(name string) slog.Handler {
	return levelAtLeast{h.Handler.WithGroup(name), h.min}
}
