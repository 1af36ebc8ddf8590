package main

import (
	"github.com/spf13/cobra"

	"github.com/imgcap/imgcap/data/synth"
)

func init() { rootCmd.AddCommand(newSynthCmd()) }

// newSynthCmd is `imgcap synth`: write a synthetic shapes captioning dataset in Flickr8k or COCO layout.
func newSynthCmd() *cobra.Command {
	var o synth.Options
	cmd := &cobra.Command{
		Use:   "synth --format flickr8k|coco --n N --out DIR [--seed S] [--size 64]",
		Short: "Generate a synthetic captioning dataset (coloured shapes, 5 true captions per image)",
		Long: "synth draws simple scenes (circles, squares, triangles, diamonds in several colours, sizes, counts and\n" +
			"positions on plain backgrounds), writes them as JPEG or PNG and writes five true captions per image in the\n" +
			"real Flickr8k (Flickr8k.token.txt, Flickr_8k.*Images.txt, captions.txt) or MS-COCO 2014\n" +
			"(annotations/captions_{train,val}2014.json) layout, plus scenes.json with the ground truth.\n" +
			"The same flags and --seed give byte-identical files.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			seed, err := cmd.Flags().GetInt64("seed")
			if err != nil {
				return err
			}
			o.Seed = seed
			if err := o.Validate(); err != nil {
				return usageError{err}
			}
			res, err := synth.Generate(o)
			if err != nil {
				return err
			}
			return synth.WriteSummary(cmd.OutOrStdout(), res)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Format, "format", "flickr8k", "annotation layout: flickr8k or coco")
	f.IntVar(&o.N, "n", 1000, "number of images")
	f.StringVar(&o.OutDir, "out", "", "output directory (must be empty or absent unless --force)")
	f.IntVar(&o.Size, "size", 64, "image side in pixels (32..4096)")
	f.StringVar(&o.ImageFormat, "image-format", "jpg", "image file format: jpg or png")
	f.IntVar(&o.JPEGQuality, "quality", 95, "JPEG quality 1..100")
	f.BoolVar(&o.Overwrite, "force", false, "write into a non-empty output directory")
	f.IntVar(&o.Workers, "workers", 0, "image encoding goroutines (0 = all cores)")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}
