// Package torchx is imgcap's torch runtime: the one place that knows gotch's traps.
//
// libtorch keeps its grad mode and its last-error slot per OS thread, and gotch's Must*
// functions exit the process. torchx therefore runs torch work on goroutines locked to an OS
// thread (Worker, Locked), offers a no-grad scope that restores the previous mode (NoGrad), a
// step scope that frees every tensor created inside it (Scope), error values with short
// messages (Err), and the thread, seed and device settings gotch has no binding for.
package torchx

import (
	"errors"
	"fmt"
	"runtime"
	"strings"

	"github.com/sugarme/gotch/ts"
)

// Locked runs fn on the calling goroutine while it is locked to its OS thread, so that
// libtorch's per-thread state (grad mode, last error) stays consistent inside fn.
func Locked(fn func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return fn()
}

// NoGrad runs fn with gradient recording off and restores the previous mode afterwards,
// also when fn fails or panics. Unlike gotch's ts.NoGrad it nests correctly.
// It locks the goroutine to its OS thread for the duration, since grad mode is per thread.
func NoGrad(fn func() error) error {
	return setGrad(false, fn)
}

// WithGrad runs fn with gradient recording on and restores the previous mode afterwards.
func WithGrad(fn func() error) error {
	return setGrad(true, fn)
}

func setGrad(on bool, fn func() error) (err error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	prev, err := gradSetEnabled(on)
	if err != nil {
		return err
	}
	defer func() {
		if _, rerr := gradSetEnabled(prev); rerr != nil && err == nil {
			err = rerr
		}
	}()
	return fn()
}

// GradEnabled reports whether the calling OS thread records gradients. Call it from a locked
// goroutine (inside Locked, NoGrad or a Worker) for a meaningful answer.
func GradEnabled() (bool, error) {
	prev, err := gradSetEnabled(true)
	if err != nil {
		return false, err
	}
	if _, err := gradSetEnabled(prev); err != nil {
		return false, err
	}
	return prev, nil
}

// Error is a libtorch failure: the operation that failed and libtorch's own message, without
// the Go stack dump gotch appends.
type Error struct {
	Op  string // what imgcap was doing
	Msg string // libtorch's message (first lines)
}

func (e *Error) Error() string {
	if e.Op == "" {
		return "libtorch: " + e.Msg
	}
	return e.Op + ": libtorch: " + e.Msg
}

// Err wraps a gotch error as an *Error whose message is short: libtorch's exception text up
// to its C++ backtrace, without gotch's Go stack dump. It returns nil for a nil err.
func Err(op string, err error) error {
	if err == nil {
		return nil
	}
	var te *Error
	if errors.As(err, &te) {
		if op == "" || te.Op != "" {
			return err
		}
		return &Error{Op: op, Msg: te.Msg}
	}
	return &Error{Op: op, Msg: shortTorchMessage(err.Error())}
}

// shortTorchMessage keeps the meaningful head of a gotch error text.
func shortTorchMessage(s string) string {
	s = strings.TrimPrefix(s, "Libtorch API Error: ")
	var keep []string
	for _, line := range strings.Split(s, "\n") {
		t := strings.TrimSpace(line)
		if t == "" {
			if len(keep) > 0 {
				break
			}
			continue
		}
		// libtorch appends "Exception raised from ..." and a C++ backtrace; gotch appends
		// "goroutine N [running]:" and a Go stack.
		if strings.HasPrefix(t, "Exception raised from") || strings.HasPrefix(t, "goroutine ") ||
			strings.HasPrefix(t, "frame #") {
			break
		}
		keep = append(keep, t)
		if len(keep) == 4 {
			break
		}
	}
	if len(keep) == 0 {
		return strings.TrimSpace(s)
	}
	return strings.Join(keep, " ")
}

// Check returns libtorch's pending error on this OS thread, if any, as an *Error.
func Check(op string) error {
	return Err(op, ts.TorchErr())
}

// Recover converts a panic inside fn (gotch's Must* helpers panic on some paths, and our own
// code may index badly) into an error, so that a failing batch does not kill a server.
func Recover(op string, fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: panic: %v", op, r)
		}
	}()
	return fn()
}
