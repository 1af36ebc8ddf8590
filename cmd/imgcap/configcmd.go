package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/imgcap/imgcap/config"
)

// loadConfig reads the effective configuration from --config, IMGCAP_* and --set.
func loadConfig() (config.Config, error) {
	return config.Load(config.Options{File: globals.config, Sets: globals.sets, Env: os.Environ()})
}

func init() {
	cfgCmd := &cobra.Command{
		Use:   "config",
		Short: "Show or check YAML configs",
	}
	cfgCmd.AddCommand(&cobra.Command{
		Use:   "show",
		Short: "Print the effective config (defaults, --config file, IMGCAP_* environment, --set overrides)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := loadConfig()
			if err != nil {
				return err
			}
			out, err := config.YAML(c)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	})
	cfgCmd.AddCommand(&cobra.Command{
		Use:   "check FILE...",
		Short: "Validate config files, listing every problem with its key and line",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			bad := 0
			for _, f := range args {
				if _, err := config.Load(config.Options{File: f, Sets: globals.sets, Env: os.Environ()}); err != nil {
					bad++
					fmt.Fprintf(cmd.ErrOrStderr(), "%s: %v\n", f, err)
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: ok\n", f)
			}
			if bad > 0 {
				return fmt.Errorf("%d of %d config files invalid", bad, len(args))
			}
			return nil
		},
	})
	rootCmd.AddCommand(cfgCmd)
}
