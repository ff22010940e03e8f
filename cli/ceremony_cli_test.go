package cli_test

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/cli"
)

// TestCeremonyThroughTheCLI runs the runbook's ceremony with warden's own
// commands against a normal (authenticated) server, then exports and
// verifies a forensic bundle offline.
func TestCeremonyThroughTheCLI(t *testing.T) {
	targets := newTargets(t)
	data := filepath.Join(t.TempDir(), "data")
	code, out, _ := run(t, "init", "--data", data, "--json")
	if code != 0 {
		t.Fatal(out)
	}
	var init struct{ Token string }
	json.Unmarshal([]byte(out), &init)
	watched := t.TempDir()
	s := startServer(t, data, "--policy", policyFile(t, targets.URL), "--integrity-root", watched)
	t.Setenv("WARDEN_URL", s.URL)
	t.Setenv("WARDEN_TOKEN", init.Token)

	mustJSON := func(v any, args ...string) {
		t.Helper()
		code, out, errs := run(t, append(args, "--json")...)
		if code != 0 {
			t.Fatalf("warden %s: exit %d: %s %s", strings.Join(args, " "), code, out, errs)
		}
		if v != nil {
			if err := json.Unmarshal([]byte(out), v); err != nil {
				t.Fatalf("warden %s: %v: %s", strings.Join(args, " "), err, out)
			}
		}
	}
	var inc warden.Incident
	mustJSON(&inc, "incident", "report", "--class", "integrity_violation", "--source", "fim", "--description", "etc/passwd changed", "--evidence", "path=/etc/passwd")
	if inc.State != warden.StateContained {
		t.Fatalf("report: %+v", inc)
	}
	var list []warden.Incident
	mustJSON(&list, "incident", "list", "--state", "contained")
	if len(list) != 1 {
		t.Fatalf("list: %+v", list)
	}
	mustJSON(&inc, "incident", "get", inc.ID)
	code, _, errs := run(t, "incident", "resolve", inc.ID)
	if code != cli.ExitFailure || !strings.Contains(errs, "conflict") || !strings.Contains(errs, "acknowledgment") {
		t.Fatalf("resolve while latched: %d %s", code, errs)
	}
	var status struct{ Count int }
	mustJSON(&status, "recovery", "status")
	if status.Count != 1 {
		t.Fatalf("status: %+v", status)
	}
	mustJSON(nil, "recovery", "ack", inc.ID, "--operator", "admin@secai")
	// An integrity violation is re-attested against a baseline that scans
	// clean: none yet, so refused; recorded (the files restored), accepted.
	if code, _, errs := run(t, "recovery", "reattest", inc.ID); code != cli.ExitFailure || !strings.Contains(errs, "none is recorded") {
		t.Fatalf("reattest without a baseline: %d %s", code, errs)
	}
	if err := os.WriteFile(filepath.Join(watched, "passwd"), []byte("root:x:0:0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustJSON(nil, "integrity", "baseline", watched)
	mustJSON(nil, "recovery", "reattest", inc.ID)
	mustJSON(&status, "recovery", "status")
	if status.Count != 0 {
		t.Fatalf("status after: %+v", status)
	}
	mustJSON(&inc, "incident", "resolve", inc.ID)
	if inc.State != warden.StateResolved {
		t.Fatalf("resolve: %+v", inc)
	}
	var stats warden.IncidentStats
	mustJSON(&stats, "stats")
	if stats.TotalIncidents != 1 || stats.ResolvedCount != 1 || stats.OpenIncidents != 0 {
		t.Fatalf("stats: %+v", stats)
	}
	bundle := filepath.Join(t.TempDir(), "bundle.json")
	if code, _, errs := run(t, "forensic", "export", "-o", bundle); code != 0 {
		t.Fatalf("export: %s", errs)
	}
	code, out, errs = run(t, "forensic", "verify", bundle, "--hmac-key", filepath.Join(data, "hmac.key"), "--pubkey", filepath.Join(data, "ledger.pub"))
	if code != 0 || !strings.HasPrefix(out, "ok: bundle ") {
		t.Fatalf("forensic verify: %d %s %s", code, out, errs)
	}
	b, _ := os.ReadFile(bundle)
	os.WriteFile(bundle, []byte(strings.Replace(string(b), `"description":"etc/passwd changed"`, `"description":"nothing happened"`, 1)), 0o600)
	code, _, errs = run(t, "forensic", "verify", bundle, "--hmac-key", filepath.Join(data, "hmac.key"))
	if code != cli.ExitVerify || !strings.Contains(errs, "bundle_hash does not match") {
		t.Fatalf("tampered bundle: %d %s", code, errs)
	}
}

// TestCompatPorts: a dev server answers GET /api/v1/state on :8505 with
// the attestation state and on :8510 with the integrity state, as the
// runbook's step 10 curls.
func TestCompatPorts(t *testing.T) {
	for _, p := range []string{"8505", "8510"} {
		ln, err := net.Listen("tcp", "127.0.0.1:"+p)
		if err != nil {
			t.Skipf("port %s is in use on this machine: %v", p, err)
		}
		ln.Close()
	}
	s := startServerAsIs(t, filepath.Join(t.TempDir(), "data"), "--dev")
	for port, path := range map[string]string{"8505": "/api/v1/attestation/state", "8510": "/api/v1/integrity/state"} {
		var compat, direct map[string]any
		if code := httpJSON(t, "GET", "http://localhost:"+port+"/api/v1/state", "", nil, &compat); code != 200 || compat["state"] != "trusted" {
			t.Fatalf(":%s: %d %v", port, code, compat)
		}
		httpJSON(t, "GET", s.URL+path, "", nil, &direct)
		if compat["detail"] != direct["detail"] {
			t.Errorf(":%s answers %v, want %s's %v", port, compat, path, direct)
		}
	}
}
