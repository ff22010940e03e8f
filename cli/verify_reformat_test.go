package cli_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestVerifyReformattedExportFile (issue 10, item 8): `warden verify
// --export` on an export re-formatted value by value (json.Indent, as `jq
// .` does) verifies, with or without --pubkey (the header is then read
// across lines), and says the bodies were re-formatted.
func TestVerifyReformattedExportFile(t *testing.T) {
	data := buildStoppedLog(t, 4)
	export := filepath.Join(t.TempDir(), "x.jsonl")
	if code, _, errs := run(t, "export", "receipts", "--data", data, "-o", export); code != 0 {
		t.Fatal(errs)
	}
	b, err := os.ReadFile(export)
	if err != nil {
		t.Fatal(err)
	}
	var pretty bytes.Buffer
	for _, l := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
		if err := json.Indent(&pretty, l, "", "  "); err != nil {
			t.Fatal(err)
		}
		pretty.WriteByte('\n')
	}
	f := filepath.Join(t.TempDir(), "pretty.json")
	if err := os.WriteFile(f, pretty.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"verify", "--export", f},
		{"verify", "--export", f, "--pubkey", filepath.Join(data, "ledger.pub")},
	} {
		code, out, errs := run(t, args...)
		if code != 0 || !strings.Contains(out+errs, "re-formatted and verified in their canonical form") {
			t.Fatalf("%v: exit %d, stdout %q, stderr %q", args, code, out, errs)
		}
	}
}
