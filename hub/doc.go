// Package hub downloads model repositories from the Hugging Face Hub into the cache that
// huggingface_hub (and so transformers) uses, so that Python and imgcap share one copy:
//
//	$HF_HUB_CACHE (else $HF_HOME/hub, else ~/.cache/huggingface/hub)
//	└── models--{org}--{name}
//	    ├── blobs/<etag>                  file contents, named by the git sha1 (regular files)
//	    │                                 or the sha256 (LFS files) the hub reports as ETag
//	    ├── refs/<revision>               the commit a branch or tag pointed to when last fetched
//	    ├── snapshots/<commit>/<path>     relative symlinks into blobs, one tree per commit
//	    └── .no_exist/<commit>/<path>     files known to be absent (written on a 404)
//
// The protocol is huggingface_hub's (file_download.py, _snapshot_download.py): a snapshot is
// listed with GET {endpoint}/api/models/{repo}/revision/{revision} ("sha" and "siblings"); each
// file's metadata comes from a HEAD on {endpoint}/{repo}/resolve/{revision}/{path} that follows
// only relative redirects (renamed repositories) and reads X-Repo-Commit, X-Linked-Etag (else
// ETag), X-Linked-Size (else Content-Length) and, for LFS files, the Location of the CDN copy,
// which is then fetched without the token. Downloads go to blobs/<etag>.incomplete, under the
// same lock file as huggingface_hub's (.locks/models--{org}--{name}/<etag>.lock), resume with a
// Range request after an interruption, are checked for size (and sha256 for LFS files) and
// renamed into place.
//
// Environment, as in huggingface_hub: HF_ENDPOINT, HF_TOKEN (else the token file that
// `huggingface-cli login` writes), HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE), HF_HUB_CACHE,
// HF_HOME, HF_HUB_ETAG_TIMEOUT, HF_HUB_DOWNLOAD_TIMEOUT.
//
// Resolve maps a --model argument (a folder, or a hub id "org/name[@revision]") to a folder
// without touching the network; ResolveOrDownload also downloads what is missing.
package hub
