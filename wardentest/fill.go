package wardentest

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// Filler is a file that takes all the free space of a file system.
type Filler struct {
	path string
	// Bytes is how much it holds.
	Bytes int64
}

// MustFill writes a file in dir until its file system is full (down to
// the last block) and returns it; Free deletes it. It is deleted when the
// test ends in any case.
func MustFill(tb testing.TB, dir string) *Filler {
	tb.Helper()
	f, err := Fill(dir)
	if f != nil {
		tb.Cleanup(f.Free)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return f
}

// Fill is MustFill for code that cannot fail a test (an HTTP handler):
// the caller frees the filler.
func Fill(dir string) (*Filler, error) {
	f, err := os.CreateTemp(dir, "filler-*")
	if err != nil {
		return nil, err
	}
	fl := &Filler{path: f.Name()}
	buf := make([]byte, 1<<20)
	for chunk := len(buf); chunk >= 512; {
		n, err := f.Write(buf[:chunk])
		fl.Bytes += int64(n)
		switch {
		case errors.Is(err, syscall.ENOSPC):
			chunk /= 2
		case err != nil:
			f.Close()
			return fl, err
		}
	}
	// The file system refuses even 512 bytes more.
	if err := f.Sync(); err != nil && !errors.Is(err, syscall.ENOSPC) {
		f.Close()
		return fl, err
	}
	if err := f.Close(); err != nil && !errors.Is(err, syscall.ENOSPC) {
		return fl, err
	}
	return fl, nil
}

// Free deletes the filler, giving its space back.
func (f *Filler) Free() {
	os.Remove(f.path)
}

// Path is where the filler is.
func (f *Filler) Path() string { return filepath.Clean(f.path) }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
