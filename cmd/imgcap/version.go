package main

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"
	"github.com/sugarme/gotch/imgcapinfo"
)

// version is imgcap's release version.
const version = "0.1.0-dev"

func init() {
	rootCmd.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Print imgcap's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintf(cmd.OutOrStdout(), "imgcap %s (%s, gotch %s, libtorch %s)\n",
				version, runtime.Version(), gotchVersion(), imgcapinfo.LibtorchVersion)
			return nil
		},
	})
}
