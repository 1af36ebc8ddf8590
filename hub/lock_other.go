//go:build !unix

package hub

import "context"

// lockFile is a no-op where flock(2) is not available: downloads then use a private partial
// file instead of the shared, resumable one.
func lockFile(ctx context.Context, path string, waiting func()) (unlock func(), locked bool, err error) {
	return func() {}, false, nil
}
