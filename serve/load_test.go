package serve

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/data/image"
	"github.com/imgcap/imgcap/models"

	"github.com/imgcap/imgcap/internal/reftest"
)

// gated holds every model call until gate is closed.
type gated struct {
	inner Captioner
	gate  chan struct{}
	held  atomic.Int64 // images of the calls waiting at the gate
}

func (g *gated) CaptionImages(ctx context.Context, imgs []*image.RGB, o models.GenerateOptions) ([]models.Caption, error) {
	g.held.Add(int64(len(imgs)))
	defer g.held.Add(-int64(len(imgs)))
	select {
	case <-g.gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return g.inner.CaptionImages(ctx, imgs, o)
}

// waitFor polls cond until it holds; the test fails if it does not within a minute (a hang,
// not a timing assertion).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestConcurrentLoad sends 50 concurrent requests for three different images to the tiny model
// while the first model call is held, so that the rest pile up: all are answered with their own
// image's caption, later calls are full batches, no more than MaxInFlight requests are ever
// admitted at once, and neither live tensors nor resident memory grow over further rounds.
func TestConcurrentLoad(t *testing.T) {
	const n, maxBatch, maxInFlight = 50, 8, 16
	m := openTiny(t, "tiny")
	imgs := make([][]byte, 3)
	want := make([]string, 3)
	for i := range imgs {
		imgs[i] = encodePNG(t, testImage(64, 48, i))
		want[i] = captionDirect(t, m, decode(t, imgs[i]), models.GenerateOptions{MaxNewTokens: 5})
	}
	g := &gated{inner: m.Captioner, gate: make(chan struct{})}
	m.Captioner = g
	s, hs := startServer(t, Options{Models: []Model{m}, MaxBatch: maxBatch, MaxWait: 5 * time.Millisecond, MaxInFlight: maxInFlight, Timeout: 2 * time.Minute})

	round := func(t *testing.T, hold bool) []CaptionResponse {
		t.Helper()
		out := make([]CaptionResponse, n)
		errs := make([]string, n)
		var wg sync.WaitGroup
		for i := range n {
			body, ctype := imageForm(t, imgs[i%3], "max_new_tokens", "5")
			wg.Add(1)
			go func() {
				defer wg.Done()
				code, resp, err := tryPost(context.Background(), hs.URL+"/api/caption", ctype, body)
				if err != nil || code != http.StatusOK {
					errs[i] = fmt.Sprintf("request %d: status %d, %v: %s", i, code, err, resp)
					return
				}
				if err := json.Unmarshal(resp, &out[i]); err != nil || len(out[i].Captions) != 1 {
					errs[i] = fmt.Sprintf("request %d: %s: %v", i, resp, err)
					return
				}
				if got := out[i].Captions[0].Text; got != want[i%3] {
					errs[i] = fmt.Sprintf("request %d (image %d): caption %q, want %q", i, i%3, got, want[i%3])
				}
			}()
		}
		if hold {
			// Hold the first call (of at most maxBatch images) until every admitted request is
			// in it or queued: then at least maxInFlight-maxBatch = maxBatch images wait.
			waitFor(t, "all admitted requests to queue", func() bool {
				return s.inFlight.Load() == maxInFlight && int64(len(s.workers[0].queue))+g.held.Load() == maxInFlight
			})
			close(g.gate)
		}
		wg.Wait()
		for _, e := range errs {
			if e != "" {
				t.Error(e)
			}
		}
		return out
	}

	first := round(t, true)
	if t.Failed() {
		t.FailNow()
	}
	largest := 0
	for _, r := range first {
		largest = max(largest, r.BatchSize)
	}
	if count, maxSeen := s.metrics.batchSize.stats("tiny"); largest != maxBatch || int(maxSeen) != maxBatch {
		t.Errorf("largest batch: %d in answers, %v in metrics (%d calls), want %d", largest, maxSeen, count, maxBatch)
	}
	if p := s.peak.Load(); p != maxInFlight {
		t.Errorf("at most %d requests were admitted at once, want exactly the limit %d", p, maxInFlight)
	}
	if ok := s.metrics.captions.get("tiny", "ok"); ok != n {
		t.Errorf("%v captions counted ok, want %d", ok, n)
	}

	measure := func() (int, int64) {
		runtime.GC()
		runtime.GC() // finalizers of unreachable tensors run after the first cycle
		debug.FreeOSMemory()
		return len(ts.ExistingTensors), reftest.RSSBytes(t)
	}
	tensors0, rss0 := measure()
	for range 3 {
		round(t, false)
	}
	tensors1, rss1 := measure()
	t.Logf("live tensors %d -> %d, RSS %.1f -> %.1f MiB over %d requests; peak in flight %d", tensors0, tensors1,
		float64(rss0)/(1<<20), float64(rss1)/(1<<20), 3*n, s.peak.Load())
	if tensors1 > tensors0 {
		t.Errorf("live tensors grew from %d to %d", tensors0, tensors1)
	}
	if growth := rss1 - rss0; growth > 32<<20 {
		t.Errorf("RSS grew by %.1f MiB over %d requests", float64(growth)/(1<<20), 3*n)
	}
	if p := s.peak.Load(); p > maxInFlight {
		t.Errorf("%d requests admitted at once, limit %d", p, maxInFlight)
	}
}
