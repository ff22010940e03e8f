//go:build !linux

package wardentest

import "testing"

// MustSmallFS skips: mounting a size-limited file system is done on Linux
// only.
func MustSmallFS(tb testing.TB, size int64) string {
	tb.Helper()
	tb.Skip("a full-disk test mounts a tmpfs, which needs Linux")
	return ""
}
