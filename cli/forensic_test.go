package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/warden-sh/warden/cli"
)

// forensicBundle starts a server on a fresh data directory, reports two
// incidents (an alert-only class: no containment targets), resolves one,
// exports a bundle with `warden forensic export` and returns the data
// directory and the bundle's path.
func forensicBundle(t *testing.T) (data, bundle string) {
	t.Helper()
	data = filepath.Join(t.TempDir(), "data")
	code, out, errs := run(t, "init", "--data", data, "--json")
	if code != 0 {
		t.Fatalf("init: %s %s", out, errs)
	}
	var init struct{ Token string }
	json.Unmarshal([]byte(out), &init)
	s := startServer(t, data)
	t.Setenv("WARDEN_URL", s.URL)
	t.Setenv("WARDEN_TOKEN", init.Token)
	var first struct{ ID string }
	for i, d := range []string{"blocked egress to pastebin", "blocked egress to a tunnel"} {
		code, out, errs := run(t, "incident", "report", "--class", "forbidden_airlock_request", "--source", "airlock", "--description", d, "--json")
		if code != 0 {
			t.Fatalf("report: %d %s %s", code, out, errs)
		}
		if i == 0 {
			json.Unmarshal([]byte(out), &first)
		}
	}
	if code, out, errs := run(t, "incident", "resolve", first.ID); code != 0 {
		t.Fatalf("resolve: %d %s %s", code, out, errs)
	}
	bundle = filepath.Join(t.TempDir(), "bundle.json")
	if code, _, errs := run(t, "forensic", "export", "-o", bundle); code != 0 {
		t.Fatalf("export: %s", errs)
	}
	return data, bundle
}

// rewriteBundle writes a copy of the bundle at path with fn applied to its
// members and returns the copy's path.
func rewriteBundle(t *testing.T, path string, fn func(m map[string]json.RawMessage)) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	fn(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "edited.json")
	if err := os.WriteFile(p, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestForensicVerifyCLIKeys: `warden forensic verify` needs a key; it
// checks the signatures with the key inside the bundle only when
// --trust-embedded-key asks for it, and then says that this proves
// integrity, not origin.
func TestForensicVerifyCLIKeys(t *testing.T) {
	data, bundle := forensicBundle(t)
	hmacKey := filepath.Join(data, "hmac.key")
	pub := filepath.Join(data, "ledger.pub")

	t.Run("no key flags", func(t *testing.T) {
		code, out, errs := run(t, "forensic", "verify", bundle)
		if code != cli.ExitUsage || out != "" || !strings.Contains(errs, "give --pubkey and/or --hmac-key") || !strings.Contains(errs, "--trust-embedded-key") {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
		}
	})
	t.Run("trust embedded key", func(t *testing.T) {
		code, out, errs := run(t, "forensic", "verify", bundle, "--trust-embedded-key")
		if code != 0 || !strings.HasPrefix(out, "ok: bundle ") || !strings.Contains(out, "inclusion proofs verified") {
			t.Fatalf("exit %d: %s %s", code, out, errs)
		}
		for _, w := range []string{"note: HMAC not checked", "warning: signatures checked with the key inside the bundle", "not who made it"} {
			if !strings.Contains(out, w) {
				t.Errorf("output lacks %q:\n%s", w, out)
			}
		}
		code, out, _ = run(t, "forensic", "verify", bundle, "--trust-embedded-key", "--json")
		var rep struct {
			EmbeddedKey       bool `json:"embedded_key"`
			SignaturesChecked bool `json:"signatures_checked"`
			HMACChecked       bool `json:"hmac_checked"`
		}
		if err := json.Unmarshal([]byte(out), &rep); code != 0 || err != nil || !rep.EmbeddedKey || !rep.SignaturesChecked || rep.HMACChecked {
			t.Fatalf("--json: exit %d %v %s", code, err, out)
		}
	})
	t.Run("trust embedded key still catches tampering", func(t *testing.T) {
		edited := rewriteBundle(t, bundle, func(m map[string]json.RawMessage) {
			var incs []json.RawMessage
			json.Unmarshal(m["incidents"], &incs)
			m["incidents"], _ = json.Marshal(incs[1:])
		})
		code, _, errs := run(t, "forensic", "verify", edited, "--trust-embedded-key")
		if code != cli.ExitVerify || !strings.Contains(errs, "is missing from the bundle") || !strings.Contains(errs, "system_state.total_incidents is 2") {
			t.Fatalf("exit %d: %s", code, errs)
		}
	})
	t.Run("pubkey and trust embedded key", func(t *testing.T) {
		code, _, errs := run(t, "forensic", "verify", bundle, "--pubkey", pub, "--trust-embedded-key")
		if code != cli.ExitUsage || !strings.Contains(errs, "exclude each other") {
			t.Fatalf("exit %d: %s", code, errs)
		}
	})
	t.Run("HMAC key only", func(t *testing.T) {
		code, out, errs := run(t, "forensic", "verify", bundle, "--hmac-key", hmacKey)
		if code != 0 || !strings.HasPrefix(out, "ok: bundle ") || strings.Contains(out, "inclusion proofs verified") ||
			!strings.Contains(out, "note: bundle signature, checkpoint and inclusion proofs not checked (no --pubkey)") ||
			strings.Contains(out, "key inside the bundle") {
			t.Fatalf("exit %d: %s %s", code, out, errs)
		}
	})
	t.Run("both keys", func(t *testing.T) {
		code, out, errs := run(t, "forensic", "verify", bundle, "--hmac-key", hmacKey, "--pubkey", pub)
		if code != 0 || !strings.HasPrefix(out, "ok: bundle ") || !strings.Contains(out, "inclusion proofs verified") || strings.Contains(out, "note:") || strings.Contains(out, "warning:") {
			t.Fatalf("exit %d: %s %s", code, out, errs)
		}
	})
	t.Run("system_state edited", func(t *testing.T) {
		edited := rewriteBundle(t, bundle, func(m map[string]json.RawMessage) {
			var s map[string]any
			json.Unmarshal(m["system_state"], &s)
			s["open_incidents"] = 0
			m["system_state"], _ = json.Marshal(s)
		})
		code, _, errs := run(t, "forensic", "verify", edited, "--hmac-key", hmacKey, "--pubkey", pub)
		if code != cli.ExitVerify || !strings.Contains(errs, "system_state.open_incidents is 0; recomputed from the bundle's incidents: 1") {
			t.Fatalf("exit %d: %s", code, errs)
		}
		// --json: one report, ok false, the problems listed.
		code, out, _ := run(t, "forensic", "verify", edited, "--hmac-key", hmacKey, "--pubkey", pub, "--json")
		var rep struct {
			OK       *bool    `json:"ok"`
			Problems []string `json:"problems"`
		}
		dec := json.NewDecoder(strings.NewReader(out))
		if err := dec.Decode(&rep); code != cli.ExitVerify || err != nil || rep.OK == nil || *rep.OK || dec.More() ||
			!slices.ContainsFunc(rep.Problems, func(p string) bool { return strings.Contains(p, "system_state.open_incidents is 0") }) {
			t.Fatalf("--json: exit %d %v %s", code, err, out)
		}
	})
}

// TestForensicVerifyCLIHelp: the help text describes what the command does
// without a trusted key.
func TestForensicVerifyCLIHelp(t *testing.T) {
	code, out, errs := run(t, "forensic", "verify", "--help")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, w := range []string{"Give --hmac-key, --pubkey or both", "unless --trust-embedded-key", "not who made it", "Exit 2 without any key"} {
		if !strings.Contains(out, w) {
			t.Errorf("help lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "else the key inside") {
		t.Errorf("help still promises a silent fallback to the embedded key:\n%s", out)
	}
}
