//go:build unix

package integrity_test

import (
	"path/filepath"
	"syscall"
	"testing"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/integrity"
)

// A FIFO inside a watched directory is skipped (opening it would block); as
// a root it is refused.
func TestSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	mustWrite(t, dir, map[string]string{"f": "x"})
	fifo := filepath.Join(dir, "pipe")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skip(err)
	}
	b := mustSnapshot(t, dir)
	if len(b.Files) != 1 || b.Files[0].Path != filepath.Join(dir, "f") {
		t.Errorf("files = %+v, want only f", b.Files)
	}
	if f := mustScan(t, b); len(f) != 0 {
		t.Errorf("findings = %+v", f)
	}
	if _, err := integrity.Snapshot([]string{fifo}, clock); warden.ErrorCode(err) != warden.EINVALID {
		t.Errorf("Snapshot(fifo) = %v, want EINVALID", err)
	}
}
