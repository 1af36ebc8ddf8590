package weights

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	gnn "github.com/sugarme/gotch/nn"

	"github.com/imgcap/imgcap/torchx"

	"github.com/imgcap/imgcap/internal/reftest"
)

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestOpenDirPreference(t *testing.T) {
	type files map[string]string // name in the folder -> fixture ("" = write a small safetensors file)
	cases := []struct {
		name  string
		files files
		want  string // file OpenDir uses; "" = error
	}{
		{"safetensors over everything", files{SafetensorsName: "", SafetensorsIndexName: "index", TorchName: "testdata/torch/plain_dict.bin"}, SafetensorsName},
		{"sharded safetensors over bin", files{SafetensorsIndexName: "index", TorchName: "testdata/torch/plain_dict.bin"}, SafetensorsIndexName},
		{"bin over sharded bin", files{TorchName: "testdata/torch/plain_dict.bin", TorchIndexName: "index"}, TorchName},
		{"sharded bin", files{TorchIndexName: "index"}, TorchIndexName},
		{"nothing", files{"model.ckpt": "testdata/torch/plain_dict.bin"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, from := range tc.files {
				p := filepath.Join(dir, name)
				switch from {
				case "":
					writeCheckpoint(t, p, []fileSpec{{"w", []int64{2}, gotch.Float}})
				case "index":
					// A one-shard index over a copy of the .bin fixture or a safetensors file.
					shard := "shard-" + name
					if strings.HasPrefix(name, "model.") {
						shard += ".safetensors"
						writeCheckpoint(t, filepath.Join(dir, shard), []fileSpec{{"w", []int64{2}, gotch.Float}})
					} else {
						copyFile(t, "testdata/torch/plain_dict.bin", filepath.Join(dir, shard))
					}
					idx := fmt.Sprintf(`{"metadata": {}, "weight_map": {"w": %q}}`, shard)
					if err := os.WriteFile(p, []byte(idx), 0o644); err != nil {
						t.Fatal(err)
					}
				default:
					copyFile(t, from, p)
				}
			}
			src, file, err := OpenDir(dir)
			if tc.want == "" {
				if err == nil {
					src.Close()
					t.Fatalf("opened %s; want an error", file)
				}
				for _, n := range []string{dir, SafetensorsName, SafetensorsIndexName, TorchName, TorchIndexName} {
					if !strings.Contains(err.Error(), n) {
						t.Errorf("error %q does not mention %s", err, n)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			if file != filepath.Join(dir, tc.want) {
				t.Errorf("used %s; want %s", file, tc.want)
			}
			if names := src.Names(); len(names) != 1 || names[0] != "w" {
				t.Errorf("names %v", names)
			}
		})
	}
}

func TestShardedSafetensors(t *testing.T) {
	dir := t.TempDir()
	writeCheckpoint(t, filepath.Join(dir, "model-00001-of-00002.safetensors"),
		[]fileSpec{{"a.weight", []int64{2, 3}, gotch.Float}, {"a.bias", []int64{3}, gotch.Float}})
	writeCheckpoint(t, filepath.Join(dir, "model-00002-of-00002.safetensors"),
		[]fileSpec{{"b.weight", []int64{2}, gotch.Half}, {"b.unlisted", []int64{1}, gotch.Float}})
	index := `{
  "metadata": {"total_size": 40},
  "weight_map": {
    "a.weight": "model-00001-of-00002.safetensors",
    "a.bias": "model-00001-of-00002.safetensors",
    "b.weight": "model-00002-of-00002.safetensors"
  }
}`
	if err := os.WriteFile(filepath.Join(dir, SafetensorsIndexName), []byte(index), 0o644); err != nil {
		t.Fatal(err)
	}
	src, file, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(file) != SafetensorsIndexName {
		t.Errorf("used %s", file)
	}
	checkSource(t, src, map[string]expectedTensor{
		"a.weight": {DType: "F32", Shape: []int64{2, 3}, Values: seq(6)},
		"a.bias":   {DType: "F32", Shape: []int64{3}, Values: seq(3)},
		"b.weight": {DType: "F16", Shape: []int64{2}, Values: seq(2)},
	})
	// Loading through the index, as a model would.
	vs := testModel(t, []varSpec{{name: "a.weight", shape: []int64{2, 3}, dt: gotch.Float}, {name: "b.weight", shape: []int64{2}, dt: gotch.Float}})
	rep, err := LoadInto(vs, src, LoadOptions{Ignore: func(k string) bool { return k == "a.bias" }})
	if err != nil || rep.Loaded != 2 || len(rep.Unexpected) != 0 {
		t.Errorf("LoadInto: %+v, %v", rep, err)
	}
	if got := values(t, storeVariables(vs)["b.weight"].t); !closeEnough(got, seq(2)) {
		t.Errorf("b.weight = %v", got)
	}
	runtime.KeepAlive(vs)
	src.Close()

	bad := []struct{ name, index, want string }{
		{"tensor not in its shard", `{"weight_map": {"a.weight": "model-00002-of-00002.safetensors"}}`, "not in their shard: a.weight (in model-00002-of-00002.safetensors)"},
		{"shard outside the folder", `{"weight_map": {"a.weight": "../model-00001-of-00002.safetensors"}}`, "not a file name"},
		{"shard missing", `{"weight_map": {"a.weight": "model-00009.safetensors"}}`, "model-00009.safetensors"},
		{"no weight_map", `{"metadata": {}}`, "no weight_map"},
		{"malformed JSON", "{\"weight_map\": {\n  \"a.weight\": }}", "bad.index.json:2:15"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, "bad.index.json")
			if err := os.WriteFile(p, []byte(tc.index), 0o644); err != nil {
				t.Fatal(err)
			}
			s, err := OpenSharded(p)
			if err == nil {
				s.Close()
				t.Fatalf("opened; want an error mentioning %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "bad.index.json") {
				t.Errorf("error %q; want one naming the index and %q", err, tc.want)
			}
		})
	}
}

func TestReadConfigJSON(t *testing.T) {
	type config struct {
		Hidden int     `json:"hidden_size"`
		Eps    float64 `json:"layer_norm_eps"`
		Arch   []string
	}
	cases := []struct {
		name, text string
		want       string // error substring; "" = success
	}{
		{"ok", `{"hidden_size": 32, "layer_norm_eps": 1e-12, "Arch": ["ViTModel"], "unknown_key": true}`, ""},
		{"syntax error", "{\n  \"hidden_size\": 32,\n  \"layer_norm_eps\": x\n}", "config.json:3:21: invalid character 'x'"},
		{"trailing comma", "{\"hidden_size\": 32,\n}", "config.json:2:1"},
		{"wrong type", "{\n \"hidden_size\": \"32\"}", "config.json:2:"},
		{"truncated", `{"hidden_size": 3`, "config.json:1:17: unexpected end of JSON input"},
		{"empty", ``, "config.json:1:1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(tc.text), 0o644); err != nil {
				t.Fatal(err)
			}
			var c config
			err := ReadConfigJSON(dir, "config.json", &c)
			if tc.want == "" {
				if err != nil || c.Hidden != 32 || c.Eps != 1e-12 || len(c.Arch) != 1 {
					t.Errorf("got %+v, %v", c, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), dir) {
				t.Errorf("error %v; want one naming the file and %q", err, tc.want)
			}
		})
	}
	if err := ReadConfigJSON(t.TempDir(), "config.json", new(config)); err == nil || !strings.Contains(err.Error(), "config.json") {
		t.Errorf("missing file: %v", err)
	}
}

// TestLoadMemory loads a 200 MB safetensors file into a model and checks that the process's
// peak resident memory grows by at most 1.3x the file: the model itself plus a little, never
// a second copy of the checkpoint.
func TestLoadMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 200 MB file")
	}
	const (
		tensors = 20
		rows    = 1250
		cols    = 2000 // 10 MB of float32 per tensor
	)
	path := filepath.Join(t.TempDir(), "big.safetensors")
	// Written by hand, streaming, so that no tensor of the file is ever in this process.
	header := map[string]stEntry{}
	per := int64(rows * cols * 4)
	for i := 0; i < tensors; i++ {
		header[fmt.Sprintf("layer%02d.weight", i)] = stEntry{DType: "F32", Shape: []int64{rows, cols}, Offsets: [2]int64{int64(i) * per, int64(i+1) * per}}
	}
	func() {
		hj, err := json.Marshal(header)
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		w := bufio.NewWriterSize(f, 1<<20)
		binary.Write(w, binary.LittleEndian, uint64(len(hj)))
		w.Write(hj)
		row := make([]byte, cols*4)
		for i := 0; i < tensors; i++ {
			for r := 0; r < rows; r++ {
				for c := 0; c < cols; c++ {
					binary.LittleEndian.PutUint32(row[4*c:], math.Float32bits(float32(i)+float32(c%7)))
				}
				w.Write(row)
			}
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
	}()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}

	runtime.GC()
	debug.FreeOSMemory()
	before := reftest.ProcStatusBytes(t, "VmRSS")
	// Reset the peak (VmHWM) to the current RSS, if the kernel lets us.
	peakField := "VmHWM"
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Logf("cannot reset the peak RSS (%v): checking the RSS after loading instead", err)
		peakField = "VmRSS"
	}
	vs := gnn.NewVarStore(gotch.CPU)
	err = torchx.Locked(func() error {
		for i := 0; i < tensors; i++ {
			if _, err := vs.Root().Sub(fmt.Sprintf("layer%02d", i)).Zeros("weight", []int64{rows, cols}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	src, err := OpenSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := LoadInto(vs, src, LoadOptions{})
	src.Close()
	if err != nil || rep.Loaded != tensors {
		t.Fatalf("load: %+v, %v", rep, err)
	}
	grown := reftest.ProcStatusBytes(t, peakField) - before
	t.Logf("file %.0f MB; peak RSS grew %.0f MB (%.2fx)", float64(fi.Size())/1e6, float64(grown)/1e6, float64(grown)/float64(fi.Size()))
	if limit := fi.Size() * 13 / 10; grown > limit {
		t.Errorf("loading a %d-byte file raised the peak RSS by %d bytes, more than 1.3x", fi.Size(), grown)
	}
	// Spot-check the values of the last tensor.
	got := values(t, storeVariables(vs)["layer19.weight"].t)
	for _, c := range []int{0, 1, 6, 7, cols*rows - 1} {
		if want := float64(19 + (c%cols)%7); got[c] != want {
			t.Errorf("layer19.weight[%d] = %v; want %v", c, got[c], want)
		}
	}
	runtime.KeepAlive(vs)
}
