package torchx

/*
#include <stdint.h>
#include <stdlib.h>
// Defined in gotch's libtch (torch_api.cpp) but not bound to Go by gotch.
void at_manual_seed(int64_t);
int  at_get_num_threads();
void at_set_num_threads(int);
char *get_and_reset_last_err();
int  at_grad_set_enabled(int);
*/
import "C"

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// lastErr takes libtorch's pending error on this OS thread, if any.
func lastErr(op string) error {
	p := C.get_and_reset_last_err()
	if p == nil {
		return nil
	}
	defer C.free(unsafe.Pointer(p))
	return &Error{Op: op, Msg: shortTorchMessage(C.GoString(p))}
}

// gradSetEnabled sets this OS thread's grad mode and returns the previous one. gotch's
// ts.GradSetEnabled reads the 4-byte C int result as an 8-byte Go int and so returns garbage
// for the previous state; this binding reads it correctly.
func gradSetEnabled(on bool) (bool, error) {
	b := C.int(0)
	if on {
		b = 1
	}
	prev := int(C.at_grad_set_enabled(b))
	if err := lastErr("set grad mode"); err != nil {
		return false, err
	}
	if prev != 0 && prev != 1 {
		return false, fmt.Errorf("set grad mode: unexpected result %d", prev)
	}
	return prev == 1, nil
}

// SetThreads sets libtorch's intra-op thread count; n <= 0 means one per CPU core.
func SetThreads(n int) error {
	if n <= 0 {
		n = runtime.NumCPU()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	C.at_set_num_threads(C.int(n))
	return lastErr("set threads")
}

// Threads reports libtorch's intra-op thread count.
func Threads() int {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	n := int(C.at_get_num_threads())
	_ = lastErr("")
	return n
}

// Seed seeds libtorch's random generators (CPU and CUDA).
func Seed(seed int64) {
	C.at_manual_seed(C.int64_t(seed))
}

// ParseDevice turns "auto", "cpu", "cuda" or "cuda:N" into a gotch device. "auto" picks CUDA
// device 0 when libtorch sees one; asking for CUDA without one is an error.
func ParseDevice(s string) (gotch.Device, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	switch {
	case s == "" || s == "auto":
		return gotch.CudaIfAvailable(), nil
	case s == "cpu":
		return gotch.CPU, nil
	case s == "cuda" || strings.HasPrefix(s, "cuda:"):
		idx := 0
		if s != "cuda" {
			n, err := strconv.Atoi(strings.TrimPrefix(s, "cuda:"))
			if err != nil || n < 0 {
				return gotch.CPU, fmt.Errorf("device %q: want cuda:N with N >= 0", s)
			}
			idx = n
		}
		count := CUDADeviceCount()
		if count == 0 {
			return gotch.CPU, fmt.Errorf("device %q: libtorch sees no CUDA device (CPU-only build or no driver); use --device cpu", s)
		}
		if idx >= count {
			return gotch.CPU, fmt.Errorf("device %q: only %d CUDA device(s) present", s, count)
		}
		return gotch.CudaBuilder(uint(idx)), nil
	}
	return gotch.CPU, fmt.Errorf("device %q: want auto, cpu, cuda or cuda:N", s)
}

// CUDADeviceCount reports how many CUDA devices libtorch can use.
func CUDADeviceCount() int {
	if !gotch.CUDA.IsAvailable() {
		return 0
	}
	return int(gotch.CUDA.DeviceCount())
}

// DeviceName is the conventional name of a gotch device: "cpu" or "cuda:N".
func DeviceName(d gotch.Device) string {
	if d.IsCuda() {
		return fmt.Sprintf("cuda:%d", d.Value)
	}
	return "cpu"
}

// BLASLibraries lists the BLAS/LAPACK shared libraries mapped into this process, read from
// /proc/self/maps: it shows whether libtorch multiplies matrices with OpenBLAS, MKL or the
// slow reference BLAS.
func BLASLibraries() ([]string, error) {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	seen := map[string]bool{}
	var libs []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 {
			continue
		}
		path := fields[len(fields)-1]
		base := path[strings.LastIndex(path, "/")+1:]
		if !(strings.Contains(base, "blas") || strings.Contains(base, "mkl") || strings.Contains(base, "lapack")) {
			continue
		}
		if !seen[path] {
			seen[path] = true
			libs = append(libs, path)
		}
	}
	return libs, sc.Err()
}

// MatmulGFLOPS measures float32 matrix-product speed with n×n matrices on device d, taking the
// best of several runs after a warm-up.
func MatmulGFLOPS(n int64, d gotch.Device) (float64, error) {
	if n <= 0 {
		return 0, errors.New("matmul size must be positive")
	}
	var best time.Duration
	err := NoGrad(func() error {
		return WithScope(func(s *Scope) error {
			a, err := ts.Randn([]int64{n, n}, gotch.Float, d)
			if err != nil {
				return Err("randn", err)
			}
			b, err := ts.Randn([]int64{n, n}, gotch.Float, d)
			if err != nil {
				return Err("randn", err)
			}
			for i := 0; i < 6; i++ {
				start := time.Now()
				c, err := a.Matmul(b, false)
				if err != nil {
					return Err("matmul", err)
				}
				if d.IsCuda() {
					// Reading one value waits for the kernel to finish.
					sum, err := c.Sum(gotch.Float, false)
					if err != nil {
						return Err("sync", err)
					}
					if _, err := sum.Float64Value([]int64{}); err != nil {
						return Err("sync", err)
					}
				}
				el := time.Since(start)
				if i > 0 && (best == 0 || el < best) {
					best = el
				}
				if err := c.Drop(); err != nil {
					return Err("drop", err)
				}
			}
			return nil
		})
	})
	if err != nil {
		return 0, err
	}
	return 2 * float64(n) * float64(n) * float64(n) / best.Seconds() / 1e9, nil
}
