package hub

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// A fake Hugging Face hub: the revision API, resolve URLs answering HEAD and GET the way
// huggingface.co does (X-Repo-Commit, quoted ETags, X-Linked-Etag/X-Linked-Size and a 302 to
// a CDN for LFS files, X-Error-Code on errors, 307 relative redirects for renamed
// repositories), and a second server on another port playing the CDN, with Range support and
// injectable faults.

type fakeFile struct {
	data []byte
	lfs  bool
	etag string // overrides the computed etag
}

// gitBlobSHA1 is git's object id for a blob, the ETag the hub gives regular files.
func gitBlobSHA1(b []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(b))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func (f fakeFile) etagValue() string {
	switch {
	case f.etag != "":
		return f.etag
	case f.lfs:
		return sha256Hex(f.data)
	}
	return gitBlobSHA1(f.data)
}

type fakeRepo struct {
	commits   map[string]map[string]fakeFile // commit -> path -> file
	refs      map[string]string              // branch or tag -> commit
	private   bool                           // needs fakeHub.token
	gated     bool                           // files need fakeHub.granted
	renamedTo string                         // answer with a relative redirect to this repo
	extraList []string                       // listed in the API but absent (unsafe names)
}

// fakeReq is one request the fake servers saw.
type fakeReq struct {
	server, method, path, rng string
	auth                      bool
}

func (r fakeReq) String() string {
	s := r.server + " " + r.method + " " + r.path
	if r.rng != "" {
		s += " Range:" + r.rng
	}
	return s
}

type fakeHub struct {
	t        *testing.T
	hub, cdn *httptest.Server
	token    string // accepted for private repositories
	granted  string // granted access to gated ones
	repos    map[string]*fakeRepo

	mu          sync.Mutex
	reqs        []fakeReq
	failNext    []int          // statuses for the next requests, hub or CDN
	cutAfter    map[string]int // blob etag -> the next GET of it stops after this many bytes
	stallAfter  map[string]int // blob etag -> the next GET sends this many bytes, then hangs
	corrupt     map[string]bool
	tooLong     map[string]bool
	ignoreRange bool
}

const (
	commitMain = "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1"
	commitV1   = "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b"
)

// randomBytes is n deterministic pseudo-random bytes.
func randomBytes(n int, seed int64) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

// captionerFiles is the main commit of the test repository.
func captionerFiles() map[string]fakeFile {
	return map[string]fakeFile{
		"config.json":         {data: []byte(`{"model_type": "vision-encoder-decoder"}`)},
		"model.safetensors":   {data: randomBytes(300_000, 1), lfs: true},
		"sub/tokenizer.json":  {data: []byte(`{"version": "1.0"}`)},
		"README.md":           {data: []byte("# captioner\n")},
		"pytorch_model.bin":   {data: randomBytes(1000, 2), lfs: true},
		"with space.txt":      {data: []byte("spaces are escaped\n")},
		"onnx/encoder.onnx":   {data: randomBytes(100, 3), lfs: true},
		"special_tokens.json": {data: []byte(`{}`)},
	}
}

func newFakeHub(t *testing.T) *fakeHub {
	t.Helper()
	// Keep the user's environment (token, cache, offline mode) out of every test.
	home := t.TempDir()
	for _, v := range []string{"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_ENDPOINT", "HF_HUB_OFFLINE",
		"TRANSFORMERS_OFFLINE", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "XDG_CACHE_HOME", "HF_HUB_DOWNLOAD_TIMEOUT"} {
		t.Setenv(v, "")
	}
	t.Setenv("HF_HOME", home)
	fh := &fakeHub{
		t: t, token: "hf_secret", granted: "hf_granted",
		cutAfter: map[string]int{}, stallAfter: map[string]int{}, corrupt: map[string]bool{}, tooLong: map[string]bool{},
		repos: map[string]*fakeRepo{
			"acme/captioner": {
				commits: map[string]map[string]fakeFile{
					commitMain: captionerFiles(),
					commitV1:   {"config.json": {data: []byte(`{"model_type": "old"}`)}, "model.safetensors": {data: randomBytes(5000, 9), lfs: true}},
				},
				refs: map[string]string{"main": commitMain, "v1": commitV1, "refs/pr/1": commitV1},
			},
			"acme/private": {commits: map[string]map[string]fakeFile{commitMain: {"config.json": {data: []byte(`{"private": true}`)}}},
				refs: map[string]string{"main": commitMain}, private: true},
			"acme/gated": {commits: map[string]map[string]fakeFile{commitMain: {"config.json": {data: []byte(`{"gated": true}`)},
				"model.safetensors": {data: randomBytes(2000, 4), lfs: true}}},
				refs: map[string]string{"main": commitMain}, gated: true},
			"acme/old-name": {renamedTo: "acme/captioner"},
			"acme/evil": {commits: map[string]map[string]fakeFile{commitMain: {"config.json": {data: []byte(`{}`)},
				"bad.json": {data: []byte(`{}`), etag: "../../../escape"}}},
				refs: map[string]string{"main": commitMain}, extraList: []string{"../escape.json"}},
		},
	}
	fh.hub = httptest.NewServer(http.HandlerFunc(fh.serveHub))
	fh.cdn = httptest.NewServer(http.HandlerFunc(fh.serveCDN))
	t.Cleanup(fh.hub.Close)
	t.Cleanup(fh.cdn.Close)
	return fh
}

// opts are options for the fake hub with a fresh cache and fast retries.
func (fh *fakeHub) opts() Options {
	return Options{Endpoint: fh.hub.URL, CacheDir: fh.t.TempDir(), Backoff: time.Millisecond}
}

func (fh *fakeHub) log(server string, r *http.Request) {
	fh.mu.Lock()
	defer fh.mu.Unlock()
	fh.reqs = append(fh.reqs, fakeReq{server, r.Method, r.URL.EscapedPath(), r.Header.Get("Range"), r.Header.Get("Authorization") != ""})
}

// requests returns and forgets the requests seen so far.
func (fh *fakeHub) requests() []fakeReq {
	fh.mu.Lock()
	defer fh.mu.Unlock()
	r := fh.reqs
	fh.reqs = nil
	return r
}

// injectedFailure answers with the next queued failure status, if any.
func (fh *fakeHub) injectedFailure(w http.ResponseWriter) bool {
	fh.mu.Lock()
	defer fh.mu.Unlock()
	if len(fh.failNext) == 0 {
		return false
	}
	code := fh.failNext[0]
	fh.failNext = fh.failNext[1:]
	http.Error(w, "injected failure", code)
	return true
}

func hubError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("X-Error-Code", code)
	w.Header().Set("X-Error-Message", msg)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// access checks the token for a repository as the hub does: a missing or private repository
// without the right token is a 401 (not to reveal which), a missing one with a token a 404.
func (fh *fakeHub) access(w http.ResponseWriter, r *http.Request, name string) (*fakeRepo, bool) {
	repo := fh.repos[name]
	tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	if repo == nil || (repo.private && tok != fh.token) {
		if tok == "" || repo != nil {
			hubError(w, http.StatusUnauthorized, "RepoNotFound", "Repository not found")
		} else {
			hubError(w, http.StatusNotFound, "RepoNotFound", "Repository not found")
		}
		return nil, false
	}
	return repo, true
}

func unescapeAll(segs []string) ([]string, bool) {
	out := make([]string, len(segs))
	for i, s := range segs {
		u, err := url.PathUnescape(s)
		if err != nil {
			return nil, false
		}
		out[i] = u
	}
	return out, true
}

func (fh *fakeHub) serveHub(w http.ResponseWriter, r *http.Request) {
	fh.log("hub", r)
	if fh.injectedFailure(w) {
		return
	}
	segs, ok := unescapeAll(strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/"), "/"))
	if !ok {
		http.Error(w, "bad path", http.StatusBadRequest)
		return
	}
	// GET /api/models/{org}/{name}/revision/{revision}
	if len(segs) == 6 && segs[0] == "api" && segs[1] == "models" && segs[4] == "revision" && r.Method == http.MethodGet {
		repo, ok := fh.access(w, r, segs[2]+"/"+segs[3])
		if !ok {
			return
		}
		commit, files, ok := repo.at(segs[5])
		if !ok {
			hubError(w, http.StatusNotFound, "RevisionNotFound", "Invalid rev id: "+segs[5])
			return
		}
		var sib []map[string]string
		for _, p := range sortedKeys(files) {
			sib = append(sib, map[string]string{"rfilename": p})
		}
		for _, p := range repo.extraList {
			sib = append(sib, map[string]string{"rfilename": p})
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"id": segs[2] + "/" + segs[3], "sha": commit, "siblings": sib, "private": repo.private})
		return
	}
	// HEAD|GET /{org}/{name}/resolve/{revision}/{path...}
	if len(segs) >= 5 && segs[2] == "resolve" {
		name := segs[0] + "/" + segs[1]
		if repo := fh.repos[name]; repo != nil && repo.renamedTo != "" {
			rest := strings.SplitN(r.URL.EscapedPath(), "/resolve/", 2)[1]
			w.Header().Set("Location", "/"+repo.renamedTo+"/resolve/"+rest)
			w.WriteHeader(http.StatusTemporaryRedirect)
			return
		}
		repo, ok := fh.access(w, r, name)
		if !ok {
			return
		}
		commit, files, ok := repo.at(segs[3])
		if !ok {
			hubError(w, http.StatusNotFound, "RevisionNotFound", "Invalid rev id: "+segs[3])
			return
		}
		path := strings.Join(segs[4:], "/")
		f, ok := files[path]
		if !ok {
			w.Header().Set("X-Repo-Commit", commit)
			hubError(w, http.StatusNotFound, "EntryNotFound", path+" does not exist on \""+segs[3]+"\"")
			return
		}
		if tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "); repo.gated && tok != fh.granted {
			status := http.StatusUnauthorized
			msg := "Access to model " + name + " is restricted. You must be authenticated to access it."
			if tok != "" {
				status = http.StatusForbidden
				msg = "Access to model " + name + " is restricted and you are not in the authorized list."
			}
			hubError(w, status, "GatedRepo", msg)
			return
		}
		h := w.Header()
		h.Set("X-Repo-Commit", commit)
		if f.lfs {
			h.Set("X-Linked-Etag", `"`+f.etagValue()+`"`)
			h.Set("X-Linked-Size", strconv.Itoa(len(f.data)))
			h.Set("ETag", `W/"`+gitBlobSHA1([]byte("pointer"))+`"`) // the pointer file's, not to be used
			h.Set("Location", fh.cdn.URL+"/lfs/"+f.etagValue()+"?X-Amz-Signature=abc&response-content-disposition=x")
			if r.Method == http.MethodHead {
				h.Set("Content-Length", "1234") // the redirect's own body: not the file's size
			}
			w.WriteHeader(http.StatusFound)
			return
		}
		h.Set("ETag", `"`+f.etagValue()+`"`)
		fh.serveBytes(w, r, f)
		return
	}
	http.NotFound(w, r)
}

func (fh *fakeHub) serveCDN(w http.ResponseWriter, r *http.Request) {
	fh.log("cdn", r)
	if fh.injectedFailure(w) {
		return
	}
	etag := strings.TrimPrefix(r.URL.Path, "/lfs/")
	if r.URL.Query().Get("X-Amz-Signature") != "abc" {
		http.Error(w, "bad signature", http.StatusForbidden)
		return
	}
	for _, repo := range fh.repos {
		for _, files := range repo.commits {
			for _, f := range files {
				if f.lfs && f.etagValue() == etag {
					fh.serveBytes(w, r, f)
					return
				}
			}
		}
	}
	http.NotFound(w, r)
}

// serveBytes answers a GET or HEAD for a file's bytes, honouring "Range: bytes=N-" and the
// injected faults.
func (fh *fakeHub) serveBytes(w http.ResponseWriter, r *http.Request, f fakeFile) {
	etag := f.etagValue()
	data := f.data
	fh.mu.Lock()
	if fh.corrupt[etag] {
		data = append([]byte(nil), data...)
		data[len(data)/2] ^= 0xff
	}
	if fh.tooLong[etag] {
		data = append(append([]byte(nil), data...), "extra"...)
	}
	cut, hasCut := fh.cutAfter[etag]
	stall, hasStall := fh.stallAfter[etag]
	if r.Method == http.MethodGet {
		delete(fh.cutAfter, etag)
		delete(fh.stallAfter, etag)
	}
	ignoreRange := fh.ignoreRange
	fh.mu.Unlock()

	h := w.Header()
	status := http.StatusOK
	body := data
	if rng := r.Header.Get("Range"); rng != "" && !ignoreRange {
		start, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(rng, "bytes="), "-"))
		if err != nil || start >= len(data) {
			h.Set("Content-Range", fmt.Sprintf("bytes */%d", len(data)))
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			return
		}
		status = http.StatusPartialContent
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, len(data)-1, len(data)))
		body = data[start:]
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Accept-Ranges", "bytes")
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	switch {
	case hasCut && cut < len(body):
		w.Write(body[:cut])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // drop the connection mid-transfer
	case hasStall && stall < len(body):
		w.Write(body[:stall])
		w.(http.Flusher).Flush()
		<-r.Context().Done() // hang until the client gives up
		return
	}
	w.Write(body)
}

// at resolves a revision to a commit and its files.
func (r *fakeRepo) at(rev string) (string, map[string]fakeFile, bool) {
	if c, ok := r.refs[rev]; ok {
		rev = c
	}
	files, ok := r.commits[rev]
	return rev, files, ok
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
