package datadir

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Mirror exports anchored checkpoints as files in a directory, never
// overwriting one (warden.Mirror). Point it at storage another party
// controls (a mounted share, a synced bucket) to make it a witness.
type Mirror struct {
	Dir string
}

// Put writes data to Dir/name atomically and durably; an existing name is
// an error.
func (m Mirror) Put(name string, data []byte) error {
	if name == "" || strings.ContainsAny(name, `/\`) || name == "." || name == ".." {
		return fmt.Errorf("datadir.Mirror: bad name %q", name)
	}
	if err := os.MkdirAll(m.Dir, 0o700); err != nil {
		return fmt.Errorf("datadir.Mirror: %w", err)
	}
	return writeFileSync(filepath.Join(m.Dir, name), data, 0o644)
}
