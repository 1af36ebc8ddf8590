package data

import (
	"reflect"
	"slices"
	"testing"
)

// TestLoaderShards checks data-parallel sharding: the ranks' parts of each global batch are
// equal in size, disjoint except for the padding, and together are the unsharded loader's batch of
// BatchSize*WorldSize samples with the same items (so a rank transforms a sample exactly as a
// single process would); resuming a shard at a position yields the same batches.
func TestLoaderShards(t *testing.T) {
	recs := testRecords(41) // 60 captions
	tests := []struct {
		name     string
		batch    int
		world    int
		dropLast bool
		unit     Unit
		sizes    []int // per-rank batch sizes over one epoch
	}{
		{"even", 5, 2, false, PerCaption, []int{5, 5, 5, 5, 5, 5}},
		{"padded", 4, 7, false, PerCaption, []int{4, 4, 1}},                     // 60 -> 63 positions: 28, 28, 7
		{"drop last", 4, 7, true, PerCaption, []int{4, 4}},                      // the incomplete global batch goes
		{"images", 3, 4, false, PerImage, []int{3, 3, 3, 2}},                    // 41 -> 44 positions: 12, 12, 12, 8
		{"one rank", 7, 1, false, PerCaption, []int{7, 7, 7, 7, 7, 7, 7, 7, 4}}, // unsharded
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := LoaderOptions[string]{Transform: itemOf, BatchSize: tc.batch, Workers: 2, Seed: 5, Shuffle: true,
				Unit: tc.unit, Epochs: 2, DropLast: tc.dropLast}
			ref := base
			ref.BatchSize = tc.batch * tc.world
			single, err := NewLoader(recs, ref)
			if err != nil {
				t.Fatal(err)
			}
			whole := collect(t, single, Position{})
			l, err := NewLoader(recs, base)
			if err != nil {
				t.Fatal(err)
			}
			shards := make([][]Batch[string], tc.world)
			for r := range shards {
				s, err := l.Shard(r, tc.world)
				if err != nil {
					t.Fatal(err)
				}
				if s.BatchesPerEpoch() != len(tc.sizes) {
					t.Fatalf("rank %d: %d batches per epoch, want %d", r, s.BatchesPerEpoch(), len(tc.sizes))
				}
				shards[r] = collect(t, s, Position{})
				if len(shards[r]) != 2*len(tc.sizes) {
					t.Fatalf("rank %d: %d batches in 2 epochs, want %d", r, len(shards[r]), 2*len(tc.sizes))
				}
				// Resuming mid-epoch gives the same batches.
				if again := collect(t, s, Position{Epoch: 1, Batch: 1}); !reflect.DeepEqual(again, shards[r][len(tc.sizes)+1:]) {
					t.Errorf("rank %d: resumed batches differ", r)
				}
			}
			for bi := range shards[0] {
				var items []string
				var samples []Sample
				for r := range shards {
					b := shards[r][bi]
					if want := tc.sizes[bi%len(tc.sizes)]; len(b.Items) != want {
						t.Errorf("rank %d batch %d: %d items, want %d", r, bi, len(b.Items), want)
					}
					if b.Index != bi%len(tc.sizes) || b.Epoch != bi/len(tc.sizes) {
						t.Errorf("rank %d batch %d: index %d epoch %d", r, bi, b.Index, b.Epoch)
					}
					items = append(items, b.Items...)
					samples = append(samples, b.Samples...)
				}
				n := len(samples)
				if tc.world > 1 && !tc.dropLast && bi%len(tc.sizes) == len(tc.sizes)-1 {
					// The last global batch holds the padding: positions past the end repeat the first.
					n = min(n, single.Len()-(len(tc.sizes)-1)*tc.batch*tc.world)
					for i := n; i < len(samples); i++ {
						first := shards[0][bi-len(tc.sizes)+1].Samples[i-n]
						if samples[i].Record != first.Record || samples[i].Caption != first.Caption {
							t.Errorf("padding sample %+v does not repeat %+v", samples[i], first)
						}
					}
				}
				if w := whole[bi]; !slices.Equal(items[:n], w.Items) || !reflect.DeepEqual(samples[:n], w.Samples) {
					t.Errorf("batch %d: the ranks' parts are not the unsharded batch of %d", bi, tc.batch*tc.world)
				}
			}
		})
	}
	l, _ := NewLoader(recs, LoaderOptions[string]{Transform: itemOf, BatchSize: 2})
	for _, bad := range [][2]int{{2, 2}, {-1, 2}, {1, 1}, {0, -1}} {
		if _, err := l.Shard(bad[0], bad[1]); err == nil {
			t.Errorf("Shard(%d, %d) accepted", bad[0], bad[1])
		}
	}
	if _, err := NewLoader(recs, LoaderOptions[string]{Transform: itemOf, BatchSize: 2, WorldSize: 2, Rank: 2}); err == nil {
		t.Error("NewLoader accepted rank 2 of 2")
	}
}
