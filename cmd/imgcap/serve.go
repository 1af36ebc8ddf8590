package main

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/imgcap/imgcap/runner"
	"github.com/imgcap/imgcap/serve"
	"github.com/imgcap/imgcap/torchx"
)

func init() {
	var int8 bool
	var modelRefs []string
	var addr string
	cmd := &cobra.Command{
		Use:   "serve [--model REF ...] [--addr HOST:PORT]",
		Short: "Serve the captioning web page and a JSON API",
		Long: `Serve loads the models once and serves, on --addr (default 127.0.0.1:8080):

  /                  the captioning page: pick or drop an image, choose models, generate captions
  POST /api/caption  multipart field "image" (or JSON {"image": base64}) plus optional model,
                     num_beams, max_new_tokens, prompt -> {"captions": [...], "model", "ms"}
  GET  /api/models   the served models and the server's limits
  GET  /healthz      liveness (503 while shutting down)
  GET  /metrics      Prometheus metrics

--model (repeatable) takes Hugging Face model folders, transformer run directories, VGG16+LSTM
run directories or hub ids already pulled; without it, serve.models of --config, else the
original app's default, ` + serve.DefaultModel + `. Concurrent requests are batched per model
(serve.max_batch, serve.max_wait_ms). SIGINT or SIGTERM stops accepting requests, answers the
ones in progress and exits.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			sc := cfg.Serve
			if cmd.Flags().Changed("addr") {
				sc.Addr = addr
			}
			if _, _, err := net.SplitHostPort(sc.Addr); err != nil {
				return usageError{fmt.Errorf("--addr %q: want host:port (e.g. 127.0.0.1:8080 or :8080): %v", sc.Addr, err)}
			}
			refs := modelRefs
			if len(refs) == 0 {
				refs = sc.Models
			}
			usingDefault := len(refs) == 0
			if usingDefault {
				refs = []string{serve.DefaultModel}
			}
			dev, err := inferenceDevice(int8)
			if err != nil {
				return usageError{err}
			}
			log := slog.Default()
			var loaded []serve.Model
			for _, ref := range refs {
				var m *runner.Model
				err := torchx.Locked(func() error {
					var err error
					if m, err = runner.Open(ref, dev); err != nil || !int8 {
						return err
					}
					return m.QuantizeInt8(log.With("model", ref))
				})
				if err != nil {
					if usingDefault {
						return fmt.Errorf("the default model %s is not available: %w\n"+
							"  download it once:   imgcap pull %s\n"+
							"  or serve your own:  imgcap serve --model DIR   (a Hugging Face model folder or an imgcap run directory)",
							ref, err, ref)
					}
					return fmt.Errorf("model %s: %w", ref, err)
				}
				log.Info("model loaded", "model", ref, "arch", m.Arch, "device", torchx.DeviceName(dev))
				loaded = append(loaded, serve.FromRunner(m))
			}
			o := serve.ConfigOptions(sc, loaded...)
			o.Logger = log
			srv, err := serve.New(o)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return srv.ListenAndServe(ctx, sc.Addr, func(a net.Addr) {
				names := make([]string, len(loaded))
				for i, m := range loaded {
					names[i] = m.Name
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "imgcap serve: http://%s/ (models: %s; Ctrl-C stops)\n", a, strings.Join(names, ", "))
			})
		},
	}
	addInt8Flag(cmd, &int8)
	cmd.Flags().StringArrayVar(&modelRefs, "model", nil, "model to serve: HF model folder, run directory or pulled hub id (repeatable; default: serve.models, else "+serve.DefaultModel+")")
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:8080", "listen address host:port (default: serve.addr of --config, 127.0.0.1:8080)")
	rootCmd.AddCommand(cmd)
}
