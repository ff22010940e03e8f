package integrity_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/integrity"
)

var _ warden.IntegrityChecker = integrity.Checker{}

func TestChecker(t *testing.T) {
	dir := t.TempDir()
	mustWrite(t, dir, map[string]string{"a": "1", "b": "2"})
	c := integrity.Checker{Clock: clock, Roots: []string{dir}}
	ctx := context.Background()
	b, err := c.Snapshot(ctx, []string{dir})
	if err != nil {
		t.Fatal(err)
	}
	if b.CreatedAt != "2026-03-14T12:00:00Z" || len(b.Files) != 2 {
		t.Errorf("baseline = %+v", b)
	}
	clean, ev, fp, err := c.Check(ctx, b)
	if err != nil || !clean || ev["summary"] != "2 files match the baseline" || len(ev) != 1 || fp != "" {
		t.Errorf("unchanged: clean=%v evidence=%v fingerprint=%q err=%v", clean, ev, fp, err)
	}
	mustWrite(t, dir, map[string]string{"a": "changed"})
	clean, ev, fp, err = c.Check(ctx, b)
	if err != nil || clean || ev["changed"] != filepath.Join(dir, "a") || ev["summary"] != "1 changed, 0 added, 0 removed" || len(fp) != 64 {
		t.Errorf("changed: clean=%v evidence=%v fingerprint=%q err=%v", clean, ev, fp, err)
	}
}

// TestCheckerReadsOnlyBeneathItsRoots: nothing is watched without roots;
// a path outside them — named directly, through "..", or through a
// symbolic link anywhere on the way — is refused with a sentence naming
// it, before anything is read (so /etc/shadow's hash never reaches a
// receipt and /proc/kmsg never blocks a request); a link inside a watched
// directory is recorded by its target text, never followed; and a scan of
// a baseline naming a path outside the roots fails rather than reading it.
func TestCheckerReadsOnlyBeneathItsRoots(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	outside := t.TempDir()
	mustWrite(t, root, map[string]string{"app/conf": "c"})
	mustWrite(t, outside, map[string]string{"secret": "s"})
	if err := os.Symlink(outside, filepath.Join(root, "app/escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(root, "app/secret-link")); err != nil {
		t.Fatal(err)
	}

	if _, err := (integrity.Checker{Clock: clock}).Snapshot(ctx, []string{root}); warden.ErrorCode(err) != warden.EINVALID ||
		!strings.Contains(warden.ErrorMessage(err), "No integrity roots are configured") {
		t.Errorf("no roots: %v", err)
	}
	c := integrity.Checker{Clock: clock, Roots: []string{root}}
	refused := map[string]string{
		"outside":            filepath.Join(outside, "secret"),
		"shadow":             "/etc/shadow",
		"kmsg":               "/proc/kmsg",
		"dot-dot":            filepath.Join(root, "app", "..", "..", filepath.Base(outside), "secret"),
		"through a dir link": filepath.Join(root, "app/escape/secret"),
	}
	for name, p := range refused {
		_, err := c.Snapshot(ctx, []string{filepath.Join(root, "app/conf"), p})
		if warden.ErrorCode(err) != warden.EINVALID || strings.Contains(warden.ErrorMessage(err), "warden error") {
			t.Errorf("%s (%s): %v, want EINVALID", name, p, err)
			continue
		}
		msg := warden.ErrorMessage(err)
		if !strings.Contains(msg, "outside the integrity roots") && !strings.Contains(msg, "escapes") {
			t.Errorf("%s (%s): %q does not say the path leaves the roots", name, p, msg)
		}
	}

	b, err := c.Snapshot(ctx, []string{filepath.Join(root, "app")})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range b.Files {
		if strings.Contains(f.Path, "escape/") || f.SHA256 == sum("s") {
			t.Errorf("followed a link out of the root: %+v", f)
		}
	}
	if len(b.Files) != 3 { // conf, escape (link), secret-link (link)
		t.Errorf("files %+v, want conf and the two links", b.Files)
	}
	// A link given as a root is recorded as the link, as the unconfined
	// Snapshot does, not walked through.
	link, err := c.Snapshot(ctx, []string{filepath.Join(root, "app/escape") + "/."})
	if err != nil || len(link.Files) != 1 || link.Files[0].SHA256 != linkSum(outside) {
		t.Errorf("a link as a root: %+v %v", link, err)
	}

	// A scan's errors become incident evidence: plain sentences, not
	// "warden error: code=… message=…".
	forged := &warden.IntegrityBaseline{Roots: []string{outside}, Files: []warden.BaselineFile{{Path: filepath.Join(outside, "secret"), SHA256: sum("s")}}}
	if clean, _, _, err := c.Check(ctx, forged); clean || err == nil || !strings.Contains(err.Error(), "outside the integrity roots") || strings.Contains(err.Error(), "warden error") {
		t.Errorf("scan of a baseline outside the roots: clean=%v err=%v", clean, err)
	}
	if clean, _, _, err := (integrity.Checker{}).Check(ctx, b); clean || err == nil || !strings.HasPrefix(err.Error(), "No integrity roots are configured") {
		t.Errorf("scan without roots: clean=%v err=%v", clean, err)
	}
	// A directory of the baseline swapped for a link out of the root after
	// the baseline: the scan does not follow it.
	mustWrite(t, root, map[string]string{"swap/secret": "s"})
	swapped, err := c.Snapshot(ctx, []string{filepath.Join(root, "swap")})
	if err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(root, "swap"))
	if err := os.Symlink(outside, filepath.Join(root, "swap")); err != nil {
		t.Fatal(err)
	}
	clean, ev, _, err := c.Check(ctx, swapped)
	if clean || (err == nil && ev["summary"] == "") {
		t.Errorf("scan through a swapped-in link: clean=%v evidence=%v err=%v", clean, ev, err)
	}
	if err == nil && strings.Contains(ev[filepath.Join(root, "swap/secret")], sum("s")) {
		t.Errorf("scan hashed the file outside the root: %v", ev)
	}
}

// TestCheckerTimeBound: a read that blocks (here a fault injected at the
// open; /proc/kmsg in the issue) does not hold the caller past the time
// bound: Snapshot refuses with the rule's sentence, a scan errs (never
// clean), a caller meanwhile waits at most its own bound, and once the
// read lets go the monitor works again.
func TestCheckerTimeBound(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	mustWrite(t, root, map[string]string{"f": "x"})
	c := integrity.Checker{Clock: clock, Roots: []string{root}}
	b, err := c.Snapshot(ctx, []string{root})
	if err != nil {
		t.Fatal(err)
	}

	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	restore := integrity.SetOpenHook(func(string) { <-release })
	t.Cleanup(func() { unblock(); restore() })

	bounded := integrity.Checker{Clock: clock, Roots: []string{root}, Timeout: 50 * time.Millisecond}
	_, err = bounded.Snapshot(ctx, []string{root})
	want := "The integrity monitor gave up after its time bound of 50ms"
	if warden.ErrorCode(err) != warden.EINVALID || !strings.HasPrefix(warden.ErrorMessage(err), want) {
		t.Fatalf("blocked snapshot: %v, want EINVALID %q", err, want)
	}
	// The blocked read still holds the monitor: the next caller gives up
	// at its own bound too.
	if clean, _, _, err := bounded.Check(ctx, b); clean || err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("scan while a read blocks: clean=%v err=%v", clean, err)
	}
	unblock()
	restore()
	if clean, _, _, err := c.Check(ctx, b); !clean || err != nil {
		t.Fatalf("scan after the read let go: clean=%v err=%v", clean, err)
	}
}
