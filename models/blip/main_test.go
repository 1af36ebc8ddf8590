package blip

import (
	"os"
	"testing"

	"github.com/imgcap/imgcap/torchx"
)

// TestMain runs the package's tests and benchmarks with OpenMP's passive wait policy, as the
// imgcap command does (torchx.PassiveOpenMP), so that BenchmarkBLIPLarge times what users get.
func TestMain(m *testing.M) {
	_ = torchx.PassiveOpenMP()
	os.Exit(m.Run())
}
