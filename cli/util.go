package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/warden-sh/warden/engine"
	"github.com/warden-sh/warden/ledger"
)

func asVerifyError(err error, target **ledger.VerifyError) bool { return errors.As(err, target) }

// peekHeader reads the header of an export: its first JSON value.
func peekHeader(name string) (*engine.ExportHeader, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// The first JSON value, on one line or (re-formatted) on several.
	var h engine.ExportHeader
	if err := json.NewDecoder(io.LimitReader(f, 1<<20)).Decode(&h); err == io.EOF {
		return nil, fmt.Errorf("%s: empty export", name)
	} else if err != nil {
		return nil, fmt.Errorf("%s: export header: %w", name, err)
	}
	return &h, nil
}

// written is what a command wrote to a file, for its summary.
type written struct {
	Path   string
	Bytes  int64
	SHA256 string // hex
}

// writeOutput hands write stdout, or, for a path, a temporary file that
// is fsync'd and renamed into place only when write succeeds, so a failed
// export never leaves a file that looks complete. For a path it returns
// what was written (nil for stdout).
func (e *env) writeOutput(path string, mode os.FileMode, write func(io.Writer) error) (*written, error) {
	if path == "" || path == "-" {
		return nil, write(e.stdout)
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, h)}
	err = write(cw)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return nil, err
	}
	return &written{Path: path, Bytes: cw.n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// needFile refuses --json without -o FILE for a command whose output is a
// file: with --json, stdout carries the one JSON summary, not the file.
func (e *env) needFile(out string) error {
	if e.json && (out == "" || out == "-") {
		return usageError{errors.New("--json needs -o FILE: the file is written there and stdout carries a JSON summary of it")}
	}
	return nil
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// withLocal opens the data directory's store and engine for fn and closes
// them after.
func (e *env) withLocal(fn func(l *local) error) (err error) {
	l, err := e.openLocal(nil)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, l.Close()) }()
	return fn(l)
}

// plural is "1 receipt", "2 receipts".
func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
