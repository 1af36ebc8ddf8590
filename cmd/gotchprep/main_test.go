package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const sample = `// generated
void atg_good(tensor *out__, tensor self) {
  PROTECT(
    auto outputs__ = torch::good(*self);
    out__[0] = new torch::Tensor(outputs__);
  )
}

void atg_bad(tensor *out__, tensor self) {
  PROTECT(
    auto outputs__ = torch::missing_in_this_version(*self);
    out__[0] = new torch::Tensor(outputs__);
  )
}

int64_t atg_bad_int(tensor self) {
  PROTECT(
    return torch::missing_int(*self);
  )
  return 0;
}
`

func TestStubOps(t *testing.T) {
	lines := strings.Split(sample, "\n")
	ops := parseOps(lines)
	if len(ops) != 3 || ops[0].name != "atg_good" || ops[2].name != "atg_bad_int" || ops[2].void {
		t.Fatalf("parseOps = %+v", ops)
	}
	bad := map[int]bool{11: true, 18: true} // 0-based lines inside atg_bad and atg_bad_int
	names := stubOps(lines, bad, "9.9")
	if strings.Join(names, ",") != "atg_bad,atg_bad_int" {
		t.Fatalf("stubbed %v", names)
	}
	out := strings.Join(lines, "\n")
	if strings.Contains(out, "missing_in_this_version") || strings.Contains(out, "missing_int") {
		t.Errorf("failing bodies left in place:\n%s", out)
	}
	if !strings.Contains(out, "torch::good(*self)") {
		t.Errorf("good op was changed:\n%s", out)
	}
	if !strings.Contains(out, `throw std::runtime_error("atg_bad is not available: it does not compile against libtorch 9.9`) {
		t.Errorf("no runtime error in stub:\n%s", out)
	}
	if !strings.Contains(out, "return 0;\n}") {
		t.Errorf("non-void stub must still return:\n%s", out)
	}
	// Stubbing is idempotent: a second pass over the same lines changes nothing.
	if again := stubOps(lines, bad, "9.9"); len(again) != 0 {
		t.Errorf("second pass stubbed %v again", again)
	}
}

func TestErrLineRe(t *testing.T) {
	diag := `torch_api_generated.cpp.h:11:38: error: 'missing' is not a member of 'torch'
/usr/include/x.h:5:1: error: something in a header
torch_api_generated.cpp.h:42:10:   required from here
torch_api_generated.cpp.h:50:3: note: candidate`
	var got []string
	for _, m := range errLineRe.FindAllStringSubmatch(diag, -1) {
		got = append(got, m[1])
	}
	if strings.Join(got, ",") != "11,42" {
		t.Errorf("error lines = %v, want [11 42]", got)
	}
}

func TestVersionFromHeader(t *testing.T) {
	if v := versionFromHeader("/nonexistent/version.h"); v != "unknown" {
		t.Errorf("missing header gave %q", v)
	}
}

// TestDetectDownloadedLibtorch lays out a libtorch folder (include/, lib/) from the system
// libtorch's files, as LIBTORCH=/path would name a downloaded one, and checks what is detected
// and which flags follow.
func TestDetectDownloadedLibtorch(t *testing.T) {
	const sysC10 = "/usr/lib/x86_64-linux-gnu/libc10.so"
	if _, err := os.Stat(sysC10); err != nil {
		t.Skip("no system libtorch to lay out a LIBTORCH folder from")
	}
	root := t.TempDir()
	if err := os.Symlink("/usr/include", filepath.Join(root, "include")); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(root, "lib"), 0o755)
	if err := os.Symlink(sysC10, filepath.Join(root, "lib", "libc10.so")); err != nil {
		t.Fatal(err)
	}
	ts, err := detectTorch(root)
	if err != nil {
		t.Fatal(err)
	}
	if ts.Root != root || ts.LibDir != filepath.Join(root, "lib") || ts.CUDA || !ts.CXX11ABI || !strings.HasPrefix(ts.Version, "1.") {
		t.Errorf("detected %+v", ts)
	}
	ld := strings.Join(ldFlags(ts), " ")
	if !strings.Contains(ld, "-Wl,-rpath,"+filepath.Join(root, "lib")) || strings.Contains(ld, "torch_cuda") {
		t.Errorf("LDFLAGS %q", ld)
	}
	// A CUDA build is recognised by libtorch_cuda.so and linked without --as-needed dropping it.
	os.WriteFile(filepath.Join(root, "lib", "libtorch_cuda.so"), nil, 0o644)
	ts, err = detectTorch(root)
	if err != nil || !ts.CUDA {
		t.Fatalf("CUDA not detected: %+v %v", ts, err)
	}
	if ld := strings.Join(ldFlags(ts), " "); !strings.Contains(ld, "-Wl,--no-as-needed -ltorch_cuda -lc10_cuda") {
		t.Errorf("CUDA LDFLAGS %q", ld)
	}
	// Missing pieces are named.
	if _, err := detectTorch(t.TempDir()); err == nil || !strings.Contains(err.Error(), "torch.h") {
		t.Errorf("empty folder: %v", err)
	}
}
