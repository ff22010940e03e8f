package cli_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/cli"
)

// The runbooks in docs/ mark the shell blocks that must work as written
// with an HTML comment on the line before the fence:
//
//	<!-- doc-test: NAME -->
//	```sh
//	…
//	```
//
// docBlocks returns every marked block of file, joined per NAME in
// document order. A marker not followed by a sh fence fails the test, so
// a marker cannot silently stop applying.
func docBlocks(t *testing.T, file string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	blocks := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	line := 0
	next := func() (string, bool) {
		if !sc.Scan() {
			return "", false
		}
		line++
		return sc.Text(), true
	}
	for {
		l, ok := next()
		if !ok {
			break
		}
		name, found := strings.CutPrefix(strings.TrimSpace(l), "<!-- doc-test:")
		if !found {
			continue
		}
		name = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(name), "-->"))
		at := line
		fence, ok := next()
		if !ok || (fence != "```sh" && fence != "```bash") {
			t.Fatalf("%s:%d: doc-test marker %q is not followed by a ```sh block", file, at, name)
		}
		var code strings.Builder
		for {
			l, ok := next()
			if !ok {
				t.Fatalf("%s:%d: unterminated block", file, at)
			}
			if l == "```" {
				break
			}
			code.WriteString(l + "\n")
		}
		blocks[name] += code.String()
	}
	return blocks
}

// docBlock returns the named block of file, failing if file marks blocks
// under any name the test does not know (a typo would skip them).
func docBlock(t *testing.T, file, name string, known ...string) string {
	t.Helper()
	blocks := docBlocks(t, file)
	for n := range blocks {
		if !slices.Contains(known, n) {
			t.Fatalf("%s marks blocks as %q, which no test runs (known: %v)", file, n, known)
		}
	}
	if blocks[name] == "" {
		t.Fatalf("%s has no block marked %q", file, name)
	}
	return blocks[name]
}

// docShell runs a documented script with bash -euo pipefail in dir, with
// the real warden binary first on PATH and no WARDEN_* variables but env.
// replace rewrites the document's example addresses and paths (old, new,
// …) before it runs. It returns the combined output.
func docShell(t *testing.T, script, dir string, env []string, replace ...string) string {
	t.Helper()
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(replace); i += 2 {
		if !strings.Contains(script, replace[i]) {
			t.Fatalf("the documented commands no longer mention %q; update the test", replace[i])
		}
		script = strings.ReplaceAll(script, replace[i], replace[i+1])
	}
	// -x traces each command to the output, so a failure shows which one.
	cmd := exec.Command("bash", "-xeuo", "pipefail", "-c", script)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WARDEN_") && !strings.HasPrefix(kv, "PATH=") && !strings.HasPrefix(kv, "DRILL_MODE=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "PATH="+filepath.Dir(bin)+string(os.PathListSeparator)+os.Getenv("PATH"))
	cmd.Env = append(cmd.Env, "PS4=+ ")
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("documented commands failed: %v\n--- output (commands traced with +) ---\n%s", err, out)
	}
	return string(out)
}

// getJSON GETs url with token (if any) through client and decodes the answer.
func getJSON(t *testing.T, client *http.Client, url, token string, out any) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

const recoveryRunbook = "../docs/runbooks/incident-recovery.md"

var recoveryBlocks = []string{"ceremony", "practice", "integrity"}

// TestIncidentRecoveryRunbook runs the ceremony of
// docs/runbooks/incident-recovery.md as an on-call operator would: against
// a normal server over TLS, with a token holding the documented roles,
// after a reporter's attestation_failure latched the system.
func TestIncidentRecoveryRunbook(t *testing.T) {
	script := docBlock(t, recoveryRunbook, "ceremony", recoveryBlocks...)
	p := newTestPKI(t)
	data := filepath.Join(t.TempDir(), "data")
	if code, out, errs := run(t, "init", "--data", data); code != cli.ExitOK {
		t.Fatalf("init: %s %s", out, errs)
	}
	token := func(args ...string) string {
		t.Helper()
		code, out, errs := run(t, append([]string{"credential", "add", "--data", data, "--json"}, args...)...)
		var c struct{ Token string }
		if code != cli.ExitOK || json.Unmarshal([]byte(out), &c) != nil || c.Token == "" {
			t.Fatalf("credential add %v: %d %s %s", args, code, out, errs)
		}
		return c.Token
	}
	oncall := token("--name", "alice", "--human", "--role", "read", "--role", "operator", "--role", "recovery-admin", "--role", "forensic")
	reporter := token("--name", "tpm-agent", "--role", "reporter", "--source", "tpm-agent")
	s := startServer(t, data, "--tls-cert", p.certFile, "--tls-key", p.keyFile)
	url := "https://" + strings.TrimPrefix(s.URL, "http://")

	pool := x509.NewCertPool()
	pool.AddCert(p.ca)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	body := strings.NewReader(`{"class":"attestation_failure","source":"tpm-agent","description":"TPM2 quote mismatch"}`)
	req, _ := http.NewRequest("POST", url+"/api/v1/incidents/report", body)
	req.Header.Set("Authorization", "Bearer "+reporter)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var inc warden.Incident
	json.NewDecoder(resp.Body).Decode(&inc)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || inc.ID == "" {
		t.Fatalf("report: %d %+v", resp.StatusCode, inc)
	}

	dir := t.TempDir()
	out := docShell(t, script, dir, []string{"WARDEN_URL=" + url, "WARDEN_TOKEN=" + oncall, "WARDEN_CA=" + p.caFile})

	getJSON(t, client, url+"/api/v1/incidents/get?id="+inc.ID, oncall, &inc)
	if inc.State != warden.StateResolved {
		t.Errorf("after the runbook the incident is %s, want resolved:\n%s", inc.State, out)
	}
	var att struct{ State string }
	getJSON(t, client, url+"/api/v1/attestation/state", "", &att)
	if att.State != "trusted" {
		t.Errorf("attestation state %q after the ceremony", att.State)
	}
	for _, f := range []string{"forensic-bundle.json", "forensic-bundle.json.sha256", "ledger.pub"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("the runbook did not leave %s: %v", f, err)
		}
	}
}

// TestIncidentRecoveryPractice runs the runbook's practice session over
// plain HTTP against `warden serve --dev --drill`, as the runbook starts
// it, then checks the practice data directory verifies once stopped.
func TestIncidentRecoveryPractice(t *testing.T) {
	script := docBlock(t, recoveryRunbook, "practice", recoveryBlocks...)
	data := filepath.Join(t.TempDir(), "practice-data")
	s := startServer(t, data, "--dev", "--drill")
	host := strings.TrimPrefix(s.URL, "http://")
	out := docShell(t, script, t.TempDir(), nil, "127.0.0.1:8515", host)
	if !strings.Contains(out, "409\n") {
		t.Errorf("resolving a latched incident was not refused with 409:\n%s", out)
	}
	var health struct {
		OpenIncidents  int `json:"open_incidents"`
		TotalIncidents int `json:"total_incidents"`
	}
	getJSON(t, http.DefaultClient, s.URL+"/health", "", &health)
	if health.OpenIncidents != 0 || health.TotalIncidents != 1 {
		t.Errorf("after the practice: %+v\n%s", health, out)
	}
	s.stop(t)
	if code, out, errs := run(t, "verify", "--data", data); code != cli.ExitOK {
		t.Errorf("verify --data after the practice: %d %s %s", code, out, errs)
	}
}

// TestIncidentRecoveryIntegrity runs the runbook's integrity-violation
// practice against `warden serve --dev --integrity-root`.
func TestIncidentRecoveryIntegrity(t *testing.T) {
	script := docBlock(t, recoveryRunbook, "integrity", recoveryBlocks...)
	root := t.TempDir()
	for _, d := range []string{"config", "known-good"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, d, "policy.yaml"), []byte("allow: [read]\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := startServer(t, filepath.Join(t.TempDir(), "data"), "--dev", "--integrity-root", root)
	host := strings.TrimPrefix(s.URL, "http://")
	out := docShell(t, script, t.TempDir(), []string{"WARDEN_URL=" + s.URL}, "127.0.0.1:8515", host, "/srv/agent", root)
	var list []warden.Incident
	getJSON(t, http.DefaultClient, s.URL+"/api/v1/incidents", "", &list)
	if len(list) != 1 || list[0].Class != warden.ClassIntegrityViolation || list[0].State != warden.StateResolved {
		t.Errorf("after the integrity practice: %+v\n%s", list, out)
	}
	if !strings.HasSuffix(strings.TrimSpace(out), "trusted") {
		t.Errorf("the integrity state is not trusted at the end:\n%s", out)
	}
}

const drillsRunbook = "../docs/runbooks/governance-drills.md"

// TestGovernanceDrillsRunbook runs drills 0, 1, 3, 2 and 4 of
// docs/runbooks/governance-drills.md and its artifact pack, as written,
// against `warden serve --dev --drill` on ./warden-data, then stops the
// server and runs the offline part of the pack. Every check in the
// runbook is a jq -e that fails the script when its drill fails.
func TestGovernanceDrillsRunbook(t *testing.T) {
	known := []string{"drills", "drills-offline"}
	live := docBlock(t, drillsRunbook, "drills", known...)
	offline := docBlock(t, drillsRunbook, "drills-offline", known...)
	dir := t.TempDir()
	s := startServer(t, filepath.Join(dir, "warden-data"), "--dev", "--drill")
	host := strings.TrimPrefix(s.URL, "http://")
	out := docShell(t, live, dir, []string{"WARDEN_URL=" + s.URL}, "127.0.0.1:8515", host)
	if strings.Contains(out, "false\n") {
		t.Errorf("a drill check printed false:\n%s", out)
	}
	s.stop(t)
	docShell(t, offline, dir, nil)
	for _, f := range []string{"escalations.json", "decisions.json", "anchor.json", "scroll-roots.json", "denials.json", "receipts.jsonl", "ledger.pub"} {
		if fi, err := os.Stat(filepath.Join(dir, "drill-artifacts", f)); err != nil || fi.Size() == 0 {
			t.Errorf("the artifact pack lacks %s: %v", f, err)
		}
	}
}

const operationsDoc = "../docs/operations.md"

// TestOperationsBackupRestore runs the online backup and the restore of
// docs/operations.md against a server with an incident in its log: the
// backup verifies, the restored directory verifies, and a server started
// on it passes its startup check with the incident intact. The document's
// sudo prefixes and owner flags are dropped (the test runs as one user);
// its paths point into a temporary directory.
func TestOperationsBackupRestore(t *testing.T) {
	if _, err := exec.LookPath("sqlite3"); err != nil {
		t.Skip("sqlite3 is not installed")
	}
	known := []string{"backup", "restore"}
	backup := docBlock(t, operationsDoc, "backup", known...)
	restore := docBlock(t, operationsDoc, "restore", known...)
	root := t.TempDir()
	data, backups := filepath.Join(root, "lib", "warden"), filepath.Join(root, "backups")
	if err := os.MkdirAll(backups, 0o700); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, data, "--dev")
	var inc warden.Incident
	if st := httpJSON(t, "POST", s.URL+"/api/v1/incidents/report", "", map[string]any{
		"class": "prompt_injection", "source": "gateway", "description": "before the backup",
	}, &inc); st != http.StatusCreated {
		t.Fatalf("report: %d", st)
	}
	docShell(t, backup, root, nil, "sudo -u warden ", "", "/var/lib/warden", data, "/var/backups/warden", backups)
	s.stop(t)

	made, err := filepath.Glob(filepath.Join(backups, "*", "warden.db"))
	if err != nil || len(made) != 1 {
		t.Fatalf("the backup block made %v (%v)", made, err)
	}
	script := "BACKUP=" + filepath.Dir(made[0]) + "\n" + restore
	docShell(t, script, root, nil, "sudo -u warden ", "", "sudo ", "", "-o warden -g warden ", "", "/var/lib/warden", data)
	if damaged, _ := filepath.Glob(data + ".damaged-*"); len(damaged) != 1 {
		t.Errorf("the damaged directory was not kept aside: %v", damaged)
	}

	s = startServer(t, data, "--dev")
	var health struct {
		TotalIncidents int                `json:"total_incidents"`
		Ledger         warden.LedgerCheck `json:"ledger"`
	}
	getJSON(t, http.DefaultClient, s.URL+"/health", "", &health)
	if health.Ledger.State != warden.LedgerVerified || health.TotalIncidents != 1 {
		t.Errorf("the restored server: %+v", health)
	}
	var got warden.Incident
	getJSON(t, http.DefaultClient, s.URL+"/api/v1/incidents/get?id="+inc.ID, "", &got)
	if got.ID != inc.ID || got.Description != "before the backup" {
		t.Errorf("the restored incident: %+v", got)
	}
}
