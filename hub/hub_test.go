package hub

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var ctx = context.Background()

// checkSnapshot checks that dir is the snapshot of commit in the cache layout: every wanted
// file is a relative symlink to blobs/<etag> with the exact content, and nothing else is there.
func checkSnapshot(t *testing.T, cache, repo, commit, dir string, want map[string]fakeFile) {
	t.Helper()
	storage := filepath.Join(cache, RepoFolderName(repo, "model"))
	if wantDir := filepath.Join(storage, "snapshots", commit); dir != wantDir {
		t.Fatalf("snapshot folder %s; want %s", dir, wantDir)
	}
	var got []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			got = append(got, filepath.ToSlash(rel))
		}
		return nil
	})
	if w := sortedKeys(want); !slices.Equal(got, w) {
		t.Errorf("snapshot holds %q; want %q", got, w)
	}
	for name, f := range want {
		p := filepath.Join(dir, filepath.FromSlash(name))
		link, err := os.Readlink(p)
		if err != nil {
			t.Errorf("%s: not a symlink: %v", name, err)
			continue
		}
		up := strings.Repeat("../", strings.Count(name, "/")+2)
		if wantLink := filepath.FromSlash(up + "blobs/" + f.etagValue()); link != wantLink {
			t.Errorf("%s -> %s; want the relative link %s", name, link, wantLink)
		}
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(b, f.data) {
			t.Errorf("%s: content differs (%d bytes, err %v; want %d bytes)", name, len(b), err, len(f.data))
		}
	}
	leftovers, _ := filepath.Glob(filepath.Join(storage, "blobs", "*.incomplete"))
	if len(leftovers) > 0 {
		t.Errorf("partial files left: %v", leftovers)
	}
}

func readRef(t *testing.T, cache, repo, rev string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(cache, RepoFolderName(repo, "model"), "refs", filepath.FromSlash(rev)))
	if err != nil {
		t.Fatalf("ref %s: %v", rev, err)
	}
	return string(b)
}

func reqStrings(reqs []fakeReq) []string {
	out := make([]string, len(reqs))
	for i, r := range reqs {
		out[i] = r.String()
	}
	return out
}

// TestDownloadSnapshot downloads a whole repository and checks the cache layout against
// huggingface_hub's: blobs named by etag (git sha1 or sha256), relative symlinks in
// snapshots/<commit>, refs/main holding the commit, the requests made, and that the token
// goes to the hub but never to the CDN.
func TestDownloadSnapshot(t *testing.T) {
	fh := newFakeHub(t)
	o := fh.opts()
	o.Token = "hf_secret"
	var progress bytes.Buffer
	o.Progress = &progress
	dir, err := Download(ctx, "acme/captioner", "", o)
	if err != nil {
		t.Fatal(err)
	}
	checkSnapshot(t, o.CacheDir, "acme/captioner", commitMain, dir, captionerFiles())
	if got := readRef(t, o.CacheDir, "acme/captioner", "main"); got != commitMain {
		t.Errorf("refs/main = %q; want %q (no newline)", got, commitMain)
	}
	reqs := fh.requests()
	var heads, cdnGets, hubGets int
	for _, r := range reqs {
		switch {
		case r.server == "cdn":
			cdnGets++
			if r.auth {
				t.Errorf("%s: the token was sent to the CDN", r)
			}
		case !r.auth:
			t.Errorf("%s: no token sent to the hub", r)
		case r.method == "HEAD":
			heads++
			if !strings.Contains(r.path, "/resolve/"+commitMain+"/") {
				t.Errorf("%s: files must be resolved at the listed commit", r)
			}
		default:
			hubGets++
		}
	}
	// One listing, a HEAD per file, and a GET per file: LFS ones from the CDN.
	if heads != 8 || cdnGets != 3 || hubGets != 1+5 {
		t.Errorf("requests: %d HEAD, %d CDN GET, %d hub GET; want 8, 3, 6:\n%s", heads, cdnGets, hubGets, strings.Join(reqStrings(reqs), "\n"))
	}
	if !slices.Contains(reqStrings(reqs), "hub GET /acme/captioner/resolve/"+commitMain+"/with%20space.txt") {
		t.Errorf("file names are not escaped in resolve URLs:\n%s", strings.Join(reqStrings(reqs), "\n"))
	}
	// The same lock file as huggingface_hub's.
	lfsEtag := captionerFiles()["model.safetensors"].etagValue()
	if _, err := os.Stat(filepath.Join(o.CacheDir, ".locks", "models--acme--captioner", lfsEtag+".lock")); err != nil {
		t.Errorf("lock file: %v", err)
	}
	for _, want := range []string{"model.safetensors: downloading 300.0 kB", "model.safetensors: 300.0 kB done in", "fetching 8 of 8 files"} {
		if !strings.Contains(progress.String(), want) {
			t.Errorf("progress output lacks %q:\n%s", want, progress.String())
		}
	}
}

// TestSecondDownloadIsNoop checks that downloading again costs one listing request and
// rewrites nothing, and that a file asked for by commit hash costs no request at all.
func TestSecondDownloadIsNoop(t *testing.T) {
	fh := newFakeHub(t)
	o := fh.opts()
	dir, err := Download(ctx, "acme/captioner", "main", o)
	if err != nil {
		t.Fatal(err)
	}
	blob := filepath.Join(o.CacheDir, "models--acme--captioner", "blobs", captionerFiles()["model.safetensors"].etagValue())
	before, err := os.Stat(blob)
	if err != nil {
		t.Fatal(err)
	}
	fh.requests()
	dir2, err := Download(ctx, "acme/captioner", "main", o)
	if err != nil || dir2 != dir {
		t.Fatalf("second download: %s, %v; want %s", dir2, err, dir)
	}
	if got := reqStrings(fh.requests()); !slices.Equal(got, []string{"hub GET /api/models/acme/captioner/revision/main"}) {
		t.Errorf("second download made requests %q; want only the listing", got)
	}
	after, _ := os.Stat(blob)
	if !after.ModTime().Equal(before.ModTime()) || !os.SameFile(before, after) {
		t.Error("the blob was rewritten")
	}
	p, err := DownloadFile(ctx, "acme/captioner", commitMain, "config.json", o)
	if err != nil || p != filepath.Join(dir, "config.json") {
		t.Fatalf("DownloadFile by commit: %s, %v", p, err)
	}
	if got := fh.requests(); len(got) != 0 {
		t.Errorf("a cached file asked for by commit made requests %v", got)
	}
	// By branch, a HEAD finds the commit; the file is not fetched again.
	if _, err := DownloadFile(ctx, "acme/captioner", "main", "model.safetensors", o); err != nil {
		t.Fatal(err)
	}
	if got := reqStrings(fh.requests()); len(got) != 1 || !strings.HasPrefix(got[0], "hub HEAD ") {
		t.Errorf("DownloadFile by branch of a cached file made requests %q; want one HEAD", got)
	}
}

// TestIncludeExclude checks the file filters (Python fnmatch semantics, folder patterns) and
// that filtered-out files are never requested.
func TestIncludeExclude(t *testing.T) {
	all := captionerFiles()
	pick := func(names ...string) map[string]fakeFile {
		m := map[string]fakeFile{}
		for _, n := range names {
			m[n] = all[n]
		}
		return m
	}
	cases := []struct {
		name             string
		include, exclude []string
		sel              func([]string) []string
		want             map[string]fakeFile
	}{
		{"json anywhere", []string{"*.json"}, nil, nil, pick("config.json", "special_tokens.json", "sub/tokenizer.json")},
		{"top-level json via character class", []string{"[cs]*.json"}, nil, nil, pick("config.json", "special_tokens.json", "sub/tokenizer.json")},
		{"folder pattern", []string{"sub/"}, nil, nil, pick("sub/tokenizer.json")},
		{"two patterns", []string{"config.json", "*.safetensors"}, nil, nil, pick("config.json", "model.safetensors")},
		{"exclude", []string{"*.json"}, []string{"sub/*"}, nil, pick("config.json", "special_tokens.json")},
		{"model files", nil, nil, ModelFiles, pick("config.json", "special_tokens.json", "model.safetensors", "with space.txt")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fh := newFakeHub(t)
			o := fh.opts()
			o.Include, o.Exclude, o.Select = tc.include, tc.exclude, tc.sel
			dir, err := Download(ctx, "acme/captioner", "main", o)
			if err != nil {
				t.Fatal(err)
			}
			checkSnapshot(t, o.CacheDir, "acme/captioner", commitMain, dir, tc.want)
			for _, r := range fh.requests() {
				if strings.Contains(r.path, "/resolve/") {
					name := r.path[strings.Index(r.path, commitMain)+len(commitMain)+1:]
					if _, ok := tc.want[strings.ReplaceAll(name, "%20", " ")]; !ok {
						t.Errorf("requested filtered-out %s", r)
					}
				}
			}
		})
	}
	fh := newFakeHub(t)
	o := fh.opts()
	o.Include = []string{"*.h5"}
	if _, err := Download(ctx, "acme/captioner", "main", o); err == nil || !strings.Contains(err.Error(), "no file matches") {
		t.Errorf("no match: err %v", err)
	}
}

// TestResumeAfterCut cuts the CDN transfer of the LFS file in the middle with retries off:
// the download fails, leaving blobs/<sha256>.incomplete; the next run asks only for the
// missing bytes (Range from the partial file's size) and ends with the exact file under its
// etag.
func TestResumeAfterCut(t *testing.T) {
	fh := newFakeHub(t)
	o := fh.opts()
	o.Retries = -1
	f := captionerFiles()["model.safetensors"]
	etag := f.etagValue()
	fh.cutAfter[etag] = 100_000
	o.Include = []string{"model.safetensors"}
	_, err := Download(ctx, "acme/captioner", "main", o)
	if !errors.Is(err, ErrNetwork) || !strings.Contains(err.Error(), "run the command again to resume") {
		t.Fatalf("cut transfer: err %v; want a network error", err)
	}
	incomplete := filepath.Join(o.CacheDir, "models--acme--captioner", "blobs", etag+".incomplete")
	fi, err := os.Stat(incomplete)
	if err != nil {
		t.Fatalf("no partial file after the cut: %v", err)
	}
	n := fi.Size()
	if n <= 0 || n > 100_000 {
		t.Fatalf("partial file of %d bytes; want 1..100000", n)
	}
	if b, _ := os.ReadFile(incomplete); !bytes.Equal(b, f.data[:n]) {
		t.Fatal("the partial file is not a prefix of the file")
	}
	fh.requests()
	var progress bytes.Buffer
	o.Progress = &progress
	dir, err := Download(ctx, "acme/captioner", "main", o)
	if err != nil {
		t.Fatal(err)
	}
	checkSnapshot(t, o.CacheDir, "acme/captioner", commitMain, dir, map[string]fakeFile{"model.safetensors": f})
	if want := "resuming a partial download at "; !strings.Contains(progress.String(), want) {
		t.Errorf("progress lacks %q:\n%s", want, progress.String())
	}
	var ranges []string
	for _, r := range fh.requests() {
		if r.server == "cdn" {
			ranges = append(ranges, r.rng)
		}
	}
	if want := []string{"bytes=" + strconv.FormatInt(n, 10) + "-"}; !slices.Equal(ranges, want) {
		t.Errorf("CDN requests with ranges %q; want %q (resuming the partial file)", ranges, want)
	}
}

// TestResumeWithinOneCall checks that a cut transfer, and one that stalls, are resumed by the
// retries of the same call.
func TestResumeWithinOneCall(t *testing.T) {
	for _, stall := range []bool{false, true} {
		name := map[bool]string{false: "cut", true: "stall"}[stall]
		t.Run(name, func(t *testing.T) {
			fh := newFakeHub(t)
			o := fh.opts()
			o.Include = []string{"model.safetensors"}
			f := captionerFiles()["model.safetensors"]
			if stall {
				fh.stallAfter[f.etagValue()] = 50_000
				o.Timeout = 300 * time.Millisecond // the stall watchdog, not an assertion
			} else {
				fh.cutAfter[f.etagValue()] = 50_000
			}
			var progress bytes.Buffer
			o.Progress = &progress
			dir, err := Download(ctx, "acme/captioner", "main", o)
			if err != nil {
				t.Fatal(err)
			}
			checkSnapshot(t, o.CacheDir, "acme/captioner", commitMain, dir, map[string]fakeFile{"model.safetensors": f})
			var ranges []string
			for _, r := range fh.requests() {
				if r.server == "cdn" {
					ranges = append(ranges, r.rng)
				}
			}
			if len(ranges) != 2 || ranges[0] != "" || !strings.HasPrefix(ranges[1], "bytes=") {
				t.Errorf("CDN ranges %q; want a full request, then a resumed one", ranges)
			}
			if !strings.Contains(progress.String(), "resuming at") {
				t.Errorf("progress does not report the retry:\n%s", progress.String())
			}
		})
	}
}

// TestResumeEdgeCases checks resumption against a server that ignores Range (the partial file
// is replaced, not appended to) and from a corrupt partial file (caught by the sha256, then
// downloaded again from scratch).
func TestResumeEdgeCases(t *testing.T) {
	f := captionerFiles()["model.safetensors"]
	garbage := bytes.Repeat([]byte{0x55}, 1000)
	cases := []struct {
		name        string
		partial     []byte
		ignoreRange bool
		wantRanges  []string
	}{
		{"server ignores Range", f.data[:1000], true, []string{"bytes=1000-"}},
		{"corrupt partial file", garbage, false, []string{"bytes=1000-", ""}},
		{"partial longer than the file", append(append([]byte(nil), f.data...), 1, 2, 3), false, []string{""}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fh := newFakeHub(t)
			fh.ignoreRange = tc.ignoreRange
			o := fh.opts()
			o.Include = []string{"model.safetensors"}
			blobs := filepath.Join(o.CacheDir, "models--acme--captioner", "blobs")
			os.MkdirAll(blobs, 0o755)
			if err := os.WriteFile(filepath.Join(blobs, f.etagValue()+".incomplete"), tc.partial, 0o644); err != nil {
				t.Fatal(err)
			}
			dir, err := Download(ctx, "acme/captioner", "main", o)
			if err != nil {
				t.Fatal(err)
			}
			checkSnapshot(t, o.CacheDir, "acme/captioner", commitMain, dir, map[string]fakeFile{"model.safetensors": f})
			var ranges []string
			for _, r := range fh.requests() {
				if r.server == "cdn" {
					ranges = append(ranges, r.rng)
				}
			}
			if !slices.Equal(ranges, tc.wantRanges) {
				t.Errorf("CDN ranges %q; want %q", ranges, tc.wantRanges)
			}
		})
	}
}

// TestIntegrityFailures checks that a file whose bytes do not hash to its sha256 etag, or that
// is longer than announced, is refused: an ErrIntegrity error, no blob, no partial file, no
// snapshot entry.
func TestIntegrityFailures(t *testing.T) {
	f := captionerFiles()["model.safetensors"]
	cases := []struct {
		name   string
		inject func(fh *fakeHub)
		want   string
	}{
		{"sha256 mismatch", func(fh *fakeHub) { fh.corrupt[f.etagValue()] = true }, "sha256 "},
		{"longer than announced", func(fh *fakeHub) { fh.tooLong[f.etagValue()] = true }, "more than the 300000 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fh := newFakeHub(t)
			tc.inject(fh)
			o := fh.opts()
			o.Include = []string{"model.safetensors"}
			_, err := Download(ctx, "acme/captioner", "main", o)
			if !errors.Is(err, ErrIntegrity) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "model.safetensors") {
				t.Fatalf("err %v; want an integrity error naming the file and %q", err, tc.want)
			}
			storage := filepath.Join(o.CacheDir, "models--acme--captioner")
			left, _ := filepath.Glob(filepath.Join(storage, "blobs", "*"))
			if len(left) != 0 {
				t.Errorf("blobs left: %v", left)
			}
			if _, err := os.Lstat(filepath.Join(storage, "snapshots", commitMain, "model.safetensors")); err == nil {
				t.Error("a snapshot entry was made for a bad file")
			}
		})
	}
}

// TestHTTPErrors checks each error answer of the hub gives a typed error with a message that
// says what to do, and that 5xx answers are retried.
func TestHTTPErrors(t *testing.T) {
	cases := []struct {
		name     string
		repo     string
		rev      string
		file     string // DownloadFile if set, else Download
		token    string
		fail     []int
		want     error
		wantMsg  []string
		wantNone bool
	}{
		{"private without token", "acme/private", "main", "", "", nil, ErrUnauthorized, []string{"401", "private or gated", "set HF_TOKEN"}, false},
		{"private with wrong token", "acme/private", "main", "config.json", "hf_wrong", nil, ErrUnauthorized, []string{"401", "token in use", "refused"}, false},
		{"private with token", "acme/private", "main", "config.json", "hf_secret", nil, nil, nil, false},
		{"gated without token", "acme/gated", "main", "", "", nil, ErrGated, []string{"401", "accept its conditions at http://", "/acme/gated", "HF_TOKEN"}, false},
		{"gated, not granted", "acme/gated", "main", "model.safetensors", "hf_secret", nil, ErrGated, []string{"403", "not been granted access"}, false},
		{"gated, granted", "acme/gated", "main", "", "hf_granted", nil, nil, nil, false},
		{"missing repo", "acme/nothing", "main", "", "hf_secret", nil, ErrRepoNotFound, []string{"404", "check the repository id"}, false},
		{"missing revision", "acme/captioner", "v9", "", "", nil, ErrRevisionNotFound, []string{"404", `revision "v9" does not exist`}, false},
		{"missing file", "acme/captioner", "main", "nope.json", "", nil, ErrEntryNotFound, []string{"404", `no file "nope.json"`}, false},
		{"500 then 503 then ok", "acme/captioner", "main", "config.json", "", []int{500, 503}, nil, nil, false},
		{"500 for good", "acme/captioner", "main", "", "", []int{500, 500, 500, 500, 500, 500}, ErrServer, []string{"500", "try again later"}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fh := newFakeHub(t)
			fh.failNext = tc.fail
			o := fh.opts()
			o.Token = tc.token
			var err error
			if tc.file != "" {
				_, err = DownloadFile(ctx, tc.repo, tc.rev, tc.file, o)
			} else {
				_, err = Download(ctx, tc.repo, tc.rev, o)
			}
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v; want %v", err, tc.want)
			}
			for _, w := range tc.wantMsg {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err %q lacks %q", err, w)
				}
			}
			if tc.want == ErrRepoNotFound || tc.want == ErrEntryNotFound || tc.want == ErrRevisionNotFound {
				if !errors.Is(err, ErrNotFound) {
					t.Errorf("a 404 error does not match ErrNotFound")
				}
			}
			if tc.wantNone {
				if n := len(fh.requests()); n != 6 {
					t.Errorf("%d requests; want 6 (5 retries)", n)
				}
			}
		})
	}
	// A missing file is remembered as huggingface_hub does.
	fh := newFakeHub(t)
	o := fh.opts()
	DownloadFile(ctx, "acme/captioner", "main", "nope.json", o)
	if _, err := os.Stat(filepath.Join(o.CacheDir, "models--acme--captioner", ".no_exist", commitMain, "nope.json")); err != nil {
		t.Errorf(".no_exist marker: %v", err)
	}
}

// TestNetworkLoss checks that an unreachable hub gives a network error at once (no retries)
// when nothing is cached, and the cached snapshot or file when something is.
func TestNetworkLoss(t *testing.T) {
	fh := newFakeHub(t)
	o := fh.opts()
	o.Include = []string{"config.json"}
	dir, err := Download(ctx, "acme/captioner", "main", o)
	if err != nil {
		t.Fatal(err)
	}
	fh.hub.Close()
	fh.cdn.Close()
	var progress bytes.Buffer
	o.Progress = &progress
	got, err := Download(ctx, "acme/captioner", "main", o)
	if err != nil || got != dir {
		t.Errorf("snapshot with the hub unreachable: %s, %v; want the cached %s", got, err, dir)
	}
	if !strings.Contains(progress.String(), "using the cached snapshot") {
		t.Errorf("no note about using the cache:\n%s", progress.String())
	}
	if p, err := DownloadFile(ctx, "acme/captioner", "main", "config.json", o); err != nil || p != filepath.Join(dir, "config.json") {
		t.Errorf("file with the hub unreachable: %s, %v", p, err)
	}
	_, err = Download(ctx, "acme/private", "main", o)
	if !errors.Is(err, ErrNetwork) || !strings.Contains(err.Error(), "cannot reach http://127.0.0.1") || !strings.Contains(err.Error(), "HF_HUB_OFFLINE=1") {
		t.Errorf("uncached repo with the hub unreachable: err %v", err)
	}
	if strings.Contains(progress.String(), "retrying") {
		t.Errorf("an unreachable hub was retried:\n%s", progress.String())
	}
}

// TestOffline checks HF_HUB_OFFLINE: the cache answers, nothing is requested, and what is not
// cached gives an ErrNotCached error that says so.
func TestOffline(t *testing.T) {
	fh := newFakeHub(t)
	o := fh.opts()
	dir, err := Download(ctx, "acme/captioner", "v1", o)
	if err != nil {
		t.Fatal(err)
	}
	fh.requests()
	t.Setenv("HF_HUB_OFFLINE", "1")
	if got, err := Download(ctx, "acme/captioner", "v1", o); err != nil || got != dir {
		t.Errorf("offline snapshot: %s, %v; want %s", got, err, dir)
	}
	if got, err := DownloadFile(ctx, "acme/captioner", "v1", "config.json", o); err != nil || got != filepath.Join(dir, "config.json") {
		t.Errorf("offline file: %s, %v", got, err)
	}
	for _, call := range []func() error{
		func() error { _, err := Download(ctx, "acme/captioner", "main", o); return err },
		func() error { _, err := DownloadFile(ctx, "acme/captioner", "v1", "README.md", o); return err },
	} {
		err := call()
		if !errors.Is(err, ErrNotCached) || !strings.Contains(err.Error(), "HF_HUB_OFFLINE") || !strings.Contains(err.Error(), o.CacheDir) {
			t.Errorf("offline miss: err %v", err)
		}
	}
	if got := fh.requests(); len(got) != 0 {
		t.Errorf("offline mode made requests: %v", got)
	}
	t.Setenv("HF_HUB_OFFLINE", "")
	t.Setenv("TRANSFORMERS_OFFLINE", "yes")
	if _, err := Download(ctx, "acme/captioner", "main", o); !errors.Is(err, ErrNotCached) {
		t.Errorf("TRANSFORMERS_OFFLINE=yes: err %v", err)
	}
}

// TestResolve checks the --model resolution: folders as they are, hub ids from the cache
// (branch, tag, commit), and errors that say how to download what is missing.
func TestResolve(t *testing.T) {
	fh := newFakeHub(t)
	o := fh.opts()
	t.Setenv("HF_HUB_CACHE", o.CacheDir)
	mainDir, err := Download(ctx, "acme/captioner", "main", o)
	if err != nil {
		t.Fatal(err)
	}
	v1Dir, err := Download(ctx, "acme/captioner", "refs/pr/1", o)
	if err != nil {
		t.Fatal(err)
	}
	local := t.TempDir()
	fh.hub.Close() // Resolve never uses the network
	cases := []struct {
		ref, want string
		wantErr   []string
	}{
		{local, local, nil},
		{"acme/captioner", mainDir, nil},
		{"acme/captioner@main", mainDir, nil},
		{"acme/captioner@refs/pr/1", v1Dir, nil},
		{"acme/captioner@" + commitV1, v1Dir, nil},
		{"acme/captioner@v1", "", []string{"not in the cache", "imgcap pull acme/captioner --revision v1"}},
		{"acme/unknown", "", []string{"hub model acme/unknown at revision main is not in the cache " + o.CacheDir, "imgcap pull acme/unknown"}},
		{"./no/such/dir", "", []string{"no such folder, and not a Hugging Face hub id"}},
		{"a/b/c", "", []string{"no such folder, and not a Hugging Face hub id"}},
		{"acme/captioner@", "", []string{"not a Hugging Face hub id"}},
		{"", "", []string{"empty"}},
	}
	for _, tc := range cases {
		got, err := Resolve(tc.ref)
		if tc.wantErr == nil {
			if err != nil || got != tc.want {
				t.Errorf("Resolve(%q) = %q, %v; want %q", tc.ref, got, err, tc.want)
			}
			continue
		}
		if err == nil {
			t.Errorf("Resolve(%q) = %q; want an error", tc.ref, got)
			continue
		}
		for _, w := range tc.wantErr {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Resolve(%q): err %q lacks %q", tc.ref, err, w)
			}
		}
	}
	if _, err := Resolve("acme/unknown"); !errors.Is(err, ErrNotCached) {
		t.Errorf("missing hub model: err %v does not match ErrNotCached", err)
	}
}

// TestResolveOrDownload checks that a hub id is downloaded with the model files only.
func TestResolveOrDownload(t *testing.T) {
	fh := newFakeHub(t)
	o := fh.opts()
	dir, err := ResolveOrDownload(ctx, "acme/captioner@main", o)
	if err != nil {
		t.Fatal(err)
	}
	all := captionerFiles()
	want := map[string]fakeFile{}
	for _, n := range []string{"config.json", "special_tokens.json", "model.safetensors", "with space.txt"} {
		want[n] = all[n]
	}
	checkSnapshot(t, o.CacheDir, "acme/captioner", commitMain, dir, want)
	local := t.TempDir()
	if got, err := ResolveOrDownload(ctx, local, o); err != nil || got != local {
		t.Errorf("local folder: %q, %v", got, err)
	}
}

// TestRelativeRedirect checks that a renamed repository's relative redirect is followed for
// metadata (and the file stored under the name asked for), as huggingface_hub does.
func TestRelativeRedirect(t *testing.T) {
	fh := newFakeHub(t)
	o := fh.opts()
	p, err := DownloadFile(ctx, "acme/old-name", "main", "sub/tokenizer.json", o)
	if err != nil {
		t.Fatal(err)
	}
	f := captionerFiles()["sub/tokenizer.json"]
	if b, _ := os.ReadFile(p); !bytes.Equal(b, f.data) {
		t.Errorf("content %q", b)
	}
	if want := filepath.Join(o.CacheDir, "models--acme--old-name", "snapshots", commitMain, "sub", "tokenizer.json"); p != want {
		t.Errorf("path %s; want %s", p, want)
	}
	got := reqStrings(fh.requests())
	want := []string{
		"hub HEAD /acme/old-name/resolve/main/sub/tokenizer.json",
		"hub HEAD /acme/captioner/resolve/main/sub/tokenizer.json",
		"hub GET /acme/captioner/resolve/main/sub/tokenizer.json",
	}
	if !slices.Equal(got, want) {
		t.Errorf("requests %q; want %q", got, want)
	}
}

// TestRevisionRefs checks refs for tags and branches with a '/' (escaped in URLs, nested
// under refs/), and that files of two commits share identical blobs.
func TestRevisionRefs(t *testing.T) {
	fh := newFakeHub(t)
	o := fh.opts()
	dir, err := Download(ctx, "acme/captioner", "refs/pr/1", o)
	if err != nil {
		t.Fatal(err)
	}
	repo := fh.repos["acme/captioner"]
	checkSnapshot(t, o.CacheDir, "acme/captioner", commitV1, dir, repo.commits[commitV1])
	if got := readRef(t, o.CacheDir, "acme/captioner", "refs/pr/1"); got != commitV1 {
		t.Errorf("refs/refs/pr/1 = %q", got)
	}
	if got := reqStrings(fh.requests())[0]; got != "hub GET /api/models/acme/captioner/revision/refs%2Fpr%2F1" {
		t.Errorf("listing request %q: the revision must be escaped whole", got)
	}
	p, err := DownloadFile(ctx, "acme/captioner", "v1", "config.json", o)
	if err != nil || p != filepath.Join(dir, "config.json") {
		t.Errorf("DownloadFile at tag: %s, %v", p, err)
	}
	if got := readRef(t, o.CacheDir, "acme/captioner", "v1"); got != commitV1 {
		t.Errorf("refs/v1 = %q", got)
	}
}

// TestUnsafeNames checks that names from the hub that would escape the cache are refused.
func TestUnsafeNames(t *testing.T) {
	fh := newFakeHub(t)
	o := fh.opts()
	_, err := Download(ctx, "acme/evil", "main", o)
	if err == nil || !strings.Contains(err.Error(), "cannot be stored safely") {
		t.Errorf("listing with ../: err %v", err)
	}
	_, err = DownloadFile(ctx, "acme/evil", "main", "bad.json", o)
	if err == nil || !strings.Contains(err.Error(), "cannot name a cache file") {
		t.Errorf("etag with ../: err %v", err)
	}
	for _, bad := range []string{"../x", "/etc/passwd", "a//b", "a/./b", `a\b`} {
		if _, err := DownloadFile(ctx, "acme/captioner", "main", bad, o); err == nil {
			t.Errorf("DownloadFile(%q) accepted", bad)
		}
	}
	if _, err := Download(ctx, "acme/captioner", "../../x", o); err == nil {
		t.Error("revision with .. accepted")
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(o.CacheDir), "escape")); err == nil {
		t.Error("a file escaped the cache")
	}
}

// TestConcurrentDownloads runs two downloads of the same repository into one cache at once:
// the blob lock serialises them and both see the exact files.
func TestConcurrentDownloads(t *testing.T) {
	fh := newFakeHub(t)
	o := fh.opts()
	var wg sync.WaitGroup
	dirs := make([]string, 2)
	errs := make([]error, 2)
	for i := range dirs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dirs[i], errs[i] = Download(ctx, "acme/captioner", "main", o)
		}()
	}
	wg.Wait()
	for i := range dirs {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		checkSnapshot(t, o.CacheDir, "acme/captioner", commitMain, dirs[i], captionerFiles())
	}
}

// TestTokenSources checks where the token comes from: the option, $HF_TOKEN, then the file
// `huggingface-cli login` writes under $HF_HOME.
func TestTokenSources(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T)
		opt   string
	}{
		{"option", func(t *testing.T) {}, "hf_secret"},
		{"HF_TOKEN", func(t *testing.T) { t.Setenv("HF_TOKEN", "hf_secret") }, ""},
		{"legacy variable", func(t *testing.T) { t.Setenv("HUGGING_FACE_HUB_TOKEN", "hf_secret") }, ""},
		{"token file", func(t *testing.T) {
			os.WriteFile(filepath.Join(os.Getenv("HF_HOME"), "token"), []byte("hf_secret\n"), 0o600)
		}, ""},
		{"HF_TOKEN_PATH", func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "tok")
			os.WriteFile(p, []byte("hf_secret"), 0o600)
			t.Setenv("HF_TOKEN_PATH", p)
		}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fh := newFakeHub(t)
			tc.setup(t)
			o := fh.opts()
			o.Token = tc.opt
			if _, err := DownloadFile(ctx, "acme/private", "main", "config.json", o); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestCacheDirEnv checks the cache folder's resolution order.
func TestCacheDirEnv(t *testing.T) {
	home, _ := os.UserHomeDir()
	cases := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"HF_HUB_CACHE": "/c/hub", "HUGGINGFACE_HUB_CACHE": "/old", "HF_HOME": "/h"}, "/c/hub"},
		{map[string]string{"HUGGINGFACE_HUB_CACHE": "/old", "HF_HOME": "/h"}, "/old"},
		{map[string]string{"HF_HOME": "/h", "XDG_CACHE_HOME": "/x"}, "/h/hub"},
		{map[string]string{"XDG_CACHE_HOME": "/x"}, "/x/huggingface/hub"},
		{map[string]string{"HF_HOME": "~/hf"}, filepath.Join(home, "hf", "hub")},
		{map[string]string{}, filepath.Join(home, ".cache", "huggingface", "hub")},
	}
	for _, tc := range cases {
		for _, v := range []string{"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"} {
			t.Setenv(v, tc.env[v])
		}
		if got := CacheDir(); got != filepath.FromSlash(tc.want) {
			t.Errorf("env %v: CacheDir() = %s; want %s", tc.env, got, tc.want)
		}
	}
}

func TestParseRef(t *testing.T) {
	cases := []struct {
		ref, repo, rev string
		ok             bool
	}{
		{"gpt2", "gpt2", "main", true},
		{"org/name", "org/name", "main", true},
		{"Salesforce/blip-image-captioning-base@v1.0", "Salesforce/blip-image-captioning-base", "v1.0", true},
		{"org/name@refs/pr/3", "org/name", "refs/pr/3", true},
		{"nlpconnect/vit-gpt2-image-captioning@" + commitMain, "nlpconnect/vit-gpt2-image-captioning", commitMain, true},
		{"a/b/c", "", "", false},
		{"org/na--me", "", "", false},
		{"org/name.git", "", "", false},
		{"-org/name", "", "", false},
		{"org/name-", "", "", false},
		{"org/" + strings.Repeat("x", 97), "", "", false},
		{"org/name@", "", "", false},
		{"org/name@../x", "", "", false},
		{"", "", "", false},
	}
	for _, tc := range cases {
		repo, rev, err := ParseRef(tc.ref)
		if (err == nil) != tc.ok || repo != tc.repo || rev != tc.rev {
			t.Errorf("ParseRef(%q) = %q, %q, %v; want %q, %q, ok=%v", tc.ref, repo, rev, err, tc.repo, tc.rev, tc.ok)
		}
	}
}

// TestFnmatch checks patterns against Python's fnmatch.fnmatch results.
func TestFnmatch(t *testing.T) {
	cases := []struct {
		pat, name string
		want      bool
	}{
		{"*.json", "config.json", true},
		{"*.json", "sub/dir/config.json", true}, // '*' crosses '/'
		{"*.json", "config.jsonl", false},
		{"config.json", "Config.json", false}, // case-sensitive
		{"?.txt", "a.txt", true},
		{"?.txt", "ab.txt", false},
		{"[ab]*", "b.bin", true},
		{"[!ab]*", "b.bin", false},
		{"[!ab]*", "c.bin", true},
		{"[a-c].bin", "b.bin", true},
		{"[]].x", "].x", true},
		{"[!]].x", "a.x", true},
		{"[", "[", true},
		{"a[", "a[", true},
		{"[z-a]", "m", false},
		{"a.b", "axb", false}, // '.' is literal
		{"(x)+", "(x)+", true},
		{`a\b`, `a\b`, true},
		{"sub/", "sub/x.json", true},
		{"*", "", true},
		{"**/*.bin", "a/b.bin", true},
		{"**/*.bin", "b.bin", false},
	}
	for _, tc := range cases {
		if got := MatchPattern(tc.pat, tc.name); got != tc.want {
			t.Errorf("MatchPattern(%q, %q) = %v; want %v (regexp %s)", tc.pat, tc.name, got, tc.want, fnmatchRegexp(tc.pat))
		}
	}
}

func TestModelFiles(t *testing.T) {
	cases := []struct {
		files, want []string
	}{
		{[]string{".gitattributes", "README.md", "config.json", "model.safetensors", "pytorch_model.bin", "tf_model.h5",
			"flax_model.msgpack", "tokenizer.json", "vocab.txt", "onnx/model.onnx", "preprocessor_config.json"},
			[]string{"config.json", "model.safetensors", "preprocessor_config.json", "tokenizer.json", "vocab.txt"}},
		{[]string{"config.json", "pytorch_model.bin", "merges.txt", "vocab.json", "training_args.bin", "rust_model.ot"},
			[]string{"config.json", "merges.txt", "pytorch_model.bin", "vocab.json"}},
		{[]string{"config.json", "pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin", "pytorch_model.bin.index.json"},
			[]string{"config.json", "pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin", "pytorch_model.bin.index.json"}},
		{[]string{"config.json", "model.safetensors.index.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "pytorch_model.bin.index.json", "pytorch_model-00001-of-00001.bin"},
			[]string{"config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json"}},
	}
	for _, tc := range cases {
		if got := ModelFiles(tc.files); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ModelFiles(%q) = %q; want %q", tc.files, got, tc.want)
		}
	}
}
