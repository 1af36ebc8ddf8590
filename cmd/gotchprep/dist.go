package main

import (
	"bytes"
	"embed"
	"fmt"
	"go/format"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// distShim holds imgcap's c10d shim: dist.h, dist.cpp and binding.go.in, which become the
// package github.com/sugarme/gotch/imgcapdist of the prepared module.
//
//go:embed distshim
var distShim embed.FS

// distEnv are the environment variables that locate CUDA and NCCL headers for the NCCL backend.
var distEnv = []string{"CUDA_HOME", "CUDA_PATH", "NCCL_HOME"}

// distSetup is what the shim was compiled with.
type distSetup struct {
	Gloo, NCCL bool
	Defines    []string // -D flags
	Include    []string // extra -I folders (CUDA, NCCL)
	// Note says why a backend is missing ("" when the build has every backend it could have).
	Note string
}

func (d distSetup) summary() string {
	var b []string
	if d.Gloo {
		b = append(b, "gloo")
	}
	if d.NCCL {
		b = append(b, "nccl")
	}
	s := strings.Join(b, ", ")
	if s == "" {
		s = "none"
	}
	if d.Note != "" {
		s += " (" + d.Note + ")"
	}
	return s
}

// cudaIncludes lists the existing folders that may hold the CUDA runtime and NCCL headers
// ProcessGroupNCCL.hpp includes: CUDA_HOME/CUDA_PATH/NCCL_HOME, /usr/local/cuda, and, for a
// libtorch inside a pip torch, the nvidia/* packages beside it.
func cudaIncludes(ts torchSetup) []string {
	var cands []string
	for _, k := range distEnv {
		if v := os.Getenv(k); v != "" {
			cands = append(cands, filepath.Join(v, "include"))
		}
	}
	cands = append(cands, "/usr/local/cuda/include")
	if ts.Root != "" {
		matches, _ := filepath.Glob(filepath.Join(filepath.Dir(ts.Root), "nvidia", "*", "include"))
		cands = append(cands, matches...)
	}
	var out []string
	seen := map[string]bool{}
	for _, c := range cands {
		if fi, err := os.Stat(c); err == nil && fi.IsDir() && !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	return out
}

// distVariants are the shim configurations to try, best first.
func distVariants(ts torchSetup) []distSetup {
	gloo := distSetup{Gloo: true, Defines: []string{"-DUSE_C10D_GLOO", "-DIMGCAP_DIST_GLOO"}}
	var vs []distSetup
	if ts.CUDA {
		inc := cudaIncludes(ts)
		nccl := []string{"-DUSE_C10D_NCCL", "-DIMGCAP_DIST_NCCL"}
		vs = append(vs,
			distSetup{Gloo: true, NCCL: true, Defines: append(append([]string{}, gloo.Defines...), nccl...), Include: inc},
			gloo,
			distSetup{NCCL: true, Defines: nccl, Include: inc})
	} else {
		vs = append(vs, gloo)
	}
	return append(vs, distSetup{})
}

func (d distSetup) cxxFlags(ts torchSetup) []string {
	f := cxxFlags(ts)
	for _, inc := range d.Include {
		f = append(f, "-I"+inc)
	}
	return append(f, d.Defines...)
}

// writeDistShim writes the imgcapdist package into dir, compiled with the best configuration
// of distVariants that compiles (checked with the compiler's syntax-only mode).
func writeDistShim(dir string, ts torchSetup, cxx string) (distSetup, error) {
	if err := writeShimSources(dir, distShim, "distshim", "dist.h", "dist.cpp"); err != nil {
		return distSetup{}, err
	}
	var chosen distSetup
	var firstErr string
	for _, v := range distVariants(ts) {
		fmt.Printf("gotchprep: checking the c10d shim with %s...\n", v.label())
		args := append([]string{"-fsyntax-only", "-w"}, v.cxxFlags(ts)...)
		args = append(args, filepath.Join(dir, "dist.cpp"))
		out, err := exec.Command(cxx, args...).CombinedOutput()
		if err == nil {
			chosen = v
			break
		}
		if firstErr == "" {
			firstErr = string(out)
		}
	}
	if !chosen.Gloo {
		chosen.Note = distNote(firstErr, ts)
	}
	src, err := distFlagsGo(ts, chosen)
	if err != nil {
		return chosen, err
	}
	return chosen, os.WriteFile(filepath.Join(dir, "flags.go"), src, 0o644)
}

func (d distSetup) label() string {
	switch {
	case d.Gloo && d.NCCL:
		return "Gloo and NCCL"
	case d.Gloo:
		return "Gloo"
	case d.NCCL:
		return "NCCL"
	}
	return "no backend"
}

// distNote explains, from the compiler output of the best variant, why Gloo is missing.
func distNote(out string, ts torchSetup) string {
	switch {
	case strings.Contains(out, "gloo/") && strings.Contains(out, "No such file"):
		return "the Gloo headers are missing: install libgloo-dev (apt-get install libgloo-dev) and run `make setup` again"
	case strings.Contains(out, "c10d/") && strings.Contains(out, "No such file"):
		return fmt.Sprintf("libtorch %s has no c10d headers", ts.Version)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, l := range lines {
		if strings.Contains(l, "error:") {
			return "the c10d shim does not compile against libtorch " + ts.Version + ": " + strings.TrimSpace(l)
		}
	}
	return "the c10d shim does not compile against libtorch " + ts.Version
}

// distFlagsGo renders flags.go of the imgcapdist package: its cgo flags and what it was built with.
func distFlagsGo(ts torchSetup, d distSetup) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("// Code written by imgcap's gotchprep for the libtorch of this machine. DO NOT EDIT.\n\n")
	b.WriteString("// Package imgcapdist is imgcap's cgo shim over libtorch's c10d process groups (TCPStore,\n")
	b.WriteString("// ProcessGroupGloo, ProcessGroupNCCL), written by gotchprep from imgcap's cmd/gotchprep/distshim.\n")
	b.WriteString("package imgcapdist\n\n")
	fmt.Fprintf(&b, "// #cgo LDFLAGS: %s\n", strings.Join(ldFlags(ts), " "))
	fmt.Fprintf(&b, "// #cgo CXXFLAGS: -I${SRCDIR} -O2 -Wno-deprecated-declarations %s\n", strings.Join(d.cxxFlags(ts), " "))
	b.WriteString("import \"C\"\n\n")
	fmt.Fprintf(&b, "// Unavailable, when not empty, says why this build has no Gloo backend.\nconst Unavailable = %q\n", d.Note)
	return format.Source(b.Bytes())
}
