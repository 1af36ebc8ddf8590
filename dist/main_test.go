package dist_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/imgcap/imgcap/torchx"
)

// The multi-process tests start copies of the test binary as the workers of a group: roleEnv
// names the function a copy runs instead of the tests (see TestMain and roles).
const roleEnv = "IMGCAP_DIST_TEST_ROLE"

// roles are the worker functions, by name. Each runs in a process of its own, with the
// torchrun variables set; a returned error exits with status 1 after printing it.
var roles = map[string]func() error{}

func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		fn, ok := roles[role]
		if !ok {
			fmt.Fprintf(os.Stderr, "no test role %q\n", role)
			os.Exit(2)
		}
		if err := torchx.SetThreads(1); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if err := torchx.Locked(fn); err != nil {
			fmt.Fprintf(os.Stderr, "rank %s: %v\n", os.Getenv("RANK"), err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// freePort returns a TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// worker is a started worker process.
type worker struct {
	rank int
	cmd  *exec.Cmd
	out  bytes.Buffer
	done chan error
}

// spawn starts world workers running role, with the torchrun variables and env set.
func spawn(t testing.TB, role string, world int, env ...string) []*worker {
	t.Helper()
	each := make([][]string, world)
	for r := range each {
		each[r] = env
	}
	return spawnEach(t, role, each)
}

// spawnEach starts one worker running role per element of env, with the torchrun variables
// and its env set.
func spawnEach(t testing.TB, role string, env [][]string) []*worker {
	t.Helper()
	port := freePort(t)
	world := len(env)
	ws := make([]*worker, world)
	for r := range ws {
		w := &worker{rank: r, done: make(chan error, 1)}
		w.cmd = exec.Command(os.Args[0], "-test.run=^$")
		w.cmd.Env = append(os.Environ(), roleEnv+"="+role, "RANK="+strconv.Itoa(r), "WORLD_SIZE="+strconv.Itoa(world),
			"LOCAL_RANK="+strconv.Itoa(r), "LOCAL_WORLD_SIZE="+strconv.Itoa(world),
			"MASTER_ADDR=127.0.0.1", "MASTER_PORT="+strconv.Itoa(port),
			// One thread per worker, BLAS included (see dist.LaunchOptions.Env).
			"OMP_NUM_THREADS=1", "OPENBLAS_NUM_THREADS=1")
		w.cmd.Env = append(w.cmd.Env, env[r]...)
		w.cmd.Stdout, w.cmd.Stderr = &w.out, &w.out
		if err := w.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { w.done <- w.cmd.Wait() }()
		ws[r] = w
	}
	t.Cleanup(func() {
		for _, w := range ws {
			_ = w.cmd.Process.Kill()
		}
	})
	return ws
}

// wait waits for a worker, failing the test if it does not end within limit (a hang).
func (w *worker) wait(t testing.TB, limit time.Duration) error {
	t.Helper()
	select {
	case err := <-w.done:
		return err
	case <-time.After(limit):
		_ = w.cmd.Process.Kill()
		t.Fatalf("rank %d still running after %v (a hang); output:\n%s", w.rank, limit, w.out.String())
		return nil
	}
}

// waitAll waits for every worker and fails the test for each that failed.
func waitAll(t testing.TB, ws []*worker, limit time.Duration) {
	t.Helper()
	for _, w := range ws {
		if err := w.wait(t, limit); err != nil {
			t.Errorf("rank %d: %v; output:\n%s", w.rank, err, w.out.String())
		}
	}
}

// envDuration reads a duration from the environment (def when unset).
func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil {
		return d
	}
	return def
}
