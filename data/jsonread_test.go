package data

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
)

// scanPlain's 8-bytes-at-a-time path must agree with a byte loop for every byte value at every offset.
func TestScanPlainMatchesByteLoop(t *testing.T) {
	ref := func(d []byte, i int) (int, bool) {
		ascii := true
		for ; i < len(d); i++ {
			if c := d[i]; c == '"' || c == '\\' || c < 0x20 {
				return i, ascii
			} else if c >= 0x80 {
				ascii = false
			}
		}
		return i, ascii
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for n := 0; n < 20000; n++ {
		d := make([]byte, rng.IntN(40))
		for i := range d {
			d[i] = byte('a' + rng.IntN(26))
		}
		for k := rng.IntN(3); k > 0 && len(d) > 0; k-- {
			d[rng.IntN(len(d))] = byte(rng.IntN(256))
		}
		start := 0
		if len(d) > 0 {
			start = rng.IntN(len(d) + 1)
		}
		gotEnd, gotASCII := scanPlain(d, start)
		wantEnd, wantASCII := ref(d, start)
		// ascii may be false where a high byte follows the end in the same 8-byte word: only the end
		// must match, and ascii must never be true wrongly.
		if gotEnd != wantEnd || gotASCII && !wantASCII {
			t.Fatalf("scanPlain(%q, %d) = %d, %v; want %d, %v", d, start, gotEnd, gotASCII, wantEnd, wantASCII)
		}
	}
}

func TestJSONReaderDepthLimit(t *testing.T) {
	for _, depth := range []int{maxJSONDepth, maxJSONDepth + 1} {
		doc := []byte(strings.Repeat("[", depth) + strings.Repeat("]", depth))
		r := newJSONReader(doc)
		err := r.skip()
		if (err == nil) != json.Valid(doc) {
			t.Errorf("depth %d: jsonReader err %v, encoding/json valid %v", depth, err, json.Valid(doc))
		}
	}
}

func TestJSONReaderPaths(t *testing.T) {
	doc := []byte(`{"a": [1, {"b c": [true, nul]}]}`)
	r := newJSONReader(doc)
	err := r.skip()
	je, ok := err.(*jsonError)
	if !ok || je.Path != `$.a[1]["b c"][1]` || !strings.Contains(je.Msg, "want null") {
		t.Fatalf("err %v", err)
	}
}
