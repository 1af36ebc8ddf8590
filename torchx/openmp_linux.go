package torchx

import (
	"os"
	"syscall"
)

// PassiveOpenMP restarts the process with OMP_WAIT_POLICY=PASSIVE unless the variable is
// already set; it returns only when it does not restart (or the restart fails). libtorch runs
// its own ops on OpenMP threads and matrix products on OpenBLAS's pthreads; OpenMP threads spin
// after each parallel region by default, taking the cores OpenBLAS's threads need next (BLIP-large
// greedy captioning on 2 cores: 5.4–5.8 s spinning, 4.9–5.1 s passive). libgomp reads the policy
// once when it is loaded, before main, hence the restart.
func PassiveOpenMP() error {
	if _, set := os.LookupEnv("OMP_WAIT_POLICY"); set {
		return nil
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	return syscall.Exec(exe, os.Args, append(os.Environ(), "OMP_WAIT_POLICY=PASSIVE"))
}
