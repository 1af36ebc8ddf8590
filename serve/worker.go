package serve

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imgcap/imgcap/data/image"
	"github.com/imgcap/imgcap/models"
	"github.com/imgcap/imgcap/torchx"
)

// ErrClosed is returned for jobs that a closing server will not run.
var ErrClosed = errors.New("the server is shutting down")

// genKey is the part of the generation options the API sets; requests batch together only when
// their keys are equal.
type genKey struct {
	numBeams     int
	maxNewTokens int
	prompt       string
}

func (k genKey) options() models.GenerateOptions {
	return models.GenerateOptions{NumBeams: k.numBeams, MaxNewTokens: k.maxNewTokens, Prompt: k.prompt}
}

// job is one image to caption with one model.
type job struct {
	ctx    context.Context
	img    *image.RGB
	key    genKey
	queued time.Time
	done   chan jobResult // buffered: the worker never blocks on an abandoned job
}

// jobResult is the answer to a job.
type jobResult struct {
	caption models.Caption
	err     error
	batch   int           // images in the model call that captioned it
	wait    time.Duration // from queueing to the start of its model call
}

// worker owns one model: a goroutine locked to one OS thread (libtorch keeps its grad mode,
// error slot and our tensor scopes per thread) that collects queued jobs into batches of up to
// maxBatch, waiting at most maxWait after the first, and captions each batch in one call.
type worker struct {
	model    Model
	queue    chan *job
	maxBatch int
	maxWait  time.Duration
	metrics  *metrics
	// base is the parent of every model call's context; cancelling it aborts calls in progress
	// (the last step of a shutdown whose grace period ran out).
	base   context.Context
	abort  context.CancelFunc
	quit   chan struct{}
	done   chan struct{}
	closed sync.Once
	busy   atomic.Bool
}

func newWorker(m Model, maxBatch int, maxWait time.Duration, queue int, mx *metrics) *worker {
	base, abort := context.WithCancel(context.Background())
	w := &worker{
		model: m, queue: make(chan *job, queue), maxBatch: max(1, maxBatch), maxWait: maxWait, metrics: mx,
		base: base, abort: abort, quit: make(chan struct{}), done: make(chan struct{}),
	}
	go w.run()
	return w
}

// submit queues a job and waits for its result, for ctx to end, or for the worker to close.
func (w *worker) submit(ctx context.Context, img *image.RGB, key genKey) jobResult {
	j := &job{ctx: ctx, img: img, key: key, queued: time.Now(), done: make(chan jobResult, 1)}
	select {
	case w.queue <- j:
	case <-ctx.Done():
		return jobResult{err: ctx.Err()}
	case <-w.quit:
		return jobResult{err: ErrClosed}
	}
	select {
	case r := <-j.done:
		return r
	case <-ctx.Done():
		// The worker skips the job if it has not started it, and stops a model call once every
		// job in it has ended.
		return jobResult{err: ctx.Err()}
	case <-w.done:
		// The worker answers every job it dequeued before it closes; a job queued after its last
		// look at the queue is answered here.
		select {
		case r := <-j.done:
			return r
		default:
			return jobResult{err: ErrClosed}
		}
	}
}

// close stops the worker after the batch in progress and answers queued jobs with ErrClosed.
func (w *worker) close() {
	w.closed.Do(func() { close(w.quit) })
	<-w.done
}

func (w *worker) run() {
	// The thread is never unlocked: when the goroutine ends, Go ends the thread with it, so no
	// other goroutine inherits its libtorch state.
	runtime.LockOSThread()
	defer close(w.done)
	defer w.abort()
	for {
		var first *job
		select {
		case first = <-w.queue:
		case <-w.quit:
			w.drain()
			return
		}
		w.process(w.collect(first))
	}
}

// collect gathers up to maxBatch jobs: those already queued, then those that arrive within
// maxWait of the first.
func (w *worker) collect(first *job) []*job {
	batch := []*job{first}
	var timeout <-chan time.Time
	if w.maxWait > 0 && w.maxBatch > 1 {
		t := time.NewTimer(w.maxWait)
		defer t.Stop()
		timeout = t.C
	}
	for len(batch) < w.maxBatch {
		select {
		case j := <-w.queue:
			batch = append(batch, j)
			continue
		default:
		}
		if timeout == nil {
			break
		}
		select {
		case j := <-w.queue:
			batch = append(batch, j)
		case <-timeout:
			return batch
		case <-w.quit:
			return batch
		}
	}
	return batch
}

// drain answers the jobs still queued.
func (w *worker) drain() {
	for {
		select {
		case j := <-w.queue:
			w.metrics.captions.add(1, w.model.Name, "unavailable")
			j.done <- jobResult{err: ErrClosed}
		default:
			return
		}
	}
}

// process answers the jobs whose requests ended while queued and captions the others, one model
// call per set of equal generation options (in order of first appearance).
func (w *worker) process(batch []*job) {
	var groups [][]*job
	index := map[genKey]int{}
	for _, j := range batch {
		if err := j.ctx.Err(); err != nil {
			j.done <- jobResult{err: err}
			continue
		}
		i, ok := index[j.key]
		if !ok {
			i = len(groups)
			index[j.key] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], j)
	}
	for _, g := range groups {
		w.caption(g)
	}
}

// caption runs one model call for jobs that share their options. If the call fails for a batch
// of several, each job is retried alone so that one bad image does not fail the others.
func (w *worker) caption(jobs []*job) {
	start := time.Now()
	caps, err := w.call(jobs)
	if err != nil && len(jobs) > 1 && w.base.Err() == nil {
		for _, j := range jobs {
			if j.ctx.Err() == nil {
				w.caption([]*job{j})
			} else {
				j.done <- jobResult{err: j.ctx.Err()}
			}
		}
		return
	}
	for i, j := range jobs {
		r := jobResult{err: err, batch: len(jobs), wait: start.Sub(j.queued)}
		if err == nil {
			r.caption = caps[i]
		}
		j.done <- r
	}
}

// call captions the jobs' images in one model call. Its context ends when every job's context
// has ended, so that generation stops once nobody waits for it.
func (w *worker) call(jobs []*job) (caps []models.Caption, err error) {
	ctx, cancel := context.WithCancel(w.base)
	defer cancel()
	left := int32(len(jobs))
	imgs := make([]*image.RGB, len(jobs))
	for i, j := range jobs {
		imgs[i] = j.img
		stop := context.AfterFunc(j.ctx, func() {
			if atomic.AddInt32(&left, -1) == 0 {
				cancel()
			}
		})
		defer stop()
	}
	w.busy.Store(true)
	defer w.busy.Store(false)
	start := time.Now()
	err = torchx.Recover("caption with "+w.model.Name, func() error {
		var err error
		caps, err = w.model.Captioner.CaptionImages(ctx, imgs, jobs[0].key.options())
		return err
	})
	if err == nil && len(caps) != len(imgs) {
		err = fmt.Errorf("%s returned %d captions for %d images", w.model.Name, len(caps), len(imgs))
	}
	w.metrics.batchSize.observe(float64(len(jobs)), w.model.Name)
	w.metrics.batchDuration.observe(time.Since(start).Seconds(), w.model.Name)
	return caps, err
}
