package cli

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/warden-sh/warden/engine"
	"github.com/warden-sh/warden/ledger"
)

func asVerifyError(err error, target **ledger.VerifyError) bool { return errors.As(err, target) }

// peekHeader reads the first line of an export.
func peekHeader(name string) (*engine.ExportHeader, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	if !sc.Scan() {
		return nil, fmt.Errorf("%s: empty export", name)
	}
	var h engine.ExportHeader
	if err := json.Unmarshal(sc.Bytes(), &h); err != nil {
		return nil, fmt.Errorf("%s: export header: %w", name, err)
	}
	return &h, nil
}
