package serve

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imgcap/imgcap/models"
)

// TestCaptionAPI checks the happy paths of POST /api/caption against captions computed by
// calling the model directly: multipart and JSON bodies, PNG, JPEG and WebP, options, and
// several models in one request.
func TestCaptionAPI(t *testing.T) {
	a, b := openTiny(t, "tiny-a"), openTiny(t, "tiny-b")
	pngData := encodePNG(t, testImage(40, 30, 1))
	jpegData := encodeJPEG(t, testImage(64, 48, 2))
	webpData, err := os.ReadFile(filepath.Join("testdata", "blue-purple-pink.lossy.webp"))
	if err != nil {
		t.Fatal(err)
	}
	want := func(data []byte, o models.GenerateOptions) string {
		return captionDirect(t, a, decode(t, data), o)
	}
	wantPNG := want(pngData, models.GenerateOptions{})
	wantPNG3 := want(pngData, models.GenerateOptions{MaxNewTokens: 3})
	wantBeam := want(pngData, models.GenerateOptions{NumBeams: 3, MaxNewTokens: 4})
	wantPrompt := want(pngData, models.GenerateOptions{Prompt: "a dog", MaxNewTokens: 4})
	wantJPEG := want(jpegData, models.GenerateOptions{})
	wantWebP := want(webpData, models.GenerateOptions{})
	_, hs := startServer(t, Options{Models: []Model{a, b}, MaxBatch: 4, MaxWait: time.Millisecond})

	jsonBody := func(v any) (string, *bytes.Reader) {
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return "application/json", bytes.NewReader(data)
	}
	multi := func(parts ...part) (string, *bytes.Reader) {
		body, ctype := multipartBody(t, parts...)
		var buf bytes.Buffer
		if _, err := buf.ReadFrom(body); err != nil {
			t.Fatal(err)
		}
		return ctype, bytes.NewReader(buf.Bytes())
	}
	img := func(data []byte, name string) part { return part{name: "image", filename: name, data: data} }
	field := func(name, v string) part { return part{name: name, data: []byte(v)} }
	b64 := base64.StdEncoding.EncodeToString(pngData)

	tests := []struct {
		name   string
		body   func() (string, *bytes.Reader)
		models []string // answering models, in order
		want   []string // captions
		list   bool
	}{
		{"multipart png, default model", func() (string, *bytes.Reader) { return multi(img(pngData, "x.png")) }, []string{"tiny-a"}, []string{wantPNG}, false},
		{"multipart jpeg", func() (string, *bytes.Reader) { return multi(img(jpegData, "x.jpg")) }, []string{"tiny-a"}, []string{wantJPEG}, false},
		{"multipart webp", func() (string, *bytes.Reader) { return multi(img(webpData, "x.webp")) }, []string{"tiny-a"}, []string{wantWebP}, false},
		{"max_new_tokens", func() (string, *bytes.Reader) {
			return multi(field("max_new_tokens", "3"), img(pngData, "x.png"))
		}, []string{"tiny-a"}, []string{wantPNG3}, false},
		{"beam search", func() (string, *bytes.Reader) {
			return multi(img(pngData, "x.png"), field("num_beams", "3"), field("max_new_tokens", "4"))
		}, []string{"tiny-a"}, []string{wantBeam}, false},
		{"prompt", func() (string, *bytes.Reader) {
			return multi(img(pngData, "x.png"), field("prompt", "a dog"), field("max_new_tokens", "4"))
		}, []string{"tiny-a"}, []string{wantPrompt}, false},
		{"multipart, two models", func() (string, *bytes.Reader) {
			return multi(img(pngData, "x.png"), field("model", "tiny-b"), field("model", "tiny-a"))
		}, []string{"tiny-b", "tiny-a"}, []string{wantPNG, wantPNG}, true},
		{"json base64", func() (string, *bytes.Reader) { return jsonBody(map[string]any{"image": b64}) }, []string{"tiny-a"}, []string{wantPNG}, false},
		{"json data URL, named model, options", func() (string, *bytes.Reader) {
			return jsonBody(map[string]any{"image": "data:image/png;base64," + b64, "model": "tiny-b", "max_new_tokens": 3, "num_beams": 1})
		}, []string{"tiny-b"}, []string{wantPNG3}, false},
		{"json unpadded url-safe base64", func() (string, *bytes.Reader) {
			return jsonBody(map[string]any{"image": base64.RawURLEncoding.EncodeToString(jpegData)})
		}, []string{"tiny-a"}, []string{wantJPEG}, false},
		{"json model list", func() (string, *bytes.Reader) {
			return jsonBody(map[string]any{"image": b64, "model": []string{"tiny-a", "tiny-b"}, "max_new_tokens": 3})
		}, []string{"tiny-a", "tiny-b"}, []string{wantPNG3, wantPNG3}, true},
		{"json model list of one", func() (string, *bytes.Reader) {
			return jsonBody(map[string]any{"image": b64, "model": []string{"tiny-b"}})
		}, []string{"tiny-b"}, []string{wantPNG}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctype, body := tc.body()
			code, resp := post(t, context.Background(), hs.URL+"/api/caption", ctype, body)
			if code != http.StatusOK {
				t.Fatalf("status %d: %s", code, resp)
			}
			var got []CaptionResponse
			if tc.list {
				if err := json.Unmarshal(resp, &got); err != nil {
					t.Fatalf("want a list: %s: %v", resp, err)
				}
			} else {
				got = []CaptionResponse{decodeResponse(t, resp)}
			}
			if len(got) != len(tc.models) {
				t.Fatalf("%d answers, want %d: %s", len(got), len(tc.models), resp)
			}
			for i, r := range got {
				if r.Model != tc.models[i] || r.Error != "" || len(r.Captions) != 1 {
					t.Fatalf("answer %d: %+v, want model %s with one caption", i, r, tc.models[i])
				}
				if c := r.Captions[0]; c.Text != tc.want[i] || len(c.IDs) == 0 || c.Score == nil {
					t.Errorf("answer %d: caption %+v, want text %q with ids and a score", i, c, tc.want[i])
				}
				if r.MS <= 0 || r.BatchSize < 1 || r.QueueMS > r.MS {
					t.Errorf("answer %d: ms %v, queue_ms %v, batch_size %d", i, r.MS, r.QueueMS, r.BatchSize)
				}
			}
		})
	}
}

// pngHeader is a PNG signature and IHDR chunk claiming a w×h RGB image: enough for
// image.DecodeConfig, so a decompression-bomb check must refuse it without the pixels.
func pngHeader(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2 // 8 bits, RGB
	chunk := append([]byte("IHDR"), ihdr...)
	_ = binary.Write(&b, binary.BigEndian, uint32(len(ihdr)))
	b.Write(chunk)
	_ = binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(chunk))
	// A few bytes of a zlib stream: a decoder that went on would fail or allocate 1.2 GB.
	b.Write([]byte{0, 0, 0, 8, 'I', 'D', 'A', 'T', 0x78, 0x9c, 0x63, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	return b.Bytes()
}

// TestCaptionBadInput checks that bad requests are refused with the right status and a message
// that says what is wrong, and that the server still captions afterwards.
func TestCaptionBadInput(t *testing.T) {
	m := openTiny(t, "tiny")
	const uploadLimit = 64 << 10
	s, hs := startServer(t, Options{Models: []Model{m}, MaxUploadBytes: uploadLimit})
	good := encodeJPEG(t, testImage(48, 48, 3))
	big := encodePNG(t, noiseImage(200, 200)) // random pixels: about 120 KB
	if len(big) <= uploadLimit {
		t.Fatalf("test image of %d bytes does not exceed the limit", len(big))
	}
	multi := func(parts ...part) func() (string, *bytes.Reader) {
		return func() (string, *bytes.Reader) {
			body, ctype := multipartBody(t, parts...)
			var buf bytes.Buffer
			_, _ = buf.ReadFrom(body)
			return ctype, bytes.NewReader(buf.Bytes())
		}
	}
	raw := func(ctype, body string) func() (string, *bytes.Reader) {
		return func() (string, *bytes.Reader) { return ctype, bytes.NewReader([]byte(body)) }
	}
	img := func(name string, data []byte) part { return part{name: "image", filename: name, data: data} }
	b64 := base64.StdEncoding.EncodeToString(good)

	tests := []struct {
		name    string
		body    func() (string, *bytes.Reader)
		code    int
		message string
	}{
		{"truncated JPEG", multi(img("cut.jpg", good[:len(good)/2])), 400, "not a readable image"},
		{"text file named .jpg", multi(img("cat.jpg", []byte("this is not an image, just text\n"))), 400, "unknown format"},
		{"20000x20000 PNG", multi(img("bomb.png", pngHeader(20000, 20000))), 413, "20000x20000"},
		{"empty multipart image", multi(img("empty.png", nil)), 400, "empty (0 bytes)"},
		{"empty body", raw("multipart/form-data; boundary=xyz", ""), 400, "empty request body"},
		{"empty JSON body", raw("application/json", ""), 400, "empty request body"},
		{"wrong field", multi(part{name: "file", filename: "x.jpg", data: good}), 400, "unknown field \"file\""},
		{"no image field", multi(part{name: "model", data: []byte("tiny")}), 400, "no `image` field"},
		{"two images", multi(img("a.jpg", good), img("b.jpg", good)), 400, "one image per request"},
		{"upload too large", multi(img("big.png", big)), 413, "at most 65536 bytes"},
		{"JSON upload too large", raw("application/json", `{"image":"`+base64.StdEncoding.EncodeToString(big)+`"}`), 413, "at most 65536 bytes"},
		{"JSON wrong field", raw("application/json", `{"img":"`+b64+`"}`), 400, "unknown field \"img\""},
		{"JSON without image", raw("application/json", `{"model":"tiny"}`), 400, "no \"image\""},
		{"JSON bad base64", raw("application/json", `{"image":"%%%not base64%%%"}`), 400, "not valid base64"},
		{"JSON syntax", raw("application/json", `{"image":`), 400, "invalid JSON"},
		{"JSON trailing data", raw("application/json", `{"image":"`+b64+`"} {}`), 400, "after the JSON object"},
		{"JSON model not a name", raw("application/json", `{"image":"`+b64+`","model":3}`), 400, "name or a list"},
		{"unknown model", multi(img("x.jpg", good), part{name: "model", data: []byte("nope")}), 400, "unknown model \"nope\" (served: tiny)"},
		{"num_beams not a number", multi(img("x.jpg", good), part{name: "num_beams", data: []byte("three")}), 400, "not an integer"},
		{"num_beams too large", multi(img("x.jpg", good), part{name: "num_beams", data: []byte("99")}), 400, "num_beams 99"},
		{"negative max_new_tokens", raw("application/json", `{"image":"`+b64+`","max_new_tokens":-1}`), 400, "max_new_tokens -1"},
		{"prompt too long", multi(img("x.jpg", good), part{name: "prompt", data: bytes.Repeat([]byte("a"), MaxPromptBytes+1)}), 400, "the prompt has"},
		{"no content type", raw("", "hello"), 415, "no Content-Type"},
		{"unsupported content type", raw("text/plain", "hello"), 415, "text/plain is not supported"},
		{"multipart without boundary", raw("multipart/form-data", "hello"), 400, "without a boundary"},
		{"malformed multipart", raw("multipart/form-data; boundary=xyz", "hello"), 400, "malformed multipart"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctype, body := tc.body()
			code, resp := post(t, context.Background(), hs.URL+"/api/caption", ctype, body)
			if code != tc.code {
				t.Fatalf("status %d, want %d: %s", code, tc.code, resp)
			}
			var e errorBody
			if err := json.Unmarshal(resp, &e); err != nil {
				t.Fatalf("not a JSON error: %s", resp)
			}
			if !strings.Contains(e.Error, tc.message) {
				t.Errorf("error %q does not mention %q", e.Error, tc.message)
			}
		})
	}
	t.Run("wrong method", func(t *testing.T) {
		code, _, _ := get(t, hs.URL+"/api/caption")
		if code != http.StatusMethodNotAllowed {
			t.Errorf("GET /api/caption: status %d, want 405", code)
		}
	})
	t.Run("no directory listing", func(t *testing.T) {
		if code, _, body := get(t, hs.URL+"/static/"); code != http.StatusNotFound {
			t.Errorf("GET /static/: %d %.100s", code, body)
		}
	})
	t.Run("unknown endpoint", func(t *testing.T) {
		code, _, body := get(t, hs.URL+"/api/nothing")
		if code != http.StatusNotFound || !strings.Contains(string(body), "no API endpoint") {
			t.Errorf("GET /api/nothing: %d %s", code, body)
		}
	})
	// The server still works, and counted what it refused.
	code, resp := postImage(t, context.Background(), hs.URL, good)
	if code != http.StatusOK {
		t.Fatalf("a good image after the bad ones: %d %s", code, resp)
	}
	for reason, want := range map[string]float64{"bad_image": 2, "too_many_pixels": 1, "too_many_bytes": 2} {
		if got := s.metrics.rejected.get(reason); got != want {
			t.Errorf("rejected %s = %v, want %v", reason, got, want)
		}
	}
}

// TestPromptRefusedByModelWithoutPrompt checks that a prompt sent to a model that takes none
// is refused rather than silently ignored.
func TestPromptRefusedByModelWithoutPrompt(t *testing.T) {
	m := openTiny(t, "tiny")
	m.Prompt = false
	_, hs := startServer(t, Options{Models: []Model{m}})
	code, resp := postImage(t, context.Background(), hs.URL, encodePNG(t, testImage(32, 32, 1)), "prompt", "a dog")
	if code != http.StatusBadRequest || !strings.Contains(string(resp), "takes no prompt") {
		t.Errorf("status %d: %s", code, resp)
	}
}

// TestPageAndInfo checks the page, its assets, /api/models and /healthz.
func TestPageAndInfo(t *testing.T) {
	m := openTiny(t, "tiny")
	_, hs := startServer(t, Options{Models: []Model{m}, MaxBatch: 5, MaxUploadBytes: 1 << 20, MaxPixels: 1e6})
	tests := []struct {
		path, ctype string
		contains    []string
	}{
		{"/", "text/html", []string{"Generate caption", `<label for="prompt">`, `<legend>Models</legend>`, `name="viewport"`, "static/app.js"}},
		{"/static/app.js", "javascript", []string{"api/caption", "FormData"}},
		{"/static/style.css", "text/css", []string{"@media (max-width"}},
		{"/api/models", "application/json", []string{`"name":"tiny"`, `"arch":"vit_gpt2"`, `"prompt":true`, `"max_upload_bytes":1048576`, `"max_pixels":1000000`, `"max_batch":5`, `"default":"tiny"`}},
		{"/healthz", "application/json", []string{`"status":"ok"`}},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			code, h, body := get(t, hs.URL+tc.path)
			if code != http.StatusOK || !strings.Contains(h.Get("Content-Type"), tc.ctype) {
				t.Fatalf("status %d, Content-Type %q", code, h.Get("Content-Type"))
			}
			for _, s := range tc.contains {
				if !strings.Contains(string(body), s) {
					t.Errorf("no %q in %.300s", s, body)
				}
			}
		})
	}
	// The page loads nothing from elsewhere: no absolute URLs, and a policy that forbids them.
	_, h, page := get(t, hs.URL+"/")
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	for _, asset := range []string{"/", "/static/app.js", "/static/style.css"} {
		_, _, body := get(t, hs.URL+asset)
		if strings.Contains(string(body), "http://") || strings.Contains(string(body), "https://") || strings.Contains(string(body), "//cdn") {
			t.Errorf("%s refers to another site", asset)
		}
	}
	_ = page
}
