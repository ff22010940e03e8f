package cli_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	warden "github.com/warden-sh/warden"
)

// TestRunbookCurlCommands runs the recovery runbook's curl commands, as
// written, against `warden serve --dev` with real curl and jq.
func TestRunbookCurlCommands(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	targets := newTargets(t)
	watched := t.TempDir()
	s := startServer(t, filepath.Join(t.TempDir(), "data"), "--dev", "--policy", policyFile(t, targets.URL), "--integrity-root", watched)
	// The violation's files, restored and baselined: re-attestation (step
	// 7) vouches for them against this baseline.
	if err := os.WriteFile(filepath.Join(watched, "passwd"), []byte("root:x:0:0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if st := httpJSON(t, "POST", s.URL+"/api/v1/integrity/baseline", "", map[string]any{"paths": []string{watched}}, nil); st != 200 {
		t.Fatalf("baseline: %d", st)
	}
	var inc warden.Incident
	if st := httpJSON(t, "POST", s.URL+"/api/v1/incidents/report", "", map[string]any{
		"class": "integrity_violation", "source": "fim", "description": "baseline mismatch",
	}, &inc); st != 201 {
		t.Fatalf("report: %d", st)
	}
	script, err := os.ReadFile("testdata/runbook-ceremony.sh")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(script), "http://localhost:8515", s.URL)
	text = strings.ReplaceAll(text, "INC-20260314-120000-0001", inc.ID)
	cmd := exec.Command("bash", "-c", text)
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("runbook commands failed: %v\n%s", err, out)
	}
	for _, want := range []string{`"status": "acknowledged"`, `"status": "re-attestation recorded"`, `"pending_recoveries": []`, `"state": "resolved"`, `"open_incidents": 0`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}
}
