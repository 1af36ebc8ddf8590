package torchx

import (
	"fmt"
	"runtime"
	"sync"
	"syscall"

	"github.com/sugarme/gotch/ts"
)

// A Scope collects every tensor created on its OS thread while it is open and frees them when
// it closes, except those passed to Keep. It is how a training or inference step releases its
// intermediate tensors deterministically instead of waiting for Go's garbage collector, which
// does not see libtorch's memory.
//
// Scopes nest: a kept tensor moves to the enclosing scope of the same thread (if any), which
// frees it in turn unless it is kept there too.
type Scope struct {
	tid     int
	parent  *Scope
	tensors []*ts.Tensor
	kept    map[*ts.Tensor]bool
}

var (
	scopeMu sync.Mutex
	scopes  = map[int]*Scope{} // innermost open scope per OS thread id
)

func init() {
	ts.TensorHook = onNewTensor
}

func onNewTensor(t *ts.Tensor) {
	scopeMu.Lock()
	if len(scopes) > 0 {
		if s := scopes[syscall.Gettid()]; s != nil {
			s.tensors = append(s.tensors, t)
		}
	}
	scopeMu.Unlock()
}

// WithScope locks the goroutine to its OS thread, opens a Scope, runs fn, and frees every tensor
// created inside fn that fn did not Keep, also when fn fails or panics.
func WithScope(fn func(s *Scope) error) (err error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tid := syscall.Gettid()
	scopeMu.Lock()
	s := &Scope{tid: tid, parent: scopes[tid]}
	scopes[tid] = s
	scopeMu.Unlock()
	defer func() {
		scopeMu.Lock()
		if s.parent != nil {
			scopes[tid] = s.parent
		} else {
			delete(scopes, tid)
		}
		scopeMu.Unlock()
		if cerr := s.release(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	return fn(s)
}

// Keep exempts tensors from being freed when s closes; with an enclosing scope they are handed
// to it. It returns its first argument for convenience: `return s.Keep(loss)`.
func (s *Scope) Keep(tensors ...*ts.Tensor) *ts.Tensor {
	if s.kept == nil {
		s.kept = map[*ts.Tensor]bool{}
	}
	for _, t := range tensors {
		s.kept[t] = true
	}
	if len(tensors) == 0 {
		return nil
	}
	return tensors[0]
}

// Len reports how many tensors the scope has collected so far.
func (s *Scope) Len() int {
	scopeMu.Lock()
	defer scopeMu.Unlock()
	return len(s.tensors)
}

func (s *Scope) release() error {
	var first error
	var handOver []*ts.Tensor
	for _, t := range s.tensors {
		if s.kept[t] {
			handOver = append(handOver, t)
			continue
		}
		if err := t.Drop(); err != nil && first == nil {
			first = fmt.Errorf("free tensor: %w", Err("", err))
		}
	}
	if s.parent != nil && len(handOver) > 0 {
		scopeMu.Lock()
		s.parent.tensors = append(s.parent.tensors, handOver...)
		scopeMu.Unlock()
	}
	s.tensors = nil
	return first
}
