package train

import (
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/weights"
)

func TestLoadWeightsIsStrict(t *testing.T) {
	src := newToy(t, 1, 4, 8, 2, 0)
	path := filepath.Join(t.TempDir(), ModelFile)
	vars := src.vs.Variables()
	all := map[string]*ts.Tensor{}
	for name := range vars {
		v := vars[name]
		all[name] = &v
	}
	if err := weights.WriteSafetensors(path, all, nil); err != nil {
		t.Fatal(err)
	}
	dst := newToy(t, 2, 4, 8, 2, 0)
	if err := LoadWeights(dst.vs, path); err != nil {
		t.Fatal(err)
	}
	if diff := sameTensors(t, snapshot(t, src.vs), snapshot(t, dst.vs)); len(diff) > 0 {
		t.Errorf("loaded weights differ: %v", diff)
	}
	for _, tc := range []struct {
		name  string
		model *toyModel
		want  string
	}{
		{"other shapes", newToy(t, 1, 4, 6, 2, 0), "mismatched fc1.bias"},
	} {
		if err := LoadWeights(tc.model.vs, path); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v; want %q", tc.name, err, tc.want)
		}
	}
	delete(all, "fc2.bias")
	all["extra"] = all["fc1.bias"]
	if err := weights.WriteSafetensors(path, all, nil); err != nil {
		t.Fatal(err)
	}
	err := LoadWeights(dst.vs, path)
	if err == nil || !strings.Contains(err.Error(), "missing fc2.bias") || !strings.Contains(err.Error(), "unexpected extra") {
		t.Errorf("err %v; want missing fc2.bias and unexpected extra", err)
	}
	// all holds copies of src's tensor values, which do not keep src's tensors alive.
	runtime.KeepAlive(src)
}
