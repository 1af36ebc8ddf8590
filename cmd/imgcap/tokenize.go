package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/imgcap/imgcap/data/tok"
)

func init() { rootCmd.AddCommand(newTokenizeCmd()) }

// newTokenizeCmd builds `imgcap tokenize`: text lines on stdin, token ids on stdout.
func newTokenizeCmd() *cobra.Command {
	var (
		path string
		opts tok.RunOptions
	)
	cmd := &cobra.Command{
		Use:   "tokenize --tokenizer DIR_OR_FILE [--json] [--jsonl] [--special]",
		Short: "Print the token ids (and tokens) of each text read on stdin",
		Long: `Tokenize reads one text per line on stdin (with --jsonl: one JSON string per line, so
texts may hold newlines) and prints, per text, its ids and tokens: "ids<TAB>tokens" by
default, or with --json one {"text","ids","tokens","decoded"} object per line.

--tokenizer is a model folder (tokenizer.json, vocab.json + merges.txt, vocab.txt or
word_vocab.json) or one of those files. --special adds the special tokens the model
puts around a sequence ([CLS] ... [SEP] for BERT, none for GPT-2, startseq ... endseq
for the word vocabulary).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if path == "" {
				return usageError{errors.New("--tokenizer is required")}
			}
			tk, err := tok.Load(path)
			if err != nil {
				return err
			}
			return tok.RunTokenize(tk, cmd.InOrStdin(), cmd.OutOrStdout(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&path, "tokenizer", "", "tokenizer folder or file (tokenizer.json, vocab.json, vocab.txt, word_vocab.json)")
	f.BoolVar(&opts.JSON, "json", false, `print one JSON object {"text","ids","tokens","decoded"} per text`)
	f.BoolVar(&opts.JSONL, "jsonl", false, "read one JSON string per input line")
	f.BoolVar(&opts.Special, "special", false, "add the model's special tokens around each text")
	return cmd
}
