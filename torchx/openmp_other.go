//go:build !linux

package torchx

// PassiveOpenMP does nothing outside Linux (see openmp_linux.go).
func PassiveOpenMP() error { return nil }
