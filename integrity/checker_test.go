package integrity_test

import (
	"path/filepath"
	"testing"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/integrity"
)

var _ warden.IntegrityChecker = integrity.Checker{}

func TestChecker(t *testing.T) {
	dir := t.TempDir()
	mustWrite(t, dir, map[string]string{"a": "1", "b": "2"})
	c := integrity.Checker{Clock: clock}
	b, err := c.Snapshot([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	if b.CreatedAt != "2026-03-14T12:00:00Z" || len(b.Files) != 2 {
		t.Errorf("baseline = %+v", b)
	}
	clean, ev, fp, err := c.Check(b)
	if err != nil || !clean || ev["summary"] != "2 files match the baseline" || len(ev) != 1 || fp != "" {
		t.Errorf("unchanged: clean=%v evidence=%v fingerprint=%q err=%v", clean, ev, fp, err)
	}
	mustWrite(t, dir, map[string]string{"a": "changed"})
	clean, ev, fp, err = c.Check(b)
	if err != nil || clean || ev["changed"] != filepath.Join(dir, "a") || ev["summary"] != "1 changed, 0 added, 0 removed" || len(fp) != 64 {
		t.Errorf("changed: clean=%v evidence=%v fingerprint=%q err=%v", clean, ev, fp, err)
	}
}
