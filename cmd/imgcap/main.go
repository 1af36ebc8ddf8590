// Command imgcap trains, evaluates and serves image-captioning models on libtorch.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := rootCmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "imgcap:", err)
		os.Exit(exitCode(err))
	}
}
