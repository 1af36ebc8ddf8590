package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	stdimage "image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"log/slog"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/sugarme/gotch"

	"github.com/imgcap/imgcap/data/image"
	"github.com/imgcap/imgcap/data/tok"
	"github.com/imgcap/imgcap/models"
	"github.com/imgcap/imgcap/models/vitgpt2"
	"github.com/imgcap/imgcap/runner"
	"github.com/imgcap/imgcap/torchx"
	"github.com/imgcap/imgcap/weights"
)

// tinyDir is a tiny randomly initialised ViT+GPT-2 model folder built once for the package's
// tests (TestMain).
var tinyDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "imgcap-serve-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := torchx.Locked(func() error { return buildTinyModel(dir) }); err != nil {
		fmt.Fprintln(os.Stderr, "building the tiny test model:", err)
		os.Exit(1)
	}
	tinyDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// tinyCaptions are the captions whose words make the tiny model's vocabulary.
var tinyCaptions = []string{"a dog runs on the grass", "two children play with a red ball", "a man rides a bike"}

// buildTinyModel writes a Hugging Face VisionEncoderDecoder folder (config.json,
// model.safetensors, word_vocab.json) with 32×32 images, one layer each side, width 32. The
// special tokens' embeddings are zeroed so that random weights still generate words: captions
// are never empty and always max_new_tokens long, which makes the option visible in answers.
func buildTinyModel(dir string) error {
	vocab := tok.BuildWordVocabMinLength(tinyCaptions, 1, 1)
	if err := vocab.Save(filepath.Join(dir, tok.WordVocabFile)); err != nil {
		return err
	}
	sp := vocab.Special()
	cfgJSON := fmt.Sprintf(`{
  "model_type": "vision-encoder-decoder",
  "encoder": {"model_type": "vit", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
              "intermediate_size": 64, "image_size": 32, "patch_size": 16},
  "decoder": {"model_type": "gpt2", "n_embd": 32, "n_layer": 1, "n_head": 2, "vocab_size": %d, "n_positions": 32,
              "bos_token_id": %d, "eos_token_id": %d, "pad_token_id": %d},
  "decoder_start_token_id": %d, "eos_token_id": %d, "pad_token_id": %d
}`, vocab.VocabSize(), sp.BOS, sp.EOS, sp.PAD, sp.BOS, sp.EOS, sp.PAD)
	cfg, err := vitgpt2.ParseConfig([]byte(cfgJSON))
	if err != nil {
		return err
	}
	torchx.Seed(7)
	m, err := vitgpt2.New(cfg, gotch.CPU)
	if err != nil {
		return err
	}
	err = torchx.NoGrad(func() error {
		return torchx.WithScope(func(s *torchx.Scope) error {
			wte, ok := m.VarStore().Variables()["decoder.transformer.wte.weight"]
			if !ok {
				return fmt.Errorf("no decoder.transformer.wte.weight")
			}
			special, err := wte.Narrow(0, 0, 4, false)
			if err != nil {
				return err
			}
			return special.Zero_()
		})
	})
	if err != nil {
		return err
	}
	if err := weights.SaveVarStore(filepath.Join(dir, "model.safetensors"), m.VarStore(), nil); err != nil {
		return err
	}
	data, err := cfg.MarshalHF()
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, runner.HFConfigFile), data, 0o644)
}

// openTiny opens the tiny model under the given name.
func openTiny(t testing.TB, name string) Model {
	t.Helper()
	var m *runner.Model
	err := torchx.Locked(func() error {
		var err error
		m, err = runner.Open(tinyDir, gotch.CPU)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sm := FromRunner(m)
	sm.Name = name
	return sm
}

// captionDirect captions img with m on a locked thread of the test (before a server owns m).
func captionDirect(t testing.TB, m Model, img *image.RGB, o models.GenerateOptions) string {
	t.Helper()
	var caps []models.Caption
	err := torchx.Locked(func() error {
		var err error
		caps, err = m.Captioner.CaptionImages(context.Background(), []*image.RGB{img}, o)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return caps[0].Text
}

// startServer serves o over httptest; the server and its workers stop at the end of the test.
func startServer(t testing.TB, o Options) (*Server, *httptest.Server) {
	t.Helper()
	if o.Logger == nil {
		o.Logger = quietLogger()
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s)
	t.Cleanup(func() {
		hs.Close()
		s.Close()
	})
	return s, hs
}

// testImage draws a w×h picture whose colours depend on seed.
func testImage(w, h, seed int) *stdimage.RGBA {
	m := stdimage.NewRGBA(stdimage.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			m.Set(x, y, color.RGBA{uint8(x*255/w + seed*40), uint8(y*255/h + seed*90), uint8((x+y)*seed*7 + 30), 255})
		}
	}
	return m
}

// noiseImage is a w×h picture of random pixels (incompressible).
func noiseImage(w, h int) *stdimage.RGBA {
	rng := rand.New(rand.NewPCG(1, 2))
	m := stdimage.NewRGBA(stdimage.Rect(0, 0, w, h))
	for i := range m.Pix {
		m.Pix[i] = uint8(rng.IntN(256))
	}
	return m
}

func encodePNG(t testing.TB, m stdimage.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encodeJPEG(t testing.TB, m stdimage.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, m, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func decode(t testing.TB, data []byte) *image.RGB {
	t.Helper()
	img, err := image.DecodeBytes(data, image.DecodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// part is one multipart form field.
type part struct {
	name, filename string
	data           []byte
}

// multipartBody builds a multipart/form-data body and its Content-Type.
func multipartBody(t testing.TB, parts ...part) (io.Reader, string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for _, p := range parts {
		var w io.Writer
		var err error
		if p.filename != "" {
			w, err = mw.CreateFormFile(p.name, p.filename)
		} else {
			w, err = mw.CreateFormField(p.name)
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(p.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return &b, mw.FormDataContentType()
}

// tryPost sends a request and returns the status code and body (safe in any goroutine).
func tryPost(ctx context.Context, url, ctype string, body io.Reader) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, body)
	if err != nil {
		return 0, nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// post sends a request and returns the status code and body.
func post(t testing.TB, ctx context.Context, url, ctype string, body io.Reader) (int, []byte) {
	t.Helper()
	code, b, err := tryPost(ctx, url, ctype, body)
	if err != nil {
		t.Fatal(err)
	}
	return code, b
}

// imageForm is a multipart body with an image and optional form fields (name, value pairs).
func imageForm(t testing.TB, img []byte, fields ...string) (io.Reader, string) {
	t.Helper()
	parts := []part{{name: "image", filename: "image.png", data: img}}
	for i := 0; i+1 < len(fields); i += 2 {
		parts = append(parts, part{name: fields[i], data: []byte(fields[i+1])})
	}
	return multipartBody(t, parts...)
}

// postImage posts an image with optional form fields to /api/caption.
func postImage(t testing.TB, ctx context.Context, base string, img []byte, fields ...string) (int, []byte) {
	t.Helper()
	body, ctype := imageForm(t, img, fields...)
	return post(t, ctx, base+"/api/caption", ctype, body)
}

func decodeResponse(t testing.TB, b []byte) CaptionResponse {
	t.Helper()
	var r CaptionResponse
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("response %s: %v", b, err)
	}
	return r
}

func get(t testing.TB, url string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// quietLogger discards the server's request log.
func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
