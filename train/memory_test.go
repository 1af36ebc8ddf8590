package train

import (
	"context"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"testing"

	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/internal/reftest"
)

// TestMemoryIsFlat trains 600 steps of a model whose activations are 256 KiB per tensor and
// checks that neither the live tensor count nor the resident memory grows after warm-up: one
// activation leaked per step would add 125 MiB over the measured 500 steps.
func TestMemoryIsFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("600 training steps")
	}
	const warm, end = 100, 600
	c := baseConfig()
	c.MaxSteps = end
	c.LogEvery = 50
	c.GradAccum = 2
	c.LR = 1e-3
	type sample struct {
		tensors int   // live
		created int64 // since the start of the process
		rss     int64
	}
	var at []sample
	measure := func() sample {
		runtime.GC()
		runtime.GC() // finalizers of unreachable tensors run after the first cycle
		debug.FreeOSMemory()
		return sample{len(ts.ExistingTensors), atomic.LoadInt64(&ts.TensorCount), reftest.RSSBytes(t)}
	}
	opts := Options{Model: newToy(t, 1, 128, 1024, 16, 0.1), Train: newToyData(256, 128, 16, 64, 3), Config: c,
		RunDir: t.TempDir(),
		stepHook: func(step int) error {
			if step == warm || step == end {
				at = append(at, measure())
			}
			return nil
		}}
	if _, err := Run(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	if len(at) != 2 {
		t.Fatalf("measured %d times", len(at))
	}
	growth := at[1].rss - at[0].rss
	created := at[1].created - at[0].created
	// gotch's generated op wrappers never free the malloc(0) block that receives the result
	// handle, about 80 bytes per op: that, not a tensor, is the residual growth.
	t.Logf("step %d: %d live tensors, RSS %.1f MiB; step %d: %d live tensors, RSS %.1f MiB (%+.1f KiB/step, %.0f tensors made per step, %+.0f B per tensor made)",
		warm, at[0].tensors, float64(at[0].rss)/(1<<20), end, at[1].tensors, float64(at[1].rss)/(1<<20),
		float64(growth)/1024/(end-warm), float64(created)/(end-warm), float64(growth)/float64(created))
	if at[1].tensors > at[0].tensors {
		t.Errorf("live tensors grew from %d to %d", at[0].tensors, at[1].tensors)
	}
	if growth > 16<<20 {
		t.Errorf("RSS grew by %.1f MiB over %d steps", float64(growth)/(1<<20), end-warm)
	}
}
