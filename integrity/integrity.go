// Package integrity records and checks file integrity baselines: SHA-256
// hashes of the files under a set of roots, and the findings (changed,
// added, removed) when the files no longer match. It reads the file system
// but never writes it; the recorder turns findings into an
// integrity_violation incident.
//
// Servers use Checker, which is confined: it reads only beneath the
// directories it is configured with (through os.Root, so neither a ".."
// nor a symbolic link anywhere in a path leads out), opens only regular
// files (without blocking on a FIFO or device swapped in), and gives up
// after a time bound even if a read blocks. It is the package's only way
// in: nothing here reads the file system unconfined.
//
// Symbolic links are never followed. A link is recorded as an entry of its
// own whose hash is SHA-256("symlink:" + target), so retargeting it is a
// change; what it points to is not watched unless that is a root too.
// Other non-regular files (devices, sockets, FIFOs) inside a directory are
// skipped; as a root they are an error.
package integrity

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"time"

	warden "github.com/warden-sh/warden"
)

// Finding kinds.
const (
	Changed = "changed"
	Added   = "added"
	Removed = "removed"
)

// Finding is one difference between a baseline and the file system.
type Finding struct {
	Path string `json:"path"`
	// Change is Changed, Added or Removed.
	Change string `json:"change"`
	// Expected is the baseline hash ("" for an added file); Actual the
	// current one ("" for a removed file, or one that is no longer a
	// regular file or symlink).
	Expected string `json:"expected"`
	Actual   string `json:"actual"`
}

// MaxEvidenceFiles caps the per-file keys Evidence writes.
const MaxEvidenceFiles = 200

// snapshot records a baseline of paths at clock's time in fsys. Each path
// is made absolute and cleaned. A regular file or symlink is recorded
// itself; a directory is walked recursively. Files are sorted by path,
// roots sorted and de-duplicated. Any path that cannot be read is an
// EINVALID error naming it. Hashes are lowercase hex SHA-256, computed
// streaming.
func snapshot(ctx context.Context, fsys fileSystem, paths []string, clock warden.Clock) (*warden.IntegrityBaseline, error) {
	if len(paths) == 0 {
		return nil, warden.Errorf(warden.EINVALID, "An integrity baseline needs at least one path.")
	}
	if clock == nil {
		clock = warden.SystemClock
	}
	b := &warden.IntegrityBaseline{Roots: []string{}, Files: []warden.BaselineFile{}}
	seen := map[string]bool{}
	for _, p := range paths {
		if p == "" {
			return nil, warden.Errorf(warden.EINVALID, "An integrity baseline path is empty.")
		}
		root, err := filepath.Abs(p)
		if err != nil {
			return nil, unreadable(err)
		}
		root = filepath.Clean(root)
		if !slices.Contains(b.Roots, root) {
			b.Roots = append(b.Roots, root)
		}
		info, err := fsys.Lstat(root)
		if err != nil {
			return nil, unreadable(err)
		}
		if !info.IsDir() && !recordable(info.Mode()) {
			return nil, warden.Errorf(warden.EINVALID, "Integrity baseline path %s is not a regular file, directory or symlink.", root)
		}
		err = walk(ctx, fsys, root, func(path string, mode fs.FileMode) error {
			if seen[path] {
				return nil
			}
			seen[path] = true
			sum, size, err := hashEntry(ctx, fsys, path, mode)
			if err != nil {
				return err
			}
			b.Files = append(b.Files, warden.BaselineFile{Path: path, SHA256: sum, Size: size})
			return nil
		})
		if err != nil {
			return nil, unreadable(err)
		}
	}
	slices.Sort(b.Roots)
	slices.SortFunc(b.Files, func(x, y warden.BaselineFile) int { return strings.Compare(x.Path, y.Path) })
	b.CreatedAt = warden.FormatTime(clock())
	return b, nil
}

// unreadable is Snapshot's error for a path it cannot read: EINVALID, as
// the paths are the operator's input, naming the path (the *fs.PathError
// text carries it).
func unreadable(err error) error {
	var we *warden.Error
	var re ruleError
	switch {
	case errors.As(err, &we):
		return we
	case errors.As(err, &re):
		return &warden.Error{Code: warden.EINVALID, Message: string(re)}
	}
	return &warden.Error{Code: warden.EINVALID, Message: fmt.Sprintf("Cannot record an integrity baseline: %v.", err)}
}

// scan compares fsys with b: every baseline file is re-hashed (missing →
// removed, different → changed) and every root that is a directory is
// walked for files the baseline does not have (added). A root that
// vanished makes every file under it removed. Findings are sorted by path.
// A file or directory that exists but cannot be read is an error naming
// it: the scan cannot vouch for it.
func scan(ctx context.Context, fsys fileSystem, b *warden.IntegrityBaseline) ([]Finding, error) {
	if b == nil {
		return nil, errors.New("integrity.Scan: nil baseline")
	}
	findings := []Finding{}
	known := make(map[string]bool, len(b.Files))
	for _, f := range b.Files {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("integrity.Scan: %w", err)
		}
		known[f.Path] = true
		info, err := fsys.Lstat(f.Path)
		if errors.Is(err, fs.ErrNotExist) {
			findings = append(findings, Finding{Path: f.Path, Change: Removed, Expected: f.SHA256})
			continue
		} else if err != nil {
			return nil, fmt.Errorf("integrity.Scan: %w", err)
		}
		if !recordable(info.Mode()) { // now a directory, device, …
			findings = append(findings, Finding{Path: f.Path, Change: Changed, Expected: f.SHA256})
			continue
		}
		sum, _, err := hashEntry(ctx, fsys, f.Path, info.Mode())
		if errors.Is(err, fs.ErrNotExist) { // removed while we looked
			findings = append(findings, Finding{Path: f.Path, Change: Removed, Expected: f.SHA256})
			continue
		} else if err != nil {
			return nil, fmt.Errorf("integrity.Scan: %w", err)
		}
		if sum != f.SHA256 {
			findings = append(findings, Finding{Path: f.Path, Change: Changed, Expected: f.SHA256, Actual: sum})
		}
	}
	for _, root := range b.Roots {
		info, err := fsys.Lstat(root)
		if errors.Is(err, fs.ErrNotExist) {
			continue // its files were reported removed above
		} else if err != nil {
			return nil, fmt.Errorf("integrity.Scan: %w", err)
		}
		if !info.IsDir() && !recordable(info.Mode()) {
			continue
		}
		err = walk(ctx, fsys, root, func(path string, mode fs.FileMode) error {
			if known[path] {
				return nil
			}
			known[path] = true // overlapping roots report it once
			sum, _, err := hashEntry(ctx, fsys, path, mode)
			if errors.Is(err, fs.ErrNotExist) {
				return nil // came and went during the scan
			} else if err != nil {
				return err
			}
			findings = append(findings, Finding{Path: path, Change: Added, Actual: sum})
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("integrity.Scan: %w", err)
		}
	}
	sortFindings(findings)
	return findings, nil
}

// Evidence renders findings as an incident's evidence map: "changed",
// "added" and "removed" list the paths of each kind, comma-separated (only
// kinds that occur); "summary" counts them ("2 changed, 1 added, 0
// removed"); and each file's path maps to "expected=<hash> actual=<hash>"
// ("none" where there is no hash), for at most MaxEvidenceFiles files, with
// "truncated": "N more" when there are more. Lists and counts are always
// complete.
func Evidence(findings []Finding) map[string]string {
	fs := slices.Clone(findings)
	sortFindings(fs)
	ev := map[string]string{}
	lists := map[string][]string{}
	for i, f := range fs {
		lists[f.Change] = append(lists[f.Change], f.Path)
		if i < MaxEvidenceFiles {
			ev[f.Path] = fmt.Sprintf("expected=%s actual=%s", orNone(f.Expected), orNone(f.Actual))
		}
	}
	for kind, paths := range lists {
		ev[kind] = strings.Join(paths, ",")
	}
	if len(fs) > MaxEvidenceFiles {
		ev["truncated"] = fmt.Sprintf("%d more", len(fs)-MaxEvidenceFiles)
	}
	ev["summary"] = fmt.Sprintf("%d changed, %d added, %d removed", len(lists[Changed]), len(lists[Added]), len(lists[Removed]))
	return ev
}

// Fingerprint identifies a set of findings: hex SHA-256 over them in sorted
// order. The same unresolved violation scanned twice has the same
// fingerprint, so it is reported once; any further change alters it.
// No findings have the fingerprint of the empty set.
func Fingerprint(findings []Finding) string {
	fs := slices.Clone(findings)
	sortFindings(fs)
	h := sha256.New()
	var n [8]byte
	field := func(s string) { // length-prefixed: no two lists encode alike
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		io.WriteString(h, s)
	}
	for _, f := range fs {
		field(f.Path)
		field(f.Change)
		field(f.Expected)
		field(f.Actual)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func sortFindings(fs []Finding) {
	slices.SortFunc(fs, func(x, y Finding) int {
		if c := strings.Compare(x.Path, y.Path); c != 0 {
			return c
		}
		return strings.Compare(x.Change, y.Change)
	})
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// recordable reports whether an entry of this mode is hashed: regular
// files and symlinks.
func recordable(m fs.FileMode) bool {
	return m.IsRegular() || m&fs.ModeSymlink != 0
}

// walk calls fn for root itself if it is recordable, or for every
// recordable entry under it if it is a directory, never following links.
// An unreadable directory is an error naming it; so is running past ctx.
func walk(ctx context.Context, fsys fileSystem, root string, fn func(path string, mode fs.FileMode) error) error {
	return fsys.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == root && errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err // *fs.PathError names the path
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || !recordable(d.Type()) {
			return nil
		}
		return fn(path, d.Type())
	})
}

// hashEntry hashes a regular file's contents, streaming, or a symlink's
// target text. It returns the hex hash and the size (bytes hashed for a
// file, target length for a link). The read stops when ctx is done.
func hashEntry(ctx context.Context, fsys fileSystem, path string, mode fs.FileMode) (string, int64, error) {
	if mode&fs.ModeSymlink != 0 {
		target, err := fsys.Readlink(path)
		if err != nil {
			return "", 0, err
		}
		sum := sha256.Sum256([]byte("symlink:" + target))
		return hex.EncodeToString(sum[:]), int64(len(target)), nil
	}
	f, err := fsys.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	// The entry was a regular file when listed; refuse to hash whatever
	// replaced it since (a FIFO would block, a directory cannot be read).
	// The open itself never blocks: it asks for non-blocking mode.
	info, err := f.Stat()
	if err != nil {
		return "", 0, err
	}
	if !info.Mode().IsRegular() {
		return "", 0, fmt.Errorf("%s: changed type while being hashed", path)
	}
	h := sha256.New()
	n, err := io.Copy(h, ctxReader{ctx, f})
	if err != nil {
		return "", 0, fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// ctxReader stops a read between chunks once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// DefaultTimeout bounds one Checker.Snapshot or Checker.Check when
// Checker.Timeout is zero.
const DefaultTimeout = 2 * time.Minute

// Checker adapts this package to the warden.IntegrityChecker port,
// confined to Roots and bounded by Timeout: the integrity monitor never
// reads a file outside the directories an operator chose to watch (no
// /etc/shadow hashes in receipts everyone reads), never opens anything but
// a regular file or reads a symlink's text, and never holds its caller
// longer than its time bound (no /proc/kmsg blocking a request forever).
type Checker struct {
	// Clock stamps baselines; nil is warden.SystemClock.
	Clock warden.Clock
	// Roots are the directories whose contents may be watched. Every path
	// Snapshot records and every path of a baseline Check re-hashes MUST
	// lie beneath one of them, after "..", and every symbolic link on the
	// way, are resolved. None configured: nothing may be watched.
	Roots []string
	// Timeout bounds one Snapshot or Check (zero: DefaultTimeout).
	Timeout time.Duration
}

// Snapshot records a baseline of paths (see the package-level Snapshot)
// within the checker's roots and time bound. Every refusal is EINVALID
// with a sentence naming the path or the rule.
func (c Checker) Snapshot(ctx context.Context, paths []string) (*warden.IntegrityBaseline, error) {
	var b *warden.IntegrityBaseline
	err := c.bounded(ctx, func(ctx context.Context, fsys fileSystem) (err error) {
		b, err = snapshot(ctx, fsys, paths, c.Clock)
		return err
	})
	if errors.Is(err, errTimeBound) {
		return nil, warden.Errorf(warden.EINVALID, "%s", c.timeBound())
	} else if err != nil {
		return nil, unreadable(err)
	}
	return b, nil
}

// Check scans b within the checker's roots and time bound. When nothing
// differs, clean is true and evidence holds only a "summary" ("N files
// match the baseline"); otherwise evidence is Evidence(findings) and
// fingerprint Fingerprint(findings). A baseline path outside the roots, an
// unreadable file and running out of time are errors, never clean.
func (c Checker) Check(ctx context.Context, b *warden.IntegrityBaseline) (clean bool, evidence map[string]string, fingerprint string, err error) {
	var findings []Finding
	err = c.bounded(ctx, func(ctx context.Context, fsys fileSystem) (err error) {
		findings, err = scan(ctx, fsys, b)
		return err
	})
	if errors.Is(err, errTimeBound) {
		return false, nil, "", errors.New(c.timeBound())
	} else if err != nil {
		return false, nil, "", err
	}
	if len(findings) == 0 {
		return true, map[string]string{"summary": fmt.Sprintf("%d files match the baseline", len(b.Files))}, "", nil
	}
	return false, Evidence(findings), Fingerprint(findings), nil
}

func (c Checker) timeout() time.Duration {
	if c.Timeout <= 0 {
		return DefaultTimeout
	}
	return c.Timeout
}

// timeBound is the sentence for work abandoned at the time bound.
func (c Checker) timeBound() string {
	return fmt.Sprintf("The integrity monitor gave up after its time bound of %s (a watched file blocks its reader, or there are too many files): nothing was vouched for.", c.timeout())
}

// busy lets one confined snapshot or scan run at a time in the process: a
// read blocked past its time bound keeps its slot until the kernel lets
// it go, so blocked reads cannot pile up, and the next caller waits at
// most its own time bound.
var busy = make(chan struct{}, 1)

// errTimeBound marks work abandoned at the time bound.
var errTimeBound = errors.New("integrity: time bound reached")

// bounded runs work over the configured roots and returns its error, or
// errTimeBound at the time bound (even if the work is stuck in a read;
// it stops at its next read), or ctx's error if ctx ends first.
func (c Checker) bounded(ctx context.Context, work func(ctx context.Context, fsys fileSystem) error) error {
	if len(c.Roots) == 0 {
		return ruleError("No integrity roots are configured, so nothing may be watched: start the server with --integrity-root DIR for each directory the integrity monitor may read.")
	}
	ctx, cancel := context.WithTimeoutCause(ctx, c.timeout(), errTimeBound)
	defer cancel()
	select {
	case busy <- struct{}{}:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	fsys, err := openRoots(c.Roots)
	if err != nil {
		<-busy
		return err
	}
	done := make(chan error, 1)
	go func() {
		defer func() { fsys.Close(); <-busy }()
		done <- work(ctx, fsys)
	}()
	select {
	case err := <-done:
		if err != nil && ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return err
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
