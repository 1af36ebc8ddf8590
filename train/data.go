package train

import (
	"context"
	"math/rand/v2"

	"github.com/imgcap/imgcap/models"
)

// Source supplies the batches of a dataset split, epoch by epoch. For exact resumption the
// batches of an epoch must depend only on (seed, epoch) — use EpochPermutation or EpochRand —
// and skipping must yield the same batches as reading them.
type Source interface {
	// StepsPerEpoch is the number of micro-batches in one epoch (> 0).
	StepsPerEpoch() int
	// Epoch starts epoch number epoch (0-based), skipping its first skip micro-batches.
	Epoch(ctx context.Context, epoch, skip int) (Iterator, error)
}

// Iterator yields the batches of one epoch. The consumer drops each batch (Batch.Drop).
type Iterator interface {
	// Next returns the next batch, or io.EOF after the last one.
	Next() (*models.Batch, error)
	// Close releases the iterator's resources (goroutines, prefetched batches).
	Close() error
}

// EpochRand is a random generator that depends only on (seed, epoch): the one to draw an
// epoch's shuffling and augmentation from, so that resumed runs see the same data.
func EpochRand(seed int64, epoch int) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed), splitmix64(uint64(epoch)+0x5EED)))
}

// EpochPermutation is a shuffled order of n items that depends only on (seed, epoch). It is a
// Fisher-Yates shuffle over EpochRand's PCG stream, written out so that the order never changes
// with the Go version.
func EpochPermutation(seed int64, epoch, n int) []int {
	r := EpochRand(seed, epoch)
	perm := make([]int, n)
	for i := range perm {
		perm[i] = i
	}
	for i := n - 1; i > 0; i-- {
		j := int(r.Uint64() % uint64(i+1))
		perm[i], perm[j] = perm[j], perm[i]
	}
	return perm
}

// stepSeed is the libtorch seed of a micro-batch: a hash of the run seed, a stream (training
// or evaluation) and the micro-batch index, so that nearby seeds give unrelated sequences.
func stepSeed(seed int64, stream uint64, i int64) int64 {
	h := splitmix64(splitmix64(uint64(seed)) ^ splitmix64(stream))
	return int64(splitmix64(h+uint64(i)) >> 1)
}

func splitmix64(x uint64) uint64 {
	x += 0x9E3779B97F4A7C15
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9
	x = (x ^ (x >> 27)) * 0x94D049BB133111EB
	return x ^ (x >> 31)
}
