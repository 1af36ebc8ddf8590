package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var binPath string

// TestMain builds the imgcap binary once so that tests check real exit codes and output.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "imgcap-cli")
	if err != nil {
		panic(err)
	}
	binPath = filepath.Join(dir, "imgcap")
	out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
	if err != nil {
		os.Stderr.Write(out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// runCLI runs the binary and returns stdout, stderr and the exit code.
func runCLI(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return so.String(), se.String(), code
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(good, []byte("train:\n  lr: 0.001\n"), 0o644)
	os.WriteFile(bad, []byte("model:\n  arch: nope\ntrain:\n  lr: abc\n  epocs: 3\n"), 0o644)
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  []string
		wantErr  []string
	}{
		{"good", []string{"config", "check", good}, 0, []string{"good.yaml: ok"}, nil},
		{"bad lists every problem", []string{"config", "check", bad}, 1, nil,
			[]string{"bad.yaml:4: train.lr: want a number", "bad.yaml:5: train.epocs: unknown key (did you mean train.epochs?)", "1 of 1 config files invalid"}},
		{"show applies --set", []string{"config", "show", "--config", good, "--set", "train.batch_size=7"}, 0, []string{"batch_size: 7", "lr: 0.001"}, nil},
		{"show rejects bad --set", []string{"config", "show", "--set", "train.batch_size=x"}, 1, nil, []string{"train.batch_size: want an integer"}},
		{"bad log level", []string{"version", "--log-level", "loud"}, 2, nil, []string{"--log-level"}},
		{"unknown command", []string{"frobnicate"}, 1, nil, []string{"unknown command"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := runCLI(t, "", tc.args...)
			if code != tc.wantCode {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.wantCode, out, errOut)
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
		})
	}
}

func TestEnvJSON(t *testing.T) {
	out, errOut, code := runCLI(t, "", "env", "--json", "--matmul-size", "128", "--threads", "1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var r envReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("bad JSON %v:\n%s", err, out)
	}
	if r.Threads != 1 {
		t.Errorf("--threads 1 gave %d threads", r.Threads)
	}
	if r.MatmulGFLOPS <= 0 || r.Libtorch == "" || r.Gotch == "" {
		t.Errorf("incomplete report: %+v", r)
	}
	if r.DisabledOps == 0 && strings.HasPrefix(r.Libtorch, "1.13") {
		t.Errorf("libtorch 1.13 build reports no disabled ops")
	}
}
