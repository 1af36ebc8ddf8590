package data

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
)

// Unit is what one epoch iterates over.
type Unit int

const (
	// PerCaption visits every (image, caption) pair once per epoch: 5 samples per Flickr image. Images
	// without captions are not visited.
	PerCaption Unit = iota
	// PerImage visits every image once per epoch with one caption drawn at random for that epoch
	// (Sample.Caption is -1 for an image without captions, e.g. when evaluating).
	PerImage
)

// String names the unit as in configs: "caption" or "image".
func (u Unit) String() string {
	if u == PerImage {
		return "image"
	}
	return "caption"
}

// ParseUnit reads "caption" (or "pair") and "image".
func ParseUnit(s string) (Unit, error) {
	switch s {
	case "caption", "pair", "":
		return PerCaption, nil
	case "image":
		return PerImage, nil
	}
	return 0, fmt.Errorf("sampling unit %q: want caption or image", s)
}

// Sample identifies one item: which record and caption, and where it sits in its epoch.
type Sample struct {
	Record  int // index into the loader's records
	Caption int // index into the record's captions, -1 when it has none
	Epoch   int
	Index   int // position within the epoch, 0-based
}

// ItemKey is the key of LoaderOptions.Cache: the record and caption an item was built from.
type ItemKey struct{ Record, Caption int }

// TransformFunc builds one item (decode, augment, tokenize). rng is seeded from (seed, epoch, index) only,
// so an item does not depend on worker count or scheduling; the transform must not use other randomness.
// It runs on several goroutines at once. ctx is cancelled when the iteration stops.
type TransformFunc[T any] func(ctx context.Context, rec *Record, s Sample, rng *rand.Rand) (T, error)

// LoaderOptions configures a Loader.
type LoaderOptions[T any] struct {
	Transform TransformFunc[T] // required
	BatchSize int              // required, > 0
	Workers   int              // goroutines running Transform; 0 = GOMAXPROCS
	Prefetch  int              // batches queued ahead of the consumer; 0 = 2
	Seed      uint64           // seeds shuffling, caption choice and the per-item rng
	Shuffle   bool             // a new order every epoch (else record order)
	DropLast  bool             // drop the last incomplete batch of each epoch
	Unit      Unit             // PerCaption (default) or PerImage
	Epochs    int              // iteration ends after this many epochs; 0 = never
	// Cache, when set, keeps items by (record, caption) across epochs and skips Transform on a hit. Use it
	// only with transforms that ignore rng (evaluation); cached items are shared, so consumers must not
	// modify them.
	Cache *Cache[ItemKey, T]
	// WorldSize > 1 shards the data for data-parallel training: every process of the group (Rank in
	// [0, WorldSize)) shuffles with the same seed, the epoch's order is cut into global batches of
	// BatchSize*WorldSize samples, and rank r gets the r-th BatchSize-sample part of each. The order is
	// padded to a multiple of WorldSize by repeating its first samples (as torch's DistributedSampler
	// does), so every rank gets as many samples as the others in every batch. Sample.Index is the
	// position in the padded order, which the per-item rng depends on: sharded or not, a sample is
	// transformed the same way. 0 or 1 means no sharding.
	WorldSize, Rank int
}

// Position is where an iteration starts: the batch index within an epoch. Batch.Next is the position to
// resume from after that batch, for checkpoints.
type Position struct {
	Epoch int `json:"epoch"`
	Batch int `json:"batch"`
}

// Batch is one batch of items, in sample order.
type Batch[T any] struct {
	Epoch   int
	Index   int // batch index within the epoch
	Items   []T
	Samples []Sample
	Next    Position // the position after this batch
}

// Loader produces batches of transformed items from records, in parallel and deterministically: for a
// seed, the batches (their samples and, given a transform that uses only its rng, their items) are the
// same for any worker count, and an iteration started at a Position yields exactly the batches an
// uninterrupted iteration yields from there.
type Loader[T any] struct {
	records []Record
	opts    LoaderOptions[T]
	pairs   []ItemKey // PerCaption: every (record, caption) pair; PerImage: records only (Caption unused)
}

// NewLoader checks the options and indexes the samples. The loader keeps records (not a copy): they must
// not change while it is in use.
func NewLoader[T any](records []Record, opts LoaderOptions[T]) (*Loader[T], error) {
	if opts.Transform == nil {
		return nil, errors.New("loader: no Transform")
	}
	if opts.BatchSize <= 0 {
		return nil, fmt.Errorf("loader: batch size %d, want > 0", opts.BatchSize)
	}
	if opts.Workers < 0 || opts.Prefetch < 0 || opts.Epochs < 0 {
		return nil, fmt.Errorf("loader: negative workers (%d), prefetch (%d) or epochs (%d)", opts.Workers, opts.Prefetch, opts.Epochs)
	}
	if opts.Unit != PerCaption && opts.Unit != PerImage {
		return nil, fmt.Errorf("loader: unknown sampling unit %d", opts.Unit)
	}
	if err := checkShard(opts.Rank, opts.WorldSize); err != nil {
		return nil, err
	}
	if opts.Workers == 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	if opts.Prefetch == 0 {
		opts.Prefetch = 2
	}
	l := &Loader[T]{records: records, opts: opts}
	if opts.Unit == PerCaption {
		n := 0
		for i := range records {
			n += len(records[i].Captions)
		}
		l.pairs = make([]ItemKey, 0, n)
		for i := range records {
			for c := range records[i].Captions {
				l.pairs = append(l.pairs, ItemKey{i, c})
			}
		}
	} else {
		l.pairs = make([]ItemKey, len(records))
		for i := range records {
			l.pairs[i] = ItemKey{i, -1}
		}
	}
	return l, nil
}

func checkShard(rank, world int) error {
	if world < 0 || rank < 0 || (world <= 1 && rank != 0) || (world > 1 && rank >= world) {
		return fmt.Errorf("loader: rank %d of world size %d, want 0 <= rank < world size", rank, world)
	}
	return nil
}

// Shard returns a loader over the same records and options that yields rank's part of every batch
// of a data-parallel group of world processes (see LoaderOptions.WorldSize).
func (l *Loader[T]) Shard(rank, world int) (*Loader[T], error) {
	if err := checkShard(rank, world); err != nil {
		return nil, err
	}
	o := l.opts
	o.Rank, o.WorldSize = rank, world
	return &Loader[T]{records: l.records, opts: o, pairs: l.pairs}, nil
}

// Len is the number of samples per epoch (over all ranks, before padding).
func (l *Loader[T]) Len() int { return len(l.pairs) }

// world is the number of shards (1 when unsharded).
func (l *Loader[T]) world() int { return max(l.opts.WorldSize, 1) }

// padded is the number of positions in an epoch's order: Len rounded up to a multiple of the world
// size (Len when unsharded).
func (l *Loader[T]) padded() int {
	w := l.world()
	return (len(l.pairs) + w - 1) / w * w
}

// BatchesPerEpoch is the number of batches per epoch (global batches when sharded: every rank gets
// this many).
func (l *Loader[T]) BatchesPerEpoch() int {
	g := l.opts.BatchSize * l.world()
	if l.opts.DropLast {
		return len(l.pairs) / g
	}
	return (l.padded() + g - 1) / g
}

// shardRange is the range of epoch positions [lo, hi) of this rank's part of global batch bi.
func (l *Loader[T]) shardRange(bi int) (lo, hi int) {
	w := l.world()
	g := l.opts.BatchSize * w
	start := bi * g
	size := min(g, l.padded()-start) // a multiple of w
	part := size / w
	lo = start + l.opts.Rank*part
	return lo, lo + part
}

// epochOrder returns the sample order of an epoch (indices into l.pairs).
func (l *Loader[T]) epochOrder(epoch int) []int32 {
	order := make([]int32, len(l.pairs))
	for i := range order {
		order[i] = int32(i)
	}
	if l.opts.Shuffle {
		shuffle(newPCG(l.opts.Seed, purposeShuffle, uint64(epoch)), order)
	}
	return order
}

// sample resolves the k-th sample of an epoch (positions past the order's end, the padding of a
// sharded loader, wrap around to its start).
func (l *Loader[T]) sample(order []int32, epoch, k int) Sample {
	p := l.pairs[order[k%len(order)]]
	s := Sample{Record: p.Record, Caption: p.Caption, Epoch: epoch, Index: k}
	if l.opts.Unit == PerImage {
		s.Caption = -1
		if n := len(l.records[p.Record].Captions); n > 0 {
			s.Caption = int(uint64n(newPCG(l.opts.Seed, purposeCaption, uint64(epoch), uint64(p.Record)), uint64(n)))
		}
	}
	return s
}

// Iterator yields batches from worker goroutines. Call Close when done (also after an error).
type Iterator[T any] struct {
	l      *Loader[T]
	ctx    context.Context
	cancel context.CancelFunc
	order  chan *batchState[T]
	wg     sync.WaitGroup
	err    error // sticky: after an error every Next returns it
}

// batchState is a batch being built.
type batchState[T any] struct {
	batch   Batch[T]
	errs    []error
	pending atomic.Int32
	ready   chan struct{}
}

type job[T any] struct {
	b    *batchState[T]
	slot int
}

// Iter starts workers producing batches from position from onward (epoch after epoch until
// LoaderOptions.Epochs, or forever). The workers stop when ctx is cancelled or Close is called.
func (l *Loader[T]) Iter(ctx context.Context, from Position) *Iterator[T] {
	ctx, cancel := context.WithCancel(ctx)
	it := &Iterator[T]{l: l, ctx: ctx, cancel: cancel, order: make(chan *batchState[T], l.opts.Prefetch)}
	perEpoch := l.BatchesPerEpoch()
	if from.Epoch < 0 || from.Batch < 0 {
		it.err = fmt.Errorf("loader: start position %+v is negative", from)
		cancel()
		return it
	}
	if perEpoch > 0 && from.Batch >= perEpoch {
		it.err = fmt.Errorf("loader: start batch %d, but an epoch has %d batches", from.Batch, perEpoch)
		cancel()
		return it
	}
	jobs := make(chan job[T], l.opts.Workers)
	it.wg.Add(1 + l.opts.Workers)
	go func() {
		defer it.wg.Done()
		defer close(it.order)
		defer close(jobs)
		l.produce(ctx, from, it.order, jobs)
	}()
	for w := 0; w < l.opts.Workers; w++ {
		go func() {
			defer it.wg.Done()
			for {
				select {
				case j, ok := <-jobs:
					if !ok {
						return
					}
					l.run(ctx, j)
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	return it
}

// produce queues batches in order and hands their items to the workers.
func (l *Loader[T]) produce(ctx context.Context, pos Position, order chan<- *batchState[T], jobs chan<- job[T]) {
	perEpoch := l.BatchesPerEpoch()
	if perEpoch == 0 {
		return
	}
	for epoch := pos.Epoch; l.opts.Epochs == 0 || epoch < l.opts.Epochs; epoch++ {
		perm := l.epochOrder(epoch)
		start := 0
		if epoch == pos.Epoch {
			start = pos.Batch
		}
		for bi := start; bi < perEpoch; bi++ {
			lo, hi := l.shardRange(bi)
			b := &batchState[T]{ready: make(chan struct{})}
			b.batch = Batch[T]{Epoch: epoch, Index: bi, Items: make([]T, hi-lo), Samples: make([]Sample, hi-lo)}
			b.batch.Next = Position{epoch, bi + 1}
			if bi+1 == perEpoch {
				b.batch.Next = Position{epoch + 1, 0}
			}
			for k := lo; k < hi; k++ {
				b.batch.Samples[k-lo] = l.sample(perm, epoch, k)
			}
			b.errs = make([]error, hi-lo)
			b.pending.Store(int32(hi - lo))
			select {
			case order <- b:
			case <-ctx.Done():
				return
			}
			for slot := range b.batch.Items {
				select {
				case jobs <- job[T]{b, slot}:
				case <-ctx.Done():
					return
				}
			}
		}
	}
}

// errPanicked marks a computation that panicked (see Cache.Get).
var errPanicked = errors.New("panicked")

// run builds one item; a panic in the transform becomes the item's error.
func (l *Loader[T]) run(ctx context.Context, j job[T]) {
	s := j.b.batch.Samples[j.slot]
	rec := &l.records[s.Record]
	item, err := func() (item T, err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("transform panicked: %v\n%s", p, debug.Stack())
			}
		}()
		build := func() (T, error) {
			rng := rand.New(newPCG(l.opts.Seed, purposeItem, uint64(s.Epoch), uint64(s.Index)))
			return l.opts.Transform(ctx, rec, s, rng)
		}
		if l.opts.Cache != nil {
			return l.opts.Cache.Get(ItemKey{s.Record, s.Caption}, build)
		}
		return build()
	}()
	j.b.batch.Items[j.slot] = item
	j.b.errs[j.slot] = err
	if j.b.pending.Add(-1) == 0 {
		close(j.b.ready)
	}
}

// Next returns the next batch, io.EOF after the last epoch, or the first item error of the batch (which
// names the record's image path) or the context's error. Errors are sticky.
func (it *Iterator[T]) Next() (Batch[T], error) {
	if it.err != nil {
		return Batch[T]{}, it.err
	}
	var b *batchState[T]
	var ok bool
	select {
	case b, ok = <-it.order:
	case <-it.ctx.Done():
		return it.fail(it.ctx.Err())
	}
	if !ok {
		if err := it.ctx.Err(); err != nil {
			return it.fail(err)
		}
		it.err = io.EOF
		return Batch[T]{}, io.EOF
	}
	select {
	case <-b.ready:
	case <-it.ctx.Done():
		return it.fail(it.ctx.Err())
	}
	for slot, err := range b.errs {
		if err != nil {
			s := b.batch.Samples[slot]
			return it.fail(fmt.Errorf("loader: %s (record %d, caption %d, epoch %d, sample %d): %w",
				it.l.records[s.Record].Path, s.Record, s.Caption, s.Epoch, s.Index, err))
		}
	}
	return b.batch, nil
}

// fail records a sticky error and stops the workers.
func (it *Iterator[T]) fail(err error) (Batch[T], error) {
	it.err = err
	it.cancel()
	return Batch[T]{}, err
}

// Close stops the workers and waits for them to exit (a running Transform should return when its ctx is
// cancelled). It is safe to call more than once.
func (it *Iterator[T]) Close() error {
	it.cancel()
	it.wg.Wait()
	return nil
}

// All iterates over batches from position from with range-over-func; stopping the loop early (or an
// error, yielded once as the last element) closes the iterator. io.EOF is not yielded.
func (l *Loader[T]) All(ctx context.Context, from Position) iter.Seq2[Batch[T], error] {
	return func(yield func(Batch[T], error) bool) {
		it := l.Iter(ctx, from)
		defer it.Close()
		for {
			b, err := it.Next()
			if errors.Is(err, io.EOF) {
				return
			}
			if !yield(b, err) || err != nil {
				return
			}
		}
	}
}
