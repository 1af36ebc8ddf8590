package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWriteKernShim writes the kernels shim with a compiler that accepts it and with one that
// rejects it: the first gives OpenMP flags and no note, the second the stub build and a note
// quoting the compiler's error.
func TestWriteKernShim(t *testing.T) {
	for _, c := range []struct {
		name, script string
		wantNote     string
		wantFlag     string
	}{
		{"compiles", "#!/bin/sh\nexit 0\n", "", "-fopenmp"},
		{"fails", "#!/bin/sh\necho \"kern.cpp:3:10: error: 'Dispatcher' is not a member of 'c10'\" >&2\nexit 1\n",
			"'Dispatcher' is not a member", "-DIMGCAP_QUANT_NONE"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			cxx := filepath.Join(dir, "fake-g++")
			if err := os.WriteFile(cxx, []byte(c.script), 0o755); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "imgcapkern")
			note, err := writeKernShim(out, torchSetup{Version: "9.9"}, cxx)
			if err != nil {
				t.Fatal(err)
			}
			if c.wantNote == "" && note != "" || !strings.Contains(note, c.wantNote) {
				t.Errorf("note %q, want %q", note, c.wantNote)
			}
			for _, f := range []string{"kern.h", "kern.cpp", "shim.h", "binding.go", "flags.go"} {
				if _, err := os.Stat(filepath.Join(out, f)); err != nil {
					t.Error(err)
				}
			}
			flags, _ := os.ReadFile(filepath.Join(out, "flags.go"))
			if !strings.Contains(string(flags), c.wantFlag) || !strings.Contains(string(flags), "package imgcapkern") {
				t.Errorf("flags.go lacks %s:\n%s", c.wantFlag, flags)
			}
		})
	}
}

// TestWriteKernShimSystem compiles (syntax only) the kernels shim against the system libtorch, as
// `make setup` does: it must compile without falling back to the stub.
func TestWriteKernShimSystem(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles against libtorch")
	}
	ts, err := detectTorch("")
	if err != nil {
		t.Skip(err)
	}
	note, err := writeKernShim(filepath.Join(t.TempDir(), "imgcapkern"), ts, "g++")
	if err != nil {
		t.Fatal(err)
	}
	if note != "" {
		t.Errorf("system libtorch: %s", note)
	}
}
