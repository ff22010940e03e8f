package recorder_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/wardentest"
)

// TestBaselineRefusalsSayWhatFailedOnce: a baseline of a file outside the
// integrity roots (the issue's /etc/shadow) or of a missing one is refused
// EINVALID with the checker's own sentence — not wrapped in a second
// "warden error: code=invalid message=…" — and nothing is recorded or
// receipted, so no hash of it reaches a receipt.
func TestBaselineRefusalsSayWhatFailedOnce(t *testing.T) {
	env := wardentest.MustEnv(t)
	ctx := t.Context()
	missing := filepath.Join(t.TempDir(), "missing.conf")
	for name, tc := range map[string]struct{ path, want string }{
		"outside the roots": {"/etc/shadow", "Integrity path /etc/shadow is outside the integrity roots"},
		"missing":           {missing, "Cannot record an integrity baseline: lstat " + missing + ": no such file or directory."},
	} {
		_, err := env.Recorder.RecordBaseline(ctx, wardentest.AdminPrincipal, []string{tc.path})
		msg := warden.ErrorMessage(err)
		if warden.ErrorCode(err) != warden.EINVALID || !strings.HasPrefix(msg, tc.want) || strings.Contains(msg, "warden error") || strings.Contains(err.Error(), "warden error: code=invalid message=Cannot baseline") {
			t.Errorf("%s: %v, want EINVALID starting %q, wrapped once", name, err, tc.want)
		}
	}
	if n := len(env.MustReceipts(t, warden.ReceiptFilter{Type: warden.ReceiptIntegrityBaseline})); n != 0 {
		t.Fatalf("%d baseline receipts after refusals", n)
	}
	// Inside the roots it works.
	ok := filepath.Join(t.TempDir(), "ok.conf")
	if err := os.WriteFile(ok, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Recorder.RecordBaseline(ctx, wardentest.AdminPrincipal, []string{ok}); err != nil {
		t.Fatal(err)
	}
}
