package dist_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/dist"
)

// BenchmarkDataParallel trains a small VGG16+LSTM model (VGG at a quarter of its width on 32×32
// images) for 40 steps of batch 16 per process
// in 1 process × 1 thread and in 2 processes × 1 thread, and reports the steady-state steps/s
// (from step 10 on, read from rank 0's metrics log), samples/s and the scaling efficiency:
// samples/s of 2 processes over twice that of one.
func BenchmarkDataParallel(b *testing.B) {
	const steps, from, batch = 40, 10, 16
	rate := map[int]float64{}
	for _, procs := range []int{1, 2} {
		c := tinyConfig(b, filepath.Join(b.TempDir(), "run"), steps)
		c.Train.BatchSize = batch
		c.Model.VGGWidth = 0.25 // about 0.1 s of compute per step: communication is a small part
		path := writeConfig(b, c)
		ws := spawn(b, "train", procs, configEnv+"="+path)
		waitAll(b, ws, 5*time.Minute)
		elapsed := stepTimes(b, filepath.Join(c.Train.OutDir, "metrics.jsonl"))
		rate[procs] = float64(steps-from) / (elapsed[steps] - elapsed[from])
	}
	b.ReportMetric(rate[1], "steps/s-1proc")
	b.ReportMetric(rate[2], "steps/s-2proc")
	b.ReportMetric(rate[1]*batch, "samples/s-1proc")
	b.ReportMetric(rate[2]*2*batch, "samples/s-2proc")
	b.ReportMetric(rate[2]*2*batch/(2*rate[1]*batch), "scaling-efficiency")
}

// stepTimes reads elapsed_s of each training step from a metrics log.
func stepTimes(b testing.TB, path string) map[int]float64 {
	b.Helper()
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	out := map[int]float64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rec struct {
			Step    int     `json:"step"`
			Eval    bool    `json:"eval"`
			Elapsed float64 `json:"elapsed_s"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			b.Fatal(err)
		}
		if !rec.Eval {
			out[rec.Step] = rec.Elapsed
		}
	}
	return out
}

func init() {
	roles["allreduce-bench"] = func() error {
		c, _, err := dist.FromEnv()
		if err != nil {
			return err
		}
		g, err := dist.Init(c)
		if err != nil {
			return err
		}
		defer g.Close()
		// 8.5M float32 values (34 MB) in 100 tensors, like the benchmark model's gradients.
		tensors := make([]*ts.Tensor, 100)
		for i := range tensors {
			if tensors[i], err = ts.Ones([]int64{85_000}, gotch.Float, gotch.CPU); err != nil {
				return err
			}
		}
		const rounds = 20
		var took time.Duration
		for i := 0; i <= rounds; i++ {
			start := time.Now()
			if err := g.AllReduce(tensors, dist.Avg); err != nil {
				return err
			}
			if i > 0 { // the first round warms up
				took += time.Since(start)
			}
		}
		fmt.Printf("allreduce %.6f s\n", took.Seconds()/rounds)
		return nil
	}
}

// BenchmarkAllReduce measures the mean all-reduce (Gloo, loopback, 2 processes) of 34 MB of
// float32 gradients in 100 tensors: the gradient exchange of BenchmarkDataParallel's model.
func BenchmarkAllReduce(b *testing.B) {
	ws := spawn(b, "allreduce-bench", 2)
	waitAll(b, ws, 2*time.Minute)
	var sec float64
	out := ws[0].out.String()
	if _, err := fmt.Sscanf(out[strings.Index(out, "allreduce "):], "allreduce %g s", &sec); err != nil {
		b.Fatalf("%v in %q", err, out)
	}
	b.ReportMetric(sec*1000, "ms/allreduce")
	b.ReportMetric(34e6/sec/1e9, "GB/s")
}
