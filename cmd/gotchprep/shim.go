package main

import (
	"embed"
	"os"
	"path"
	"path/filepath"
)

// shimCommon holds shim.h, the helpers every shim includes (error strings, exception guard).
//
//go:embed shimcommon
var shimCommon embed.FS

// writeShimSources writes a shim's sources into dir: the named files of sub in fsys, its
// binding.go.in as binding.go, and shim.h.
func writeShimSources(dir string, fsys embed.FS, sub string, names ...string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	copies := map[string]string{path.Join(sub, "binding.go.in"): "binding.go"}
	for _, name := range names {
		copies[path.Join(sub, name)] = name
	}
	for from, to := range copies {
		b, err := fsys.ReadFile(from)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, to), b, 0o644); err != nil {
			return err
		}
	}
	common, err := shimCommon.ReadFile("shimcommon/shim.h")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "shim.h"), common, 0o644)
}
