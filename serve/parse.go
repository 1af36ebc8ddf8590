package serve

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Fields of a caption request (multipart form fields and JSON keys).
const fieldsHelp = "image, model, num_beams, max_new_tokens, prompt"

// withCause attaches the underlying error to e.
func withCause(e *apiError, cause error) *apiError {
	e.cause = cause
	return e
}

// parseMultipart reads the form fields of a multipart caption request. The image must be at
// most limit bytes; other fields at most maxFieldBytes.
func parseMultipart(mr *multipart.Reader, limit int64) (*captionRequest, *apiError) {
	req := &captionRequest{}
	var sawImage bool
	var beams, tokens string
	for {
		p, err := mr.NextPart()
		if err == io.EOF { // only the bare io.EOF means "no more parts"; a wrapped one is a cut body
			break
		}
		if err != nil {
			return nil, withCause(badRequest("malformed multipart body: %v", err), err)
		}
		name := p.FormName()
		if name == "image" {
			if sawImage {
				return nil, badRequest("several `image` fields: send one image per request")
			}
			sawImage = true
			data, err := io.ReadAll(io.LimitReader(p, limit+1))
			if err != nil {
				return nil, withCause(badRequest("reading the image: %v", err), err)
			}
			if int64(len(data)) > limit {
				return nil, tooLarge(limit)
			}
			req.image = data
			continue
		}
		value, err := io.ReadAll(io.LimitReader(p, maxFieldBytes+1))
		if err != nil {
			return nil, withCause(badRequest("reading field %q: %v", name, err), err)
		}
		if len(value) > maxFieldBytes {
			return nil, badRequest("field %q is longer than %d bytes", name, maxFieldBytes)
		}
		v := string(value)
		switch name {
		case "model":
			req.models = append(req.models, v)
		case "num_beams":
			beams = v
		case "max_new_tokens":
			tokens = v
		case "prompt":
			req.key.prompt = v
		case "":
			return nil, badRequest("a multipart part without a form field name (Content-Disposition: form-data; name=...)")
		default:
			return nil, badRequest("unknown field %q: the image goes in field `image` (fields: %s)", name, fieldsHelp)
		}
	}
	if !sawImage {
		return nil, badRequest("no `image` field in the form: send the image file in multipart field `image`")
	}
	req.list = len(req.models) > 1
	var err error
	if req.key.numBeams, err = formInt("num_beams", beams); err != nil {
		return nil, badRequest("%v", err)
	}
	if req.key.maxNewTokens, err = formInt("max_new_tokens", tokens); err != nil {
		return nil, badRequest("%v", err)
	}
	return req, nil
}

// formInt parses an integer form field; empty means 0 (the model's default).
func formInt(name, v string) (int, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("%s %q is not an integer", name, v)
	}
	return n, nil
}

// jsonRequest is the JSON form of a caption request.
type jsonRequest struct {
	Image        string          `json:"image"`
	Model        json.RawMessage `json:"model"`
	NumBeams     *int            `json:"num_beams"`
	MaxNewTokens *int            `json:"max_new_tokens"`
	Prompt       string          `json:"prompt"`
}

// parseJSON reads a JSON caption request: {"image": base64 (or a data: URL), "model": name or
// [names], "num_beams", "max_new_tokens", "prompt"}.
func parseJSON(body io.Reader, limit int64) (*captionRequest, *apiError) {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	var jr jsonRequest
	if err := dec.Decode(&jr); err != nil {
		return nil, withCause(badRequest("invalid JSON request: %v (want {\"image\": \"<base64>\", \"model\", \"num_beams\", \"max_new_tokens\", \"prompt\"})", err), err)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		return nil, withCause(badRequest("unexpected data after the JSON object"), err)
	}
	if jr.Image == "" {
		return nil, badRequest("no \"image\" in the JSON request: give the image file base64-encoded")
	}
	img := jr.Image
	if strings.HasPrefix(img, "data:") {
		i := strings.IndexByte(img, ',')
		if i < 0 || !strings.Contains(img[:i], ";base64") {
			return nil, badRequest("\"image\" is a data: URL without base64 data")
		}
		img = img[i+1:]
	}
	if int64(base64.StdEncoding.DecodedLen(len(img))) > limit+2 {
		return nil, tooLarge(limit)
	}
	data, err := decodeBase64(img)
	if err != nil {
		return nil, badRequest("\"image\" is not valid base64: %v", err)
	}
	req := &captionRequest{image: data, key: genKey{prompt: jr.Prompt}}
	if jr.NumBeams != nil {
		req.key.numBeams = *jr.NumBeams
	}
	if jr.MaxNewTokens != nil {
		req.key.maxNewTokens = *jr.MaxNewTokens
	}
	switch m := bytes.TrimSpace(jr.Model); {
	case len(m) == 0 || string(m) == "null":
	case m[0] == '"':
		var name string
		if err := json.Unmarshal(m, &name); err != nil {
			return nil, badRequest("\"model\": %v", err)
		}
		req.models = []string{name}
	case m[0] == '[':
		if err := json.Unmarshal(m, &req.models); err != nil {
			return nil, badRequest("\"model\" must be a name or a list of names: %v", err)
		}
		if len(req.models) == 0 {
			return nil, badRequest("\"model\" is an empty list")
		}
		req.list = true
	default:
		return nil, badRequest("\"model\" must be a name or a list of names, got %s", m)
	}
	return req, nil
}

// decodeBase64 accepts standard or URL-safe base64, padded or not, ignoring line breaks.
func decodeBase64(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, s)
	enc := base64.StdEncoding
	if strings.ContainsAny(s, "-_") {
		enc = base64.URLEncoding
	}
	if !strings.HasSuffix(s, "=") && len(s)%4 != 0 {
		enc = enc.WithPadding(base64.NoPadding)
	}
	return enc.DecodeString(s)
}

// checkOptions validates the models and generation options of a request, filling in the
// default model.
func (s *Server) checkOptions(req *captionRequest) *apiError {
	k := req.key
	if k.numBeams < 0 || k.numBeams > MaxNumBeams {
		return badRequest("num_beams %d: want 1 (greedy) to %d, or 0 for the model's default", k.numBeams, MaxNumBeams)
	}
	if k.maxNewTokens < 0 || k.maxNewTokens > MaxNewTokens {
		return badRequest("max_new_tokens %d: want 1 to %d, or 0 for the model's default", k.maxNewTokens, MaxNewTokens)
	}
	if len(k.prompt) > MaxPromptBytes {
		return badRequest("the prompt has %d bytes, at most %d allowed", len(k.prompt), MaxPromptBytes)
	}
	if !utf8.ValidString(k.prompt) {
		return badRequest("the prompt is not valid UTF-8")
	}
	if len(req.models) == 0 {
		req.models = []string{s.models[0].Name}
	}
	seen := map[string]bool{}
	names := req.models[:0]
	for _, name := range req.models {
		name = strings.TrimSpace(name)
		i, ok := s.byName[name]
		if !ok {
			return badRequest("unknown model %q (served: %s)", name, strings.Join(s.names(), ", "))
		}
		if k.prompt != "" && !s.models[i].Prompt {
			return badRequest("model %s (%s) takes no prompt: leave the prompt empty for it", name, s.models[i].Arch)
		}
		if !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	req.models = names
	return nil
}

func (s *Server) names() []string {
	out := make([]string, len(s.models))
	for i, m := range s.models {
		out[i] = m.Name
	}
	return out
}
