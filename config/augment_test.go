package config

import (
	"errors"
	"strings"
	"testing"
)

func TestRandAugmentDefaultsOff(t *testing.T) {
	ra := Default().Data.Augment.RandAugment
	if ra.N != 0 {
		t.Errorf("rand_augment.n defaults to %d, want 0 (off)", ra.N)
	}
	if ra.M != 5 || strings.Join(ra.Ops, ",") != strings.Join(BLIPRandAugmentOps(), ",") {
		t.Errorf("defaults m %v ops %v, want BLIP's m 5 and its 10 ops", ra.M, ra.Ops)
	}
	// The default ops list is a fresh slice each time (Default's callers may edit theirs).
	d := Default()
	d.Data.Augment.RandAugment.Ops[0] = "Rotate"
	if Default().Data.Augment.RandAugment.Ops[0] != "Identity" {
		t.Error("Default shares its ops slice")
	}
}

func TestRandAugmentLoad(t *testing.T) {
	file := writeFile(t, `data:
  augment:
    random_resized_crop: true
    rand_augment: {n: 2, m: 5}
`)
	tests := []struct {
		name  string
		opts  Options
		check func(t *testing.T, ra RandAugmentConfig)
	}{
		{"file", Options{File: file}, func(t *testing.T, ra RandAugmentConfig) {
			if ra.N != 2 || ra.M != 5 || len(ra.Ops) != 10 {
				t.Errorf("got %+v, want n 2 m 5 and the 10 default ops", ra)
			}
		}},
		{"set and env", Options{File: file, Env: []string{"IMGCAP_DATA_AUGMENT_RAND_AUGMENT_M=7.5"},
			Sets: []string{"data.augment.rand_augment.n=3", "data.augment.rand_augment.ops=[rotate, ShearX]"}},
			func(t *testing.T, ra RandAugmentConfig) {
				if ra.N != 3 || ra.M != 7.5 || strings.Join(ra.Ops, ",") != "rotate,ShearX" {
					t.Errorf("got %+v", ra)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c.Data.Augment.RandAugment)
		})
	}
}

func TestRandAugmentValidation(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []string // substrings of the error; none: the file is valid
	}{
		{"valid", "n: 2\n      m: 10\n      ops: [Identity, solarize, COLOR]", nil},
		{"off with bad n is still checked", "n: -1", []string{":4: data.augment.rand_augment.n: must be >= 0"}},
		{"m above 10", "n: 2\n      m: 11", []string{":5: data.augment.rand_augment.m: must be within [0, 10], got 11"}},
		{"m below 0", "m: -0.5", []string{":4: data.augment.rand_augment.m: must be within [0, 10], got -0.5"}},
		{"unknown ops listed", "n: 2\n      ops: [Rotate, Cutout, blur]", []string{
			`:5: data.augment.rand_augment.ops: unknown op(s) "Cutout", "blur": want names from Identity, AutoContrast`}},
		{"no ops", "n: 1\n      ops: []", []string{":5: data.augment.rand_augment.ops: n > 0 needs at least one op"}},
		{"m not a number", "m: strong", []string{`:4: data.augment.rand_augment.m: want a number, got "strong"`}},
		{"unknown key", "p: 0.5", []string{":4: data.augment.rand_augment.p: unknown key"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file := writeFile(t, "data:\n  augment:\n    rand_augment:\n      "+tc.body+"\n")
			_, err := Load(Options{File: file})
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("want Errors, got %v", err)
			}
			if len(errs) != len(tc.want) {
				t.Errorf("got %d problems, want %d:\n%v", len(errs), len(tc.want), err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("missing %q in:\n%v", w, err)
				}
			}
		})
	}
	// Validate alone names the keys too.
	c := Default()
	c.Data.Augment.RandAugment = RandAugmentConfig{N: -2, M: 12, Ops: []string{"Cutout"}}
	var keys []string
	for _, p := range Validate(c) {
		keys = append(keys, p.Key)
	}
	if got := strings.Join(keys, " "); got != "data.augment.rand_augment.n data.augment.rand_augment.m data.augment.rand_augment.ops" {
		t.Errorf("problem keys %q", got)
	}
}

func TestRandAugmentOpsLists(t *testing.T) {
	if len(RandAugmentOps) != 14 {
		t.Errorf("%d ops, want BLIP's 14", len(RandAugmentOps))
	}
	for _, op := range BLIPRandAugmentOps() {
		found := false
		for _, k := range RandAugmentOps {
			found = found || k == op
		}
		if !found {
			t.Errorf("BLIP op %s missing from RandAugmentOps", op)
		}
	}
}
