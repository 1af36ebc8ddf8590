package weights

import (
	"maps"
	"testing"
)

// TestPersistentNames marks parameters and persistent buffers, not non-persistent buffers.
func TestPersistentNames(t *testing.T) {
	got := PersistentNames(testModel(t, standardModel))
	want := map[string]bool{"enc.w": true, "enc.b": true, "enc.ids": true, "enc.cache": false, "dec.w": true}
	if !maps.Equal(got, want) {
		t.Errorf("PersistentNames = %v, want %v", got, want)
	}
}
