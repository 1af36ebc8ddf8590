package weights

import (
	"maps"
	"slices"
	"testing"
)

// TestStateDict holds parameters and persistent buffers, not non-persistent buffers.
func TestStateDict(t *testing.T) {
	got := slices.Sorted(maps.Keys(StateDict(testModel(t, standardModel))))
	want := []string{"dec.w", "enc.b", "enc.ids", "enc.w"} // not enc.cache
	if !slices.Equal(got, want) {
		t.Errorf("StateDict names = %v, want %v", got, want)
	}
}
