package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imgcap/imgcap/data/image"
	"github.com/imgcap/imgcap/models"
)

// fake is a Captioner whose calls can be held, observed and made to fail; its caption of an
// image names the image's width and the options, so that answers can be traced to requests.
type fake struct {
	mu        sync.Mutex
	calls     []fakeCall
	hold      chan struct{} // if not nil, calls wait for it to close (or for their context)
	started   chan int      // receives the number of images of each call as it starts
	canceled  chan error    // receives the context error of each held call whose context ended
	failWidth int           // a call with an image this wide fails
}

type fakeCall struct {
	widths []int
	opts   models.GenerateOptions
}

func newFake(hold bool) *fake {
	f := &fake{started: make(chan int, 100), canceled: make(chan error, 100)}
	if hold {
		f.hold = make(chan struct{})
	}
	return f
}

func (f *fake) CaptionImages(ctx context.Context, imgs []*image.RGB, o models.GenerateOptions) ([]models.Caption, error) {
	widths := make([]int, len(imgs))
	for i, m := range imgs {
		widths[i] = m.W
	}
	f.mu.Lock()
	f.calls = append(f.calls, fakeCall{widths, o})
	f.mu.Unlock()
	f.started <- len(imgs)
	if f.hold != nil {
		select {
		case <-f.hold:
		case <-ctx.Done():
			f.canceled <- ctx.Err()
			return nil, ctx.Err()
		}
	}
	caps := make([]models.Caption, len(imgs))
	for i, w := range widths {
		if w == f.failWidth {
			return nil, errors.New("bad image")
		}
		caps[i] = models.Caption{Text: fakeText(w, o), IDs: []int64{int64(w)}, Score: -1}
	}
	return caps, nil
}

func fakeText(width int, o models.GenerateOptions) string {
	return fmt.Sprintf("w%d beams%d tokens%d prompt%q", width, o.NumBeams, o.MaxNewTokens, o.Prompt)
}

func (f *fake) history() []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func fakeModel(f *fake) Model {
	return Model{ModelInfo: ModelInfo{Name: "fake", Arch: "test", Prompt: true, Text: true}, Captioner: f}
}

// result is one answer received in a goroutine.
type result struct {
	code int
	body []byte
	err  error
}

// send posts an image of the given width in the background.
func send(t *testing.T, ctx context.Context, url string, width int, fields ...string) <-chan result {
	t.Helper()
	body, ctype := imageForm(t, encodePNG(t, testImage(width, 8, 1)), fields...)
	out := make(chan result, 1)
	go func() {
		code, b, err := tryPost(ctx, url+"/api/caption", ctype, body)
		out <- result{code, b, err}
	}()
	return out
}

// TestBatchesGroupByOptions queues requests with two different option sets behind a held call
// and checks that each model call gets images of one option set and that every answer is its
// own image's caption.
func TestBatchesGroupByOptions(t *testing.T) {
	f := newFake(true)
	s, hs := startServer(t, Options{Models: []Model{fakeModel(f)}, MaxBatch: 8})
	first := send(t, context.Background(), hs.URL, 10)
	<-f.started
	want := map[int]string{}
	var answers []<-chan result
	widths := []int{11, 12, 13, 14, 15, 16}
	for i, w := range widths {
		tokens := []string{"3", "5"}[i%2]
		answers = append(answers, send(t, context.Background(), hs.URL, w, "max_new_tokens", tokens, "num_beams", "2"))
		want[w] = fakeText(w, models.GenerateOptions{NumBeams: 2, MaxNewTokens: []int{3, 5}[i%2]})
	}
	waitFor(t, "six queued images", func() bool { return len(s.workers[0].queue) == len(widths) })
	close(f.hold)
	if r := <-first; r.code != http.StatusOK {
		t.Fatalf("first request: %d %s", r.code, r.body)
	}
	for i, ch := range answers {
		r := <-ch
		if r.err != nil || r.code != http.StatusOK {
			t.Fatalf("request %d: %d %v %s", i, r.code, r.err, r.body)
		}
		var cr CaptionResponse
		if err := json.Unmarshal(r.body, &cr); err != nil {
			t.Fatal(err)
		}
		if got := cr.Captions[0].Text; got != want[widths[i]] || cr.BatchSize != 3 {
			t.Errorf("request %d: %q in a batch of %d, want %q in a batch of 3", i, got, cr.BatchSize, want[widths[i]])
		}
	}
	calls := f.history()
	if len(calls) != 3 {
		t.Fatalf("%d model calls, want 3 (the held one, then one per option set): %+v", len(calls), calls)
	}
	for _, c := range calls[1:] {
		for _, w := range c.widths {
			if wantTokens := []int{3, 5}[slices.Index(widths, w)%2]; c.opts.MaxNewTokens != wantTokens {
				t.Errorf("call %+v mixes option sets", c)
			}
		}
	}
}

// TestOneBadImageDoesNotFailTheBatch checks that when a batched call fails, each image is
// retried alone: the good ones get captions, the bad one an error.
func TestOneBadImageDoesNotFailTheBatch(t *testing.T) {
	f := newFake(true)
	f.failWidth = 21
	s, hs := startServer(t, Options{Models: []Model{fakeModel(f)}, MaxBatch: 8})
	first := send(t, context.Background(), hs.URL, 10)
	<-f.started
	answers := map[int]<-chan result{}
	for _, w := range []int{20, 21, 22} {
		answers[w] = send(t, context.Background(), hs.URL, w)
	}
	waitFor(t, "three queued images", func() bool { return len(s.workers[0].queue) == 3 })
	close(f.hold)
	<-first
	for w, ch := range answers {
		r := <-ch
		switch {
		case w == 21 && (r.code != http.StatusInternalServerError || !strings.Contains(string(r.body), "captioning failed") || !strings.Contains(string(r.body), "bad image")):
			t.Errorf("bad image: %d %s", r.code, r.body)
		case w != 21 && (r.code != http.StatusOK || !strings.Contains(string(r.body), fmt.Sprintf("w%d ", w))):
			t.Errorf("image %d: %d %s", w, r.code, r.body)
		}
	}
	if n := len(f.history()); n != 5 {
		t.Errorf("%d calls, want 5 (held, failed batch, three retries)", n)
	}
	if got := s.metrics.captions.get("fake", "error"); got != 1 {
		t.Errorf("%v errors counted, want 1", got)
	}
}

// TestTimeoutAndCancel checks the per-request timeout (504, and the model call is told to stop),
// a client that goes away during its model call (the call is told to stop), and one that goes
// away while queued (its image is never captioned).
func TestTimeoutAndCancel(t *testing.T) {
	t.Run("timeout", func(t *testing.T) {
		f := newFake(true)
		defer close(f.hold)
		s, hs := startServer(t, Options{Models: []Model{fakeModel(f)}, Timeout: 200 * time.Millisecond})
		r := <-send(t, context.Background(), hs.URL, 10)
		if r.code != http.StatusGatewayTimeout || !strings.Contains(string(r.body), "no caption within the request timeout of 200ms") {
			t.Errorf("%d %s", r.code, r.body)
		}
		if err := <-f.canceled; !errors.Is(err, context.Canceled) {
			t.Errorf("the model call ended with %v", err)
		}
		if got := s.metrics.captions.get("fake", "timeout"); got != 1 {
			t.Errorf("%v timeouts counted", got)
		}
	})
	t.Run("no free slot", func(t *testing.T) {
		s, hs := startServer(t, Options{Models: []Model{fakeModel(newFake(false))}, MaxInFlight: 1, Timeout: 300 * time.Millisecond})
		// A client that never finishes its body holds the only slot (until the server's read
		// timeout; httptest sets none).
		pr, pw := io.Pipe()
		first := make(chan result, 1)
		go func() {
			code, b, err := tryPost(context.Background(), hs.URL+"/api/caption", "multipart/form-data; boundary=x", pr)
			first <- result{code, b, err}
		}()
		waitFor(t, "the slow client to take the slot", func() bool { return s.inFlight.Load() == 1 })
		r := <-send(t, context.Background(), hs.URL, 11)
		if r.code != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "server busy: all 1 request slots") {
			t.Errorf("second request: %d %s", r.code, r.body)
		}
		pw.CloseWithError(errors.New("client gave up"))
		<-first
		if got := s.metrics.rejected.get("busy"); got != 1 {
			t.Errorf("%v busy rejections counted", got)
		}
	})
	t.Run("client gone during the call", func(t *testing.T) {
		f := newFake(true)
		defer close(f.hold)
		s, hs := startServer(t, Options{Models: []Model{fakeModel(f)}})
		ctx, cancel := context.WithCancel(context.Background())
		ch := send(t, ctx, hs.URL, 10)
		<-f.started
		cancel()
		if r := <-ch; !errors.Is(r.err, context.Canceled) {
			t.Errorf("client: %v", r.err)
		}
		if err := <-f.canceled; err == nil {
			t.Error("the model call was not told to stop")
		}
		waitFor(t, "the cancellation to be counted", func() bool { return s.metrics.captions.get("fake", "canceled") == 1 })
	})
	t.Run("client gone while queued", func(t *testing.T) {
		f := newFake(true)
		s, hs := startServer(t, Options{Models: []Model{fakeModel(f)}})
		first := send(t, context.Background(), hs.URL, 10)
		<-f.started
		ctx, cancel := context.WithCancel(context.Background())
		gone := send(t, ctx, hs.URL, 31)
		waitFor(t, "the second image to queue", func() bool { return len(s.workers[0].queue) == 1 })
		cancel()
		<-gone
		waitFor(t, "the handler to give up", func() bool { return s.metrics.captions.get("fake", "canceled") == 1 })
		close(f.hold)
		if r := <-first; r.code != http.StatusOK {
			t.Fatalf("first: %d %s", r.code, r.body)
		}
		if r := <-send(t, context.Background(), hs.URL, 32); r.code != http.StatusOK {
			t.Fatalf("third: %d %s", r.code, r.body)
		}
		for _, c := range f.history() {
			if slices.Contains(c.widths, 31) {
				t.Errorf("the departed client's image was captioned: %+v", f.history())
			}
		}
	})
}

// TestGracefulShutdown checks that a shutdown answers the request in progress, refuses new
// connections and stops the workers, and that a request outliving the grace period is aborted.
func TestGracefulShutdown(t *testing.T) {
	serve := func(t *testing.T, o Options) (*Server, string, context.CancelFunc, <-chan error) {
		o.Logger = quietLogger()
		s, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Serve(ctx, ln) }()
		return s, "http://" + ln.Addr().String(), cancel, done
	}
	t.Run("answers requests in progress", func(t *testing.T) {
		f := newFake(true)
		s, url, stop, done := serve(t, Options{Models: []Model{fakeModel(f)}})
		ch := send(t, context.Background(), url, 10)
		<-f.started
		stop()
		waitFor(t, "draining", s.draining.Load)
		close(f.hold)
		if r := <-ch; r.code != http.StatusOK {
			t.Errorf("request in progress: %d %v %s", r.code, r.err, r.body)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		if _, err := http.Get(url + "/healthz"); err == nil {
			t.Error("the server still accepts connections")
		}
		select {
		case <-s.workers[0].done:
		default:
			t.Error("the worker is still running")
		}
	})
	t.Run("aborts after the grace period", func(t *testing.T) {
		f := newFake(true)
		defer close(f.hold)
		_, url, stop, done := serve(t, Options{Models: []Model{fakeModel(f)}, ShutdownGrace: 100 * time.Millisecond})
		ch := send(t, context.Background(), url, 10)
		<-f.started
		stop()
		if err := <-done; err == nil || !strings.Contains(err.Error(), "aborted") {
			t.Errorf("Serve: %v, want an error saying requests were aborted", err)
		}
		if err := <-f.canceled; err == nil {
			t.Error("the model call was not stopped")
		}
		<-ch
	})
	t.Run("draining server refuses work", func(t *testing.T) {
		s, hs := startServer(t, Options{Models: []Model{fakeModel(newFake(false))}})
		s.draining.Store(true)
		if code, _, body := get(t, hs.URL+"/healthz"); code != http.StatusServiceUnavailable {
			t.Errorf("healthz while draining: %d %s", code, body)
		}
		if r := <-send(t, context.Background(), hs.URL, 10); r.code != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "shutting down") {
			t.Errorf("caption while draining: %d %s", r.code, r.body)
		}
	})
}

// TestNewRejectsBadOptions checks New's validation.
func TestNewRejectsBadOptions(t *testing.T) {
	m := fakeModel(newFake(false))
	tests := []struct {
		name   string
		models []Model
		want   string
	}{
		{"no models", nil, "no models"},
		{"duplicate names", []Model{m, m}, "given twice"},
		{"no captioner", []Model{{ModelInfo: ModelInfo{Name: "x"}}}, "no captioner"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(Options{Models: tc.models})
			if err == nil {
				s.Close()
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%v, want %q", err, tc.want)
			}
		})
	}
}
