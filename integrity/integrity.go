// Package integrity records and checks file integrity baselines: SHA-256
// hashes of the files under a set of roots, and the findings (changed,
// added, removed) when the files no longer match. It reads the file system
// but never writes it; the recorder turns findings into an
// integrity_violation incident.
//
// Symbolic links are never followed. A link is recorded as an entry of its
// own whose hash is SHA-256("symlink:" + target), so retargeting it is a
// change; what it points to is not watched unless that is a root too.
// Other non-regular files (devices, sockets, FIFOs) inside a directory are
// skipped; as a root they are an error.
package integrity

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

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

// Snapshot records a baseline of paths at clock's time. Each path is made
// absolute and cleaned. A regular file or symlink is recorded itself; a
// directory is walked recursively. Files are sorted by path, roots sorted
// and de-duplicated. Any path that cannot be read is an EINVALID error
// naming it.
// Hashes are lowercase hex SHA-256, computed streaming.
func Snapshot(paths []string, clock warden.Clock) (*warden.IntegrityBaseline, error) {
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
		info, err := os.Lstat(root)
		if err != nil {
			return nil, unreadable(err)
		}
		if !info.IsDir() && !recordable(info.Mode()) {
			return nil, warden.Errorf(warden.EINVALID, "Integrity baseline path %s is not a regular file, directory or symlink.", root)
		}
		err = walk(root, func(path string, mode fs.FileMode) error {
			if seen[path] {
				return nil
			}
			seen[path] = true
			sum, size, err := hashEntry(path, mode)
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
	return &warden.Error{Code: warden.EINVALID, Message: fmt.Sprintf("Cannot record an integrity baseline: %v.", err)}
}

// Scan compares the file system with b: every baseline file is re-hashed
// (missing → removed, different → changed) and every root that is a
// directory is walked for files the baseline does not have (added). A root
// that vanished makes every file under it removed. Findings are sorted by
// path. A file or directory that exists but cannot be read is an error
// naming it: the scan cannot vouch for it.
func Scan(b *warden.IntegrityBaseline) ([]Finding, error) {
	if b == nil {
		return nil, errors.New("integrity.Scan: nil baseline")
	}
	findings := []Finding{}
	known := make(map[string]bool, len(b.Files))
	for _, f := range b.Files {
		known[f.Path] = true
		info, err := os.Lstat(f.Path)
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
		sum, _, err := hashEntry(f.Path, info.Mode())
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
		info, err := os.Lstat(root)
		if errors.Is(err, fs.ErrNotExist) {
			continue // its files were reported removed above
		} else if err != nil {
			return nil, fmt.Errorf("integrity.Scan: %w", err)
		}
		if !info.IsDir() && !recordable(info.Mode()) {
			continue
		}
		err = walk(root, func(path string, mode fs.FileMode) error {
			if known[path] {
				return nil
			}
			known[path] = true // overlapping roots report it once
			sum, _, err := hashEntry(path, mode)
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
// An unreadable directory is an error naming it.
func walk(root string, fn func(path string, mode fs.FileMode) error) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == root && errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err // *fs.PathError names the path
		}
		if d.IsDir() || !recordable(d.Type()) {
			return nil
		}
		return fn(path, d.Type())
	})
}

// hashEntry hashes a regular file's contents, streaming, or a symlink's
// target text. It returns the hex hash and the size (bytes hashed for a
// file, target length for a link).
func hashEntry(path string, mode fs.FileMode) (string, int64, error) {
	if mode&fs.ModeSymlink != 0 {
		target, err := os.Readlink(path)
		if err != nil {
			return "", 0, err
		}
		sum := sha256.Sum256([]byte("symlink:" + target))
		return hex.EncodeToString(sum[:]), int64(len(target)), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	// The entry was a regular file when listed; refuse to hash whatever
	// replaced it since (a FIFO would block, a directory cannot be read).
	info, err := f.Stat()
	if err != nil {
		return "", 0, err
	}
	if !info.Mode().IsRegular() {
		return "", 0, fmt.Errorf("%s: changed type while being hashed", path)
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// Checker adapts this package to the warden.IntegrityChecker port: Snapshot
// with the checker's clock, and Check = Scan + Evidence + Fingerprint.
type Checker struct {
	// Clock stamps baselines; nil is warden.SystemClock.
	Clock warden.Clock
}

// Snapshot records a baseline of paths (see the package-level Snapshot).
func (c Checker) Snapshot(paths []string) (*warden.IntegrityBaseline, error) {
	return Snapshot(paths, c.Clock)
}

// Check scans b. When nothing differs, clean is true and evidence holds
// only a "summary" ("N files match the baseline"); otherwise evidence is
// Evidence(findings) and fingerprint Fingerprint(findings).
func (c Checker) Check(b *warden.IntegrityBaseline) (clean bool, evidence map[string]string, fingerprint string, err error) {
	findings, err := Scan(b)
	if err != nil {
		return false, nil, "", err
	}
	if len(findings) == 0 {
		return true, map[string]string{"summary": fmt.Sprintf("%d files match the baseline", len(b.Files))}, "", nil
	}
	return false, Evidence(findings), Fingerprint(findings), nil
}
