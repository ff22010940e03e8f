package cli

import (
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

// writeOutput hands write stdout, or, for a path, a temporary file that
// is fsync'd and renamed into place only when write succeeds, so a failed
// export never leaves a file that looks complete.
func (e *env) writeOutput(path string, mode os.FileMode, write func(io.Writer) error) error {
	if path == "" || path == "-" {
		return write(e.stdout)
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	err = write(f)
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
		return err
	}
	fmt.Fprintf(e.stderr, "written to %s\n", path)
	return nil
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
