// Command imgcap trains, evaluates and serves image-captioning models on libtorch.
package main

import (
	"fmt"
	"os"

	"github.com/imgcap/imgcap/torchx"
)

func main() {
	// Restarts with OMP_WAIT_POLICY=PASSIVE unless the variable is set (see PassiveOpenMP); on
	// failure the process goes on with the default policy.
	_ = torchx.PassiveOpenMP()
	if err := rootCmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "imgcap:", err)
		os.Exit(exitCode(err))
	}
}
