package train

import (
	"math"
	"strings"
	"testing"

	"github.com/imgcap/imgcap/config"
)

func TestSchedules(t *testing.T) {
	type at struct {
		done int
		want float64
	}
	cases := []struct {
		name   string
		kind   string
		warmup int
		total  int
		min    float64
		points []at
	}{
		{"constant", "constant", 0, 10, 0, []at{{0, 1}, {9, 1}, {50, 1}}},
		{"constant with warmup", "constant", 4, 10, 0, []at{{0, 0.25}, {1, 0.5}, {3, 1}, {4, 1}}},
		// min + (1-min)(1+cos(π s/n))/2 with n = 10: s=5 -> 0.55, s=9 -> 0.1+0.45(1+cos 0.9π).
		{"cosine", "cosine", 0, 10, 0.1, []at{{0, 1}, {5, 0.55}, {9, 0.1 + 0.45*(1+math.Cos(0.9*math.Pi))}, {10, 0.1}, {30, 0.1}}},
		{"cosine after warmup", "cosine", 2, 12, 0.1, []at{{0, 0.5}, {1, 1}, {2, 1}, {7, 0.55}}},
		{"linear", "linear", 0, 10, 0, []at{{0, 1}, {5, 0.5}, {9, 0.1}, {10, 0}}},
		{"linear to min", "linear", 0, 4, 0.2, []at{{2, 0.6}}},
		{"step", "step", 0, 10, 0, []at{{0, 1}, {2, 1}, {3, 0.5}, {5, 0.5}, {6, 0.25}}},
		{"step after warmup", "step", 2, 10, 0, []at{{0, 0.5}, {1, 1}, {2, 1}, {4, 1}, {5, 0.5}}},
	}
	for _, tc := range cases {
		c := config.Default().Train
		c.LR, c.Schedule, c.WarmupSteps, c.MinLR, c.StepEvery, c.StepGamma = 1, tc.kind, tc.warmup, tc.min, 3, 0.5
		s, err := NewSchedule(c, tc.total)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		for _, p := range tc.points {
			if got := s.At(p.done); math.Abs(got-p.want) > 1e-12 {
				t.Errorf("%s: At(%d) = %v; want %v", tc.name, p.done, got, p.want)
			}
		}
	}
}

func TestScheduleErrors(t *testing.T) {
	cases := []struct {
		name string
		edit func(*config.TrainConfig)
		want string
	}{
		{"unknown kind", func(c *config.TrainConfig) { c.Schedule = "exp" }, "want constant"},
		{"step without step_every", func(c *config.TrainConfig) { c.Schedule, c.StepEvery = "step", 0 }, "step_every"},
		{"zero lr", func(c *config.TrainConfig) { c.LR = 0 }, "lr > 0"},
	}
	for _, tc := range cases {
		c := config.Default().Train
		tc.edit(&c)
		if _, err := NewSchedule(c, 10); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v; want one mentioning %q", tc.name, err, tc.want)
		}
	}
}

func TestEpochPermutation(t *testing.T) {
	seen := map[string]bool{}
	for _, k := range []struct {
		seed  int64
		epoch int
	}{{1, 0}, {1, 1}, {2, 0}, {2, 1}} {
		p := EpochPermutation(k.seed, k.epoch, 50)
		again := EpochPermutation(k.seed, k.epoch, 50)
		hit := make([]bool, 50)
		for i, v := range p {
			if again[i] != v {
				t.Fatalf("seed %d epoch %d: permutation not reproducible", k.seed, k.epoch)
			}
			if hit[v] {
				t.Fatalf("seed %d epoch %d: %d repeated", k.seed, k.epoch, v)
			}
			hit[v] = true
		}
		key := ""
		for _, v := range p[:10] {
			key += string(rune('A' + v))
		}
		if seen[key] {
			t.Errorf("seed %d epoch %d repeats another (seed, epoch)'s order", k.seed, k.epoch)
		}
		seen[key] = true
	}
	if a, b := stepSeed(1, trainStream, 5), stepSeed(1, trainStream, 6); a == b || a < 0 || b < 0 {
		t.Errorf("step seeds %d, %d", a, b)
	}
}
