package dist_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/imgcap/imgcap/dist"
)

func init() {
	roles["launch-fail"] = func() error {
		if os.Getenv("RANK") == "1" {
			time.Sleep(100 * time.Millisecond)
			os.Exit(3)
		}
		time.Sleep(5 * time.Minute) // until the launcher stops it
		return nil
	}
	roles["launch-stubborn"] = func() error {
		if os.Getenv("RANK") == "1" {
			time.Sleep(100 * time.Millisecond)
			os.Exit(3)
		}
		signal.Ignore(syscall.SIGTERM)
		time.Sleep(5 * time.Minute) // until the launcher kills it
		return nil
	}
	roles["launch-trap"] = func() error {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
		defer stop()
		var b strings.Builder
		for _, v := range []string{"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_ADDR", dist.LaunchedEnv,
			"OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"} {
			fmt.Fprintf(&b, "%s=%s ", v, os.Getenv(v))
		}
		fmt.Printf("%sready\n", b.String())
		<-ctx.Done()
		os.Exit(130) // as imgcap train does after saving
		return nil
	}
}

// syncBuffer is a bytes.Buffer safe for the workers' concurrent writes; it calls onLine with
// the text so far after each write.
type syncBuffer struct {
	mu     sync.Mutex
	b      bytes.Buffer
	onLine func(string)
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.b.Write(p)
	if s.onLine != nil {
		s.onLine(s.b.String())
	}
	return n, err
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// launch runs Launch on copies of the test binary running role.
func launch(ctx context.Context, role string, nproc int, grace time.Duration, out *syncBuffer) error {
	return dist.Launch(ctx, dist.LaunchOptions{
		NProc: nproc, Path: os.Args[0], Args: []string{"-test.run=^$"},
		Env: append(os.Environ(), roleEnv+"="+role), Stdout: out, Stderr: out, Grace: grace,
	})
}

// TestLaunchFailFast: when a worker fails, Launch stops the others (SIGTERM, then SIGKILL for
// one that ignores it) and reports the failed worker.
func TestLaunchFailFast(t *testing.T) {
	for _, role := range []string{"launch-fail", "launch-stubborn"} {
		t.Run(role, func(t *testing.T) {
			var out syncBuffer
			done := make(chan error, 1)
			go func() { done <- launch(context.Background(), role, 3, 500*time.Millisecond, &out) }()
			var err error
			select {
			case err = <-done:
			case <-time.After(time.Minute):
				t.Fatalf("Launch still waiting a minute after a worker failed; output:\n%s", out.String())
			}
			var we *dist.WorkerError
			if !errors.As(err, &we) || we.Rank != 1 || we.Code != 3 {
				t.Fatalf("Launch = %v, want a WorkerError for rank 1 with exit status 3; output:\n%s", err, out.String())
			}
			if !strings.Contains(err.Error(), "worker rank 1") || !strings.Contains(err.Error(), "exit status 3") {
				t.Errorf("unclear error: %v", err)
			}
		})
	}
}

// TestLaunchInterrupt: the workers get the torchrun variables, and cancelling Launch's context
// asks them to stop (SIGTERM); workers that stop with status 130 make Launch report
// ErrInterrupted.
func TestLaunchInterrupt(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &syncBuffer{onLine: func(s string) {
		if strings.Count(s, "ready") == 2 {
			cancel()
		}
	}}
	t.Setenv("OPENBLAS_NUM_THREADS", "3") // set by the user: kept
	os.Unsetenv("OMP_NUM_THREADS")
	err := launch(ctx, "launch-trap", 2, time.Minute, out)
	if !errors.Is(err, dist.ErrInterrupted) {
		t.Fatalf("Launch = %v, want ErrInterrupted; output:\n%s", err, out.String())
	}
	share := fmt.Sprint(max(1, runtime.NumCPU()/2))
	for _, want := range []string{"RANK=0 WORLD_SIZE=2 LOCAL_RANK=0 LOCAL_WORLD_SIZE=2 GROUP_RANK=0 MASTER_ADDR=127.0.0.1 " + dist.LaunchedEnv + "=1",
		"RANK=1 WORLD_SIZE=2 LOCAL_RANK=1", "OMP_NUM_THREADS=" + share + " OPENBLAS_NUM_THREADS=3"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in the workers' output:\n%s", want, out.String())
		}
	}
}

// TestLaunchErrors checks the options Launch refuses.
func TestLaunchErrors(t *testing.T) {
	tests := []struct {
		name string
		o    dist.LaunchOptions
		err  string
	}{
		{"no workers", dist.LaunchOptions{NProc: 0}, "at least 1"},
		{"node rank", dist.LaunchOptions{NProc: 1, NNodes: 2, NodeRank: 2, MasterAddr: "h"}, "node rank 2 of 2"},
		{"no master", dist.LaunchOptions{NProc: 1, NNodes: 2}, "master address"},
		{"no program", dist.LaunchOptions{NProc: 1, Path: "/nonexistent/imgcap"}, "start worker 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := dist.Launch(context.Background(), tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Launch = %v, want an error mentioning %q", err, tc.err)
			}
		})
	}
}
