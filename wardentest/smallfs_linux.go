package wardentest

import (
	"syscall"
	"testing"
)

// MustSmallFS mounts a tmpfs of size bytes on a fresh temporary directory
// and returns its path; it is unmounted when the test ends (lazily, so a
// file still open cannot keep it mounted). Mounting needs root
// (CAP_SYS_ADMIN): where it is refused, the test is skipped with the
// reason, never failed.
func MustSmallFS(tb testing.TB, size int64) string {
	tb.Helper()
	dir := tb.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "size="+itoa(size)+",mode=0700"); err != nil {
		tb.Skipf("cannot mount a %d-byte tmpfs on %s (%v): a full-disk test needs root (CAP_SYS_ADMIN) on Linux", size, dir, err)
	}
	tb.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			tb.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}
