package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/imgcap/imgcap/hub"
)

func init() { rootCmd.AddCommand(newPullCmd()) }

// newPullCmd builds `imgcap pull`: download a hub repository into the shared HF cache.
func newPullCmd() *cobra.Command {
	var (
		revision string
		opts     hub.Options
	)
	cmd := &cobra.Command{
		Use:   "pull REPO_ID [--revision R] [--include GLOB ...] [--exclude GLOB ...]",
		Short: "Download a Hugging Face hub repository into the shared cache and print its folder",
		Long: `Pull downloads the files of a Hugging Face hub repository (e.g.
nlpconnect/vit-gpt2-image-captioning) at a revision (branch, tag or commit; default
main) into the cache Python's huggingface_hub and transformers use: $HF_HUB_CACHE, else
$HF_HOME/hub, else ~/.cache/huggingface/hub. It prints the snapshot folder: a model
folder, as transformers' from_pretrained sees it. REPO_ID may also be "org/name@revision".

--include and --exclude filter the files with shell patterns ('*' also matches '/';
"onnx/" means the whole folder), as huggingface-cli does. Files already in the cache are
not downloaded again; an interrupted download resumes where it stopped. LFS files are
checked against their sha256.

Environment: HF_TOKEN (private and gated repositories; else the token file of
huggingface-cli login), HF_ENDPOINT (a mirror), HF_HUB_OFFLINE=1 (cache only),
HTTPS_PROXY.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{fmt.Errorf("want one repository id (org/name), got %d arguments", len(args))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			repo, rev := args[0], revision
			if r, at, err := hub.ParseRef(args[0]); err == nil && r != args[0] {
				if cmd.Flags().Changed("revision") {
					return usageError{fmt.Errorf("%s names a revision: do not also give --revision", args[0])}
				}
				repo, rev = r, at
			}
			if err := hub.ValidateRepoID(repo); err != nil {
				return usageError{err}
			}
			opts.Progress = cmd.ErrOrStderr()
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			dir, err := hub.Download(ctx, repo, rev, opts)
			if err != nil && ctx.Err() != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "interrupted; run the same command again to resume the download\n")
				return interruptedError{err}
			}
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), dir)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&revision, "revision", hub.DefaultRevision, "branch, tag or commit hash")
	f.StringArrayVar(&opts.Include, "include", nil, "download only files matching this pattern (repeatable)")
	f.StringArrayVar(&opts.Exclude, "exclude", nil, "skip files matching this pattern (repeatable)")
	f.StringVar(&opts.CacheDir, "cache-dir", "", "cache folder (default: $HF_HUB_CACHE, $HF_HOME/hub or ~/.cache/huggingface/hub)")
	f.StringVar(&opts.RepoType, "repo-type", "model", "repository type: model, dataset or space")
	return cmd
}
