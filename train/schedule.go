package train

import (
	"fmt"
	"math"

	"github.com/imgcap/imgcap/config"
)

// Schedule gives the learning rate of each optimizer step. Every kind starts with a linear
// warmup: step t (1-based) of the first Warmup steps uses LR·t/Warmup, so the last warmup step
// reaches LR. After warmup, with s steps done since warmup and n = Total-Warmup:
//
//	constant: LR
//	cosine:   MinLR + (LR-MinLR)·(1+cos(π·s/n))/2
//	linear:   LR - (LR-MinLR)·s/n
//	step:     LR·Gamma^⌊s/StepEvery⌋ (PyTorch's StepLR)
//
// As in nanoGPT and Hugging Face's schedulers, the first step after warmup uses LR and the
// decaying kinds would reach MinLR at step Total+1.
type Schedule struct {
	Kind      string // constant, cosine, linear or step
	LR        float64
	MinLR     float64
	Warmup    int
	Total     int // optimizer steps in the run
	StepEvery int
	Gamma     float64
}

// NewSchedule is the schedule c describes for a run of total optimizer steps.
func NewSchedule(c config.TrainConfig, total int) (Schedule, error) {
	s := Schedule{Kind: c.Schedule, LR: c.LR, MinLR: c.MinLR, Warmup: c.WarmupSteps, Total: total,
		StepEvery: c.StepEvery, Gamma: c.StepGamma}
	if s.Kind == "" {
		s.Kind = "constant"
	}
	switch s.Kind {
	case "constant", "cosine", "linear":
	case "step":
		if s.StepEvery <= 0 {
			return s, fmt.Errorf("schedule step: step_every must be positive, got %d", s.StepEvery)
		}
	default:
		return s, fmt.Errorf("schedule %q: want constant, cosine, linear or step", s.Kind)
	}
	if !(s.LR > 0) || s.MinLR < 0 || s.Warmup < 0 || total <= 0 {
		return s, fmt.Errorf("schedule: need lr > 0, min_lr >= 0, warmup_steps >= 0 and a positive step count (lr %v, min_lr %v, warmup %d, steps %d)",
			s.LR, s.MinLR, s.Warmup, total)
	}
	return s, nil
}

// At is the learning rate of the optimizer step that follows done completed steps.
func (s Schedule) At(done int) float64 {
	t := done + 1
	if t <= s.Warmup {
		return s.LR * float64(t) / float64(s.Warmup)
	}
	after := done - s.Warmup // steps completed since warmup
	n := s.Total - s.Warmup
	frac := 1.0
	if n > 0 {
		frac = math.Min(float64(after)/float64(n), 1)
	}
	switch s.Kind {
	case "cosine":
		return s.MinLR + (s.LR-s.MinLR)*0.5*(1+math.Cos(math.Pi*frac))
	case "linear":
		return s.LR - (s.LR-s.MinLR)*frac
	case "step":
		return s.LR * math.Pow(s.Gamma, float64(after/s.StepEvery))
	}
	return s.LR
}
