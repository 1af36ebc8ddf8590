package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/imgcap/imgcap/runner"
)

func init() {
	var int8 bool
	var model string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "match --model DIR --images A.jpg [B.jpg ...] --texts \"a dog\" [\"a cat\" ...] [--json]",
		Short: "Score every image against every text with a BLIP retrieval model (ITM probability, ITC similarity)",
		Long: `Match loads a BLIP retrieval model (a BlipForImageTextRetrieval folder such as
Salesforce/blip-itm-large-coco once pulled, or a blip_retrieval run) and prints, for every
(image, text) pair, the image-text matching head's probability that the text describes the image
(ITM) and the cosine similarity of the contrastive features (ITC). Texts are tokenized as Hugging
Face's BlipProcessor does. --images and --texts each take every value that follows them (or may
be repeated).`,
		// --images and --texts take lists; the other flags are parsed after they are taken out.
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			var images, texts []string
			rest := splitListFlags(args, map[string]*[]string{"images": &images, "texts": &texts})
			cmd.InheritedFlags() // merges the root's persistent flags into cmd.Flags()
			if err := cmd.Flags().Parse(rest); err != nil {
				return usageError{err}
			}
			if help, _ := cmd.Flags().GetBool("help"); help {
				return cmd.Help()
			}
			if extra := cmd.Flags().Args(); len(extra) > 0 {
				return usageError{fmt.Errorf("unexpected arguments %q: images follow --images, texts follow --texts", extra)}
			}
			// The root's setup ran before the flags were parsed: run it again with them.
			if err := rootCmd.PersistentPreRunE(cmd, nil); err != nil {
				return err
			}
			switch {
			case model == "":
				return usageError{errNeedFlag("--model")}
			case len(images) == 0:
				return usageError{errors.New("no images given (--images A.jpg ...)")}
			case len(texts) == 0:
				return usageError{errors.New("no texts given (--texts \"a dog\" ...)")}
			}
			dev, err := inferenceDevice(int8)
			if err != nil {
				return usageError{err}
			}
			res, err := runner.MatchFiles(cmd.Context(), model, images, texts, runner.Env{Device: dev, Int8: int8, Logger: slog.Default()})
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			return printMatches(cmd.OutOrStdout(), res)
		},
	}
	addInt8Flag(cmd, &int8)
	cmd.Flags().StringVar(&model, "model", "", "BLIP retrieval model folder, hub id or blip_retrieval run")
	cmd.Flags().StringArray("images", nil, "image files (every value after the flag)")
	cmd.Flags().StringArray("texts", nil, "texts (every value after the flag)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON: images, texts, itm_prob, itm_logits, itc ([image][text])")
	rootCmd.AddCommand(cmd)
}

// splitListFlags takes the values of list flags out of args: every argument after --NAME (or the
// value of --NAME=V) up to the next flag goes to lists[NAME]; the other arguments are returned in
// order for the flag parser.
func splitListFlags(args []string, lists map[string]*[]string) []string {
	var rest []string
	var cur *[]string
	for i, a := range args {
		if a == "--" {
			return append(rest, args[i:]...)
		}
		if strings.HasPrefix(a, "-") && len(a) > 1 {
			name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
			if l, ok := lists[name]; ok && strings.HasPrefix(a, "--") {
				cur = l
				if hasVal {
					*l = append(*l, val)
				}
				continue
			}
			cur = nil
			rest = append(rest, a)
			continue
		}
		if cur != nil {
			*cur = append(*cur, a)
			continue
		}
		rest = append(rest, a)
	}
	return rest
}

// printMatches prints one line per (image, text) pair.
func printMatches(w io.Writer, res *runner.MatchResult) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "image\ttext\titm_prob\titc")
	for i, img := range res.Images {
		for j, t := range res.Texts {
			fmt.Fprintf(tw, "%s\t%s\t%.4f\t%.4f\n", img, t, res.ITMProb[i][j], res.ITC[i][j])
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// The best text per image, by ITM probability.
	for i, img := range res.Images {
		best := slices.Index(res.ITMProb[i], slices.Max(res.ITMProb[i]))
		fmt.Fprintf(w, "%s: best match %q (%.4f)\n", img, res.Texts[best], res.ITMProb[i][best])
	}
	return nil
}
