package integrity

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
)

// ruleError is a refusal by one of the checker's rules, its text a
// sentence naming the rule: Snapshot shows it as EINVALID, Check returns
// it as it is (it becomes a scan error's evidence), never wrapped twice.
type ruleError string

func (e ruleError) Error() string { return string(e) }

// fileSystem is where the algorithms read: the host, unconfined (hostFS),
// or beneath the configured roots only (rootedFS). Paths are absolute.
type fileSystem interface {
	Lstat(path string) (fs.FileInfo, error)
	Readlink(path string) (string, error)
	// Open opens a file for reading without blocking on the open (a FIFO
	// or device opened this way fails the regular-file check after).
	Open(path string) (*os.File, error)
	WalkDir(root string, fn fs.WalkDirFunc) error
}

// openHook, when set (by tests only, through export_test.go), runs before
// every file is opened: a fault injector standing in for a read that
// blocks in the kernel.
var openHook atomic.Pointer[func(path string)]

func opening(path string) {
	if h := openHook.Load(); h != nil {
		(*h)(path)
	}
}

// hostFS reads wherever a path points.
type hostFS struct{}

func (hostFS) Lstat(path string) (fs.FileInfo, error) { return os.Lstat(path) }
func (hostFS) Readlink(path string) (string, error)   { return os.Readlink(path) }
func (hostFS) Open(path string) (*os.File, error) {
	opening(path)
	return os.OpenFile(path, os.O_RDONLY|openNonblock, 0)
}
func (hostFS) WalkDir(root string, fn fs.WalkDirFunc) error { return filepath.WalkDir(root, fn) }

// rootedFS reads beneath its roots only: each path is matched to the root
// that lexically contains it, and read through that root's os.Root, which
// refuses any "..", absolute or symbolic-link step that leaves it.
type rootedFS struct {
	roots []rooted
}

type rooted struct {
	dir  string // absolute, cleaned
	root *os.Root
}

// openRoots opens the configured roots. EINVALID names a root that is not
// an absolute, existing directory.
func openRoots(dirs []string) (*rootedFS, error) {
	r := &rootedFS{}
	for _, d := range dirs {
		abs, err := filepath.Abs(d)
		if err != nil || d == "" {
			r.Close()
			return nil, ruleError(fmt.Sprintf("Integrity root %q is not a usable path.", d))
		}
		abs = filepath.Clean(abs)
		root, err := os.OpenRoot(abs)
		if err != nil {
			r.Close()
			return nil, ruleError(fmt.Sprintf("Integrity root %s cannot be opened as a directory: %v.", abs, unwrapPath(err)))
		}
		r.roots = append(r.roots, rooted{dir: abs, root: root})
		// A root given through a symbolic link (macOS's /tmp) also
		// matches paths spelt with its target.
		if real, err := filepath.EvalSymlinks(abs); err == nil && real != abs {
			r.roots = append(r.roots, rooted{dir: real, root: root})
		}
	}
	return r, nil
}

// Close releases the roots.
func (r *rootedFS) Close() {
	seen := map[*os.Root]bool{}
	for _, x := range r.roots {
		if !seen[x.root] {
			seen[x.root] = true
			x.root.Close()
		}
	}
}

// find returns the root containing path and path relative to it.
func (r *rootedFS) find(path string) (*rooted, string, error) {
	path = filepath.Clean(path)
	for i := range r.roots {
		x := &r.roots[i]
		if rel, err := filepath.Rel(x.dir, path); err == nil && filepath.IsLocal(rel) {
			return x, rel, nil
		}
	}
	names := make([]string, 0, len(r.roots))
	for _, x := range r.roots {
		names = append(names, x.dir)
	}
	return nil, "", ruleError(fmt.Sprintf("Integrity path %s is outside the integrity roots (%s): the monitor reads only beneath a configured --integrity-root.", path, strings.Join(names, ", ")))
}

// named makes an os.Root error name the absolute path asked for.
func named(err error, op, path string) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return &fs.PathError{Op: op, Path: path, Err: pe.Err}
	}
	return err
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func (r *rootedFS) Lstat(path string) (fs.FileInfo, error) {
	x, rel, err := r.find(path)
	if err != nil {
		return nil, err
	}
	info, err := x.root.Lstat(rel)
	return info, named(err, "lstat", path)
}

func (r *rootedFS) Readlink(path string) (string, error) {
	x, rel, err := r.find(path)
	if err != nil {
		return "", err
	}
	target, err := x.root.Readlink(rel)
	return target, named(err, "readlink", path)
}

func (r *rootedFS) Open(path string) (*os.File, error) {
	x, rel, err := r.find(path)
	if err != nil {
		return nil, err
	}
	opening(path)
	f, err := x.root.OpenFile(rel, os.O_RDONLY|openNonblock, 0)
	return f, named(err, "open", path)
}

// WalkDir walks like filepath.WalkDir: the root itself is Lstat'ed, so a
// root that is a link is visited as the link, never walked through.
func (r *rootedFS) WalkDir(path string, fn fs.WalkDirFunc) error {
	x, rel, err := r.find(path)
	if err != nil {
		return err
	}
	info, err := x.root.Lstat(rel)
	if err != nil {
		err = fn(path, nil, named(err, "lstat", path))
		if errors.Is(err, fs.SkipDir) || errors.Is(err, fs.SkipAll) {
			return nil
		}
		return err
	}
	if !info.IsDir() {
		err = fn(path, fs.FileInfoToDirEntry(info), nil)
		if errors.Is(err, fs.SkipDir) || errors.Is(err, fs.SkipAll) {
			return nil
		}
		return err
	}
	return fs.WalkDir(x.root.FS(), filepath.ToSlash(rel), func(p string, d fs.DirEntry, err error) error {
		abs := filepath.Join(x.dir, filepath.FromSlash(p))
		if err != nil {
			err = named(err, "walk", abs)
		}
		return fn(abs, d, err)
	})
}
