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

// kernShim holds imgcap's CPU kernels (int8 linear layers, few-query attention): kern.h,
// kern.cpp and binding.go.in, which become the package github.com/sugarme/gotch/imgcapkern of
// the prepared module.
//
//go:embed kernshim
var kernShim embed.FS

// writeKernShim writes the imgcapkern package into dir. When the shim does not compile
// against this libtorch (checked with the compiler's syntax-only mode) it is built with
// -DIMGCAP_QUANT_NONE (every int8 call then returns an error and the attention kernel declines),
// and the returned note says why int8 layers are unavailable.
func writeKernShim(dir string, ts torchSetup, cxx string) (note string, err error) {
	if err := writeShimSources(dir, kernShim, "kernshim", "kern.h", "kern.cpp"); err != nil {
		return "", err
	}
	flags := cxxFlags(ts)
	fmt.Println("gotchprep: checking the CPU kernels shim (int8, attention)...")
	args := append([]string{"-fsyntax-only", "-w"}, flags...)
	out, cerr := exec.Command(cxx, append(args, filepath.Join(dir, "kern.cpp"))...).CombinedOutput()
	if cerr != nil {
		note = "the kernels shim does not compile against libtorch " + ts.Version
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, "error:") {
				note += ": " + strings.TrimSpace(l)
				break
			}
		}
		flags = append(flags, "-DIMGCAP_QUANT_NONE")
	}
	src, err := kernFlagsGo(ts, flags, note)
	if err != nil {
		return note, err
	}
	return note, os.WriteFile(filepath.Join(dir, "flags.go"), src, 0o644)
}

// kernFlagsGo renders flags.go of the imgcapkern package.
func kernFlagsGo(ts torchSetup, flags []string, note string) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("// Code written by imgcap's gotchprep for the libtorch of this machine. DO NOT EDIT.\n\n")
	b.WriteString("// Package imgcapkern is imgcap's cgo shim for its CPU kernels: int8 linear layers (libtorch's\n")
	b.WriteString("// dynamic quantized kernels and a weight-only product) and few-query attention, written by\n")
	b.WriteString("// gotchprep from imgcap's cmd/gotchprep/kernshim.\n")
	b.WriteString("package imgcapkern\n\n")
	// -fopenmp: at::parallel_for is inline OpenMP code in libtorch's headers, serial without it.
	fmt.Fprintf(&b, "// #cgo LDFLAGS: -fopenmp %s\n", strings.Join(ldFlags(ts), " "))
	fmt.Fprintf(&b, "// #cgo CXXFLAGS: -I${SRCDIR} -O3 -fopenmp -Wno-deprecated-declarations %s\n", strings.Join(flags, " "))
	b.WriteString("import \"C\"\n\n")
	fmt.Fprintf(&b, "// Unavailable, when not empty, says why this build has no int8 layers.\nconst Unavailable = %q\n", note)
	return format.Source(b.Bytes())
}
