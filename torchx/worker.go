package torchx

import (
	"context"
	"errors"
	"runtime"
	"sync"
)

// ErrWorkerClosed is returned by Worker.Do after Close.
var ErrWorkerClosed = errors.New("torch worker closed")

// A Worker runs torch work on one goroutine locked to one OS thread for its whole life, so
// that libtorch's per-thread state (grad mode, last error, scopes) is never split between
// threads. Servers run one Worker per model; Do may be called from any goroutine.
type Worker struct {
	jobs   chan job
	done   chan struct{}
	closed sync.Once
	wg     sync.WaitGroup
}

type job struct {
	fn  func() error
	res chan error
}

// NewWorker starts a worker goroutine locked to its own OS thread.
func NewWorker() *Worker {
	w := &Worker{jobs: make(chan job), done: make(chan struct{})}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		runtime.LockOSThread()
		// The thread is not unlocked: when the goroutine exits, Go ends the thread with it,
		// so no other goroutine inherits its libtorch state.
		for {
			select {
			case j := <-w.jobs:
				j.res <- Recover("torch worker", j.fn)
			case <-w.done:
				return
			}
		}
	}()
	return w
}

// Do runs fn on the worker's thread and returns its error. If ctx ends before the worker takes
// the job, Do returns ctx.Err() without running fn; once started, fn runs to completion.
func (w *Worker) Do(ctx context.Context, fn func() error) error {
	j := job{fn: fn, res: make(chan error, 1)}
	select {
	case w.jobs <- j:
	case <-w.done:
		return ErrWorkerClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	return <-j.res
}

// Close stops the worker after the job in progress, if any, and waits for it.
func (w *Worker) Close() {
	w.closed.Do(func() { close(w.done) })
	w.wg.Wait()
}
