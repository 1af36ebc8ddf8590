package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.json")
	tests := []string{"first", "second, longer content", ""}
	for _, want := range tests {
		if err := WriteFile(p, []byte(want)); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != want {
			t.Fatalf("read %q, %v; want %q", got, err, want)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
	// A failed write (missing directory) reports the path and leaves nothing.
	if err := WriteFile(filepath.Join(dir, "no", "x"), []byte("x")); err == nil {
		t.Error("write into a missing directory succeeded")
	}
	// Renaming onto a directory fails; the old content and no temporary file remain.
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o755)
	os.WriteFile(filepath.Join(sub, "keep"), []byte("k"), 0o644)
	if err := WriteFile(sub, []byte("x")); err == nil {
		t.Error("replacing a non-empty directory succeeded")
	}
	entries, _ = os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("after a failed write the folder holds %d entries, want 2", len(entries))
	}
}
