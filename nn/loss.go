package nn

import (
	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/torchx"
)

// IgnoreIndex is the label value that cross-entropy skips, as in PyTorch and Hugging Face.
const IgnoreIndex = -100

// CrossEntropy is the mean cross-entropy of logits [N,C] against labels [N] (int64), skipping
// labels equal to ignoreIndex, with optional label smoothing (PyTorch semantics).
func CrossEntropy(logits, labels *ts.Tensor, ignoreIndex int64, labelSmoothing float64) (*ts.Tensor, error) {
	out, err := logits.CrossEntropyLoss(labels, ts.None, 1, ignoreIndex, labelSmoothing, false)
	return out, torchx.Err("cross entropy", err)
}

// SequenceCrossEntropy is CrossEntropy over logits [B,T,V] and labels [B,T].
func SequenceCrossEntropy(logits, labels *ts.Tensor, ignoreIndex int64, labelSmoothing float64) (out *ts.Tensor, err error) {
	defer torchx.Catch(&err)
	shape, err := logits.Size()
	if err != nil {
		return nil, torchx.Err("cross entropy", err)
	}
	v := shape[len(shape)-1]
	flat := torchx.Must(logits.Reshape([]int64{-1, v}, false))
	defer flat.Drop()
	lab := torchx.Must(labels.Reshape([]int64{-1}, false))
	defer lab.Drop()
	return CrossEntropy(flat, lab, ignoreIndex, labelSmoothing)
}
