package serve

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/imgcap/imgcap/data/image"
)

//go:embed static
var staticFiles embed.FS

// statusClientClosed is recorded (nginx's convention) when the client left before its answer.
const statusClientClosed = 499

// contentSecurityPolicy keeps the page to its own embedded assets: no CDN, works offline.
const contentSecurityPolicy = "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"

func (s *Server) routes() {
	s.mux = http.NewServeMux()
	static, err := fs.Sub(staticFiles, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	index, err := fs.ReadFile(static, "index.html")
	if err != nil {
		panic(err)
	}
	files := http.FileServerFS(static)
	s.handle("GET /{$}", "page", func(w http.ResponseWriter, r *http.Request) {
		pageHeaders(w)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(index)
	})
	s.handle("GET /static/", "static", func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r) // no directory listings
			return
		}
		pageHeaders(w)
		http.StripPrefix("/static", files).ServeHTTP(w, r)
	})
	s.handle("POST /api/caption", "caption", s.handleCaption)
	s.handle("GET /api/models", "models", s.handleModels)
	s.handle("GET /healthz", "healthz", s.handleHealth)
	s.handle("GET /metrics", "metrics", s.handleMetrics)
	for path, allow := range map[string]string{"/api/caption": "POST", "/api/models": "GET, HEAD"} {
		s.handle(path, "other", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeJSON(w, http.StatusMethodNotAllowed, errorBody{Error: fmt.Sprintf("%s %s: use %s", r.Method, path, allow)})
		})
	}
	s.handle("/api/", "other", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, errorBody{Error: fmt.Sprintf("no API endpoint %s %s (POST /api/caption, GET /api/models)", r.Method, r.URL.Path)})
	})
}

func pageHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}

// statusWriter records the status code of a response.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// handle registers a handler whose requests are counted and timed under the label name.
func (s *Server) handle(pattern, name string, h http.HandlerFunc) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		h(sw, r)
		code := sw.code
		if code == 0 {
			code = http.StatusOK
		}
		s.metrics.httpRequests.add(1, name, strconv.Itoa(code))
		s.metrics.httpDuration.observe(time.Since(start).Seconds(), name)
	})
}

// errorBody is the JSON of an error response.
type errorBody struct {
	Error string `json:"error"`
	Model string `json:"model,omitempty"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"encoding the response failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// apiError is a request the server refuses: the status code, the message the client reads, and
// the reason counted in imgcap_rejected_requests_total.
type apiError struct {
	code   int
	reason string
	msg    string
	cause  error // what went wrong underneath, if anything (an exceeded body limit, say)
}

func (e *apiError) Error() string { return e.msg }

func newAPIError(code int, reason, msg string) *apiError {
	return &apiError{code: code, reason: reason, msg: msg}
}

func badRequest(format string, args ...any) *apiError {
	return &apiError{code: http.StatusBadRequest, reason: "bad_request", msg: fmt.Sprintf(format, args...)}
}

func (s *Server) reject(w http.ResponseWriter, e *apiError) {
	s.metrics.rejected.add(1, e.reason)
	s.opts.Logger.Info("caption refused", "code", e.code, "reason", e.reason, "error", e.msg)
	if e.code == statusClientClosed {
		w.WriteHeader(e.code)
		return
	}
	if e.code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, e.code, errorBody{Error: e.msg})
}

// modelsResponse is the JSON of GET /api/models.
type modelsResponse struct {
	Models  []ModelInfo `json:"models"`
	Default string      `json:"default"`
	Limits  limits      `json:"limits"`
}

type limits struct {
	MaxUploadBytes int64   `json:"max_upload_bytes"`
	MaxPixels      int64   `json:"max_pixels"`
	MaxBatch       int     `json:"max_batch"`
	MaxWaitMS      float64 `json:"max_wait_ms"`
	TimeoutS       float64 `json:"timeout_s"`
	MaxNumBeams    int     `json:"max_num_beams"`
	MaxNewTokens   int     `json:"max_new_tokens"`
	MaxPromptBytes int     `json:"max_prompt_bytes"`
}

func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) {
	o := s.opts
	writeJSON(w, http.StatusOK, modelsResponse{
		Models: s.Models(), Default: s.models[0].Name,
		Limits: limits{
			MaxUploadBytes: o.MaxUploadBytes, MaxPixels: o.MaxPixels, MaxBatch: o.MaxBatch,
			MaxWaitMS: float64(o.MaxWait) / float64(time.Millisecond), TimeoutS: o.Timeout.Seconds(),
			MaxNumBeams: MaxNumBeams, MaxNewTokens: MaxNewTokens, MaxPromptBytes: MaxPromptBytes,
		},
	})
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "shutting down"})
		return
	}
	names := make([]string, len(s.models))
	for i, m := range s.models {
		names[i] = m.Name
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "models": names})
}

func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	var buf bytes.Buffer
	if err := s.metrics.write(&buf); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_, _ = w.Write(buf.Bytes())
}

// captionRequest is a parsed POST /api/caption.
type captionRequest struct {
	image  []byte
	models []string
	list   bool // answer with a list (the request named its models as a list)
	key    genKey
}

// Caption is one caption in a response.
type Caption struct {
	// Text is the decoded caption (empty for a model without tokenizer).
	Text string `json:"text"`
	// Score is the sequence log-probability (beam search: length-normalised); absent when not
	// finite.
	Score *float64 `json:"score,omitempty"`
	// IDs are the generated token ids, without the prompt and the end token.
	IDs []int64 `json:"ids"`
}

// CaptionResponse is the answer of one model to POST /api/caption.
type CaptionResponse struct {
	Model    string    `json:"model"`
	Captions []Caption `json:"captions,omitempty"`
	// MS is the time from queueing the image for the model to its caption, in milliseconds.
	MS float64 `json:"ms"`
	// QueueMS is the part of MS spent waiting for the model (batching and earlier batches).
	QueueMS float64 `json:"queue_ms"`
	// BatchSize is the number of images captioned in the same model call.
	BatchSize int `json:"batch_size"`
	// Error replaces the captions when this model failed (in a list answer).
	Error string `json:"error,omitempty"`
	code  int
}

func (s *Server) handleCaption(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.Timeout)
	defer cancel()
	if s.draining.Load() {
		s.reject(w, newAPIError(http.StatusServiceUnavailable, "shutting_down", ErrClosed.Error()))
		return
	}
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		if r.Context().Err() != nil {
			s.reject(w, newAPIError(statusClientClosed, "client_gone", "client went away"))
		} else {
			s.reject(w, newAPIError(http.StatusServiceUnavailable, "busy",
				fmt.Sprintf("server busy: all %d request slots stayed taken for %s; retry later", s.opts.MaxInFlight, s.opts.Timeout)))
		}
		return
	}
	n := s.inFlight.Add(1)
	for p := s.peak.Load(); n > p && !s.peak.CompareAndSwap(p, n); p = s.peak.Load() { // keep the maximum
	}
	defer func() {
		s.inFlight.Add(-1)
		<-s.slots
	}()

	req, aerr := s.parseCaptionRequest(w, r)
	if aerr != nil {
		s.reject(w, aerr)
		return
	}
	img, err := image.DecodeBytes(req.image, image.DecodeOptions{MaxPixels: s.opts.MaxPixels})
	req.image = nil
	if err != nil {
		if errors.Is(err, image.ErrTooLarge) {
			s.reject(w, newAPIError(http.StatusRequestEntityTooLarge, "too_many_pixels", fmt.Sprintf("image too large: %v", err)))
		} else {
			s.reject(w, newAPIError(http.StatusBadRequest, "bad_image", fmt.Sprintf("not a readable image: %v", err)))
		}
		return
	}

	results := make([]CaptionResponse, len(req.models))
	var wg sync.WaitGroup
	for i, name := range req.models {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = s.captionWith(ctx, r.Context(), s.workers[s.byName[name]], img, req.key)
		}()
	}
	wg.Wait()
	for _, res := range results {
		attrs := []any{"model", res.Model, "code", res.code, "ms", res.MS, "batch", res.BatchSize}
		if res.Error != "" {
			attrs = append(attrs, "error", res.Error)
		}
		s.opts.Logger.Info("caption", attrs...)
	}
	if !req.list {
		res := results[0]
		if res.code == statusClientClosed {
			w.WriteHeader(res.code)
			return
		}
		if res.Error != "" {
			if res.code == http.StatusServiceUnavailable {
				w.Header().Set("Retry-After", "1")
			}
			writeJSON(w, res.code, errorBody{Error: res.Error, Model: res.Model})
			return
		}
		writeJSON(w, http.StatusOK, res)
		return
	}
	code := results[0].code
	for _, res := range results {
		if res.Error == "" {
			code = http.StatusOK
		}
	}
	if code == statusClientClosed {
		w.WriteHeader(code)
		return
	}
	writeJSON(w, code, results)
}

// captionWith captions img with one model and classifies the outcome. reqCtx is the client's
// context (to tell a departed client from a timeout).
func (s *Server) captionWith(ctx, reqCtx context.Context, wk *worker, img *image.RGB, key genKey) CaptionResponse {
	name := wk.model.Name
	start := time.Now()
	res := wk.submit(ctx, img, key)
	el := time.Since(start)
	s.metrics.captionTime.observe(el.Seconds(), name)
	out := CaptionResponse{Model: name, MS: roundMS(el), QueueMS: roundMS(res.wait), BatchSize: res.batch, code: http.StatusOK}
	err := res.err
	if ctx.Err() != nil {
		err = ctx.Err() // whatever the worker said, the request has ended
	}
	outcome := "ok"
	switch {
	case err == nil:
		c := Caption{Text: res.caption.Text, IDs: res.caption.IDs}
		if c.IDs == nil {
			c.IDs = []int64{}
		}
		if sc := res.caption.Score; !math.IsInf(sc, 0) && !math.IsNaN(sc) {
			c.Score = &sc
		}
		out.Captions = []Caption{c}
	case reqCtx.Err() != nil:
		outcome, out.code, out.Error = "canceled", statusClientClosed, "client went away"
	case errors.Is(err, context.DeadlineExceeded):
		outcome, out.code = "timeout", http.StatusGatewayTimeout
		out.Error = fmt.Sprintf("no caption within the request timeout of %s", s.opts.Timeout)
	case errors.Is(err, ErrClosed) || errors.Is(err, context.Canceled):
		outcome, out.code, out.Error = "unavailable", http.StatusServiceUnavailable, ErrClosed.Error()
	default:
		outcome, out.code, out.Error = "error", http.StatusInternalServerError, fmt.Sprintf("captioning failed: %v", err)
	}
	s.metrics.captions.add(1, name, outcome)
	return out
}

func roundMS(d time.Duration) float64 {
	return math.Round(float64(d)/float64(time.Millisecond)*10) / 10
}

// parseCaptionRequest reads a multipart or JSON caption request, within the upload limit.
func (s *Server) parseCaptionRequest(w http.ResponseWriter, r *http.Request) (*captionRequest, *apiError) {
	const usage = "send the image as multipart/form-data field `image`, or JSON {\"image\": \"<base64>\"}"
	if r.ContentLength == 0 {
		return nil, badRequest("empty request body: %s", usage)
	}
	ctype := r.Header.Get("Content-Type")
	if ctype == "" {
		return nil, newAPIError(http.StatusUnsupportedMediaType, "bad_request", "no Content-Type: "+usage)
	}
	mt, params, err := mime.ParseMediaType(ctype)
	if err != nil {
		return nil, newAPIError(http.StatusUnsupportedMediaType, "bad_request", fmt.Sprintf("Content-Type %q: %v; %s", ctype, err, usage))
	}
	limit := s.opts.MaxUploadBytes
	var bodyLimit int64
	switch mt {
	case "multipart/form-data":
		bodyLimit = limit + formOverhead
	case "application/json":
		bodyLimit = (limit+2)/3*4 + formOverhead // base64 of the image, and the other keys
	default:
		return nil, newAPIError(http.StatusUnsupportedMediaType, "bad_request", fmt.Sprintf("Content-Type %s is not supported: %s", mt, usage))
	}
	if r.ContentLength > bodyLimit {
		return nil, tooLarge(limit)
	}
	body := &countingReader{r: http.MaxBytesReader(w, r.Body, bodyLimit)}
	var req *captionRequest
	var aerr *apiError
	if mt == "application/json" {
		req, aerr = parseJSON(body, limit)
	} else {
		if params["boundary"] == "" {
			return nil, badRequest("multipart/form-data without a boundary: %s", usage)
		}
		req, aerr = parseMultipart(multipart.NewReader(body, params["boundary"]), limit)
	}
	if aerr != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(aerr.cause, &mbe):
			return nil, tooLarge(limit)
		case body.n == 0:
			return nil, badRequest("empty request body: %s", usage)
		}
		return nil, aerr
	}
	if len(req.image) == 0 {
		return nil, badRequest("the image is empty (0 bytes)")
	}
	if int64(len(req.image)) > limit {
		return nil, tooLarge(limit)
	}
	if aerr := s.checkOptions(req); aerr != nil {
		return nil, aerr
	}
	return req, nil
}

// countingReader counts the bytes read, to tell an empty body from a malformed one.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func tooLarge(limit int64) *apiError {
	return newAPIError(http.StatusRequestEntityTooLarge, "too_many_bytes",
		fmt.Sprintf("upload too large: the image may have at most %d bytes (%s)", limit, humanBytes(limit)))
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
