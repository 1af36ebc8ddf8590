package torchx

import (
	"bufio"
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

func TestLibtorchErrorIsGoError(t *testing.T) {
	err := WithScope(func(s *Scope) error {
		a, err := ts.Ones([]int64{2, 3}, gotch.Float, gotch.CPU)
		if err != nil {
			return err
		}
		b, err := ts.Ones([]int64{4, 5}, gotch.Float, gotch.CPU)
		if err != nil {
			return err
		}
		_, err = a.Matmul(b, false)
		return Err("matmul", err)
	})
	if err == nil {
		t.Fatal("matmul of [2,3] by [4,5] succeeded; want a shape error")
	}
	var te *Error
	if !errors.As(err, &te) {
		t.Fatalf("error %T is not a *torchx.Error: %v", err, err)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "matmul: libtorch: ") || !strings.Contains(msg, "cannot be multiplied") {
		t.Errorf("message %q lacks the op or libtorch's reason", msg)
	}
	if strings.Contains(msg, "goroutine ") || strings.Contains(msg, "\n") {
		t.Errorf("message should be one short line without Go stack dump, got %q", msg)
	}
	// The thread's error slot was consumed: the next check is clean.
	if err := Locked(func() error { return Check("after") }); err != nil {
		t.Errorf("stale libtorch error left behind: %v", err)
	}
}

func TestNoGradNestsAndRestores(t *testing.T) {
	type step struct {
		name string
		want bool
	}
	var got []step
	record := func(name string) error {
		on, err := GradEnabled()
		got = append(got, step{name, on})
		return err
	}
	err := Locked(func() error {
		if err := record("start"); err != nil {
			return err
		}
		err := NoGrad(func() error {
			if err := record("outer no-grad"); err != nil {
				return err
			}
			if err := NoGrad(func() error { return record("inner no-grad") }); err != nil {
				return err
			}
			if err := record("after inner no-grad"); err != nil {
				return err
			}
			if err := WithGrad(func() error { return record("with-grad inside no-grad") }); err != nil {
				return err
			}
			if err := record("after with-grad"); err != nil {
				return err
			}
			return errors.New("fail on purpose")
		})
		if err == nil || err.Error() != "fail on purpose" {
			t.Errorf("NoGrad lost fn's error: %v", err)
		}
		return record("end")
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []step{
		{"start", true}, {"outer no-grad", false}, {"inner no-grad", false}, {"after inner no-grad", false},
		{"with-grad inside no-grad", true}, {"after with-grad", false}, {"end", true},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d steps, want %d: %v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%s: grad enabled = %v, want %v", want[i].name, got[i].want, want[i].want)
		}
	}
}

func TestNoGradRestoresAfterPanic(t *testing.T) {
	err := Locked(func() error {
		perr := Recover("panicking fn", func() error {
			return NoGrad(func() error { panic("boom") })
		})
		if perr == nil || !strings.Contains(perr.Error(), "boom") {
			t.Errorf("panic not turned into an error: %v", perr)
		}
		on, err := GradEnabled()
		if err != nil {
			return err
		}
		if !on {
			t.Error("grad mode left off after a panic inside NoGrad")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func liveTensors() int {
	return len(ts.ExistingTensors)
}

func TestScopeFreesAllButKept(t *testing.T) {
	tests := []struct {
		name     string
		keep     bool
		wantLive int // tensors left alive by the scope
	}{
		{"drop everything", false, 0},
		{"keep result", true, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := liveTensors()
			var result *ts.Tensor
			err := WithScope(func(s *Scope) error {
				x, err := ts.Ones([]int64{8, 8}, gotch.Float, gotch.CPU)
				if err != nil {
					return err
				}
				y, err := x.MulScalar(ts.FloatScalar(3), false)
				if err != nil {
					return err
				}
				z, err := y.Sum(gotch.Float, false)
				if err != nil {
					return err
				}
				if s.Len() < 3 {
					t.Errorf("scope collected %d tensors, want >= 3", s.Len())
				}
				if tc.keep {
					result = s.Keep(z)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if got := liveTensors() - before; got != tc.wantLive {
				t.Errorf("live tensors grew by %d, want %d", got, tc.wantLive)
			}
			if result != nil {
				v, err := result.Float64Value([]int64{})
				if err != nil || v != 192 {
					t.Errorf("kept tensor = %v, %v; want 192", v, err)
				}
				result.MustDrop()
			}
		})
	}
}

func TestNestedScopeHandsKeptToParent(t *testing.T) {
	before := liveTensors()
	err := WithScope(func(outer *Scope) error {
		var inner *ts.Tensor
		err := WithScope(func(s *Scope) error {
			x, err := ts.Zeros([]int64{4}, gotch.Float, gotch.CPU)
			if err != nil {
				return err
			}
			if _, err := ts.Zeros([]int64{4}, gotch.Float, gotch.CPU); err != nil {
				return err
			}
			inner = s.Keep(x)
			return nil
		})
		if err != nil {
			return err
		}
		if got := liveTensors() - before; got != 1 {
			t.Errorf("after inner scope %d tensors live, want 1 (the kept one)", got)
		}
		if _, err := inner.Size(); err != nil {
			t.Errorf("kept tensor unusable: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := liveTensors() - before; got != 0 {
		t.Errorf("outer scope left %d tensors live, want 0", got)
	}
}

func rssBytes(t *testing.T) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status:", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb * 1024
		}
	}
	t.Fatal("VmRSS not found")
	return 0
}

// TestTrainingMemoryBounded runs 2,000 forward+backward+optimizer steps of a small MLP and
// checks that neither live tensors nor resident memory grow.
func TestTrainingMemoryBounded(t *testing.T) {
	steps := 2000
	if testing.Short() {
		steps = 300
	}
	Seed(1)
	vs := nn.NewVarStore(gotch.CPU)
	root := vs.Root()
	l1 := nn.NewLinear(root.Sub("l1"), 256, 256, nn.DefaultLinearConfig())
	l2 := nn.NewLinear(root.Sub("l2"), 256, 16, nn.DefaultLinearConfig())
	opt, err := nn.DefaultAdamConfig().Build(vs, 1e-3)
	if err != nil {
		t.Fatal(err)
	}
	step := func() (float64, error) {
		var loss float64
		err := WithScope(func(s *Scope) error {
			x, err := ts.Randn([]int64{128, 256}, gotch.Float, gotch.CPU)
			if err != nil {
				return err
			}
			target, err := ts.Randn([]int64{128, 16}, gotch.Float, gotch.CPU)
			if err != nil {
				return err
			}
			h := l1.Forward(x)
			h2, err := h.Relu(false)
			if err != nil {
				return err
			}
			y := l2.Forward(h2)
			l, err := y.MseLoss(target, 1, false)
			if err != nil {
				return err
			}
			opt.ZeroGrad()
			if err := l.Backward(); err != nil {
				return Err("backward", err)
			}
			opt.Step()
			loss, err = l.Float64Value([]int64{})
			return err
		})
		return loss, err
	}
	var rssAfterWarmup int64
	var liveAfterWarmup int
	warmup := steps / 10
	for i := 0; i < steps; i++ {
		if _, err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if i == warmup {
			rssAfterWarmup = rssBytes(t)
			liveAfterWarmup = liveTensors()
		}
	}
	rss := rssBytes(t)
	growth := rss - rssAfterWarmup
	t.Logf("%d steps: RSS after warm-up %d MiB, at end %d MiB; live tensors %d -> %d",
		steps, rssAfterWarmup>>20, rss>>20, liveAfterWarmup, liveTensors())
	if live := liveTensors(); live > liveAfterWarmup {
		t.Errorf("live tensors grew from %d to %d: a step leaks tensors", liveAfterWarmup, live)
	}
	// Each step allocates about 0.5 MiB of activations and gradients; a leak of them would grow
	// RSS by hundreds of MiB over the run.
	const maxGrowth = 48 << 20
	if growth > maxGrowth {
		t.Errorf("RSS grew by %d MiB over %d steps (ceiling %d MiB)", growth>>20, steps-warmup, maxGrowth>>20)
	}
}

func TestWorkerKeepsOneThread(t *testing.T) {
	w := NewWorker()
	defer w.Close()
	ctx := context.Background()
	var tids []int
	for i := 0; i < 5; i++ {
		if err := w.Do(ctx, func() error { tids = append(tids, syscall.Gettid()); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range tids[1:] {
		if id != tids[0] {
			t.Fatalf("worker ran jobs on threads %v; want one thread", tids)
		}
	}
	// Grad mode set in one job persists to the next: the same libtorch thread state.
	if err := w.Do(ctx, func() error { _, err := gradSetEnabled(false); return err }); err != nil {
		t.Fatal(err)
	}
	var on bool
	if err := w.Do(ctx, func() error { var err error; on, err = GradEnabled(); return err }); err != nil {
		t.Fatal(err)
	}
	if on {
		t.Error("grad mode did not persist across jobs of one worker")
	}
	perr := w.Do(ctx, func() error { panic("bad job") })
	if perr == nil || !strings.Contains(perr.Error(), "bad job") {
		t.Errorf("panic in job not returned as error: %v", perr)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	w2 := NewWorker()
	w2.Close()
	if err := w2.Do(cctx, func() error { return nil }); err == nil {
		t.Error("Do on a closed worker with a cancelled context succeeded")
	}
}

func TestParseDevice(t *testing.T) {
	hasCUDA := CUDADeviceCount() > 0
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{"cpu", "cpu", false},
		{"CPU", "cpu", false},
		{"gpu", "", true},
		{"cuda:x", "", true},
		{"cuda:-1", "", true},
		{"cuda:99", "", true},
		{"cuda", "cuda:0", !hasCUDA},
	}
	for _, tc := range tests {
		d, err := ParseDevice(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("ParseDevice(%q) error = %v, wantErr %v", tc.in, err, tc.wantErr)
			continue
		}
		if err == nil && DeviceName(d) != tc.want {
			t.Errorf("ParseDevice(%q) = %s, want %s", tc.in, DeviceName(d), tc.want)
		}
	}
	d, err := ParseDevice("auto")
	if err != nil {
		t.Fatal(err)
	}
	if hasCUDA != d.IsCuda() {
		t.Errorf("auto picked %s with %d CUDA devices", DeviceName(d), CUDADeviceCount())
	}
}

func TestThreadsAndSeed(t *testing.T) {
	old := Threads()
	defer SetThreads(old)
	for _, n := range []int{1, 2} {
		if err := SetThreads(n); err != nil {
			t.Fatal(err)
		}
		if got := Threads(); got != n {
			t.Errorf("Threads() = %d after SetThreads(%d)", got, n)
		}
	}
	draw := func() float64 {
		var v float64
		err := WithScope(func(s *Scope) error {
			x, err := ts.Randn([]int64{1}, gotch.Float, gotch.CPU)
			if err != nil {
				return err
			}
			v, err = x.Float64Value([]int64{0})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	Seed(42)
	a := draw()
	Seed(42)
	b := draw()
	Seed(43)
	c := draw()
	if a != b {
		t.Errorf("same seed gave %v then %v", a, b)
	}
	if a == c {
		t.Errorf("seeds 42 and 43 gave the same draw %v", a)
	}
}

func TestBLASAndMatmul(t *testing.T) {
	g, err := MatmulGFLOPS(256, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	if g <= 0 {
		t.Errorf("GFLOP/s = %v", g)
	}
	libs, err := BLASLibraries()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("BLAS libraries: %v, 256³ matmul %.1f GFLOP/s", libs, g)
}

func BenchmarkMatmul1024(b *testing.B) {
	for i := 0; i < b.N; i++ {
		g, err := MatmulGFLOPS(1024, gotch.CPU)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(g, "GFLOP/s")
	}
}

func TestMustCatch(t *testing.T) {
	f := func(bad bool) (out *ts.Tensor, err error) {
		defer Catch(&err)
		a := Must(ts.Ones([]int64{2, 3}, gotch.Float, gotch.CPU))
		shape := []int64{3, 2}
		if bad {
			shape = []int64{4, 4}
		}
		b := Must(ts.Ones(shape, gotch.Float, gotch.CPU))
		return Must(a.Matmul(b, false)), nil
	}
	if out, err := f(false); err != nil || out == nil {
		t.Fatalf("good chain failed: %v", err)
	}
	out, err := f(true)
	if err == nil || out != nil {
		t.Fatalf("bad chain gave %v, %v", out, err)
	}
	var te *Error
	if !errors.As(err, &te) {
		t.Errorf("error %T is not a *torchx.Error", err)
	}
	defer func() {
		if r := recover(); r == nil {
			t.Error("Catch swallowed a non-torch panic")
		}
	}()
	func() (err error) {
		defer Catch(&err)
		panic("a bug")
	}()
}
