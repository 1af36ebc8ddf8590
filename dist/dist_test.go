package dist_test

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/dist"
	"github.com/imgcap/imgcap/torchx"
)

func init() {
	roles["collectives"] = collectivesWorker
	roles["die"] = dieWorker
	roles["stall"] = stallWorker
}

func TestFromEnv(t *testing.T) {
	vars := []string{"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "GLOO_SOCKET_IFNAME"}
	tests := []struct {
		name string
		env  map[string]string
		ok   bool
		want dist.Config
		err  string
	}{
		{name: "single process", env: map[string]string{}},
		{name: "torchrun", env: map[string]string{"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
			"MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "1234", "GLOO_SOCKET_IFNAME": "eth1"}, ok: true,
			want: dist.Config{Rank: 3, WorldSize: 8, LocalRank: 1, LocalWorldSize: 2, MasterAddr: "10.0.0.1", MasterPort: 1234, GlooInterface: "eth1"}},
		{name: "defaults", env: map[string]string{"RANK": "1", "WORLD_SIZE": "2"}, ok: true,
			want: dist.Config{Rank: 1, WorldSize: 2, LocalRank: 1, LocalWorldSize: 2, MasterPort: dist.DefaultPort}},
		{name: "no rank", env: map[string]string{"WORLD_SIZE": "2"}, err: "RANK is not set"},
		{name: "bad number", env: map[string]string{"WORLD_SIZE": "two", "RANK": "0"}, err: "WORLD_SIZE"},
		{name: "rank too big", env: map[string]string{"WORLD_SIZE": "2", "RANK": "2"}, ok: true, err: "rank 2 outside [0, 2)"},
		{name: "bad port", env: map[string]string{"WORLD_SIZE": "2", "RANK": "0", "MASTER_PORT": "70000"}, ok: true, err: "port"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, v := range vars {
				t.Setenv(v, tc.env[v])
				if _, set := tc.env[v]; !set {
					os.Unsetenv(v)
				}
			}
			c, ok, err := dist.FromEnv()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || ok != tc.ok || c != tc.want {
				t.Errorf("FromEnv = %+v, %v, %v; want %+v, %v", c, ok, err, tc.want, tc.ok)
			}
		})
	}
}

// TestInitErrors checks that configurations that cannot work are refused with an error.
func TestInitErrors(t *testing.T) {
	tests := []struct {
		name string
		c    dist.Config
		err  string
	}{
		{"bad backend", dist.Config{WorldSize: 1, Backend: "mpi"}, `backend "mpi"`},
		{"nccl on cpu", dist.Config{WorldSize: 1, Backend: dist.NCCL, Device: gotch.CPU}, "NCCL"},
		{"gloo on cuda", dist.Config{WorldSize: 1, Backend: dist.Gloo, Device: gotch.CudaBuilder(0)}, "CUDA"},
		{"rank", dist.Config{WorldSize: 2, Rank: 5}, "rank 5"},
		{"world", dist.Config{WorldSize: 0}, "world size 0"},
		{"unknown host", dist.Config{WorldSize: 1, MasterAddr: "no-such-host.invalid", MasterPort: 1, Timeout: time.Second}, "no-such-host.invalid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, err := dist.Init(tc.c)
			if err == nil {
				g.Close()
				t.Fatal("Init succeeded")
			}
			if !strings.Contains(err.Error(), tc.err) {
				t.Errorf("err = %v, want it to mention %q", err, tc.err)
			}
		})
	}
}

// TestRendezvousTimeout: rank 0 of a group whose other rank never comes gives up after the
// timeout with an error.
func TestRendezvousTimeout(t *testing.T) {
	start := time.Now()
	g, err := dist.Init(dist.Config{WorldSize: 2, MasterPort: freePort(t), Timeout: time.Second})
	if err == nil {
		g.Close()
		t.Fatal("Init succeeded without rank 1")
	}
	t.Logf("after %v: %v", time.Since(start).Round(time.Millisecond), err)
	if !strings.Contains(err.Error(), "rank 0 of 2") {
		t.Errorf("error does not say who failed: %v", err)
	}
}

// TestSingleRank runs the collectives in a group of one: they leave the values as they are.
func TestSingleRank(t *testing.T) {
	gloo, _, note := dist.Available()
	if !gloo {
		t.Fatalf("no Gloo in this build: %s", note)
	}
	err := torchx.Locked(func() error {
		g, err := dist.Init(dist.Config{WorldSize: 1, MasterPort: freePort(t), Timeout: 10 * time.Second})
		if err != nil {
			return err
		}
		defer g.Close()
		if g.Rank() != 0 || g.WorldSize() != 1 || g.Backend() != dist.Gloo {
			return fmt.Errorf("group %d/%d %s", g.Rank(), g.WorldSize(), g.Backend())
		}
		x, err := ts.OfSlice([]float32{1, 2, 3})
		if err != nil {
			return err
		}
		if err := g.AllReduce([]*ts.Tensor{x}, dist.Avg); err != nil {
			return err
		}
		if err := g.Broadcast([]*ts.Tensor{x}, 0); err != nil {
			return err
		}
		if err := g.Barrier(); err != nil {
			return err
		}
		if err := expect("single rank", x, []float64{1, 2, 3}); err != nil {
			return err
		}
		b, err := g.BroadcastBytes([]byte("hello"), 0)
		if err != nil || string(b) != "hello" {
			return fmt.Errorf("BroadcastBytes = %q, %v", b, err)
		}
		if err := g.Broadcast([]*ts.Tensor{x}, 1); err == nil || !strings.Contains(err.Error(), "root rank 1") {
			return fmt.Errorf("broadcast from rank 1 of 1: %v", err)
		}
		// The failure broke the group: later calls say so.
		if err := g.Barrier(); err == nil || !strings.Contains(err.Error(), "failed earlier") {
			return fmt.Errorf("barrier after a failure: %v", err)
		}
		g.Close()
		if err := g.Barrier(); err == nil || !strings.Contains(err.Error(), "closed") {
			return fmt.Errorf("barrier after Close: %v", err)
		}
		return g.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestCollectives runs broadcast, all-reduce (sum and mean), barrier and byte broadcast between
// 3 processes, with buckets small enough to split the tensors and large enough to pack them.
func TestCollectives(t *testing.T) {
	ws := spawn(t, "collectives", 3)
	waitAll(t, ws, 2*time.Minute)
}

// testTensors are the tensors of the collectives test on rank r: every value depends on r.
func testTensors(r int) ([]*ts.Tensor, error) {
	f := float64(r + 1)
	a, err := ts.OfSlice([]float32{float32(f), float32(2 * f), float32(3 * f), float32(4 * f), float32(5 * f), float32(6 * f)})
	if err != nil {
		return nil, err
	}
	if a, err = a.View([]int64{2, 3}, true); err != nil {
		return nil, err
	}
	b, err := ts.OfSlice([]int64{int64(r), int64(10 * r), 7})
	if err != nil {
		return nil, err
	}
	c, err := ts.OfSlice([]float64{f / 3, -f})
	if err != nil {
		return nil, err
	}
	// A non-contiguous view: buckets must copy results back through it.
	big, err := ts.Ones([]int64{4, 50}, gotch.Float, gotch.CPU)
	if err != nil {
		return nil, err
	}
	if big, err = big.MulScalar(ts.FloatScalar(f), true); err != nil {
		return nil, err
	}
	tr, err := big.Transpose(0, 1, true)
	if err != nil {
		return nil, err
	}
	return []*ts.Tensor{a, b, c, tr}, nil
}

// expect compares a tensor's values with want.
func expect(what string, t *ts.Tensor, want []float64) error {
	c, err := t.Contiguous(false)
	if err != nil {
		return err
	}
	d, err := c.Totype(gotch.Double, false)
	if err != nil {
		return err
	}
	got := make([]float64, len(want))
	if n := int(d.Numel()); n != len(want) {
		return fmt.Errorf("%s: %d values, want %d", what, n, len(want))
	}
	if err := d.CopyData(got, uint(len(got))); err != nil {
		return err
	}
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-6*math.Max(1, math.Abs(want[i])) {
			return fmt.Errorf("%s: value %d is %v, want %v (all: %v)", what, i, got[i], want[i], got)
		}
	}
	return nil
}

// wantTensors are testTensors' values combined over ranks by fn (per value).
func wantTensors(world int, fn func(vals []float64) float64) [][]float64 {
	var per [][][]float64
	for r := 0; r < world; r++ {
		f := float64(r + 1)
		big := make([]float64, 200)
		for i := range big {
			big[i] = f
		}
		per = append(per, [][]float64{{f, 2 * f, 3 * f, 4 * f, 5 * f, 6 * f}, {float64(r), float64(10 * r), 7}, {f / 3, -f}, big})
	}
	out := make([][]float64, len(per[0]))
	for i := range out {
		out[i] = make([]float64, len(per[0][i]))
		for j := range out[i] {
			vals := make([]float64, world)
			for r := range vals {
				vals[r] = per[r][i][j]
			}
			out[i][j] = fn(vals)
		}
	}
	return out
}

func collectivesWorker() error {
	c, _, err := dist.FromEnv()
	if err != nil {
		return err
	}
	c.Timeout = time.Minute
	for _, bucket := range []int64{16, dist.DefaultBucketBytes} {
		c.BucketBytes = bucket
		g, err := dist.Init(c)
		if err != nil {
			return err
		}
		err = torchx.WithScope(func(*torchx.Scope) error {
			for root := 0; root < c.WorldSize; root++ {
				tt, err := testTensors(c.Rank)
				if err != nil {
					return err
				}
				if err := g.Broadcast(tt, root); err != nil {
					return err
				}
				want := wantTensors(c.WorldSize, func(v []float64) float64 { return v[root] })
				for i, x := range tt {
					if err := expect(fmt.Sprintf("bucket %d: broadcast from %d, tensor %d", bucket, root, i), x, want[i]); err != nil {
						return err
					}
				}
			}
			sum := func(v []float64) float64 {
				s := 0.0
				for _, x := range v {
					s += x
				}
				return s
			}
			tt, err := testTensors(c.Rank)
			if err != nil {
				return err
			}
			if err := g.AllReduce(tt, dist.Sum); err != nil {
				return err
			}
			for i, x := range tt {
				if err := expect(fmt.Sprintf("bucket %d: sum, tensor %d", bucket, i), x, wantTensors(c.WorldSize, sum)[i]); err != nil {
					return err
				}
			}
			floats, err := testTensors(c.Rank)
			if err != nil {
				return err
			}
			floats = []*ts.Tensor{floats[0], floats[2], floats[3]}
			if err := g.AllReduce(floats, dist.Avg); err != nil {
				return err
			}
			mean := wantTensors(c.WorldSize, func(v []float64) float64 { return sum(v) / float64(len(v)) })
			for i, x := range floats {
				if err := expect(fmt.Sprintf("bucket %d: mean, tensor %d", bucket, i), x, mean[[]int{0, 2, 3}[i]]); err != nil {
					return err
				}
			}
			if err := g.Barrier(); err != nil {
				return err
			}
			msg := []byte(strings.Repeat("state of rank 1; ", 100))
			got, err := g.BroadcastBytes(msg[:len(msg)*(c.Rank%2)], 1)
			if err != nil {
				return err
			}
			if string(got) != string(msg) {
				return fmt.Errorf("BroadcastBytes: got %d bytes", len(got))
			}
			return nil
		})
		if err != nil {
			g.Close()
			return err
		}
		if err := g.Close(); err != nil {
			return err
		}
		// The next round's TCPStore reuses the port on rank 0: wait until every rank let go.
		c.MasterPort++
	}
	return nil
}

// TestPeerDeathFailsFast kills a worker (rank 1 exits abruptly between collectives) and checks
// that the survivor's next collectives fail with an error instead of hanging, long before the
// 10-minute collective timeout.
func TestPeerDeathFailsFast(t *testing.T) {
	ws := spawn(t, "die", 2, "IMGCAP_DIST_TEST_TIMEOUT=10m")
	if err := ws[1].wait(t, time.Minute); err == nil {
		t.Fatalf("rank 1 should have died; output:\n%s", ws[1].out.String())
	}
	err := ws[0].wait(t, 2*time.Minute)
	out := ws[0].out.String()
	if err != nil {
		t.Fatalf("rank 0: %v; output:\n%s", err, out)
	}
	t.Logf("rank 0 saw: %s", out)
	if !strings.Contains(out, "collective failed") || !strings.Contains(out, "rank 0 of 2") {
		t.Errorf("rank 0's error does not say what failed:\n%s", out)
	}
}

// dieWorker: both ranks do one all-reduce; then rank 1 exits at once and rank 0 keeps
// all-reducing, which must fail (rank 0 exits 0 after printing the error, 1 if nothing failed).
func dieWorker() error {
	c, _, err := dist.FromEnv()
	if err != nil {
		return err
	}
	c.Timeout = envDuration("IMGCAP_DIST_TEST_TIMEOUT", time.Minute)
	c.BucketBytes = 1 << 20
	g, err := dist.Init(c)
	if err != nil {
		return err
	}
	// 4 MB tensors in 1 MB buckets: rank 1 dies while data is in flight both ways, so rank 0
	// also writes to a closed socket (which must not kill it with SIGPIPE).
	x, err := ts.Ones([]int64{1 << 20}, gotch.Float, gotch.CPU)
	if err != nil {
		return err
	}
	if err := g.AllReduce([]*ts.Tensor{x}, dist.Sum); err != nil {
		return err
	}
	if c.Rank == 1 {
		go func() {
			time.Sleep(200 * time.Millisecond)
			os.Exit(3)
		}()
	}
	for i := 0; i < 100000; i++ {
		if err := g.AllReduce([]*ts.Tensor{x}, dist.Avg); err != nil {
			fmt.Printf("collective failed after %d more: %v\n", i, err)
			g.Close()
			return nil
		}
	}
	return fmt.Errorf("100000 all-reduces succeeded without rank 1")
}

// TestCollectiveTimeout: rank 1 stays alive but never joins the all-reduce; rank 0's call
// fails when the group's timeout expires.
func TestCollectiveTimeout(t *testing.T) {
	ws := spawn(t, "stall", 2, "IMGCAP_DIST_TEST_TIMEOUT=2s")
	err := ws[0].wait(t, time.Minute)
	out := ws[0].out.String()
	_ = ws[1].cmd.Process.Kill()
	if err != nil {
		t.Fatalf("rank 0: %v; output:\n%s", err, out)
	}
	t.Logf("rank 0 saw: %s", out)
	if !strings.Contains(strings.ToLower(out), "time") {
		t.Errorf("rank 0's error does not mention the timeout:\n%s", out)
	}
}

func stallWorker() error {
	c, _, err := dist.FromEnv()
	if err != nil {
		return err
	}
	c.Timeout = envDuration("IMGCAP_DIST_TEST_TIMEOUT", time.Minute)
	g, err := dist.Init(c)
	if err != nil {
		return err
	}
	if c.Rank == 1 {
		time.Sleep(5 * time.Minute)
		return nil
	}
	x, err := ts.Ones([]int64{10}, gotch.Float, gotch.CPU)
	if err != nil {
		return err
	}
	if err := g.AllReduce([]*ts.Tensor{x}, dist.Sum); err == nil {
		return fmt.Errorf("all-reduce without rank 1 succeeded")
	} else {
		fmt.Printf("all-reduce failed: %v\n", err)
	}
	// Close would wait for the stalled peer's connection; leave at once.
	fmt.Println("rank " + strconv.Itoa(c.Rank) + " done")
	os.Exit(0)
	return nil
}
