package main

import (
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/imgcap/imgcap/config"
	"github.com/imgcap/imgcap/runner"
	"github.com/imgcap/imgcap/torchx"
)

func init() {
	rootCmd.AddCommand(&cobra.Command{
		Use:   "features --config FILE",
		Short: "Extract frozen VGG16 fc2 features of every image once (the notebook's features.pkl) into data.cache_dir",
		Long: `Features runs the VGG16 encoder named by model.pretrained over every image of the dataset and
writes the fc2 features, keyed by image id, to data.cache_dir/` + runner.FeatureCacheFile + `. Training
with model.freeze_encoder: true then reads them instead of decoding images.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if globals.config == "" {
				return usageError{config.ErrNoConfig}
			}
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			dev, err := torchx.ParseDevice(globals.device)
			if err != nil {
				return usageError{err}
			}
			path, n, err := runner.ExtractFeatures(cmd.Context(), cfg, runner.Env{Device: dev, Progress: cmd.ErrOrStderr(), Logger: slog.Default()})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote features of %d images to %s\n", n, path)
			return nil
		},
	})
}
