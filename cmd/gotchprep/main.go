// Command gotchprep prepares github.com/sugarme/gotch for the libtorch on this machine.
//
// gotch v0.9.1 hard-codes CUDA link flags and a libtorch/ folder in libtch/lib.go, and some of
// its generated ops do not compile against libtorch versions other than 2.1. gotchprep copies the
// pinned module from the module cache into a git-ignored folder, writes cgo flags for the chosen
// libtorch (Debian's system package, or a downloaded CPU/CUDA libtorch named by -libtorch), and
// replaces the body of every generated op that the compiler rejects with a runtime error, so the
// build succeeds and a call of such an op returns a Go error. It also writes the Go package
// github.com/sugarme/gotch/imgcapinfo describing what it did, which `imgcap env` reports, and
// the package github.com/sugarme/gotch/imgcapdist: imgcap's cgo shim over libtorch's c10d
// (distshim/), compiled with the same flags plus the c10d backends whose headers compile here
// (Gloo; NCCL on a CUDA libtorch), and github.com/sugarme/gotch/imgcapkern: imgcap's CPU
// kernels for inference (int8 linear layers over libtorch's quantized ops plus a weight-only
// product, few-query attention; kernshim/).
//
// It is run by `make setup`; it is idempotent (a stamp file records the inputs).
package main

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// prepVersion changes whenever the preparation logic changes, forcing a rebuild of the folder.
const prepVersion = "10"

// generatedFile is the C++ file of generated op wrappers that gotchprep patches.
const generatedFile = "torch_api_generated.cpp.h"

func main() {
	src := flag.String("src", "", "the pristine gotch module folder (from `go mod download -json`)")
	dst := flag.String("dst", "build/gotch", "the folder to prepare (go.mod's replace target)")
	libtorch := flag.String("libtorch", "", "a downloaded libtorch folder (with include/ and lib/); empty for the system libtorch")
	cxx := flag.String("cxx", "g++", "the C++ compiler used to find ops that do not compile")
	force := flag.Bool("force", false, "prepare again even if the stamp says the folder is current")
	flag.Parse()
	if *src == "" {
		fmt.Fprintln(os.Stderr, "gotchprep: -src is required")
		os.Exit(2)
	}
	if err := run(*src, *dst, *libtorch, *cxx, *force); err != nil {
		fmt.Fprintln(os.Stderr, "gotchprep:", err)
		os.Exit(1)
	}
}

// torchSetup describes one libtorch installation.
type torchSetup struct {
	Root     string // "" for the system (Debian) libtorch
	Include  []string
	LibDir   string // "" when the linker finds it by default
	CUDA     bool
	CXX11ABI bool
	Version  string
}

func run(src, dst, libtorch, cxx string, force bool) error {
	ts, err := detectTorch(libtorch)
	if err != nil {
		return err
	}
	stamp := stampOf(src, ts)
	stampFile := filepath.Join(dst, ".imgcap-stamp")
	if !force {
		if b, err := os.ReadFile(stampFile); err == nil && strings.TrimSpace(string(b)) == stamp {
			fmt.Printf("gotchprep: %s is current (libtorch %s%s)\n", dst, ts.Version, cudaWord(ts))
			return nil
		}
	}
	tmp := dst + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := copyTree(src, tmp); err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if err := writeLibGo(filepath.Join(tmp, "libtch", "lib.go"), ts); err != nil {
		return err
	}
	disabled, err := stubFailingOps(filepath.Join(tmp, "libtch"), ts, cxx)
	if err != nil {
		return err
	}
	if err := addTensorHook(filepath.Join(tmp, "ts")); err != nil {
		return err
	}
	if err := fixResultBuffers(filepath.Join(tmp, "ts", "tensor-generated.go")); err != nil {
		return err
	}
	if err := writeInfo(tmp, ts, disabled); err != nil {
		return err
	}
	ds, err := writeDistShim(filepath.Join(tmp, "imgcapdist"), ts, cxx)
	if err != nil {
		return err
	}
	qnote, err := writeKernShim(filepath.Join(tmp, "imgcapkern"), ts, cxx)
	if err != nil {
		return err
	}
	if qnote != "" {
		fmt.Printf("gotchprep: int8 layers unavailable: %s\n", qnote)
	}
	if err := os.WriteFile(filepath.Join(tmp, ".imgcap-stamp"), []byte(stamp+"\n"), 0o644); err != nil {
		return err
	}
	if err := os.RemoveAll(dst); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		return err
	}
	fmt.Printf("gotchprep: prepared %s for libtorch %s%s; %d generated ops disabled (list: %s); distributed backends: %s\n",
		dst, ts.Version, cudaWord(ts), len(disabled), filepath.Join(dst, "DISABLED_OPS.txt"), ds.summary())
	return nil
}

func cudaWord(ts torchSetup) string {
	if ts.CUDA {
		return " with CUDA"
	}
	return " (CPU only)"
}

// detectTorch finds the headers and libraries of the system libtorch or of the folder root.
func detectTorch(root string) (torchSetup, error) {
	if root == "" {
		ts := torchSetup{Include: []string{"/usr/include/torch/csrc/api/include"}, CXX11ABI: true}
		if _, err := os.Stat("/usr/include/torch/csrc/api/include/torch/torch.h"); err != nil {
			return ts, errors.New("no system libtorch headers (/usr/include/torch): install libtorch-dev or set LIBTORCH=/path/to/libtorch")
		}
		ts.Version = versionFromHeader("/usr/include/torch/csrc/api/include/torch/version.h")
		// Debian's 1.13.1 package ships headers that say 1.13.0: prefer the package's version.
		if out, err := exec.Command("dpkg-query", "-W", "-f=${Version}", "libtorch-dev").Output(); err == nil && len(out) > 0 {
			pkg := string(out)
			upstream, _, _ := strings.Cut(pkg, "+")
			ts.Version = upstream + " (Debian libtorch-dev " + pkg + ")"
		}
		for _, d := range []string{"/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib"} {
			if _, err := os.Stat(filepath.Join(d, "libtorch_cuda.so")); err == nil {
				ts.CUDA = true
			}
		}
		return ts, nil
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return torchSetup{}, err
	}
	ts := torchSetup{
		Root:    abs,
		Include: []string{filepath.Join(abs, "include"), filepath.Join(abs, "include", "torch", "csrc", "api", "include")},
		LibDir:  filepath.Join(abs, "lib"),
	}
	if _, err := os.Stat(filepath.Join(ts.Include[1], "torch", "torch.h")); err != nil {
		return ts, fmt.Errorf("LIBTORCH=%s: no include/torch/csrc/api/include/torch/torch.h there", root)
	}
	c10 := filepath.Join(ts.LibDir, "libc10.so")
	if _, err := os.Stat(c10); err != nil {
		return ts, fmt.Errorf("LIBTORCH=%s: no lib/libc10.so there", root)
	}
	_, err = os.Stat(filepath.Join(ts.LibDir, "libtorch_cuda.so"))
	ts.CUDA = err == nil
	ts.Version = versionFromHeader(filepath.Join(ts.Include[1], "torch", "version.h"))
	abi, err := detectABI(c10)
	if err != nil {
		return ts, err
	}
	ts.CXX11ABI = abi
	return ts, nil
}

// detectABI reports whether a libtorch was built with the C++11 std::string ABI, from the
// mangled names libc10 exports.
func detectABI(c10 string) (bool, error) {
	out, err := exec.Command("nm", "-D", "--defined-only", c10).Output()
	if err != nil {
		return false, fmt.Errorf("nm -D %s (needed to detect the C++ ABI): %w", c10, err)
	}
	return strings.Contains(string(out), "__cxx11"), nil
}

var versionRe = regexp.MustCompile(`TORCH_VERSION\s+"([^"]+)"`)

func versionFromHeader(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "unknown"
	}
	if m := versionRe.FindSubmatch(b); m != nil {
		return string(m[1])
	}
	// 1.13 headers define MAJOR/MINOR/PATCH separately.
	get := func(name string) string {
		m := regexp.MustCompile(`TORCH_VERSION_` + name + `\s+(\d+)`).FindSubmatch(b)
		if m == nil {
			return "?"
		}
		return string(m[1])
	}
	return get("MAJOR") + "." + get("MINOR") + "." + get("PATCH")
}

// cxxFlags are the flags that compile libtch against ts.
func cxxFlags(ts torchSetup) []string {
	f := []string{"-std=c++17"}
	for _, inc := range ts.Include {
		f = append(f, "-I"+inc)
	}
	if !ts.CXX11ABI {
		f = append(f, "-D_GLIBCXX_USE_CXX11_ABI=0")
	}
	return f
}

func ldFlags(ts torchSetup) []string {
	var f []string
	if ts.LibDir != "" {
		f = append(f, "-L"+ts.LibDir, "-Wl,-rpath,"+ts.LibDir)
	}
	f = append(f, "-lstdc++", "-ltorch", "-ltorch_cpu", "-lc10")
	if ts.CUDA {
		// --no-as-needed keeps libtorch_cuda linked although no symbol of it is referenced:
		// loading it is what registers the CUDA backend.
		f = append(f, "-Wl,--no-as-needed", "-ltorch_cuda", "-lc10_cuda", "-Wl,--as-needed")
	}
	return f
}

func writeLibGo(path string, ts torchSetup) error {
	var b strings.Builder
	b.WriteString("// Code written by imgcap's gotchprep for the libtorch of this machine. DO NOT EDIT.\n\n")
	b.WriteString("package libtch\n\n")
	fmt.Fprintf(&b, "// #cgo LDFLAGS: %s\n", strings.Join(ldFlags(ts), " "))
	b.WriteString("// #cgo CFLAGS: -I${SRCDIR} -O3 -Wall -Wno-unused-variable -Wno-deprecated-declarations -Wno-c++11-narrowing -Wno-sign-compare -Wno-unused-function\n")
	if !ts.CXX11ABI {
		b.WriteString("// #cgo CFLAGS: -D_GLIBCXX_USE_CXX11_ABI=0\n")
	}
	cf := cxxFlags(ts)
	fmt.Fprintf(&b, "// #cgo CXXFLAGS: -I${SRCDIR} -O3 -Wno-deprecated-declarations %s\n", strings.Join(cf, " "))
	b.WriteString("import \"C\"\n")
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// opFunc is one generated wrapper: its name and the 0-based lines [start, end] it spans.
type opFunc struct {
	name       string
	start, end int
	void       bool
}

var funcStartRe = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*(?:\s*\*)?)\s+(atg_[A-Za-z0-9_]+)\(`)

// parseOps finds each generated function in the lines of generatedFile.
func parseOps(lines []string) []opFunc {
	var ops []opFunc
	for i := 0; i < len(lines); i++ {
		m := funcStartRe.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		op := opFunc{name: m[2], start: i, void: m[1] == "void"}
		for j := i + 1; j < len(lines); j++ {
			if lines[j] == "}" {
				op.end = j
				break
			}
		}
		if op.end == 0 {
			break
		}
		ops = append(ops, op)
		i = op.end
	}
	return ops
}

// errLineRe matches a compiler diagnostic located in generatedFile: an error, or the line that
// instantiated a template whose error is reported in a libtorch header.
var errLineRe = regexp.MustCompile(regexp.QuoteMeta(generatedFile) + `:(\d+):\d+:\s+(?:error:|required from here)`)

// stubFailingOps compiles libtch's C++ (syntax only) and replaces every generated function that
// fails with a stub raising a runtime error, repeating until the file compiles.
func stubFailingOps(libtch string, ts torchSetup, cxx string) ([]string, error) {
	genPath := filepath.Join(libtch, generatedFile)
	var disabled []string
	for round := 1; round <= 6; round++ {
		args := append([]string{"-fsyntax-only", "-fmax-errors=0", "-w", "-I" + libtch}, cxxFlags(ts)...)
		args = append(args, filepath.Join(libtch, "torch_api.cpp"))
		fmt.Printf("gotchprep: checking which ops compile (pass %d; this takes a minute)...\n", round)
		out, err := exec.Command(cxx, args...).CombinedOutput()
		if err == nil {
			sort.Strings(disabled)
			return disabled, nil
		}
		raw, rerr := os.ReadFile(genPath)
		if rerr != nil {
			return nil, rerr
		}
		lines := strings.Split(string(raw), "\n")
		bad := map[int]bool{}
		for _, m := range errLineRe.FindAllStringSubmatch(string(out), -1) {
			n, _ := strconv.Atoi(m[1])
			bad[n-1] = true
		}
		if len(bad) == 0 {
			return nil, fmt.Errorf("libtch does not compile, and not because of generated ops:\n%s", tail(string(out), 60))
		}
		names := stubOps(lines, bad, ts.Version)
		disabled = append(disabled, names...)
		if len(names) == 0 {
			return nil, fmt.Errorf("errors in %s outside any generated op:\n%s", generatedFile, tail(string(out), 60))
		}
		if err := os.WriteFile(genPath, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
			return nil, err
		}
	}
	return nil, errors.New("libtch still does not compile after 6 passes")
}

// stubOps replaces, in place, the body of every generated function containing a line of bad
// with a libtorch error, and returns the names of the functions it disabled.
func stubOps(lines []string, bad map[int]bool, version string) []string {
	var names []string
	for _, op := range parseOps(lines) {
		hit := false
		for l := op.start; l <= op.end; l++ {
			if bad[l] {
				hit = true
				break
			}
		}
		if !hit || strings.Contains(lines[op.start+1], "imgcap: disabled") {
			continue
		}
		lines[op.start+1] = fmt.Sprintf("  PROTECT(throw std::runtime_error(\"%s is not available: it does not compile against libtorch %s (imgcap: disabled by gotchprep)\");)", op.name, version)
		for l := op.start + 2; l < op.end; l++ {
			lines[l] = ""
		}
		if !op.void {
			lines[op.end-1] = "  return 0;"
		}
		names = append(names, op.name)
	}
	return names
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// hookAnchor is the end of gotch's ts.newTensor, which every tensor constructor goes through.
const hookAnchor = "\truntime.SetFinalizer(x, freeCTensor)\n\n\treturn x\n"

// ballastLine is newTensor's per-tensor 100 kB Go allocation.
const ballastLine = "\tx.d = new(bigStruct)\n"

// addTensorHook makes ts.newTensor call ts.TensorHook, so that imgcap's torchx scopes can free
// every tensor created inside them.
func addTensorHook(tsDir string) error {
	path := filepath.Join(tsDir, "tensor.go")
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if n := strings.Count(string(b), hookAnchor); n != 1 {
		return fmt.Errorf("%s: expected the end of newTensor once, found it %d times", path, n)
	}
	patched := strings.Replace(string(b), hookAnchor,
		"\truntime.SetFinalizer(x, freeCTensor)\n\n\tif h := TensorHook; h != nil {\n\t\th(x)\n\t}\n\n\treturn x\n", 1)
	// newTensor also allocates (and zeroes) a 100 kB Go ballast per tensor so that Go's GC feels
	// libtorch's memory; imgcap frees tensors with scopes instead, and the ballast cost ~40 MB of
	// allocation per GPT-2 decoding step (measured: 8% of generation time in memclr).
	if n := strings.Count(patched, ballastLine); n != 1 {
		return fmt.Errorf("%s: expected newTensor's ballast allocation once, found it %d times", path, n)
	}
	patched = strings.Replace(patched, ballastLine, "", 1)
	if err := os.WriteFile(path, []byte(patched), 0o644); err != nil {
		return err
	}
	hook := `// Code written by imgcap's gotchprep. DO NOT EDIT.

package ts

// TensorHook, when set (once, before any tensor work), is called with every tensor gotch creates.
// imgcap's torchx package uses it to free the tensors created inside a step scope.
var TensorHook func(*Tensor)
`
	return os.WriteFile(filepath.Join(tsDir, "imgcap_hook.go"), []byte(hook), 0o644)
}

// resultBufferFixes repair two memory bugs of gotch's generated Go wrappers:
//   - the result buffer is C.malloc(0), written with up to 7 tensor pointers (a heap overflow
//     that glibc's minimum chunk mostly hides) and never freed (about 80 bytes leaked per op):
//     it becomes a 64-byte buffer freed when the wrapper returns;
//   - in-place ops replace the tensor's C handle without freeing the old one, which keeps a
//     dropped temporary's storage alive: the old handle is freed first.
var resultBufferFixes = []struct{ old, new string }{
	{"ptr := (*lib.Ctensor)(unsafe.Pointer(C.malloc(0)))\n",
		"ptr := (*lib.Ctensor)(unsafe.Pointer(C.malloc(64)))\n  defer C.free(unsafe.Pointer(ptr))\n"},
	{"ctensorPtr0 := (*lib.Ctensor)(unsafe.Pointer(C.malloc(0)))\n",
		"ctensorPtr0 := (*lib.Ctensor)(unsafe.Pointer(C.malloc(64)))\n  defer C.free(unsafe.Pointer(ctensorPtr0))\n"},
	{"  ts.ctensor = *ptr\n", "  lib.AtFree(ts.ctensor)\n  ts.ctensor = *ptr\n"},
}

// fixResultBuffers applies resultBufferFixes to gotch's generated tensor wrappers.
func fixResultBuffers(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s := string(b)
	for _, f := range resultBufferFixes {
		if !strings.Contains(s, f.old) {
			return fmt.Errorf("%s: pattern %q not found: gotch's generated code changed", path, f.old)
		}
		s = strings.ReplaceAll(s, f.old, f.new)
	}
	if strings.Contains(s, "C.malloc(0)") {
		return fmt.Errorf("%s: a C.malloc(0) result buffer was left unpatched", path)
	}
	return os.WriteFile(path, []byte(s), 0o644)
}

// writeInfo writes DISABLED_OPS.txt and the imgcapinfo Go package into the prepared module.
func writeInfo(dir string, ts torchSetup, disabled []string) error {
	if err := os.WriteFile(filepath.Join(dir, "DISABLED_OPS.txt"), []byte(strings.Join(disabled, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	root := ts.Root
	if root == "" {
		root = "system"
	}
	q := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	var b strings.Builder
	b.WriteString("// Code written by imgcap's gotchprep. DO NOT EDIT.\n\n")
	b.WriteString("// Package imgcapinfo describes how imgcap prepared this copy of gotch.\n")
	b.WriteString("package imgcapinfo\n\n")
	fmt.Fprintf(&b, "// LibtorchRoot is the libtorch folder the build links (\"system\" for the distribution's package).\nconst LibtorchRoot = %s\n\n", q(root))
	fmt.Fprintf(&b, "// LibtorchVersion is the version read from the libtorch headers.\nconst LibtorchVersion = %s\n\n", q(ts.Version))
	fmt.Fprintf(&b, "// CUDA reports whether the build links libtorch's CUDA libraries.\nconst CUDA = %v\n\n", ts.CUDA)
	fmt.Fprintf(&b, "// CXX11ABI reports whether the libtorch uses the C++11 string ABI.\nconst CXX11ABI = %v\n\n", ts.CXX11ABI)
	b.WriteString("// DisabledOps lists the generated ops that return an error because they do not compile here.\nvar DisabledOps = []string{\n")
	for _, d := range disabled {
		fmt.Fprintf(&b, "\t%s,\n", q(d))
	}
	b.WriteString("}\n")
	if err := os.MkdirAll(filepath.Join(dir, "imgcapinfo"), 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "imgcapinfo", "info.go"), []byte(b.String()), 0o644)
}

// stampOf identifies the inputs of a preparation.
func stampOf(src string, ts torchSetup) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%+v\n", prepVersion, src, ts)
	// The shim's sources are inputs too: editing them prepares the folder again.
	for _, shim := range []embed.FS{distShim, kernShim, shimCommon} {
		_ = fs.WalkDir(shim, ".", func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				b, _ := shim.ReadFile(p)
				fmt.Fprintf(h, "%s %d\n", p, len(b))
				h.Write(b)
			}
			return nil
		})
	}
	for _, k := range distEnv {
		fmt.Fprintf(h, "%s=%s\n", k, os.Getenv(k))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// copyTree copies the regular files and folders under src to dst, making them writable.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}
