package hub

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// DefaultRevision is the revision used when none is given.
const DefaultRevision = "main"

// CacheDir returns the hub cache folder, resolved from the environment as huggingface_hub
// does: $HF_HUB_CACHE, else $HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub, else
// $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub.
func CacheDir() string {
	if d := os.Getenv("HF_HUB_CACHE"); d != "" {
		return expandHome(d)
	}
	if d := os.Getenv("HUGGINGFACE_HUB_CACHE"); d != "" {
		return expandHome(d)
	}
	return filepath.Join(hfHome(), "hub")
}

// hfHome is $HF_HOME, else $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface.
func hfHome() string {
	if d := os.Getenv("HF_HOME"); d != "" {
		return expandHome(d)
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(expandHome(d), "huggingface")
	}
	return filepath.Join(expandHome("~"), ".cache", "huggingface")
}

// expandHome replaces a leading ~ by the user's home folder, as Python's expanduser does.
func expandHome(p string) string {
	if p != "~" && !strings.HasPrefix(p, "~/") {
		return p
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return p
	}
	return filepath.Join(home, p[1:])
}

// repoTypes maps a repository type to the plural used in cache folder names and API paths.
var repoTypes = map[string]string{"model": "models", "dataset": "datasets", "space": "spaces"}

// RepoFolderName is the cache folder of a repository: "models--org--name" for the model
// "org/name" (repoType "model", or empty), "datasets--org--name" for a dataset.
func RepoFolderName(repo, repoType string) string {
	if repoType == "" {
		repoType = "model"
	}
	return repoTypes[repoType] + "--" + strings.ReplaceAll(repo, "/", "--")
}

var (
	repoIDRE = regexp.MustCompile(`^([A-Za-z0-9_][A-Za-z0-9_.-]*[A-Za-z0-9_]/|[A-Za-z0-9_]/)?([A-Za-z0-9_][A-Za-z0-9_.-]{0,94}[A-Za-z0-9_]|[A-Za-z0-9_])$`)
	commitRE = regexp.MustCompile(`^[0-9a-f]{40}$`)
	// The hub names commits by a git sha1; accept a sha256 too, in case it moves to one.
	commitLikeRE = regexp.MustCompile(`^[0-9a-f]{40}([0-9a-f]{24})?$`)
	sha256RE     = regexp.MustCompile(`^[0-9a-f]{64}$`)
	etagRE       = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,254}$`)
)

// ValidateRepoID checks a repository id as huggingface_hub's validate_repo_id does: "name"
// or "namespace/name", of letters, digits, '-', '_' and '.', not starting or ending with '-' or
// '.', without "--" or "..", not ending in ".git", the name at most 96 characters.
func ValidateRepoID(id string) error {
	switch {
	case id == "":
		return errors.New("empty repository id")
	case strings.Count(id, "/") > 1:
		return fmt.Errorf("repository id %q: want \"name\" or \"namespace/name\"", id)
	case strings.Contains(id, "--") || strings.Contains(id, ".."):
		return fmt.Errorf("repository id %q: \"--\" and \"..\" are not allowed", id)
	case strings.HasSuffix(id, ".git"):
		return fmt.Errorf("repository id %q: cannot end with .git", id)
	case !repoIDRE.MatchString(id):
		return fmt.Errorf("repository id %q: want \"namespace/name\" of letters, digits, '-', '_' and '.' (not at either end), the name at most 96 characters", id)
	}
	return nil
}

// IsCommitHash reports whether revision is a full commit hash (40 lowercase hex digits), the
// only kind of revision that identifies files without asking the hub.
func IsCommitHash(revision string) bool { return commitRE.MatchString(revision) }

// ParseRef splits a hub reference "org/name" or "org/name@revision" into a checked repository
// id and a revision (DefaultRevision when none is given).
func ParseRef(ref string) (repo, revision string, err error) {
	repo, revision = ref, DefaultRevision
	if i := strings.IndexByte(ref, '@'); i >= 0 {
		repo, revision = ref[:i], ref[i+1:]
		if revision == "" {
			return "", "", fmt.Errorf("hub reference %q: empty revision after '@'", ref)
		}
	}
	if err := ValidateRepoID(repo); err != nil {
		return "", "", err
	}
	if err := checkRevision(revision); err != nil {
		return "", "", err
	}
	return repo, revision, nil
}

// checkRevision refuses revisions that could not name a file under refs/ safely.
func checkRevision(rev string) error {
	if rev == "" {
		return errors.New("empty revision")
	}
	if err := checkRelPath(rev); err != nil {
		return fmt.Errorf("revision %q: %v", rev, err)
	}
	return nil
}

// checkRelPath checks a slash-separated path from the hub (or a user) before it becomes a
// file path under the cache: relative, no "." or ".." or empty segments, no backslash or NUL.
func checkRelPath(p string) error {
	if p == "" {
		return errors.New("empty path")
	}
	if strings.ContainsAny(p, "\\\x00") {
		return errors.New("backslash or NUL in path")
	}
	for _, seg := range strings.Split(p, "/") {
		switch seg {
		case "":
			return errors.New("absolute path or empty segment")
		case ".", "..":
			return fmt.Errorf("%q segment", seg)
		}
	}
	return nil
}

// cachedCommit maps a revision to a commit from the cache: a commit hash is itself, a branch
// or tag is what refs/<revision> recorded. It returns "" when the cache does not know.
func cachedCommit(storage, revision string) string {
	if IsCommitHash(revision) {
		return revision
	}
	b, err := os.ReadFile(filepath.Join(storage, "refs", filepath.FromSlash(revision)))
	if err != nil {
		return ""
	}
	c := strings.TrimSpace(string(b))
	if !commitLikeRE.MatchString(c) {
		return ""
	}
	return c
}

// cachedSnapshot returns the snapshot folder the cache holds for a revision, or "".
func cachedSnapshot(storage, revision string) string {
	c := cachedCommit(storage, revision)
	if c == "" {
		return ""
	}
	dir := filepath.Join(storage, "snapshots", c)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return ""
	}
	return dir
}

// cachedFile returns a file's path in the cached snapshot of a revision, or "" when the
// snapshot or the file (or the blob it links to) is missing.
func cachedFile(storage, revision, file string) string {
	c := cachedCommit(storage, revision)
	if c == "" {
		return ""
	}
	p := filepath.Join(storage, "snapshots", c, filepath.FromSlash(file))
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// Resolve maps a --model argument to a local folder without using the network. An existing
// path is returned as is. Otherwise ref must be a hub id, "org/name" or "org/name@revision"
// (a branch, tag or commit hash; default main), whose snapshot is looked up in CacheDir();
// when it is not there, the error (matching ErrNotCached) says how to download it.
func Resolve(ref string) (string, error) {
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
	cache := CacheDir()
	if dir := cachedSnapshot(filepath.Join(cache, RepoFolderName(repo, "model")), rev); dir != "" {
		return dir, nil
	}
	return "", &NotCachedError{Repo: repo, Revision: rev, Cache: cache,
		Hint: fmt.Sprintf("no such folder either; download it with: imgcap pull %s", pullArgs(repo, rev))}
}

// looksLikePath reports whether a reference is evidently meant as a file path.
func looksLikePath(ref string) bool {
	return strings.HasPrefix(ref, ".") || strings.HasPrefix(ref, "/") || strings.HasPrefix(ref, "~") ||
		strings.ContainsRune(ref, filepath.Separator) && filepath.Separator != '/'
}

// pullArgs spells the arguments of the imgcap pull command for a repository and revision.
func pullArgs(repo, rev string) string {
	if rev == DefaultRevision {
		return repo
	}
	return repo + " --revision " + rev
}

// ErrNotCached is matched (errors.Is) by errors for files or snapshots that are neither in
// the cache nor downloadable now (offline mode, or the hub out of reach).
var ErrNotCached = errors.New("not in the local hub cache")

// NotCachedError reports a snapshot or file missing from the cache.
type NotCachedError struct {
	Repo, Revision, File string
	Cache                string
	Hint                 string // what to do about it
	Err                  error  // why the hub was not asked, or what asking it gave
}

// Error describes what is missing, where it was looked for and what to do.
func (e *NotCachedError) Error() string {
	what := fmt.Sprintf("hub model %s at revision %s", e.Repo, e.Revision)
	if e.File != "" {
		what = fmt.Sprintf("%s of hub model %s at revision %s", e.File, e.Repo, e.Revision)
	}
	msg := fmt.Sprintf("%s is not in the cache %s", what, e.Cache)
	if e.Err != nil {
		msg += " and " + e.Err.Error()
	}
	if e.Hint != "" {
		msg += "; " + e.Hint
	}
	return msg
}

// Unwrap lets errors.Is match ErrNotCached and the underlying cause.
func (e *NotCachedError) Unwrap() []error { return []error{ErrNotCached, e.Err} }

// writeFileAtomic replaces path by data through a temporary file in the same folder.
func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// writeRef records that revision pointed to commit, unless the ref already says so (as
// huggingface_hub does, so that a read-only cache that is up to date stays usable).
func writeRef(storage, revision, commit string) error {
	if revision == commit {
		return nil
	}
	p := filepath.Join(storage, "refs", filepath.FromSlash(revision))
	if b, err := os.ReadFile(p); err == nil && string(b) == commit {
		return nil
	}
	if err := writeFileAtomic(p, []byte(commit)); err != nil {
		return fmt.Errorf("recording ref %s: %w", revision, err)
	}
	return nil
}

// linkBlob makes the snapshot entry pointer a relative symlink to blob, replacing whatever was
// there atomically. Where symlinks are not available it copies the blob instead.
func linkBlob(blob, pointer string) error {
	if err := os.MkdirAll(filepath.Dir(pointer), 0o755); err != nil {
		return err
	}
	rel, err := filepath.Rel(filepath.Dir(pointer), blob)
	if err != nil {
		rel = blob
	}
	tmp := pointer + ".tmp-link-" + randSuffix()
	if err := os.Symlink(rel, tmp); err == nil {
		if err := os.Rename(tmp, pointer); err != nil {
			os.Remove(tmp)
			return err
		}
		return nil
	}
	return copyFileAtomic(blob, pointer)
}

// copyFileAtomic copies src to dst through a temporary file in dst's folder.
func copyFileAtomic(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	f, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp*")
	if err != nil {
		return err
	}
	_, err = io.Copy(f, in)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), dst)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// markMissing records, as huggingface_hub does, that a file does not exist at a commit.
func markMissing(storage, commit, file string) {
	p := filepath.Join(storage, ".no_exist", commit, filepath.FromSlash(file))
	if os.MkdirAll(filepath.Dir(p), 0o755) == nil {
		if f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			f.Close()
		}
	}
}
