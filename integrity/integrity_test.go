package integrity_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/integrity"
)

var clock = func() time.Time { return time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC) }

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func linkSum(target string) string { return sum("symlink:" + target) }

// mustWrite writes files (path relative to dir → content), creating dirs.
func mustWrite(tb testing.TB, dir string, files map[string]string) {
	tb.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}

func mustSnapshot(tb testing.TB, paths ...string) *warden.IntegrityBaseline {
	tb.Helper()
	b, err := integrity.Snapshot(paths, clock)
	if err != nil {
		tb.Fatalf("Snapshot: %v", err)
	}
	return b
}

func mustScan(tb testing.TB, b *warden.IntegrityBaseline) []integrity.Finding {
	tb.Helper()
	f, err := integrity.Scan(b)
	if err != nil {
		tb.Fatalf("Scan: %v", err)
	}
	return f
}

func TestSnapshot(t *testing.T) {
	dir := t.TempDir()
	mustWrite(t, dir, map[string]string{
		"app/bin/agent":     "agent binary",
		"app/conf/a.yaml":   "a: 1",
		"app/README":        "",
		"etc/warden.conf":   "conf",
		"etc/other/ignored": "not a root",
	})
	if err := os.Symlink("bin/agent", filepath.Join(dir, "app/current")); err != nil {
		t.Fatal(err)
	}
	// Roots given out of order, duplicated, unclean: recorded sorted, once.
	b := mustSnapshot(t, filepath.Join(dir, "etc/warden.conf"), filepath.Join(dir, "app")+"/./", filepath.Join(dir, "app"))
	want := &warden.IntegrityBaseline{
		Roots: []string{filepath.Join(dir, "app"), filepath.Join(dir, "etc/warden.conf")},
		Files: []warden.BaselineFile{
			{Path: filepath.Join(dir, "app/README"), SHA256: sum(""), Size: 0},
			{Path: filepath.Join(dir, "app/bin/agent"), SHA256: sum("agent binary"), Size: 12},
			{Path: filepath.Join(dir, "app/conf/a.yaml"), SHA256: sum("a: 1"), Size: 4},
			{Path: filepath.Join(dir, "app/current"), SHA256: linkSum("bin/agent"), Size: 9},
			{Path: filepath.Join(dir, "etc/warden.conf"), SHA256: sum("conf"), Size: 4},
		},
		CreatedAt: "2026-03-14T12:00:00Z",
	}
	if diff := cmp.Diff(want, b); diff != "" {
		t.Errorf("baseline (-want +got):\n%s", diff)
	}
	if f := mustScan(t, b); len(f) != 0 || f == nil {
		t.Errorf("unchanged files: findings %#v, want an empty non-nil list", f)
	}
}

func TestSnapshotRelativePath(t *testing.T) {
	dir := t.TempDir()
	mustWrite(t, dir, map[string]string{"sub/f": "x"})
	t.Chdir(dir)
	b := mustSnapshot(t, "sub")
	if b.Roots[0] != filepath.Join(dir, "sub") || b.Files[0].Path != filepath.Join(dir, "sub/f") {
		t.Errorf("relative root not made absolute: %+v", b)
	}
}

func TestSnapshotErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	for name, paths := range map[string][]string{
		"no paths":     nil,
		"empty path":   {""},
		"missing path": {missing},
	} {
		_, err := integrity.Snapshot(paths, clock)
		if warden.ErrorCode(err) != warden.EINVALID {
			t.Errorf("%s: err = %v, want EINVALID", name, err)
		}
	}
	_, err := integrity.Snapshot([]string{missing}, clock)
	if !strings.Contains(warden.ErrorMessage(err), missing) {
		t.Errorf("error %q does not name %s", warden.ErrorMessage(err), missing)
	}
}

func TestScanFindings(t *testing.T) {
	type setup func(t *testing.T, dir string)
	tests := []struct {
		name   string
		change setup
		want   func(dir string) []integrity.Finding
	}{
		{"one byte changed", func(t *testing.T, dir string) {
			mustWrite(t, dir, map[string]string{"app/bin/agent": "agent binarY"})
		}, func(dir string) []integrity.Finding {
			return []integrity.Finding{{Path: filepath.Join(dir, "app/bin/agent"), Change: integrity.Changed, Expected: sum("agent binary"), Actual: sum("agent binarY")}}
		}},
		{"file added in a new subdirectory", func(t *testing.T, dir string) {
			mustWrite(t, dir, map[string]string{"app/plugins/evil.so": "evil"})
		}, func(dir string) []integrity.Finding {
			return []integrity.Finding{{Path: filepath.Join(dir, "app/plugins/evil.so"), Change: integrity.Added, Actual: sum("evil")}}
		}},
		{"file removed", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "app/conf/a.yaml"))
		}, func(dir string) []integrity.Finding {
			return []integrity.Finding{{Path: filepath.Join(dir, "app/conf/a.yaml"), Change: integrity.Removed, Expected: sum("a: 1")}}
		}},
		{"directory removed", func(t *testing.T, dir string) {
			os.RemoveAll(filepath.Join(dir, "app/conf"))
		}, func(dir string) []integrity.Finding {
			return []integrity.Finding{
				{Path: filepath.Join(dir, "app/conf/a.yaml"), Change: integrity.Removed, Expected: sum("a: 1")},
				{Path: filepath.Join(dir, "app/conf/b.yaml"), Change: integrity.Removed, Expected: sum("b: 2")},
			}
		}},
		{"root directory removed", func(t *testing.T, dir string) {
			os.RemoveAll(filepath.Join(dir, "app"))
		}, func(dir string) []integrity.Finding {
			return []integrity.Finding{
				{Path: filepath.Join(dir, "app/bin/agent"), Change: integrity.Removed, Expected: sum("agent binary")},
				{Path: filepath.Join(dir, "app/conf/a.yaml"), Change: integrity.Removed, Expected: sum("a: 1")},
				{Path: filepath.Join(dir, "app/conf/b.yaml"), Change: integrity.Removed, Expected: sum("b: 2")},
				{Path: filepath.Join(dir, "app/current"), Change: integrity.Removed, Expected: linkSum("bin/agent")},
				{Path: filepath.Join(dir, "app/outside-link"), Change: integrity.Removed, Expected: linkSum(filepath.Join(dir, "outside"))},
			}
		}},
		{"root file removed", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "warden.conf"))
		}, func(dir string) []integrity.Finding {
			return []integrity.Finding{{Path: filepath.Join(dir, "warden.conf"), Change: integrity.Removed, Expected: sum("conf")}}
		}},
		{"symlink retargeted", func(t *testing.T, dir string) {
			link := filepath.Join(dir, "app/current")
			os.Remove(link)
			os.Symlink("/tmp/elsewhere", link)
		}, func(dir string) []integrity.Finding {
			return []integrity.Finding{{Path: filepath.Join(dir, "app/current"), Change: integrity.Changed, Expected: linkSum("bin/agent"), Actual: linkSum("/tmp/elsewhere")}}
		}},
		{"file replaced by a directory", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "app/conf/a.yaml")
			os.Remove(p)
			mustWrite(t, dir, map[string]string{"app/conf/a.yaml/x": "x"})
		}, func(dir string) []integrity.Finding {
			return []integrity.Finding{
				{Path: filepath.Join(dir, "app/conf/a.yaml"), Change: integrity.Changed, Expected: sum("a: 1")},
				{Path: filepath.Join(dir, "app/conf/a.yaml/x"), Change: integrity.Added, Actual: sum("x")},
			}
		}},
		{"several at once, sorted by path", func(t *testing.T, dir string) {
			mustWrite(t, dir, map[string]string{"app/bin/agent": "patched", "app/a-new": "new"})
			os.Remove(filepath.Join(dir, "app/conf/b.yaml"))
		}, func(dir string) []integrity.Finding {
			return []integrity.Finding{
				{Path: filepath.Join(dir, "app/a-new"), Change: integrity.Added, Actual: sum("new")},
				{Path: filepath.Join(dir, "app/bin/agent"), Change: integrity.Changed, Expected: sum("agent binary"), Actual: sum("patched")},
				{Path: filepath.Join(dir, "app/conf/b.yaml"), Change: integrity.Removed, Expected: sum("b: 2")},
			}
		}},
		{"a file next to a root file is not watched", func(t *testing.T, dir string) {
			mustWrite(t, dir, map[string]string{"sibling": "s"})
		}, func(string) []integrity.Finding { return []integrity.Finding{} }},
		{"a symlink's target outside the roots is not followed", func(t *testing.T, dir string) {
			mustWrite(t, dir, map[string]string{"outside/data": "changed"})
		}, func(string) []integrity.Finding { return []integrity.Finding{} }},
		{"same content rewritten is no change", func(t *testing.T, dir string) {
			mustWrite(t, dir, map[string]string{"app/bin/agent": "agent binary"})
			later := time.Now().Add(time.Hour)
			os.Chtimes(filepath.Join(dir, "app/bin/agent"), later, later)
		}, func(string) []integrity.Finding { return []integrity.Finding{} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			mustWrite(t, dir, map[string]string{
				"app/bin/agent":   "agent binary",
				"app/conf/a.yaml": "a: 1",
				"app/conf/b.yaml": "b: 2",
				"warden.conf":     "conf",
				"outside/data":    "data",
			})
			os.Symlink("bin/agent", filepath.Join(dir, "app/current"))
			os.Symlink(filepath.Join(dir, "outside"), filepath.Join(dir, "app/outside-link"))
			b := mustSnapshot(t, filepath.Join(dir, "app"), filepath.Join(dir, "warden.conf"))
			// The link to a directory is recorded, not descended into.
			if slices.ContainsFunc(b.Files, func(f warden.BaselineFile) bool { return strings.Contains(f.Path, "outside-link/") }) {
				t.Fatal("snapshot followed a symlink to a directory")
			}
			tt.change(t, dir)
			if diff := cmp.Diff(tt.want(dir), mustScan(t, b)); diff != "" {
				t.Errorf("findings (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("permissions do not stop root; see TestUnreadableProcFile")
	}
	dir := t.TempDir()
	mustWrite(t, dir, map[string]string{"secret": "s", "sub/f": "f"})
	b := mustSnapshot(t, dir)

	secret := filepath.Join(dir, "secret")
	os.Chmod(secret, 0)
	t.Cleanup(func() { os.Chmod(secret, 0o644) })
	if _, err := integrity.Snapshot([]string{dir}, clock); warden.ErrorCode(err) != warden.EINVALID || !strings.Contains(warden.ErrorMessage(err), secret) {
		t.Errorf("Snapshot of an unreadable file: %v, want EINVALID naming %s", err, secret)
	}
	if _, err := integrity.Scan(b); err == nil || !strings.Contains(err.Error(), secret) {
		t.Errorf("Scan of an unreadable file: %v, want an error naming %s", err, secret)
	}
	os.Chmod(secret, 0o644)

	sub := filepath.Join(dir, "sub")
	os.Chmod(sub, 0)
	t.Cleanup(func() { os.Chmod(sub, 0o755) })
	if _, err := integrity.Scan(b); err == nil || !strings.Contains(err.Error(), sub) {
		t.Errorf("Scan of an unlistable directory: %v, want an error naming %s", err, sub)
	}
}

// TestUnreadableProcFile uses a file even root cannot read: /proc/self/mem
// is a regular file whose read at offset 0 fails.
func TestUnreadableProcFile(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs /proc")
	}
	const p = "/proc/self/mem"
	if _, err := os.Lstat(p); err != nil {
		t.Skip(err)
	}
	_, err := integrity.Snapshot([]string{p}, clock)
	if warden.ErrorCode(err) != warden.EINVALID || !strings.Contains(warden.ErrorMessage(err), p) {
		t.Errorf("Snapshot(%s) = %v, want EINVALID naming it", p, err)
	}
	b := &warden.IntegrityBaseline{Roots: []string{p}, Files: []warden.BaselineFile{{Path: p, SHA256: sum("")}}}
	if _, err := integrity.Scan(b); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("Scan = %v, want an error naming %s", err, p)
	}
}

func TestLargeFileStreamed(t *testing.T) {
	const size = 64 << 20
	dir := t.TempDir()
	p := filepath.Join(dir, "model.bin")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	// A sparse file: 64 MiB of zeros without writing them.
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	h := sha256.New()
	zeros := make([]byte, 1<<20)
	for range size / len(zeros) {
		h.Write(zeros)
	}
	want := hex.EncodeToString(h.Sum(nil))

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b := mustSnapshot(t, p)
	runtime.ReadMemStats(&after)
	if b.Files[0].SHA256 != want || b.Files[0].Size != size {
		t.Errorf("file = %+v, want hash %s size %d", b.Files[0], want, size)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Errorf("hashing a 64 MiB file allocated %d bytes; it is not streamed", alloc)
	}
}

func TestEvidence(t *testing.T) {
	findings := []integrity.Finding{
		{Path: "/app/z", Change: integrity.Removed, Expected: "e3"},
		{Path: "/app/b", Change: integrity.Changed, Expected: "e1", Actual: "a1"},
		{Path: "/app/a", Change: integrity.Changed, Expected: "e0", Actual: "a0"},
		{Path: "/app/n", Change: integrity.Added, Actual: "a2"},
	}
	want := map[string]string{
		"changed": "/app/a,/app/b",
		"added":   "/app/n",
		"removed": "/app/z",
		"summary": "2 changed, 1 added, 1 removed",
		"/app/a":  "expected=e0 actual=a0",
		"/app/b":  "expected=e1 actual=a1",
		"/app/n":  "expected=none actual=a2",
		"/app/z":  "expected=e3 actual=none",
	}
	if diff := cmp.Diff(want, integrity.Evidence(findings)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if findings[0].Path != "/app/z" {
		t.Error("Evidence reordered its argument")
	}

	// Only the kinds present have lists; the summary always counts all three.
	only := integrity.Evidence([]integrity.Finding{{Path: "/x", Change: integrity.Added, Actual: "a"}})
	if _, ok := only["changed"]; ok {
		t.Error("an empty kind has a key")
	}
	if only["summary"] != "0 changed, 1 added, 0 removed" {
		t.Errorf("summary = %q", only["summary"])
	}
}

func TestEvidenceTruncatesPerFileKeysOnly(t *testing.T) {
	var findings []integrity.Finding
	for i := range 250 {
		kind := []string{integrity.Changed, integrity.Added, integrity.Removed}[i%3]
		findings = append(findings, integrity.Finding{Path: fmt.Sprintf("/f/%03d", i), Change: kind, Expected: "e", Actual: "a"})
	}
	ev := integrity.Evidence(findings)
	perFile := 0
	for k := range ev {
		if strings.HasPrefix(k, "/") {
			perFile++
		}
	}
	if perFile != integrity.MaxEvidenceFiles || ev["truncated"] != "50 more" {
		t.Errorf("%d per-file keys, truncated = %q; want %d and \"50 more\"", perFile, ev["truncated"], integrity.MaxEvidenceFiles)
	}
	if ev["summary"] != "84 changed, 83 added, 83 removed" {
		t.Errorf("summary = %q", ev["summary"])
	}
	for _, kind := range []string{"changed", "added", "removed"} {
		if n := len(strings.Split(ev[kind], ",")); n < 83 {
			t.Errorf("%s lists %d paths; lists must be complete", kind, n)
		}
	}
	// The first 200 by path are the ones detailed.
	if _, ok := ev["/f/199"]; !ok {
		t.Error("/f/199 has no per-file key")
	}
	if _, ok := ev["/f/200"]; ok {
		t.Error("/f/200 has a per-file key beyond the cap")
	}
}

func TestFingerprint(t *testing.T) {
	base := []integrity.Finding{
		{Path: "/a", Change: integrity.Changed, Expected: "e", Actual: "x"},
		{Path: "/b", Change: integrity.Added, Actual: "y"},
		{Path: "/c", Change: integrity.Removed, Expected: "z"},
	}
	fp := integrity.Fingerprint(base)
	if len(fp) != 64 {
		t.Fatalf("fingerprint %q is not 64 hex digits", fp)
	}
	shuffled := slices.Clone(base)
	rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	if integrity.Fingerprint(shuffled) != fp {
		t.Error("order changes the fingerprint")
	}
	mutants := map[string]func(f []integrity.Finding) []integrity.Finding{
		"path":     func(f []integrity.Finding) []integrity.Finding { f[0].Path = "/a2"; return f },
		"change":   func(f []integrity.Finding) []integrity.Finding { f[1].Change = integrity.Changed; return f },
		"expected": func(f []integrity.Finding) []integrity.Finding { f[2].Expected = "z2"; return f },
		"actual":   func(f []integrity.Finding) []integrity.Finding { f[0].Actual = "x2"; return f },
		"dropped":  func(f []integrity.Finding) []integrity.Finding { return f[1:] },
		"added": func(f []integrity.Finding) []integrity.Finding {
			return append(f, integrity.Finding{Path: "/d", Change: integrity.Added})
		},
		// Field boundaries matter: "/a"+"bc" must not collide with "/ab"+"c".
		"shifted": func(f []integrity.Finding) []integrity.Finding {
			f[0].Path, f[0].Change = "/ac", "hanged"
			return f
		},
	}
	for name, m := range mutants {
		if integrity.Fingerprint(m(slices.Clone(base))) == fp {
			t.Errorf("%s: fingerprint unchanged", name)
		}
	}
	if integrity.Fingerprint(nil) != integrity.Fingerprint([]integrity.Finding{}) {
		t.Error("nil and empty findings differ")
	}
	// Scanning the same unresolved violation twice gives the same fingerprint.
	dir := t.TempDir()
	mustWrite(t, dir, map[string]string{"f": "1"})
	b := mustSnapshot(t, dir)
	mustWrite(t, dir, map[string]string{"f": "2"})
	if integrity.Fingerprint(mustScan(t, b)) != integrity.Fingerprint(mustScan(t, b)) {
		t.Error("two scans of the same state differ")
	}
}
