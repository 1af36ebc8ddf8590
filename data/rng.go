package data

import (
	"math/bits"
	"math/rand/v2"
)

// Deterministic randomness. Everything random in this package is derived from the user's seed with
// splitmix64 mixing and PCG-DXSM streams (math/rand/v2.PCG, whose algorithm is fixed); bounded integers
// and shuffles are implemented here so that splits and batch orders stay the same across Go releases.

// mix64 is the splitmix64 finalizer: a bijective 64-bit mixer.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// deriveSeed hashes a seed and a path of integers (purpose, epoch, index, ...) into a new seed.
func deriveSeed(seed uint64, parts ...uint64) uint64 {
	h := mix64(seed + 0x9e3779b97f4a7c15)
	for _, p := range parts {
		h = mix64(h ^ mix64(p+0x9e3779b97f4a7c15))
	}
	return h
}

// Purposes keep the random streams of different uses independent.
const (
	purposeSplit   = 1
	purposeShuffle = 2
	purposeItem    = 3
	purposeCaption = 4
)

// newPCG returns a PCG stream for a derived seed.
func newPCG(seed uint64, parts ...uint64) *rand.PCG {
	s := deriveSeed(seed, parts...)
	return rand.NewPCG(s, mix64(s^0x6a09e667f3bcc909))
}

// uint64n returns a uniform integer in [0, n) (Lemire's multiply-and-reject), n > 0.
func uint64n(src *rand.PCG, n uint64) uint64 {
	for {
		x := src.Uint64()
		hi, lo := bits.Mul64(x, n)
		if lo < n {
			thresh := -n % n
			if lo < thresh {
				continue
			}
		}
		return hi
	}
}

// shuffle permutes p in place (Fisher-Yates).
func shuffle[T any](src *rand.PCG, p []T) {
	for i := len(p) - 1; i > 0; i-- {
		j := int(uint64n(src, uint64(i+1)))
		p[i], p[j] = p[j], p[i]
	}
}
