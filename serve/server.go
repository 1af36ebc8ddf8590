// Package serve is imgcap's HTTP server: the web page of the original Streamlit app (pick an
// image, choose models, generate captions) and a JSON API, both served from embedded assets.
//
// Each model gets one worker: a goroutine locked to one OS thread, since libtorch keeps its grad
// mode and last error per thread. Concurrent requests for a model are batched dynamically: the
// worker takes the first queued image, waits up to MaxWait for others (up to MaxBatch) and
// captions images that share generation options in one model call. Requests carry a timeout,
// and a model call stops early once every request in it has ended (timed out or the client went
// away). Uploads are limited in bytes and decoded images in pixels (decompression bombs), and at
// most MaxInFlight requests hold image data at once, which bounds memory under load.
package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/imgcap/imgcap/config"
	"github.com/imgcap/imgcap/data/image"
	"github.com/imgcap/imgcap/models"
	"github.com/imgcap/imgcap/runner"
)

// DefaultModel is the model `imgcap serve` serves when none is configured: the original app's
// BLIP captioner.
const DefaultModel = "Salesforce/blip-image-captioning-large"

// Limits of the generation options a request may set.
const (
	// MaxNumBeams is the widest beam search a request may ask for.
	MaxNumBeams = 16
	// MaxNewTokens is the longest caption (in tokens) a request may ask for.
	MaxNewTokens = 512
	// MaxPromptBytes is the longest prompt a request may give.
	MaxPromptBytes = 1000

	maxFieldBytes   = 4096    // a multipart form field other than the image
	formOverhead    = 1 << 20 // multipart headers and fields beyond the image bytes
	defaultMaxBatch = 8
)

// Captioner captions a batch of decoded images. The server calls it from one goroutine per
// model, locked to its OS thread.
type Captioner interface {
	CaptionImages(ctx context.Context, imgs []*image.RGB, o models.GenerateOptions) ([]models.Caption, error)
}

// ModelInfo describes a served model (GET /api/models).
type ModelInfo struct {
	// Name identifies the model in requests: the reference it was opened with.
	Name string `json:"name"`
	// Arch is the model family (vit_gpt2, blip_caption, vgg16_lstm).
	Arch string `json:"arch"`
	// Prompt reports whether the model continues a text prompt.
	Prompt bool `json:"prompt"`
	// Text reports whether captions come as text (a model without tokenizer gives token ids).
	Text bool `json:"text"`
}

// Model is a served model.
type Model struct {
	ModelInfo
	// Captioner runs the model; the server calls it from the model's worker only.
	Captioner Captioner
}

// FromRunner wraps a model opened with runner.Open.
func FromRunner(m *runner.Model) Model {
	prompt := m.HasTokenizer() && (m.Arch == "vit_gpt2" || m.Arch == "blip_caption")
	return Model{ModelInfo: ModelInfo{Name: m.Name, Arch: m.Arch, Prompt: prompt, Text: m.HasTokenizer()}, Captioner: m}
}

// Options configure a Server. Zero values take the defaults noted.
type Options struct {
	// Models are served in this order; the first answers requests that name none.
	Models []Model
	// MaxBatch is the most images in one model call (default 8).
	MaxBatch int
	// MaxWait is how long a worker waits for more images after the first of a batch; 0 batches
	// only the images already queued.
	MaxWait time.Duration
	// Timeout bounds a caption request, from its arrival to its answer (default 2 minutes).
	Timeout time.Duration
	// MaxUploadBytes is the largest image file accepted (default 20 MiB).
	MaxUploadBytes int64
	// MaxPixels is the largest image accepted, width × height, checked on the header before
	// decoding (default 50 million).
	MaxPixels int64
	// MaxInFlight is the most caption requests admitted at once (reading, decoding, queued or
	// being captioned); others wait for a slot within their timeout. Default max(16, 4×MaxBatch).
	MaxInFlight int
	// ShutdownGrace is how long a shutdown waits for requests in progress before aborting them
	// (default Timeout).
	ShutdownGrace time.Duration
	// Logger receives one line per caption request (default slog.Default()).
	Logger *slog.Logger
}

// ConfigOptions turns the YAML serve section into Options for models.
func ConfigOptions(c config.ServeConfig, models ...Model) Options {
	return Options{
		Models: models, MaxBatch: c.MaxBatch, MaxWait: time.Duration(c.MaxWaitMS) * time.Millisecond,
		Timeout: time.Duration(c.TimeoutS * float64(time.Second)), MaxUploadBytes: c.MaxUploadBytes, MaxPixels: c.MaxPixels,
	}
}

func (o *Options) setDefaults() {
	if o.MaxBatch <= 0 {
		o.MaxBatch = defaultMaxBatch
	}
	if o.MaxWait < 0 {
		o.MaxWait = 0
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Minute
	}
	if o.MaxUploadBytes <= 0 {
		o.MaxUploadBytes = 20 << 20
	}
	if o.MaxPixels <= 0 {
		o.MaxPixels = 50_000_000
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = max(16, 4*o.MaxBatch)
	}
	if o.ShutdownGrace <= 0 {
		o.ShutdownGrace = o.Timeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Server serves the page and the API. It is an http.Handler; Serve adds graceful shutdown.
type Server struct {
	opts     Options
	models   []Model
	byName   map[string]int
	workers  []*worker
	metrics  *metrics
	mux      *http.ServeMux
	slots    chan struct{}
	inFlight atomic.Int64
	peak     atomic.Int64
	draining atomic.Bool
}

// New starts one worker per model.
func New(o Options) (*Server, error) {
	o.setDefaults()
	if len(o.Models) == 0 {
		return nil, errors.New("serve: no models")
	}
	s := &Server{opts: o, byName: map[string]int{}, slots: make(chan struct{}, o.MaxInFlight)}
	for i, m := range o.Models {
		if m.Name == "" || m.Captioner == nil {
			return nil, fmt.Errorf("serve: model %d has no name or no captioner", i)
		}
		if _, dup := s.byName[m.Name]; dup {
			return nil, fmt.Errorf("serve: model %s given twice", m.Name)
		}
		s.byName[m.Name] = i
		s.models = append(s.models, m)
	}
	s.metrics = newMetrics(
		&gaugeFunc{name: "imgcap_inflight_requests", help: "Caption requests admitted and not yet answered.", fn: func() []sample {
			return []sample{{v: float64(s.inFlight.Load())}}
		}},
		&gaugeFunc{name: "imgcap_inflight_requests_peak", help: "Most caption requests admitted at once since the start.", fn: func() []sample {
			return []sample{{v: float64(s.peak.Load())}}
		}},
		&gaugeFunc{name: "imgcap_inflight_requests_limit", help: "Most caption requests admitted at once (serve MaxInFlight).", fn: func() []sample {
			return []sample{{v: float64(o.MaxInFlight)}}
		}},
		&gaugeFunc{name: "imgcap_queue_length", help: "Images waiting for a model's worker.", labels: []string{"model"}, fn: func() []sample {
			out := make([]sample, len(s.workers))
			for i, w := range s.workers {
				out[i] = sample{labels: []string{w.model.Name}, v: float64(len(w.queue))}
			}
			return out
		}},
		&gaugeFunc{name: "imgcap_worker_busy", help: "1 while a model's worker runs a model call.", labels: []string{"model"}, fn: func() []sample {
			out := make([]sample, len(s.workers))
			for i, w := range s.workers {
				v := 0.0
				if w.busy.Load() {
					v = 1
				}
				out[i] = sample{labels: []string{w.model.Name}, v: v}
			}
			return out
		}},
		&gaugeFunc{name: "imgcap_model_info", help: "Served models (value 1).", labels: []string{"model", "arch"}, fn: func() []sample {
			out := make([]sample, len(s.models))
			for i, m := range s.models {
				out[i] = sample{labels: []string{m.Name, m.Arch}, v: 1}
			}
			return out
		}},
	)
	for _, m := range s.models {
		s.workers = append(s.workers, newWorker(m, o.MaxBatch, o.MaxWait, o.MaxInFlight, s.metrics))
	}
	s.routes()
	return s, nil
}

// Models describes the served models.
func (s *Server) Models() []ModelInfo {
	out := make([]ModelInfo, len(s.models))
	for i, m := range s.models {
		out[i] = m.ModelInfo
	}
	return out
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Close stops the workers after their model calls in progress; queued requests are answered
// with 503. Call it after the HTTP server has stopped (Serve does).
func (s *Server) Close() {
	s.draining.Store(true)
	for _, w := range s.workers {
		w.close()
	}
}

// Serve serves HTTP on ln until ctx ends, then shuts down gracefully: /healthz turns 503, new
// connections are refused, requests in progress are answered (or aborted after ShutdownGrace),
// and the workers stop.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       s.opts.Timeout,
		WriteTimeout:      s.opts.Timeout + 30*time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.opts.Logger.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		s.Close()
		return err
	case <-ctx.Done():
	}
	s.draining.Store(true)
	s.opts.Logger.Info("shutting down", "in_flight", s.inFlight.Load(), "grace", s.opts.ShutdownGrace)
	sctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownGrace)
	defer cancel()
	err := hs.Shutdown(sctx)
	if err != nil {
		// The grace period ran out: stop the model calls and drop the connections.
		for _, w := range s.workers {
			w.abort()
		}
		_ = hs.Close()
		err = fmt.Errorf("shutdown: requests still running after %s were aborted", s.opts.ShutdownGrace)
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	s.Close()
	return err
}

// ListenAndServe listens on addr (host:port) and serves until ctx ends (see Serve). ready, if
// not nil, is called with the listening address before serving.
func (s *Server) ListenAndServe(ctx context.Context, addr string, ready func(net.Addr)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	if ready != nil {
		ready(ln.Addr())
	}
	return s.Serve(ctx, ln)
}
