//go:build unix

package data

import (
	"syscall"
	"time"
)

// processCPUTime is the user+system CPU time of this process: benchmarks report it next to wall time
// because wall time is unreliable on a loaded machine.
func processCPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
