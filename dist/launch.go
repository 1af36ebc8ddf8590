package dist

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// LaunchedEnv is set (to "1") in the environment of the workers Launch starts, so that a
// worker running the same command line knows it is a worker and not a launcher.
const LaunchedEnv = "IMGCAP_DIST_LAUNCHED"

// DefaultGrace is how long workers get to exit after SIGTERM before Launch kills them.
const DefaultGrace = 10 * time.Second

// ErrInterrupted is wrapped by Launch's error when the workers stopped because of an
// interruption (Launch's context, or SIGINT/SIGTERM of a worker): each saved what it had to and
// exited with status 130.
var ErrInterrupted = errors.New("the workers were interrupted")

// LaunchOptions describe the workers Launch starts on this machine, the way torchrun does.
type LaunchOptions struct {
	// NProc is the number of workers on this machine (>= 1).
	NProc int
	// NNodes is the number of machines of the group (0: 1); NodeRank this machine's index.
	// Worker i of machine k has rank k·NProc+i.
	NNodes, NodeRank int
	// MasterAddr is the address of the machine of rank 0 ("": 127.0.0.1, for one machine
	// only); MasterPort the port of its TCPStore (0: a free port on one machine, DefaultPort
	// on several).
	MasterAddr string
	MasterPort int
	// Path and Args are the worker's program and arguments (Path "": this executable).
	Path string
	Args []string
	// Env is the workers' base environment (nil: this process's); Launch adds RANK,
	// WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, GROUP_RANK, MASTER_ADDR, MASTER_PORT and
	// LaunchedEnv, and, unless Env sets them, OMP_NUM_THREADS and OPENBLAS_NUM_THREADS to the
	// worker's share of the cores: a BLAS thread pool sized for the whole machine in every worker
	// makes them fight for the cores (measured: two 1-thread workers each ran matrix products at
	// half speed until OpenBLAS was limited too).
	Env []string
	// Stdout and Stderr receive the workers' output (nil: this process's).
	Stdout, Stderr io.Writer
	// Grace is how long workers get after SIGTERM before they are killed (0: DefaultGrace).
	Grace time.Duration
	// Logger receives the launcher's events (nil: none).
	Logger *slog.Logger
}

// WorkerError describes the first worker that failed.
type WorkerError struct {
	Rank, LocalRank, PID int
	// State is how the process ended, e.g. "exit status 1" or "signal: killed".
	State string
	// Code is the exit status (-1 when a signal ended it).
	Code int
}

func (e *WorkerError) Error() string {
	return fmt.Sprintf("worker rank %d (local rank %d, pid %d) failed: %s", e.Rank, e.LocalRank, e.PID, e.State)
}

// interruptedCode is the exit status of an imgcap command stopped by SIGINT/SIGTERM after
// saving its state.
const interruptedCode = 130

type launched struct {
	rank, local int
	cmd         *exec.Cmd
	exited      bool
}

type exit struct {
	w   *launched
	err error
}

// Launch starts o.NProc workers on this machine and waits for them. When a worker fails, the
// others get SIGTERM and, after o.Grace, SIGKILL; Launch then returns a *WorkerError for the
// first failure. When ctx ends (the launcher's SIGINT/SIGTERM), the workers get SIGTERM so
// that they stop after their current step, and Launch returns an error wrapping ErrInterrupted.
func Launch(ctx context.Context, o LaunchOptions) error {
	if o.NProc < 1 {
		return fmt.Errorf("dist: launch %d workers: want at least 1", o.NProc)
	}
	if o.NNodes == 0 {
		o.NNodes = 1
	}
	if o.NNodes < 1 || o.NodeRank < 0 || o.NodeRank >= o.NNodes {
		return fmt.Errorf("dist: node rank %d of %d nodes", o.NodeRank, o.NNodes)
	}
	if o.MasterAddr == "" {
		if o.NNodes > 1 {
			return errors.New("dist: several nodes need the master address (the machine of node rank 0)")
		}
		o.MasterAddr = "127.0.0.1"
	}
	if o.MasterPort == 0 {
		if o.NNodes > 1 {
			o.MasterPort = DefaultPort
		} else {
			p, err := freeTCPPort()
			if err != nil {
				return err
			}
			o.MasterPort = p
		}
	}
	if o.Path == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("dist: find this executable: %w", err)
		}
		o.Path = exe
	}
	if o.Env == nil {
		o.Env = os.Environ()
	}
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	if o.Grace <= 0 {
		o.Grace = DefaultGrace
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	world := o.NProc * o.NNodes
	first := o.NodeRank * o.NProc
	share := strconv.Itoa(max(1, runtime.NumCPU()/o.NProc))
	base := append([]string{}, o.Env...)
	for _, v := range []string{"OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"} {
		if !hasEnv(base, v) {
			base = append(base, v+"="+share)
		}
	}
	log.Info("launching workers", "nproc", o.NProc, "ranks", fmt.Sprintf("%d-%d", first, first+o.NProc-1),
		"world_size", world, "master", net.JoinHostPort(o.MasterAddr, strconv.Itoa(o.MasterPort)))

	// The workers get SIGTERM when the thread that started them ends (workerAttr): keep this
	// goroutine on its thread until they are gone.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	exits := make(chan exit, o.NProc)
	var ws []*launched
	for i := 0; i < o.NProc; i++ {
		w := &launched{rank: first + i, local: i}
		w.cmd = exec.Command(o.Path, o.Args...)
		w.cmd.Env = append(append([]string{}, base...),
			"RANK="+strconv.Itoa(w.rank), "WORLD_SIZE="+strconv.Itoa(world),
			"LOCAL_RANK="+strconv.Itoa(i), "LOCAL_WORLD_SIZE="+strconv.Itoa(o.NProc),
			"GROUP_RANK="+strconv.Itoa(o.NodeRank), "MASTER_ADDR="+o.MasterAddr,
			"MASTER_PORT="+strconv.Itoa(o.MasterPort), LaunchedEnv+"=1")
		w.cmd.Stdout, w.cmd.Stderr = o.Stdout, o.Stderr
		w.cmd.SysProcAttr = workerAttr()
		if err := w.cmd.Start(); err != nil {
			for _, s := range ws {
				_ = s.cmd.Process.Kill()
				<-exits
			}
			return fmt.Errorf("dist: start worker %d: %w", w.rank, err)
		}
		ws = append(ws, w)
		go func() { exits <- exit{w, w.cmd.Wait()} }()
	}

	var failure *WorkerError
	interrupted := false
	running := len(ws)
	var kill <-chan time.Time
	signalAll := func(sig os.Signal) {
		for _, w := range ws {
			if !w.exited {
				_ = w.cmd.Process.Signal(sig)
			}
		}
	}
	done := ctx.Done()
	for running > 0 {
		select {
		case e := <-exits:
			running--
			e.w.exited = true
			if e.err == nil {
				continue
			}
			code := e.w.cmd.ProcessState.ExitCode()
			if code == interruptedCode {
				interrupted = true
				continue
			}
			if failure != nil {
				continue
			}
			failure = &WorkerError{Rank: e.w.rank, LocalRank: e.w.local, PID: e.w.cmd.Process.Pid,
				State: e.w.cmd.ProcessState.String(), Code: code}
			if running > 0 {
				log.Error("a worker failed; stopping the others", "rank", e.w.rank, "pid", failure.PID, "status", failure.State)
				signalAll(syscall.SIGTERM)
				kill = time.After(o.Grace)
			}
		case <-done:
			done = nil
			interrupted = true
			log.Info("interrupted: asking the workers to stop after their current step")
			signalAll(syscall.SIGTERM)
		case <-kill:
			kill = nil
			log.Error("killing the workers still running", "after", o.Grace)
			signalAll(syscall.SIGKILL)
		}
	}
	switch {
	case failure != nil:
		return failure
	case interrupted:
		return fmt.Errorf("dist: %w", ErrInterrupted)
	}
	return nil
}

// hasEnv reports whether env sets name.
func hasEnv(env []string, name string) bool {
	for _, kv := range env {
		if strings.HasPrefix(kv, name+"=") {
			return true
		}
	}
	return false
}

// freeTCPPort asks the kernel for a port that is free now.
func freeTCPPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("dist: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
