package tok

import (
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// assets lists the gzipped fixtures and the sha256 of their decompressed bytes.
var assets = []struct{ gz, sha string }{
	{"gpt2/vocab.json.gz", "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"},
	{"gpt2/merges.txt.gz", "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"},
	{"gpt2/tokenizer.json.gz", "ce1b26aabe3984f79605df4945b01a02a669cf54adb60734b809e0c58b7264dc"},
	{"bert-base-uncased/vocab.txt.gz", "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"},
	{"bert-base-uncased/tokenizer.json.gz", "805f60d34aeb5d5ff8160dbb24c0ed60637b81a9a46ce887dc69ec31e25fb4c2"},
	{"gpt2_oracle.jsonl.gz", "731e4ece8ffd2e96b709ddb20e62dadf0d6643b550c0dbdbe45c61923c1829bc"},
	{"bert_oracle.jsonl.gz", "791d144f93fe0b875668beb1ee3c586bd37fd48b485887c73e998a1ee70559fd"},
}

var (
	fixOnce sync.Once
	fixDir  string
	fixErr  error
)

// fixtures decompresses testdata into one temporary folder per test binary and
// returns it; the layout mirrors testdata without the .gz suffixes.
func fixtures(tb testing.TB) string {
	tb.Helper()
	fixOnce.Do(func() {
		fixDir, fixErr = os.MkdirTemp("", "tok-fixtures-")
		if fixErr != nil {
			return
		}
		for _, a := range assets {
			if fixErr = gunzip(filepath.Join("testdata", a.gz), filepath.Join(fixDir, strings.TrimSuffix(a.gz, ".gz"))); fixErr != nil {
				return
			}
		}
	})
	if fixErr != nil {
		tb.Fatal(fixErr)
	}
	return fixDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fixDir != "" {
		os.RemoveAll(fixDir)
	}
	os.Exit(code)
}

func gunzip(src, dst string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, zr); err != nil {
		out.Close()
		return fmt.Errorf("%s: %w", src, err)
	}
	return out.Close()
}

func TestFixtureChecksums(t *testing.T) {
	dir := fixtures(t)
	for _, a := range assets {
		data, err := os.ReadFile(filepath.Join(dir, strings.TrimSuffix(a.gz, ".gz")))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		if got := hex.EncodeToString(sum[:]); got != a.sha {
			t.Errorf("%s: sha256 %s, want %s", a.gz, got, a.sha)
		}
	}
}

// copyFiles copies the named fixture files into a fresh folder, renaming as given
// (map: fixture path -> name in the folder).
func copyFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	src := fixtures(t)
	dir := t.TempDir()
	for from, to := range files {
		data, err := os.ReadFile(filepath.Join(src, from))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, to), string(data))
	}
	return dir
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

type gpt2Case struct {
	Text    string   `json:"text"`
	IDs     []int    `json:"ids"`
	Tokens  []string `json:"tokens"`
	Decoded string   `json:"decoded"`
}

type bertCase struct {
	Text         string   `json:"text"`
	IDs          []int    `json:"ids"`
	IDsNoSpecial []int    `json:"ids_no_special"`
	Tokens       []string `json:"tokens"`
	Decoded      string   `json:"decoded"`
}

func readJSONL[T any](tb testing.TB, name string) []T {
	tb.Helper()
	f, err := os.Open(filepath.Join(fixtures(tb), name))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var out []T
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		var v T
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			tb.Fatalf("%s:%d: %v", name, line, err)
		}
		out = append(out, v)
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

func gpt2Cases(tb testing.TB) []gpt2Case { return readJSONL[gpt2Case](tb, "gpt2_oracle.jsonl") }
func bertCases(tb testing.TB) []bertCase { return readJSONL[bertCase](tb, "bert_oracle.jsonl") }

var (
	loadMu sync.Mutex
	loaded = map[string]Tokenizer{}
)

// load returns the tokenizer at a fixture path (relative to the fixture folder),
// loading it once per test binary.
func load(tb testing.TB, rel string) Tokenizer {
	tb.Helper()
	loadMu.Lock()
	defer loadMu.Unlock()
	if tk, ok := loaded[rel]; ok {
		return tk
	}
	tk, err := Load(filepath.Join(fixtures(tb), rel))
	if err != nil {
		tb.Fatal(err)
	}
	loaded[rel] = tk
	return tk
}

func tokensOf(tk Tokenizer, ids []int) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i], _ = tk.IDToToken(id)
	}
	return out
}
