package main

import (
	"go/format"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDistVariants(t *testing.T) {
	tests := []struct {
		name string
		ts   torchSetup
		want []string
	}{
		{"cpu", torchSetup{}, []string{"Gloo", "no backend"}},
		{"cuda", torchSetup{CUDA: true}, []string{"Gloo and NCCL", "Gloo", "NCCL", "no backend"}},
	}
	for _, tc := range tests {
		var got []string
		for _, v := range distVariants(tc.ts) {
			got = append(got, v.label())
		}
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%s: variants %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestDistFlagsGo(t *testing.T) {
	tests := []struct {
		name     string
		ts       torchSetup
		d        distSetup
		contains []string
		absent   []string
	}{
		{"system gloo", torchSetup{Include: []string{"/usr/include/torch/csrc/api/include"}, CXX11ABI: true},
			distVariants(torchSetup{})[0],
			[]string{"-DUSE_C10D_GLOO -DIMGCAP_DIST_GLOO", "-I/usr/include/torch/csrc/api/include", "-ltorch -ltorch_cpu -lc10", `const Unavailable = ""`},
			[]string{"C10D_NCCL", "_GLIBCXX_USE_CXX11_ABI"}},
		{"downloaded cuda", torchSetup{Root: "/opt/lt", Include: []string{"/opt/lt/include"}, LibDir: "/opt/lt/lib", CUDA: true},
			distSetup{Gloo: true, NCCL: true, Defines: []string{"-DUSE_C10D_GLOO", "-DIMGCAP_DIST_GLOO", "-DUSE_C10D_NCCL", "-DIMGCAP_DIST_NCCL"}, Include: []string{"/usr/local/cuda/include"}},
			[]string{"-DIMGCAP_DIST_NCCL", "-I/usr/local/cuda/include", "-Wl,-rpath,/opt/lt/lib", "-ltorch_cuda", "-D_GLIBCXX_USE_CXX11_ABI=0"},
			nil},
		{"none", torchSetup{}, distSetup{Note: "the Gloo headers are missing"},
			[]string{`const Unavailable = "the Gloo headers are missing"`},
			[]string{"IMGCAP_DIST_GLOO"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src, err := distFlagsGo(tc.ts, tc.d)
			if err != nil {
				t.Fatal(err)
			}
			s := string(src)
			for _, c := range tc.contains {
				if !strings.Contains(s, c) {
					t.Errorf("flags.go lacks %q:\n%s", c, s)
				}
			}
			for _, a := range tc.absent {
				if strings.Contains(s, a) {
					t.Errorf("flags.go has %q:\n%s", a, s)
				}
			}
		})
	}
}

// TestDistBindingTemplate checks that the Go binding copied into the prepared module is valid,
// gofmt-formatted Go of package imgcapdist.
func TestDistBindingTemplate(t *testing.T) {
	b, err := distShim.ReadFile("distshim/binding.go.in")
	if err != nil {
		t.Fatal(err)
	}
	f, err := parser.ParseFile(token.NewFileSet(), "binding.go", b, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	if f.Name.Name != "imgcapdist" {
		t.Errorf("package %s", f.Name.Name)
	}
	formatted, err := format.Source(b)
	if err != nil || string(formatted) != string(b) {
		t.Errorf("binding.go.in is not gofmt-formatted (%v)", err)
	}
}

// TestWriteDistShimFallback uses a stand-in compiler that rejects the Gloo variants the way a
// machine without libgloo-dev does: the shim is written without a backend, and the reason
// names the package to install.
func TestWriteDistShimFallback(t *testing.T) {
	dir := t.TempDir()
	cxx := filepath.Join(dir, "fake-g++")
	script := `#!/bin/sh
case "$*" in
*IMGCAP_DIST_GLOO*) echo "ProcessGroupGloo.hpp:12:10: fatal error: gloo/algorithm.h: No such file or directory" >&2; exit 1;;
esac
exit 0
`
	if err := os.WriteFile(cxx, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "imgcapdist")
	d, err := writeDistShim(out, torchSetup{Version: "9.9"}, cxx)
	if err != nil {
		t.Fatal(err)
	}
	if d.Gloo || d.NCCL || !strings.Contains(d.Note, "libgloo-dev") {
		t.Errorf("setup %+v", d)
	}
	for _, f := range []string{"dist.h", "dist.cpp", "shim.h", "binding.go", "flags.go"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	flags, _ := os.ReadFile(filepath.Join(out, "flags.go"))
	if strings.Contains(string(flags), "IMGCAP_DIST_GLOO") || !strings.Contains(string(flags), "libgloo-dev") {
		t.Errorf("flags.go:\n%s", flags)
	}
}

// TestWriteDistShimSystem compiles (syntax only) the shim against the system libtorch, as
// `make setup` does: Gloo must be found when libgloo-dev is installed.
func TestWriteDistShimSystem(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles against libtorch")
	}
	ts, err := detectTorch("")
	if err != nil {
		t.Skip(err)
	}
	if _, err := os.Stat("/usr/include/gloo/algorithm.h"); err != nil {
		t.Skip("libgloo-dev is not installed")
	}
	d, err := writeDistShim(filepath.Join(t.TempDir(), "imgcapdist"), ts, "g++")
	if err != nil {
		t.Fatal(err)
	}
	if !d.Gloo || d.Note != "" {
		t.Errorf("system libtorch with libgloo-dev: %+v (%s)", d, d.summary())
	}
}
