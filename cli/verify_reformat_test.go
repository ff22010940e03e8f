package cli_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
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

// TestVerifyExportRepeatedKey: a receipt line with a repeated key could be
// read two ways, so it fails verification as tampering does (exit 3), and
// the message names the line, in --json too.
func TestVerifyExportRepeatedKey(t *testing.T) {
	data := buildStoppedLog(t, 4)
	export := filepath.Join(t.TempDir(), "x.jsonl")
	if code, _, errs := run(t, "export", "receipts", "--data", data, "-o", export); code != 0 {
		t.Fatal(errs)
	}
	b, err := os.ReadFile(export)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
	last := len(lines) - 1 // a receipt
	lines[last] = bytes.Replace(lines[last], []byte(`{"seq":`), []byte(`{"type":"x","seq":`), 1)
	if !bytes.Contains(lines[last], []byte(`"type":"x"`)) {
		t.Fatalf("the receipt line has no seq to prefix: %s", lines[last])
	}
	f := filepath.Join(t.TempDir(), "dup.jsonl")
	if err := os.WriteFile(f, append(bytes.Join(lines, []byte("\n")), '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	want := "export line " + strconv.Itoa(last+1) + " is not a valid receipt"
	code, _, errs := run(t, "verify", "--export", f, "--pubkey", filepath.Join(data, "ledger.pub"))
	if code != 3 || !strings.Contains(errs, want) || !strings.Contains(errs, "duplicate") {
		t.Fatalf("exit %d, stderr %q; want 3 and %q", code, errs, want)
	}
	code, out, _ := run(t, "verify", "--export", f, "--pubkey", filepath.Join(data, "ledger.pub"), "--json")
	var doc struct{ Error, Code string }
	if code != 3 || json.Unmarshal([]byte(out), &doc) != nil || doc.Code != "tampered" || !strings.Contains(doc.Error, want) {
		t.Fatalf("--json: exit %d, stdout %q", code, out)
	}
}
