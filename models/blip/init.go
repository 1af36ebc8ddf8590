package blip

import (
	gnn "github.com/sugarme/gotch/nn"

	"github.com/imgcap/imgcap/nn"
	"github.com/imgcap/imgcap/torchx"
)

// linear is a Linear with bias initialised as HF's BLIP does (weight N(0, std²), bias 0); it
// unwinds to the enclosing torchx.Catch on failure.
func linear(p *gnn.Path, in, out int64, std float64) *nn.Linear {
	l, err := nn.NewLinearInit(p, in, out, nn.NormalInit(std), nn.ZeroInit())
	torchx.MustOK(err)
	return l
}
