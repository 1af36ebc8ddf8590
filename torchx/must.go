package torchx

import "github.com/sugarme/gotch/ts"

// opFailure carries a libtorch error up to the nearest Catch.
type opFailure struct{ err error }

// Must returns t, or unwinds to the enclosing Catch with err. Model code chains many tensor ops;
// Must keeps that code readable while Catch at the function boundary turns a failure back into
// an ordinary error (unlike gotch's Must* functions, which exit the process).
func Must(t *ts.Tensor, err error) *ts.Tensor {
	if err != nil {
		panic(opFailure{Err("", err)})
	}
	return t
}

// Must2 is Must for ops that return two tensors.
func Must2(a, b *ts.Tensor, err error) (*ts.Tensor, *ts.Tensor) {
	if err != nil {
		panic(opFailure{Err("", err)})
	}
	return a, b
}

// MustOK unwinds to the enclosing Catch if err is not nil.
func MustOK(err error) {
	if err != nil {
		panic(opFailure{Err("", err)})
	}
}

// Catch, deferred with a pointer to the function's error result, stops an unwind started by
// Must and stores its error. Other panics continue: they are bugs.
func Catch(errp *error) {
	if r := recover(); r != nil {
		f, ok := r.(opFailure)
		if !ok {
			panic(r)
		}
		*errp = f.err
	}
}

// MustSize returns t's shape, or unwinds to the enclosing Catch.
func MustSize(t *ts.Tensor) []int64 {
	s, err := t.Size()
	if err != nil {
		panic(opFailure{Err("size", err)})
	}
	return s
}

// SizeOrNil returns t's shape, or nil when it cannot be read (for messages).
func SizeOrNil(t *ts.Tensor) []int64 {
	s, err := t.Size()
	if err != nil {
		return nil
	}
	return s
}
