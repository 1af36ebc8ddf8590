package main

import (
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
