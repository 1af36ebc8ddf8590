package hub

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// fileMeta is what a HEAD on a resolve URL tells about a file (huggingface_hub's
// HfFileMetadata).
type fileMeta struct {
	commit   string // X-Repo-Commit
	etag     string // X-Linked-Etag or ETag, without quotes or W/
	size     int64  // X-Linked-Size or Content-Length
	location string // where to GET the bytes: the CDN for LFS files, else the resolve URL
}

// normalizeEtag strips the weak marker and the quotes, as huggingface_hub's _normalize_etag.
func normalizeEtag(s string) string {
	s = strings.TrimPrefix(strings.TrimSpace(s), "W/")
	return strings.Trim(s, `"`)
}

// fileMetadata is huggingface_hub's get_hf_file_metadata, with retries. A 404 for a missing
// file returns the commit it was looked up at (from X-Repo-Commit), if the hub said.
func (c *client) fileMetadata(ctx context.Context, repo, revision, file string) (fileMeta, string, error) {
	u := c.resolveURL(repo, revision, file)
	var m fileMeta
	var missingAt string
	err := c.withRetries(ctx, file, func() error {
		resp, err := c.sendFollowingRelative(ctx, http.MethodHead, u)
		if err != nil {
			return wrapNet(u, err)
		}
		defer resp.Body.Close()
		if err := c.statusError(resp, repo, revision, file); err != nil {
			if errors.Is(err, ErrEntryNotFound) {
				missingAt = resp.Header.Get("X-Repo-Commit")
			}
			return err
		}
		h := resp.Header
		m = fileMeta{commit: h.Get("X-Repo-Commit"), location: resp.Request.URL.String()}
		m.etag = h.Get("X-Linked-Etag")
		if m.etag == "" {
			m.etag = h.Get("ETag")
		}
		m.etag = normalizeEtag(m.etag)
		redirect := resp.StatusCode >= 300 && resp.StatusCode <= 399
		if loc := h.Get("Location"); loc != "" {
			lu, err := resp.Request.URL.Parse(loc)
			if err != nil {
				return fmt.Errorf("%s: bad Location %q from %s: %w", file, loc, u, err)
			}
			m.location = lu.String()
		}
		size := h.Get("X-Linked-Size")
		if size == "" && !redirect {
			size = h.Get("Content-Length")
			if size == "" && resp.ContentLength >= 0 {
				size = strconv.FormatInt(resp.ContentLength, 10)
			}
		}
		m.size = -1
		if n, err := strconv.ParseInt(size, 10, 64); err == nil && n >= 0 {
			m.size = n
		}
		return nil
	})
	if err != nil {
		return fileMeta{}, missingAt, err
	}
	switch {
	case m.commit == "":
		return m, "", fmt.Errorf("%s: the answer of %s has no X-Repo-Commit header: it does not seem to come from a Hugging Face hub (check HF_ENDPOINT, proxies and firewalls)", file, u)
	case !commitLikeRE.MatchString(m.commit):
		return m, "", fmt.Errorf("%s: the hub gave the malformed commit %q", file, m.commit)
	case m.etag == "":
		return m, "", fmt.Errorf("%s: the answer of %s has no ETag: the file cannot be cached reliably", file, u)
	case !etagRE.MatchString(m.etag):
		return m, "", fmt.Errorf("%s: the hub gave the etag %q, which cannot name a cache file", file, m.etag)
	case m.size < 0:
		return m, "", fmt.Errorf("%s: the answer of %s gives no size (X-Linked-Size or Content-Length)", file, u)
	}
	return m, "", nil
}

// DownloadFile downloads one file of a repository at a revision (branch, tag or commit; ""
// means main) into the cache, as huggingface_hub's hf_hub_download does, and returns its path
// in the snapshot folder: snapshots/<commit>/<file>, a relative symlink to blobs/<etag>.
// A file already cached for a commit hash is returned without any request; for a branch or
// tag a HEAD request finds the current commit. Offline, or when the hub cannot be reached (or
// answers 401, 403 or 5xx), the cached copy for the revision is returned if there is one.
func DownloadFile(ctx context.Context, repo, revision, file string, opts Options) (string, error) {
	c, err := newClient(opts)
	if err != nil {
		return "", err
	}
	if revision == "" {
		revision = DefaultRevision
	}
	if err := ValidateRepoID(repo); err != nil {
		return "", err
	}
	if err := checkRevision(revision); err != nil {
		return "", err
	}
	if err := checkRelPath(file); err != nil {
		return "", fmt.Errorf("file %q: %v", file, err)
	}
	return c.downloadFile(ctx, repo, revision, file)
}

func (c *client) downloadFile(ctx context.Context, repo, revision, file string) (string, error) {
	storage := c.storage(repo)
	if IsCommitHash(revision) {
		if p := cachedFile(storage, revision, file); p != "" {
			return p, nil
		}
	}
	if c.offline {
		if p := cachedFile(storage, revision, file); p != "" {
			return p, nil
		}
		return "", &NotCachedError{Repo: repo, Revision: revision, File: file, Cache: c.cache,
			Hint: "offline mode is on (HF_HUB_OFFLINE): unset it to download"}
	}
	m, missingAt, err := c.fileMetadata(ctx, repo, revision, file)
	if err != nil {
		if missingAt != "" && commitLikeRE.MatchString(missingAt) {
			markMissing(storage, missingAt, file)
			_ = writeRef(storage, revision, missingAt)
		}
		if fallbackToCache(err) {
			if p := cachedFile(storage, revision, file); p != "" {
				c.progress.note("%s: using the cached copy: %v", file, err)
				return p, nil
			}
		}
		return "", err
	}
	if IsCommitHash(revision) && m.commit != revision {
		return "", fmt.Errorf("%s: asked for commit %s, the hub answered for commit %s", file, revision, m.commit)
	}
	if err := os.MkdirAll(storage, 0o755); err != nil {
		return "", err
	}
	if err := writeRef(storage, revision, m.commit); err != nil {
		return "", err
	}
	return c.fetch(ctx, repo, file, m)
}

// fallbackToCache reports whether a failed metadata request may be answered from the cache:
// network trouble and server errors, and 401/403 (an expired token should not lock a user out
// of files they have), as huggingface_hub does; never a 404, which is an answer.
func fallbackToCache(err error) bool {
	var he *HTTPError
	if errors.As(err, &he) {
		return he.kind == ErrServer || he.kind == ErrUnauthorized || he.kind == ErrGated
	}
	return errors.Is(err, ErrNetwork)
}

// fetch puts a file whose metadata is known into the snapshot of m.commit, downloading its
// blob unless the cache has it already.
func (c *client) fetch(ctx context.Context, repo, file string, m fileMeta) (string, error) {
	storage := c.storage(repo)
	pointer := filepath.Join(storage, "snapshots", m.commit, filepath.FromSlash(file))
	blob := filepath.Join(storage, "blobs", m.etag)
	if _, err := os.Stat(pointer); err == nil {
		return pointer, nil
	}
	if fi, err := os.Stat(blob); err == nil && fi.Size() == m.size {
		return pointer, linkBlob(blob, pointer)
	}
	if err := os.MkdirAll(filepath.Dir(blob), 0o755); err != nil {
		return "", err
	}
	lockPath := filepath.Join(c.cache, ".locks", RepoFolderName(repo, c.repoType), m.etag+".lock")
	unlock, locked, err := lockFile(ctx, lockPath, func() { c.progress.note("%s: waiting for another download of it to finish", file) })
	if err != nil {
		return "", err
	}
	defer unlock()
	// Another process may have finished it while we waited.
	if _, err := os.Stat(pointer); err == nil {
		return pointer, nil
	}
	if fi, err := os.Stat(blob); err == nil && fi.Size() == m.size {
		return pointer, linkBlob(blob, pointer)
	}
	incomplete := blob + ".incomplete"
	if !locked {
		// Without a working lock a shared partial file could be written by two processes:
		// download into one of our own instead, giving up resumption.
		incomplete = blob + "." + randSuffix() + ".incomplete"
		defer os.Remove(incomplete)
	}
	if err := c.downloadBlob(ctx, file, m, incomplete); err != nil {
		return "", err
	}
	if err := os.Rename(incomplete, blob); err != nil {
		return "", fmt.Errorf("%s: %w", file, err)
	}
	if err := linkBlob(blob, pointer); err != nil {
		return "", fmt.Errorf("%s: %w", file, err)
	}
	return pointer, nil
}

// isLFS reports whether an etag is a sha256, which the hub gives for LFS files (the sha256 of
// their content) while regular files get their git blob sha1.
func isLFS(etag string) bool { return sha256RE.MatchString(etag) }

// downloadBlob brings the file to incomplete, resuming from what it already holds, and checks
// its size and, for LFS files, its sha256. On success incomplete holds exactly the file; on a
// failed check it is removed; on a network failure it is kept for the next attempt.
func (c *client) downloadBlob(ctx context.Context, file string, m fileMeta, incomplete string) error {
	for fresh := false; ; fresh = true {
		resumed, err := c.downloadOnce(ctx, file, m, incomplete, fresh)
		if err == nil {
			return nil
		}
		if errors.Is(err, ErrIntegrity) {
			os.Remove(incomplete)
			if resumed && !fresh {
				// The partial file we resumed from may be what was wrong: start over once.
				c.progress.note("%s: %v; downloading it again from the start", file, err)
				continue
			}
		}
		return err
	}
}

// downloadOnce runs one download of a blob into incomplete (from scratch if fresh), with
// retries that resume where the last attempt stopped. resumed tells whether it started from a
// partial file.
func (c *client) downloadOnce(ctx context.Context, file string, m fileMeta, incomplete string, fresh bool) (resumed bool, err error) {
	flags := os.O_RDWR | os.O_CREATE
	if fresh {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(incomplete, flags, 0o644)
	if err != nil {
		return false, fmt.Errorf("%s: %w", file, err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("%s: %w", file, cerr)
		}
	}()
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	off := fi.Size()
	if off > m.size {
		off = 0
	}
	var h hash.Hash
	if isLFS(m.etag) {
		h = sha256.New()
	}
	// Hash what is already there, and position the file after it.
	if off > 0 {
		if h != nil {
			if _, err := io.Copy(h, io.NewSectionReader(f, 0, off)); err != nil {
				return false, fmt.Errorf("%s: reading the partial download: %w", file, err)
			}
		}
		resumed = true
	}
	if err := f.Truncate(off); err != nil {
		return resumed, err
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return resumed, err
	}
	st := &blobState{f: f, h: h, off: off}
	bar := c.progress.start(file, m.size, off)
	err = c.transfer(ctx, file, m, st, bar)
	if err != nil {
		bar.fail()
		return resumed, err
	}
	if st.off != m.size {
		return resumed, fmt.Errorf("%s: %w: size %d, the hub announced %d", file, ErrIntegrity, st.off, m.size)
	}
	if h != nil {
		if got := hex.EncodeToString(h.Sum(nil)); got != m.etag {
			return resumed, fmt.Errorf("%s: %w: sha256 %s, the hub announced %s", file, ErrIntegrity, got, m.etag)
		}
	}
	if err := f.Sync(); err != nil {
		return resumed, fmt.Errorf("%s: %w", file, err)
	}
	bar.done()
	return resumed, nil
}

// blobState is a download in progress: the partial file, its hash and its length.
type blobState struct {
	f   *os.File
	h   hash.Hash
	off int64
}

// reset empties the partial file, for a server that sends the whole file again.
func (s *blobState) reset() error {
	if err := s.f.Truncate(0); err != nil {
		return err
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if s.h != nil {
		s.h.Reset()
	}
	s.off = 0
	return nil
}

func (s *blobState) Write(p []byte) (int, error) {
	n, err := s.f.Write(p)
	if s.h != nil {
		s.h.Write(p[:n])
	}
	s.off += int64(n)
	return n, err
}

var contentRangeRE = regexp.MustCompile(`^bytes (\d+)-(\d+)/(\d+|\*)$`)

// transfer GETs the rest of the blob, retrying failures (and resuming with a Range request)
// until it is complete, a check fails, or the retries are used up; each attempt that brings
// new bytes renews the retries, as in huggingface_hub's http_get.
func (c *client) transfer(ctx context.Context, file string, m fileMeta, st *blobState, bar *bar) error {
	attempt := 0
	for st.off < m.size {
		before := st.off
		err := c.getRange(ctx, file, m, st, bar)
		if st.off > m.size {
			return fmt.Errorf("%s: %w: the server sent more than the %d bytes announced", file, ErrIntegrity, m.size)
		}
		if err == nil {
			if st.off == m.size {
				return nil
			}
			err = errShortBody
		}
		err = wrapNet(m.location, err)
		if st.off > before {
			attempt = 0
		}
		if retry, _ := retryable(err); !retry || attempt >= c.retries || ctx.Err() != nil {
			return err
		}
		c.progress.note("%s: %v; resuming at %s (retry %d/%d)", file, err, fmtBytes(st.off), attempt+1, c.retries)
		if werr := c.wait(ctx, attempt); werr != nil {
			return err
		}
		attempt++
	}
	return nil
}

// getRange makes one GET for the blob from st.off on, writing what comes to st.
func (c *client) getRange(ctx context.Context, file string, m fileMeta, st *blobState, bar *bar) error {
	req, err := c.newRequest(ctx, http.MethodGet, m.location)
	if err != nil {
		return err
	}
	if st.off > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", st.off))
	}
	resp, err := c.send(c.http, req, c.timeout)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusRequestedRangeNotSatisfiable {
		// What we hold does not fit the file: start again.
		bar.restart(0)
		return st.reset()
	}
	if err := c.statusError(resp, "", "", file); err != nil {
		var he *HTTPError
		if errors.As(err, &he) {
			he.Repo = file
			if !c.sameHost(resp.Request.URL) && (he.Status == http.StatusUnauthorized || he.Status == http.StatusForbidden || he.Status == http.StatusNotFound) {
				he.Hint = "the storage server refused the signed download link, which may have expired: run the command again for a fresh one (the download resumes)"
			}
		}
		return err
	}
	body := io.Reader(resp.Body)
	switch resp.StatusCode {
	case http.StatusPartialContent:
		cr := contentRangeRE.FindStringSubmatch(resp.Header.Get("Content-Range"))
		if cr == nil {
			return fmt.Errorf("%s: bad Content-Range %q", file, resp.Header.Get("Content-Range"))
		}
		start, _ := strconv.ParseInt(cr[1], 10, 64)
		if start != st.off {
			// Not the part asked for: take the whole file on the next attempt.
			if err := st.reset(); err != nil {
				return err
			}
			bar.restart(0)
			return fmt.Errorf("%s: asked for bytes from %d, got a part from %d: %w", file, st.off, start, errRestart)
		}
	case http.StatusOK:
		if st.off > 0 {
			// The server ignored the Range: it sends the whole file again.
			if err := st.reset(); err != nil {
				return err
			}
			bar.restart(0)
		}
		if enc := resp.Header.Get("Content-Encoding"); enc == "gzip" {
			zr, err := gzip.NewReader(resp.Body)
			if err != nil {
				return err
			}
			body = zr
		} else if enc != "" && enc != "identity" {
			return fmt.Errorf("%s: the server sent %s-encoded data, which this client cannot decode", file, enc)
		}
	default:
		return fmt.Errorf("%s: unexpected answer %s from %s", file, resp.Status, m.location)
	}
	// Never take more than the announced size plus one byte (to notice an over-long answer).
	_, err = io.Copy(io.MultiWriter(st, bar), io.LimitReader(body, m.size-st.off+1))
	return err
}

// Download downloads a repository's files at a revision (branch, tag or commit; "" means main)
// into the cache, as huggingface_hub's snapshot_download does, and returns the snapshot
// folder, snapshots/<commit>. The files are listed by the hub's API and filtered by
// opts.Include, opts.Exclude and opts.Select; those already in the snapshot cost no request.
// Offline, or when the hub cannot be reached (or answers 401, 403 or 5xx), the cached
// snapshot for the revision is returned if there is one.
func Download(ctx context.Context, repo, revision string, opts Options) (string, error) {
	c, err := newClient(opts)
	if err != nil {
		return "", err
	}
	if revision == "" {
		revision = DefaultRevision
	}
	if err := ValidateRepoID(repo); err != nil {
		return "", err
	}
	if err := checkRevision(revision); err != nil {
		return "", err
	}
	if _, err := filterFiles(nil, c.include, c.exclude); err != nil {
		return "", err
	}
	return c.download(ctx, repo, revision)
}

// repoInfo is the part of the hub's repository API answer a snapshot needs.
type repoInfo struct {
	SHA      string `json:"sha"`
	Siblings []struct {
		RFilename string `json:"rfilename"`
	} `json:"siblings"`
}

func (c *client) repoInfo(ctx context.Context, repo, revision string) (repoInfo, error) {
	u := c.revisionURL(repo, revision)
	var info repoInfo
	err := c.withRetries(ctx, repo, func() error {
		req, err := c.newRequest(ctx, http.MethodGet, u)
		if err != nil {
			return err
		}
		req.Header.Set("Accept", "application/json")
		resp, err := c.send(c.http, req, c.metaTime)
		if err != nil {
			return wrapNet(u, err)
		}
		defer resp.Body.Close()
		if err := c.statusError(resp, repo, revision, ""); err != nil {
			return err
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
		if err != nil {
			return wrapNet(u, err)
		}
		info = repoInfo{}
		if err := json.Unmarshal(b, &info); err != nil {
			return fmt.Errorf("%s: the hub's listing %s is not the expected JSON: %w (%q)", repo, u, err, clip(b, 200))
		}
		return nil
	})
	if err != nil {
		return info, err
	}
	if !commitLikeRE.MatchString(info.SHA) {
		return info, fmt.Errorf("%s: the hub's listing %s gives the malformed commit %q", repo, u, info.SHA)
	}
	return info, nil
}

func clip(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

func (c *client) download(ctx context.Context, repo, revision string) (string, error) {
	storage := c.storage(repo)
	if c.offline {
		if dir := cachedSnapshot(storage, revision); dir != "" {
			return dir, nil
		}
		return "", &NotCachedError{Repo: repo, Revision: revision, Cache: c.cache,
			Hint: "offline mode is on (HF_HUB_OFFLINE): unset it to download"}
	}
	info, err := c.repoInfo(ctx, repo, revision)
	if err != nil {
		if fallbackToCache(err) {
			if dir := cachedSnapshot(storage, revision); dir != "" {
				c.progress.note("%s: using the cached snapshot %s: %v", repo, dir, err)
				return dir, nil
			}
		}
		return "", err
	}
	var all []string
	for _, s := range info.Siblings {
		all = append(all, s.RFilename)
	}
	files, err := filterFiles(all, c.include, c.exclude)
	if err != nil {
		return "", err
	}
	if c.sel != nil {
		files = c.sel(files)
	}
	if len(files) == 0 {
		return "", fmt.Errorf("%s at %s: no file matches (include %q, exclude %q) among %d: %s",
			repo, revision, c.include, c.exclude, len(all), clip([]byte(strings.Join(all, ", ")), 300))
	}
	for _, f := range files {
		if err := checkRelPath(f); err != nil {
			return "", fmt.Errorf("%s: the hub lists the file %q, which cannot be stored safely: %v", repo, f, err)
		}
	}
	if err := os.MkdirAll(storage, 0o755); err != nil {
		return "", err
	}
	if err := writeRef(storage, revision, info.SHA); err != nil {
		return "", err
	}
	snapshot := filepath.Join(storage, "snapshots", info.SHA)
	var todo []string
	for _, f := range files {
		if _, err := os.Stat(filepath.Join(snapshot, filepath.FromSlash(f))); err != nil {
			todo = append(todo, f)
		}
	}
	if len(todo) > 0 {
		c.progress.note("%s@%s (%s): fetching %d of %d files", repo, revision, info.SHA[:min(12, len(info.SHA))], len(todo), len(files))
	}
	for _, f := range todo {
		m, missingAt, err := c.fileMetadata(ctx, repo, info.SHA, f)
		if err != nil {
			if missingAt != "" {
				markMissing(storage, missingAt, f)
			}
			return "", err
		}
		if m.commit != info.SHA {
			return "", fmt.Errorf("%s: asked for commit %s, the hub answered for commit %s", f, info.SHA, m.commit)
		}
		if _, err := c.fetch(ctx, repo, f, m); err != nil {
			return "", err
		}
	}
	if err := os.MkdirAll(snapshot, 0o755); err != nil {
		return "", err
	}
	return snapshot, nil
}

// ResolveOrDownload is Resolve that downloads what is missing: an existing path is returned as
// is; a hub id "org/name[@revision]" is downloaded (Download, with ModelFiles choosing the
// files when opts has no Include or Select) and its snapshot folder returned. Offline it is
// Resolve. Like transformers' from_pretrained, it asks the hub for the revision's current
// commit each time, and falls back to the cache when the hub cannot be reached.
func ResolveOrDownload(ctx context.Context, ref string, opts Options) (string, error) {
	if ref == "" {
		return "", errors.New("empty model reference")
	}
	if _, err := os.Stat(ref); err == nil {
		return ref, nil
	}
	repo, rev, err := ParseRef(ref)
	if err != nil || looksLikePath(ref) {
		return "", fmt.Errorf("%s: no such folder, and not a Hugging Face hub id (org/name[@revision])", ref)
	}
	if len(opts.Include) == 0 && opts.Select == nil {
		opts.Select = ModelFiles
	}
	return Download(ctx, repo, rev, opts)
}

// ModelFiles chooses, among a repository's files, those a model folder needs: the top-level
// configuration, tokenizer and preprocessor files (*.json, *.txt, *.model, *.tiktoken) and one
// set of weights, as transformers prefers them: *.safetensors if there are any, else
// pytorch_model*.bin. TensorFlow, Flax, ONNX and other formats are left out.
func ModelFiles(files []string) []string {
	var keep, st, bin []string
	for _, f := range files {
		if strings.Contains(f, "/") {
			continue
		}
		switch ext := path.Ext(f); {
		case ext == ".safetensors":
			st = append(st, f)
		case strings.HasPrefix(f, "pytorch_model") && ext == ".bin":
			bin = append(bin, f)
		case ext == ".json" && strings.HasPrefix(f, "pytorch_model") && strings.HasSuffix(f, ".bin.index.json"):
			bin = append(bin, f)
		case ext == ".json" || ext == ".txt" || ext == ".model" || ext == ".tiktoken":
			keep = append(keep, f)
		}
	}
	if len(st) > 0 {
		keep = append(keep, st...)
	} else {
		keep = append(keep, bin...)
	}
	sort.Strings(keep)
	return keep
}

// filterFiles keeps the files matching an include pattern (all if none) and no exclude
// pattern, as huggingface_hub's filter_repo_objects.
func filterFiles(files, include, exclude []string) ([]string, error) {
	inc, err := compilePatterns(include)
	if err != nil {
		return nil, fmt.Errorf("include %w", err)
	}
	exc, err := compilePatterns(exclude)
	if err != nil {
		return nil, fmt.Errorf("exclude %w", err)
	}
	var out []string
	for _, f := range files {
		if len(inc) > 0 && !matchAny(inc, f) {
			continue
		}
		if matchAny(exc, f) {
			continue
		}
		out = append(out, f)
	}
	return out, nil
}
