package data

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testRecords makes n records; record i has i%4 captions (some have none).
func testRecords(n int) []Record {
	recs := make([]Record, n)
	for i := range recs {
		recs[i] = Record{ID: int64(i + 1), Name: fmt.Sprintf("%d.jpg", i), Path: fmt.Sprintf("/img/%d.jpg", i)}
		for c := 0; c < i%4; c++ {
			recs[i].Captions = append(recs[i].Captions, fmt.Sprintf("caption %d of %d", c, i))
		}
	}
	return recs
}

// itemOf is a transform whose result depends on the sample and its rng only.
func itemOf(_ context.Context, rec *Record, s Sample, rng *rand.Rand) (string, error) {
	return fmt.Sprintf("%s/%d/%d/%d/%x", rec.Name, s.Caption, s.Epoch, s.Index, rng.Uint64()), nil
}

// collect runs an iteration to the end and returns its batches.
func collect[T any](t *testing.T, l *Loader[T], from Position) []Batch[T] {
	t.Helper()
	var out []Batch[T]
	for b, err := range l.All(context.Background(), from) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func TestLoaderDeterministicAcrossWorkers(t *testing.T) {
	recs := testRecords(103)
	for _, unit := range []Unit{PerCaption, PerImage} {
		var ref []Batch[string]
		for _, workers := range []int{1, 2, 3, 8} {
			l, err := NewLoader(recs, LoaderOptions[string]{Transform: itemOf, BatchSize: 7, Workers: workers, Prefetch: 1 + workers%3, Seed: 42, Shuffle: true, Unit: unit, Epochs: 3})
			if err != nil {
				t.Fatal(err)
			}
			got := collect(t, l, Position{})
			if ref == nil {
				ref = got
				continue
			}
			if !reflect.DeepEqual(got, ref) {
				t.Errorf("%v: %d workers give other batches than 1 worker", unit, workers)
			}
		}
		if len(ref) != 3*((lenPerEpoch(recs, unit)+6)/7) {
			t.Errorf("%v: %d batches", unit, len(ref))
		}
	}
}

func lenPerEpoch(recs []Record, unit Unit) int {
	if unit == PerImage {
		return len(recs)
	}
	n := 0
	for _, r := range recs {
		n += len(r.Captions)
	}
	return n
}

func TestLoaderEpochCoverageAndShuffle(t *testing.T) {
	recs := testRecords(50)
	for _, unit := range []Unit{PerCaption, PerImage} {
		l, err := NewLoader(recs, LoaderOptions[string]{Transform: itemOf, BatchSize: 8, Workers: 2, Seed: 1, Shuffle: true, Unit: unit, Epochs: 2})
		if err != nil {
			t.Fatal(err)
		}
		orders := map[int][]ItemKey{}
		for _, b := range collect(t, l, Position{}) {
			for i, s := range b.Samples {
				if s.Epoch != b.Epoch || s.Index != b.Index*8+i {
					t.Fatalf("sample %+v in batch %d of epoch %d", s, b.Index, b.Epoch)
				}
				orders[s.Epoch] = append(orders[s.Epoch], ItemKey{s.Record, s.Caption})
			}
		}
		for e, order := range orders {
			if len(order) != l.Len() {
				t.Errorf("%v epoch %d: %d samples, want %d", unit, e, len(order), l.Len())
			}
			seen := map[ItemKey]bool{}
			perRecord := map[int]int{}
			for _, k := range order {
				if unit == PerCaption && seen[k] {
					t.Errorf("%v epoch %d: sample %v twice", unit, e, k)
				}
				seen[k] = true
				perRecord[k.Record]++
				if n := len(recs[k.Record].Captions); k.Caption >= n || (n == 0) != (k.Caption == -1) {
					t.Errorf("%v: caption %d of a record with %d", unit, k.Caption, n)
				}
			}
			if unit == PerImage && len(perRecord) != len(recs) {
				t.Errorf("epoch %d visits %d of %d images", e, len(perRecord), len(recs))
			}
		}
		if reflect.DeepEqual(orders[0], orders[1]) {
			t.Errorf("%v: epochs 0 and 1 in the same order", unit)
		}
	}
	// Without shuffle: record order, captions in order.
	l, _ := NewLoader(recs[:6], LoaderOptions[string]{Transform: itemOf, BatchSize: 4, Epochs: 1})
	var keys []ItemKey
	for _, b := range collect(t, l, Position{}) {
		for _, s := range b.Samples {
			keys = append(keys, ItemKey{s.Record, s.Caption})
		}
	}
	want := []ItemKey{{1, 0}, {2, 0}, {2, 1}, {3, 0}, {3, 1}, {3, 2}, {5, 0}}
	if !reflect.DeepEqual(keys, want) {
		t.Errorf("unshuffled order %v, want %v", keys, want)
	}
}

func TestLoaderBatchSizes(t *testing.T) {
	recs := testRecords(12) // 18 captions
	tests := []struct {
		dropLast bool
		sizes    []int
	}{{false, []int{5, 5, 5, 3}}, {true, []int{5, 5, 5}}}
	for _, tc := range tests {
		l, _ := NewLoader(recs, LoaderOptions[string]{Transform: itemOf, BatchSize: 5, DropLast: tc.dropLast, Epochs: 1})
		var sizes []int
		for _, b := range collect(t, l, Position{}) {
			sizes = append(sizes, len(b.Items))
		}
		if !reflect.DeepEqual(sizes, tc.sizes) || l.BatchesPerEpoch() != len(tc.sizes) {
			t.Errorf("dropLast=%v: sizes %v, want %v", tc.dropLast, sizes, tc.sizes)
		}
	}
}

func TestLoaderResume(t *testing.T) {
	recs := testRecords(40)
	opts := LoaderOptions[string]{Transform: itemOf, BatchSize: 6, Workers: 3, Seed: 9, Shuffle: true, Unit: PerCaption, Epochs: 3}
	l, _ := NewLoader(recs, opts)
	all := collect(t, l, Position{})
	per := l.BatchesPerEpoch()
	for _, from := range []Position{{0, 0}, {0, 3}, {1, 0}, {1, per - 1}, {2, 2}} {
		got := collect(t, l, from)
		skip := from.Epoch*per + from.Batch
		if !reflect.DeepEqual(got, all[skip:]) {
			t.Errorf("resume at %+v differs from the uninterrupted run", from)
		}
	}
	// Batch.Next chains the positions.
	for i := 1; i < len(all); i++ {
		if p := all[i-1].Next; p.Epoch != all[i].Epoch || p.Batch != all[i].Index {
			t.Errorf("batch %d: Next %+v, but the next batch is (%d, %d)", i-1, p, all[i].Epoch, all[i].Index)
		}
	}
	if got := collect(t, l, Position{3, 0}); len(got) != 0 {
		t.Errorf("resume after the last epoch: %d batches", len(got))
	}
	for _, bad := range []Position{{0, per}, {-1, 0}, {0, -1}} {
		it := l.Iter(context.Background(), bad)
		if _, err := it.Next(); err == nil || errors.Is(err, io.EOF) {
			t.Errorf("start %+v: err %v", bad, err)
		}
		it.Close()
	}
}

func TestLoaderItemError(t *testing.T) {
	recs := testRecords(30)
	boom := errors.New("cannot decode")
	var calls atomic.Int64
	fn := func(ctx context.Context, rec *Record, s Sample, rng *rand.Rand) (int, error) {
		calls.Add(1)
		if s.Record == 17 {
			return 0, boom
		}
		if s.Record == 21 {
			panic("bug in transform")
		}
		return s.Record, nil
	}
	for _, target := range []struct {
		rec  int
		want string
	}{{17, "cannot decode"}, {21, "transform panicked: bug in transform"}} {
		l, _ := NewLoader(recs, LoaderOptions[int]{Transform: fn, BatchSize: 4, Workers: 2, Unit: PerImage, Epochs: 1})
		it := l.Iter(context.Background(), Position{Batch: target.rec / 4})
		_, err := it.Next()
		if err == nil || !errors.Is(err, boom) && target.rec == 17 || !strings.Contains(err.Error(), recs[target.rec].Path) || !strings.Contains(err.Error(), target.want) {
			t.Errorf("err %v, want %q naming %s", err, target.want, recs[target.rec].Path)
		}
		if _, err2 := it.Next(); err2 != err {
			t.Errorf("error not sticky: %v", err2)
		}
		it.Close()
	}
}

// goroutinesSettle waits (bounded, 5 s) until the goroutine count falls to want and no goroutine runs
// loader code. Even after Close a goroutine that ran wg.Done is counted until it has returned, and a
// cancelled iteration that is never closed exits on its own; hence the wait.
func goroutinesSettle(want int) int {
	n := runtime.NumGoroutine()
	for i := 0; i < 500 && (n > want || loaderGoroutines() > 0); i++ {
		time.Sleep(10 * time.Millisecond)
		n = runtime.NumGoroutine()
	}
	return n
}

// loaderGoroutines counts goroutines whose stack has a Loader or Iterator frame.
func loaderGoroutines() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "data.(*Loader[") || strings.Contains(g, "data.(*Iterator[") {
			if !strings.Contains(g, "testing.tRunner(") { // a test's own goroutine calling Next
				n++
			}
		}
	}
	return n
}

func TestLoaderNoGoroutineLeak(t *testing.T) {
	recs := testRecords(200)
	slow := func(ctx context.Context, rec *Record, s Sample, rng *rand.Rand) (int, error) {
		select {
		case <-time.After(time.Millisecond):
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		return s.Index, nil
	}
	before := runtime.NumGoroutine()
	l, _ := NewLoader(recs, LoaderOptions[int]{Transform: slow, BatchSize: 8, Workers: 4, Prefetch: 3, Shuffle: true})

	// 1. Closed after a few batches of an endless iteration.
	it := l.Iter(context.Background(), Position{})
	for i := 0; i < 3; i++ {
		if _, err := it.Next(); err != nil {
			t.Fatal(err)
		}
	}
	if n := loaderGoroutines(); n != 1+4 { // the detector sees the producer and the 4 workers
		t.Errorf("%d loader goroutines while running, want 5", n)
	}
	it.Close()
	it.Close()
	if n := goroutinesSettle(before); n > before || loaderGoroutines() > 0 {
		t.Errorf("after Close: %d goroutines, %d before", n, before)
	}

	// 2. Context cancelled while workers run, never closed.
	ctx, cancel := context.WithCancel(context.Background())
	it = l.Iter(ctx, Position{})
	if _, err := it.Next(); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := it.Next(); !errors.Is(err, context.Canceled) {
		t.Errorf("after cancel: %v", err)
	}
	if n := goroutinesSettle(before); n > before || loaderGoroutines() > 0 {
		t.Errorf("after cancel: %d goroutines, %d before", n, before)
	}

	// 3. Range loop left early.
	for _, err := range l.All(context.Background(), Position{}) {
		if err != nil {
			t.Fatal(err)
		}
		break
	}
	if n := goroutinesSettle(before); n > before || loaderGoroutines() > 0 {
		t.Errorf("after break: %d goroutines, %d before", n, before)
	}

	// 4. Finite iteration run to io.EOF.
	l2, _ := NewLoader(recs[:20], LoaderOptions[int]{Transform: slow, BatchSize: 8, Workers: 3, Epochs: 2})
	it = l2.Iter(context.Background(), Position{})
	for {
		if _, err := it.Next(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if n := goroutinesSettle(before); n > before || loaderGoroutines() > 0 {
		t.Errorf("after EOF: %d goroutines, %d before", n, before)
	}
	it.Close()
}

func TestLoaderPrefetchBound(t *testing.T) {
	var started atomic.Int64
	fn := func(ctx context.Context, rec *Record, s Sample, rng *rand.Rand) (int, error) {
		started.Add(1)
		return 0, nil
	}
	l, _ := NewLoader(testRecords(400), LoaderOptions[int]{Transform: fn, BatchSize: 4, Workers: 2, Prefetch: 2, Unit: PerImage})
	it := l.Iter(context.Background(), Position{})
	defer it.Close()
	if _, err := it.Next(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // give the workers a chance to run ahead further than allowed
	// Consumed 1 batch; at most Prefetch queued + 1 being dispatched: (1+2+1)*4 items.
	if n := started.Load(); n > 16 {
		t.Errorf("%d items built after one batch, want <= 16", n)
	}
}

func TestLoaderCache(t *testing.T) {
	recs := testRecords(30)
	var calls atomic.Int64
	fn := func(ctx context.Context, rec *Record, s Sample, rng *rand.Rand) (string, error) {
		calls.Add(1)
		return rec.Name, nil
	}
	cache := NewCache[ItemKey, string](0)
	l, _ := NewLoader(recs, LoaderOptions[string]{Transform: fn, BatchSize: 4, Workers: 3, Unit: PerCaption, Epochs: 3, Shuffle: true, Cache: cache})
	batches := collect(t, l, Position{})
	if int(calls.Load()) != l.Len() {
		t.Errorf("%d transform calls over 3 epochs, want %d (once per item)", calls.Load(), l.Len())
	}
	for _, b := range batches {
		for i, s := range b.Samples {
			if b.Items[i] != recs[s.Record].Name {
				t.Fatalf("cached item %q for record %d", b.Items[i], s.Record)
			}
		}
	}
	if hits, misses := cache.Stats(); misses != int64(l.Len()) || hits != 2*int64(l.Len()) {
		t.Errorf("hits %d misses %d", hits, misses)
	}
}

func TestCacheLRUAndSingleFlight(t *testing.T) {
	c := NewCache[int, int](2)
	calls := 0
	get := func(k int) int {
		v, err := c.Get(k, func() (int, error) { calls++; return k * 10, nil })
		if err != nil || v != k*10 {
			t.Fatalf("Get(%d) = %d, %v", k, v, err)
		}
		return v
	}
	get(1)
	get(2)
	get(1) // 1 is now most recent
	get(3) // evicts 2
	get(1)
	if calls != 3 || c.Len() != 2 {
		t.Errorf("calls %d len %d, want 3 and 2", calls, c.Len())
	}
	get(2)
	if calls != 4 {
		t.Errorf("evicted key not recomputed: calls %d", calls)
	}
	// Errors are not cached.
	if _, err := c.Get(9, func() (int, error) { return 0, errors.New("x") }); err == nil {
		t.Error("no error")
	}
	if v, err := c.Get(9, func() (int, error) { return 90, nil }); err != nil || v != 90 {
		t.Errorf("after error: %d %v", v, err)
	}
	// Single flight: concurrent Gets of one key compute once.
	sf := NewCache[string, int](0)
	var n atomic.Int64
	release := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, _ := sf.Get("k", func() (int, error) { n.Add(1); <-release; return 7, nil })
			if v != 7 {
				t.Errorf("value %d", v)
			}
		}()
	}
	close(release)
	wg.Wait()
	// Whether a Get came while the computation ran (and waited) or after (and hit), it computed once.
	if n.Load() != 1 {
		t.Errorf("computed %d times, want 1", n.Load())
	}
}

func TestLoaderOptionErrors(t *testing.T) {
	recs := testRecords(3)
	for _, o := range []LoaderOptions[string]{
		{BatchSize: 1},
		{Transform: itemOf},
		{Transform: itemOf, BatchSize: 1, Workers: -1},
		{Transform: itemOf, BatchSize: 1, Unit: 7},
	} {
		if _, err := NewLoader(recs, o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
	// An empty loader ends at once.
	l, err := NewLoader(nil, LoaderOptions[string]{Transform: itemOf, BatchSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	if got := collect(t, l, Position{}); len(got) != 0 {
		t.Errorf("empty loader: %d batches", len(got))
	}
}
