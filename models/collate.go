package models

import (
	"fmt"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Collate builds a Batch from per-item pixels (each C×H×W float32, same shape; nil for none)
// and token ids (right-padded with pad to the longest), placing the tensors on device.
func Collate(pixels [][]float32, chw []int64, ids [][]int64, pad int64, imageIDs []int64, paths []string, device gotch.Device) (b *Batch, err error) {
	b = &Batch{ImageIDs: imageIDs, Paths: paths}
	defer func() {
		if err != nil {
			b.Drop()
			b = nil
		}
	}()
	if len(pixels) > 0 {
		n := int64(1)
		for _, d := range chw {
			n *= d
		}
		flat := make([]float32, 0, int64(len(pixels))*n)
		for i, p := range pixels {
			if int64(len(p)) != n {
				return nil, fmt.Errorf("collate: image %d has %d values, want %v = %d", i, len(p), chw, n)
			}
			flat = append(flat, p...)
		}
		shape := append([]int64{int64(len(pixels))}, chw...)
		if b.Pixels, err = tensorOf(flat, shape, device); err != nil {
			return nil, err
		}
	}
	if len(ids) > 0 {
		maxLen := 0
		for _, s := range ids {
			maxLen = max(maxLen, len(s))
		}
		if maxLen == 0 {
			return nil, fmt.Errorf("collate: every token sequence is empty")
		}
		flat := make([]int64, 0, len(ids)*maxLen)
		mask := make([]int64, 0, len(ids)*maxLen)
		for _, s := range ids {
			flat = append(flat, s...)
			for range s {
				mask = append(mask, 1)
			}
			for j := len(s); j < maxLen; j++ {
				flat = append(flat, pad)
				mask = append(mask, 0)
			}
		}
		shape := []int64{int64(len(ids)), int64(maxLen)}
		if b.InputIDs, err = tensorOf(flat, shape, device); err != nil {
			return nil, err
		}
		if b.AttentionMask, err = tensorOf(mask, shape, device); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// tensorOf copies a Go slice into a tensor of the given shape on device.
func tensorOf[T float32 | int64](data []T, shape []int64, device gotch.Device) (*ts.Tensor, error) {
	t, err := ts.OfSlice(data)
	if err != nil {
		return nil, err
	}
	v, err := t.View(shape, true)
	if err != nil {
		return nil, err
	}
	if device == gotch.CPU {
		return v, nil
	}
	return v.To(device, true)
}
