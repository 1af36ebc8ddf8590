package hub

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DefaultEndpoint is the hub used when neither Options.Endpoint nor $HF_ENDPOINT is set.
const DefaultEndpoint = "https://huggingface.co"

// Options configures downloads. The zero value downloads from $HF_ENDPOINT (or the public
// hub) into CacheDir(), with $HF_TOKEN, five retries and no progress output.
type Options struct {
	// Endpoint is the hub's base URL; empty means $HF_ENDPOINT, else DefaultEndpoint.
	Endpoint string
	// Token is sent as "Authorization: Bearer <token>" to the endpoint (never to the CDN);
	// empty means $HF_TOKEN (or $HUGGING_FACE_HUB_TOKEN), else the token file that
	// `huggingface-cli login` writes ($HF_TOKEN_PATH, else $HF_HOME/token).
	Token string
	// CacheDir is the hub cache folder; empty means CacheDir().
	CacheDir string
	// Offline uses the cache only; $HF_HUB_OFFLINE or $TRANSFORMERS_OFFLINE set to 1, ON,
	// YES or TRUE does the same.
	Offline bool
	// RepoType is "model" (the default when empty), "dataset" or "space".
	RepoType string
	// Include keeps, in Download, only the files whose path matches one of these patterns
	// (Python fnmatch: '*' also matches '/'; a pattern ending in '/' means the whole folder).
	// Empty keeps every file.
	Include []string
	// Exclude drops, in Download, the files whose path matches one of these patterns.
	Exclude []string
	// Select, if set, further chooses among the listed files Download keeps (after Include
	// and Exclude); ModelFiles is one such choice.
	Select func(files []string) []string
	// Progress receives one line per file and its progress (bytes, total, rate); nil is quiet.
	Progress io.Writer
	// Client makes the HTTP requests; nil means a client built on http.DefaultTransport
	// (which honours HTTPS_PROXY and friends).
	Client *http.Client
	// Retries is how many times a request or an interrupted transfer is retried after a
	// network failure or a 408/429/5xx answer; 0 means 5, negative means none.
	Retries int
	// Backoff is the first wait before a retry, doubled at each further one up to 8 times it;
	// 0 means one second.
	Backoff time.Duration
	// Timeout bounds the wait for an answer's headers and each stall of a transfer (no byte
	// for that long); 0 means $HF_HUB_DOWNLOAD_TIMEOUT seconds (for metadata requests
	// $HF_HUB_ETAG_TIMEOUT), else 10 s, huggingface_hub's defaults.
	Timeout time.Duration
}

// client is a configured connection to one hub endpoint and one cache.
type client struct {
	endpoint *url.URL
	base     string // endpoint without the trailing slash
	token    string
	cache    string
	offline  bool
	repoType string
	include  []string
	exclude  []string
	sel      func([]string) []string
	progress *progress
	http     *http.Client // follows redirects (blob downloads)
	head     *http.Client // returns redirects (metadata requests)
	retries  int
	backoff  time.Duration
	timeout  time.Duration // blob transfers
	metaTime time.Duration // metadata requests (listing, HEAD)
}

// envTrue reads a boolean environment variable as huggingface_hub's _is_true does.
func envTrue(name string) bool {
	switch strings.ToUpper(os.Getenv(name)) {
	case "1", "ON", "YES", "TRUE":
		return true
	}
	return false
}

// OfflineFromEnv reports whether $HF_HUB_OFFLINE (or $TRANSFORMERS_OFFLINE) asks for the cache
// only.
func OfflineFromEnv() bool { return envTrue("HF_HUB_OFFLINE") || envTrue("TRANSFORMERS_OFFLINE") }

// tokenFromEnv finds the token as huggingface_hub's get_token does: $HF_TOKEN, the legacy
// $HUGGING_FACE_HUB_TOKEN, then the token file.
func tokenFromEnv() string {
	for _, v := range []string{"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"} {
		if t := strings.TrimSpace(os.Getenv(v)); t != "" {
			return t
		}
	}
	p := os.Getenv("HF_TOKEN_PATH")
	if p == "" {
		p = filepath.Join(hfHome(), "token")
	}
	b, err := os.ReadFile(expandHome(p))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// envSeconds reads a number of seconds from the environment, or returns def.
func envSeconds(name string, def time.Duration) time.Duration {
	if s, err := strconv.ParseFloat(os.Getenv(name), 64); err == nil && s > 0 {
		return time.Duration(s * float64(time.Second))
	}
	return def
}

func newClient(o Options) (*client, error) {
	c := &client{
		token: o.Token, cache: o.CacheDir, offline: o.Offline || OfflineFromEnv(), repoType: o.RepoType,
		include: o.Include, exclude: o.Exclude, sel: o.Select, progress: newProgress(o.Progress),
		retries: o.Retries, backoff: o.Backoff, timeout: o.Timeout,
	}
	if c.repoType == "" {
		c.repoType = "model"
	}
	if _, ok := repoTypes[c.repoType]; !ok {
		return nil, fmt.Errorf("repository type %q: want model, dataset or space", c.repoType)
	}
	if c.cache == "" {
		c.cache = CacheDir()
	}
	ep := o.Endpoint
	if ep == "" {
		ep = os.Getenv("HF_ENDPOINT")
	}
	if ep == "" {
		ep = DefaultEndpoint
	}
	u, err := url.Parse(strings.TrimRight(ep, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("hub endpoint %q (HF_ENDPOINT): want an http(s) URL such as %s", ep, DefaultEndpoint)
	}
	c.endpoint, c.base = u, u.String()
	if c.token == "" {
		c.token = tokenFromEnv()
	}
	switch {
	case c.retries == 0:
		c.retries = 5
	case c.retries < 0:
		c.retries = 0
	}
	if c.backoff <= 0 {
		c.backoff = time.Second
	}
	c.metaTime = c.timeout
	if c.timeout <= 0 {
		c.timeout = envSeconds("HF_HUB_DOWNLOAD_TIMEOUT", 10*time.Second)
		c.metaTime = envSeconds("HF_HUB_ETAG_TIMEOUT", 10*time.Second)
	}
	c.http = o.Client
	if c.http == nil {
		c.http = &http.Client{Transport: http.DefaultTransport}
	}
	h := *c.http
	h.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.head = &h
	return c, nil
}

// storage is a repository's folder in the cache.
func (c *client) storage(repo string) string {
	return filepath.Join(c.cache, RepoFolderName(repo, c.repoType))
}

// resolveURL is huggingface_hub's hf_hub_url: {endpoint}/[datasets/|spaces/]{repo}/resolve/{revision}/{path},
// the revision escaped whole (a "/" in it too) and the path segment by segment.
func (c *client) resolveURL(repo, revision, file string) string {
	prefix := ""
	if c.repoType != "model" {
		prefix = repoTypes[c.repoType] + "/"
	}
	segs := strings.Split(file, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return c.base + "/" + prefix + repo + "/resolve/" + url.PathEscape(revision) + "/" + strings.Join(segs, "/")
}

// revisionURL is the API listing of a repository at a revision.
func (c *client) revisionURL(repo, revision string) string {
	return c.base + "/api/" + repoTypes[c.repoType] + "/" + repo + "/revision/" + url.PathEscape(revision)
}

// repoURL is the repository's page, where gated repositories are accepted.
func (c *client) repoURL(repo string) string {
	prefix := ""
	if c.repoType != "model" {
		prefix = repoTypes[c.repoType] + "/"
	}
	return c.base + "/" + prefix + repo
}

// sameHost reports whether u is on the endpoint's host (and port): only there is the token
// sent, as huggingface_hub drops it for a CDN.
func (c *client) sameHost(u *url.URL) bool {
	return strings.EqualFold(u.Host, c.endpoint.Host) && u.Scheme == c.endpoint.Scheme
}

// userAgent names this client in requests.
var userAgent = "imgcap (hub; go/" + runtime.Version() + ")"

// newRequest builds a request with the hub's headers; the token goes only to the endpoint.
func (c *client) newRequest(ctx context.Context, method, rawURL string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, rawURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", userAgent)
	// No compression: sizes and ranges are those of the file itself.
	req.Header.Set("Accept-Encoding", "identity")
	if c.token != "" && c.sameHost(req.URL) {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

// errStalled is the cause given to a request's context when no byte came for c.timeout.
type stallError struct{ d time.Duration }

func (e *stallError) Error() string   { return fmt.Sprintf("no data received for %s", e.d) }
func (e *stallError) Timeout() bool   { return true }
func (e *stallError) Temporary() bool { return true }

// watchdog cancels a request whose headers or body bytes stop coming for d.
type watchdog struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	timer  *time.Timer
	d      time.Duration
}

func newWatchdog(parent context.Context, d time.Duration) *watchdog {
	ctx, cancel := context.WithCancelCause(parent)
	w := &watchdog{ctx: ctx, cancel: cancel, d: d}
	w.timer = time.AfterFunc(d, func() { cancel(&stallError{d}) })
	return w
}

func (w *watchdog) kick() { w.timer.Reset(w.d) }

func (w *watchdog) stop() {
	w.timer.Stop()
	w.cancel(nil)
}

// err turns a failure during the request into the stall error when the watchdog fired.
func (w *watchdog) err(err error) error {
	if err == nil {
		return nil
	}
	var se *stallError
	if cause := context.Cause(w.ctx); errors.As(cause, &se) {
		return se
	}
	return err
}

// watchedBody resets the watchdog on every read.
type watchedBody struct {
	r io.ReadCloser
	w *watchdog
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if n > 0 {
		b.w.kick()
	}
	if err != nil && err != io.EOF {
		err = b.w.err(err)
	}
	return n, err
}

func (b *watchedBody) Close() error {
	err := b.r.Close()
	b.w.stop()
	return err
}

// send performs one request under a stall watchdog of timeout; the response body (to be
// closed by the caller) keeps the watchdog running.
func (c *client) send(hc *http.Client, req *http.Request, timeout time.Duration) (*http.Response, error) {
	w := newWatchdog(req.Context(), timeout)
	resp, err := hc.Do(req.WithContext(w.ctx))
	if err != nil {
		w.stop()
		return nil, w.err(err)
	}
	resp.Body = &watchedBody{r: resp.Body, w: w}
	return resp, nil
}

// sendFollowingRelative sends a metadata request that follows relative redirects (a renamed
// repository) but returns absolute ones (a CDN), as huggingface_hub's
// _request_wrapper(follow_relative_redirects=True) does.
func (c *client) sendFollowingRelative(ctx context.Context, method, rawURL string) (*http.Response, error) {
	for hops := 0; ; hops++ {
		req, err := c.newRequest(ctx, method, rawURL)
		if err != nil {
			return nil, err
		}
		resp, err := c.send(c.head, req, c.metaTime)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode < 300 || resp.StatusCode > 399 {
			return resp, nil
		}
		loc, err := url.Parse(resp.Header.Get("Location"))
		if err != nil || loc.Host != "" || resp.Header.Get("Location") == "" || hops >= 10 {
			return resp, nil
		}
		resp.Body.Close()
		rawURL = req.URL.ResolveReference(loc).String()
	}
}

// Sentinel errors, matched with errors.Is, for the ways a hub request fails.
var (
	// ErrNotFound is matched by every 404 (repository, revision or file not found).
	ErrNotFound = errors.New("not found")
	// ErrRepoNotFound: the repository does not exist (or is private: the hub says 401 then).
	ErrRepoNotFound = errors.New("repository not found")
	// ErrRevisionNotFound: the repository has no such branch, tag or commit.
	ErrRevisionNotFound = errors.New("revision not found")
	// ErrEntryNotFound: the revision has no such file.
	ErrEntryNotFound = errors.New("file not found")
	// ErrGated: the repository is gated and this token has not been granted access.
	ErrGated = errors.New("gated repository")
	// ErrUnauthorized: 401 or 403 for a private repository, a missing or refused token.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrServer: the hub kept answering 408, 429 or 5xx.
	ErrServer = errors.New("hub server error")
	// ErrNetwork: the hub or its CDN could not be reached, or the transfer kept failing.
	ErrNetwork = errors.New("network error")
	// ErrIntegrity: a downloaded file's size or sha256 is not what the hub announced.
	ErrIntegrity = errors.New("download integrity check failed")
)

// HTTPError is an error answer of the hub, classified like huggingface_hub's
// hf_raise_for_status (from X-Error-Code and the status).
type HTTPError struct {
	Status  int    // HTTP status code
	Code    string // the hub's X-Error-Code, if any
	Message string // the hub's X-Error-Message or JSON "error", if any
	URL     string
	Repo    string
	Hint    string // what the user can do
	kind    error
}

// Error gives the status, the URL, what the hub said and what to do.
func (e *HTTPError) Error() string {
	var b strings.Builder
	switch e.kind {
	case ErrServer:
		fmt.Fprintf(&b, "the hub answered %d %s", e.Status, http.StatusText(e.Status))
	default:
		fmt.Fprintf(&b, "%s: %s (%d %s)", e.Repo, e.kind, e.Status, http.StatusText(e.Status))
	}
	fmt.Fprintf(&b, " for %s", e.URL)
	if e.Message != "" {
		fmt.Fprintf(&b, ": %q", e.Message)
	}
	if e.Hint != "" {
		b.WriteString("; " + e.Hint)
	}
	return b.String()
}

// Unwrap lets errors.Is match the error's kind (and ErrNotFound for every 404).
func (e *HTTPError) Unwrap() []error {
	if e.Status == http.StatusNotFound && e.kind != ErrNotFound {
		return []error{e.kind, ErrNotFound}
	}
	return []error{e.kind}
}

// NetworkError is a failure to reach the hub or to finish a transfer.
type NetworkError struct {
	URL string
	Err error
}

// Error names the host and what failed, and what to try.
func (e *NetworkError) Error() string {
	host := e.URL
	if u, err := url.Parse(e.URL); err == nil && u.Host != "" {
		host = u.Scheme + "://" + u.Host
	}
	if _, unreachable := retryable(e.Err); unreachable {
		return fmt.Sprintf("cannot reach %s (%v); check the network, the proxy (HTTPS_PROXY) or HF_ENDPOINT, or set HF_HUB_OFFLINE=1 to use cached files only", host, e.Err)
	}
	return fmt.Sprintf("network failure talking to %s (%v); run the command again to resume", host, e.Err)
}

// Unwrap lets errors.Is match ErrNetwork and the underlying error.
func (e *NetworkError) Unwrap() []error { return []error{ErrNetwork, e.Err} }

// statusError turns a non-2xx/3xx answer into an *HTTPError, or returns nil. revision and
// file only improve the message.
func (c *client) statusError(resp *http.Response, repo, revision, file string) error {
	if resp.StatusCode < 400 {
		return nil
	}
	e := &HTTPError{Status: resp.StatusCode, Code: resp.Header.Get("X-Error-Code"), URL: resp.Request.URL.String(), Repo: repo}
	e.Message = resp.Header.Get("X-Error-Message")
	if e.Message == "" {
		var body struct {
			Error string `json:"error"`
		}
		if b, err := io.ReadAll(io.LimitReader(resp.Body, 4096)); err == nil && json.Unmarshal(b, &body) == nil {
			e.Message = body.Error
		}
	}
	tokenHint := "set HF_TOKEN to a token with read access (https://huggingface.co/settings/tokens)"
	if c.token != "" {
		tokenHint = "the token in use (HF_TOKEN or the huggingface-cli login file) was refused or has no read access to it"
	}
	switch {
	case e.Code == "GatedRepo":
		e.kind = ErrGated
		if c.token == "" {
			e.Hint = fmt.Sprintf("accept its conditions at %s while logged in, then set HF_TOKEN to a read token of that account", c.repoURL(repo))
		} else {
			e.Hint = fmt.Sprintf("the token's account has not been granted access: accept the conditions at %s (access may need the authors' approval), or check that HF_TOKEN belongs to the account that did", c.repoURL(repo))
		}
	case e.Code == "RevisionNotFound":
		e.kind = ErrRevisionNotFound
		e.Hint = fmt.Sprintf("revision %q does not exist in %s: check the branch, tag or commit", revision, repo)
	case e.Code == "EntryNotFound":
		e.kind = ErrEntryNotFound
		e.Hint = fmt.Sprintf("%s has no file %q at revision %s", repo, file, revision)
	case e.Code == "RepoNotFound" && e.Status != http.StatusUnauthorized && e.Status != http.StatusForbidden:
		e.kind = ErrRepoNotFound
		e.Hint = "check the repository id (and that it is a " + c.repoType + ")"
		if c.token == "" {
			e.Hint += "; if it is private, set HF_TOKEN"
		}
	case e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden:
		// The hub answers 401 for missing repositories too, not to reveal private ones.
		e.kind = ErrUnauthorized
		e.Hint = "the repository does not exist, or it is private or gated: " + tokenHint
	case e.Status == http.StatusNotFound:
		e.kind = ErrNotFound
		e.Hint = fmt.Sprintf("check the repository id, the revision %q and the file path", revision)
	case e.Status == http.StatusRequestTimeout || e.Status == http.StatusTooManyRequests || e.Status >= 500:
		e.kind = ErrServer
		e.Hint = "the hub or its CDN is failing or rate-limiting; try again later"
	default:
		e.kind = fmt.Errorf("unexpected answer")
	}
	return e
}

// retryable reports whether a failed request is worth repeating, and whether the failure was
// one of reaching the server at all (no connection, no DNS), which metadata requests do not
// retry so that an offline machine falls back to the cache at once, as huggingface_hub does.
func retryable(err error) (retry, unreachable bool) {
	var he *HTTPError
	if errors.As(err, &he) {
		return he.kind == ErrServer, false
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		var se *stallError
		return errors.As(err, &se), false
	}
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	if errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci) {
		return false, false
	}
	var dns *net.DNSError
	var op *net.OpError
	if errors.As(err, &dns) || (errors.As(err, &op) && op.Op == "dial") ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.EHOSTUNREACH) {
		return true, true
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, errShortBody) || errors.Is(err, errRestart) {
		return true, false
	}
	var ue *url.Error
	return errors.As(err, &ue), false
}

var (
	// errShortBody reports a body that ended cleanly before the announced size.
	errShortBody = errors.New("the transfer ended before the end of the file")
	// errRestart reports an answer that makes the download start again from its first byte.
	errRestart = errors.New("starting again from the first byte")
)

// wait sleeps before retry attempt n (0-based): backoff doubled each time, capped at 8x.
func (c *client) wait(ctx context.Context, n int) error {
	d := c.backoff << min(n, 3)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// withRetries runs a metadata request until it succeeds, fails for good, or runs out of
// retries. Failures to reach the server are not retried (see retryable).
func (c *client) withRetries(ctx context.Context, what string, f func() error) error {
	for attempt := 0; ; attempt++ {
		err := f()
		if err == nil {
			return nil
		}
		retry, unreachable := retryable(err)
		if !retry || unreachable || attempt >= c.retries || ctx.Err() != nil {
			return err
		}
		c.progress.note("%s: %v; retrying (%d/%d)", what, err, attempt+1, c.retries)
		if werr := c.wait(ctx, attempt); werr != nil {
			return err
		}
	}
}

// wrapNet marks transport failures as network errors.
func wrapNet(rawURL string, err error) error {
	if err == nil {
		return nil
	}
	var he *HTTPError
	var ne *NetworkError
	if errors.As(err, &he) || errors.As(err, &ne) || errors.Is(err, context.Canceled) && !isStall(err) {
		return err
	}
	if errors.Is(err, ErrIntegrity) {
		return err
	}
	return &NetworkError{URL: rawURL, Err: err}
}

func isStall(err error) bool {
	var se *stallError
	return errors.As(err, &se)
}

// randSuffix is a short random string for temporary names.
func randSuffix() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
