package cli_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/cli"
	"github.com/warden-sh/warden/engine/governor"
)

// The operator-experience tests (issue 10): what a newcomer meets at the
// command line.

// oneJSON returns the single JSON document out must hold, failing the test
// if it holds none, more than one, or anything else.
func oneJSON(t *testing.T, what, out string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(out))
	var v map[string]any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%s: stdout is not a JSON object: %v\n%s", what, err, out)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		t.Fatalf("%s: stdout holds more than one JSON document:\n%s", what, out)
	}
	return v
}

// oneJSONValue is oneJSON for any JSON value (a listing is an array).
func oneJSONValue(t *testing.T, what, out string) any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(out))
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%s: stdout is not JSON: %v\n%s", what, err, out)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		t.Fatalf("%s: stdout holds more than one JSON document:\n%s", what, out)
	}
	return v
}

// deadURL is a loopback URL nothing listens on.
func deadURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// mustInit creates a data directory and returns it and its admin token.
func mustInit(t *testing.T) (string, string) {
	t.Helper()
	data := filepath.Join(t.TempDir(), "data")
	code, out, errs := run(t, "init", "--data", data, "--json")
	if code != 0 {
		t.Fatalf("init: %d %s", code, errs)
	}
	var init struct{ Token string }
	if err := json.Unmarshal([]byte(out), &init); err != nil {
		t.Fatal(err)
	}
	return data, init.Token
}

var digestRe = regexp.MustCompile(`warden approve ([0-9a-f]{64})`)

// TestRefusalShowsTheNextStep (issue 10, item 1): an escalation that needs
// approval shows its request_digest, approval_required and quorum, in
// text and JSON, and that digest is all `warden approve` needs: the whole
// approval runs with warden's own commands.
func TestRefusalShowsTheNextStep(t *testing.T) {
	s := startServer(t, filepath.Join(t.TempDir(), "data"), "--dev")
	t.Setenv("WARDEN_URL", s.URL)
	for _, to := range []string{"operator", "guardian"} {
		if code, _, errs := run(t, "escalate", "--to", to, "--reason", "drill"); code != 0 {
			t.Fatalf("escalate %s: %d %s", to, code, errs)
		}
	}
	phoenix := []string{"escalate", "--to", "phoenix", "--type", "crisis_declared", "--reason", "drill"}
	code, out, errs := run(t, phoenix...)
	m := digestRe.FindStringSubmatch(errs)
	if code != cli.ExitFailure || m == nil || out != "" {
		t.Fatalf("phoenix without approval: exit %d, stdout %q, stderr:\n%s", code, out, errs)
	}
	digest := m[1]
	for _, want := range []string{"requires approval (denied)", "request_digest:", digest, "quorum:", "approval_required:", "--approved-by"} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
	code, out, _ = run(t, append(phoenix, "--json")...)
	v := oneJSON(t, "escalate --json", out)
	if code != cli.ExitFailure || v["code"] != warden.EDENIED || v["request_digest"] != digest || v["approval_required"] != true || v["quorum"] != 1.0 {
		t.Fatalf("phoenix --json: exit %d: %v", code, v)
	}

	code, out, errs = run(t, "credential", "add", "--url", s.URL, "--name", "approver-1", "--role", "approver", "--json")
	if code != 0 {
		t.Fatalf("credential add: %d %s", code, errs)
	}
	var cred struct{ Token string }
	json.Unmarshal([]byte(out), &cred)
	if code, _, errs := run(t, "approve", digest, "--token", cred.Token); code != 0 {
		t.Fatalf("approve: %d %s", code, errs)
	}
	code, out, errs = run(t, append(phoenix, "--approved-by", "approver-1")...)
	if code != 0 || !regexp.MustCompile(`(?m)^to_profile:\s+phoenix$`).MatchString(out) {
		t.Fatalf("phoenix with approval: %d %s %s", code, out, errs)
	}
}

// TestJSONIsOneDocument (issue 10, item 2): with --json every command
// prints exactly one JSON document on stdout, whether it succeeds, is
// refused, is misused or cannot reach the server; without it the
// governance commands print text, lists as tables.
func TestJSONIsOneDocument(t *testing.T) {
	watched := t.TempDir()
	s := startServer(t, filepath.Join(t.TempDir(), "data"), "--dev", "--drill", "--integrity-root", watched)
	t.Setenv("WARDEN_URL", s.URL)
	local, _ := mustInit(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(watched, "f"), []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		exit int
	}{
		{[]string{"version"}, 0},
		{[]string{"escalate", "--to", "operator", "--reason", "x"}, 0},
		{[]string{"escalate", "--to", "phoenix", "--reason", "x"}, cli.ExitFailure},
		{[]string{"escalations"}, 0},
		{[]string{"escalations", "history"}, 0},
		{[]string{"guardian", "status"}, 0},
		{[]string{"tool", "escalate", "{}"}, cli.ExitFailure},
		{[]string{"tool", "guardian_status", "not json"}, cli.ExitUsage},
		{[]string{"approve"}, cli.ExitUsage},
		{[]string{"no-such-command"}, cli.ExitUsage},
		{[]string{"budget"}, cli.ExitUsage},
		{[]string{"budget", "no-such-subcommand"}, cli.ExitUsage},
		{[]string{"escalations", "--no-such-flag"}, cli.ExitUsage},
		{[]string{"incident", "report", "--class", "tool_call_burst", "--source", "cli", "--description", "d"}, 0},
		{[]string{"incident", "report", "--class", "bogus", "--source", "cli", "--description", "d"}, cli.ExitFailure},
		{[]string{"incident", "list"}, 0},
		{[]string{"stats"}, 0},
		{[]string{"recovery", "status"}, 0},
		{[]string{"integrity", "baseline", watched}, 0},
		{[]string{"integrity", "scan"}, 0},
		{[]string{"credential", "list", "--data", local}, 0},
		{[]string{"receipts", "list", "--data", local}, 0},
		{[]string{"receipts", "list", "--url", s.URL}, 0},
		{[]string{"verify", "--data", local}, 0},
		{[]string{"export", "receipts", "--data", local, "-o", filepath.Join(dir, "receipts.jsonl")}, 0},
		{[]string{"export", "receipts", "--data", local}, cli.ExitUsage},
		{[]string{"forensic", "export", "-o", filepath.Join(dir, "bundle.json")}, 0},
		{[]string{"forensic", "export"}, cli.ExitUsage},
		{[]string{"stats", "--url", deadURL(t)}, cli.ExitUnavailable},
	}
	for _, tc := range cases {
		name := strings.Join(tc.args, " ")
		code, out, errs := run(t, append(tc.args, "--json")...)
		if code != tc.exit {
			t.Errorf("%s --json: exit %d, want %d: %s", name, code, tc.exit, errs)
		}
		v := oneJSONValue(t, name, out)
		if m, ok := v.(map[string]any); ok && tc.exit != 0 && (m["error"] == nil || m["code"] == nil) && m["ok"] != false {
			t.Errorf("%s --json: exit %d without error and code: %s", name, code, out)
		}
	}

	// The file commands' summaries describe the file they wrote.
	for _, tc := range []struct {
		args []string
		file string
	}{
		{[]string{"export", "receipts", "--data", local}, "r.jsonl"},
		{[]string{"forensic", "export"}, "b.json"},
	} {
		path := filepath.Join(dir, tc.file)
		code, out, errs := run(t, append(tc.args, "-o", path, "--json")...)
		if code != 0 {
			t.Fatalf("%v: %d %s", tc.args, code, errs)
		}
		v := oneJSON(t, tc.file, out)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if v["written"] != path || v["bytes"] != float64(len(b)) || v["sha256"] != hex.EncodeToString(sum[:]) {
			t.Errorf("%v: summary %v does not describe the %d bytes written", tc.args, v, len(b))
		}
		if tc.file == "r.jsonl" {
			var checkpoints, receipts float64
			sc := bufio.NewScanner(strings.NewReader(string(b)))
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				switch {
				case strings.HasPrefix(sc.Text(), `{"checkpoint":`):
					checkpoints++
				case strings.HasPrefix(sc.Text(), `{"seq":`) || strings.Contains(sc.Text(), `"leaf_hash"`):
					receipts++
				}
			}
			if v["checkpoints"] != checkpoints || v["receipts"] != receipts || receipts == 0 {
				t.Errorf("export summary %v, file holds %v checkpoints and %v receipts", v, checkpoints, receipts)
			}
		}
	}

	// Without --json: text, lists as tables.
	code, out, errs := run(t, "escalations")
	if code != 0 || json.Valid([]byte(out)) || !strings.Contains(out, "ESCALATION_ID") || !strings.Contains(out, "active_count:") {
		t.Fatalf("escalations as text: %d %q %s", code, out, errs)
	}
	code, out, _ = run(t, "budget", "create", "ops", "--allocated", "10")
	if code != 0 || json.Valid([]byte(out)) || !regexp.MustCompile(`(?m)^balance:\s+10$`).MatchString(out) {
		t.Fatalf("budget create as text: %d %q", code, out)
	}
}

// TestCLIErrorsSpeakCLI (issue 10, item 3): errors name the flags and
// commands that fix them, not the HTTP wire.
func TestCLIErrorsSpeakCLI(t *testing.T) {
	t.Run("no token", func(t *testing.T) {
		data, _ := mustInit(t)
		s := startServer(t, data)
		t.Setenv("WARDEN_TOKEN", "")
		code, _, errs := run(t, "stats", "--url", s.URL)
		if code != cli.ExitFailure || !strings.Contains(errs, "--token") || !strings.Contains(errs, "WARDEN_TOKEN") || strings.Contains(errs, "Authorization") {
			t.Fatalf("stats without a token: %d %s", code, errs)
		}
	})
	t.Run("no server", func(t *testing.T) {
		url := deadURL(t)
		code, _, errs := run(t, "incident", "list", "--url", url)
		if code != cli.ExitUnavailable || !strings.Contains(errs, url) || !strings.Contains(errs, "warden serve") || strings.Contains(errs, "dial tcp") {
			t.Fatalf("no server: %d %s", code, errs)
		}
	})
	t.Run("bench ledger --dir missing", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "missing")
		code, _, errs := run(t, "bench", "ledger", "--dir", dir)
		if code != cli.ExitUsage || !strings.Contains(errs, dir+": no such directory") || strings.Contains(errs, "sqlite") {
			t.Fatalf("bench ledger --dir missing: %d %s", code, errs)
		}
	})

	s := startServer(t, filepath.Join(t.TempDir(), "data"), "--dev", "--drill")
	t.Setenv("WARDEN_URL", s.URL)
	t.Run("recovery status", func(t *testing.T) {
		code, out, errs := run(t, "incident", "report", "--class", "integrity_violation", "--source", "fim", "--description", "d", "--json")
		if code != 0 {
			t.Fatalf("report: %d %s", code, errs)
		}
		var inc warden.Incident
		json.Unmarshal([]byte(out), &inc)
		code, out, _ = run(t, "recovery", "status")
		for _, want := range []string{"warden recovery ack " + inc.ID + " --operator NAME", "warden recovery reattest " + inc.ID} {
			if code != 0 || !strings.Contains(out, want) {
				t.Errorf("recovery status lacks %q: %d %s", want, code, out)
			}
		}
		if strings.Contains(out, "/api/v1") {
			t.Errorf("recovery status names the HTTP API: %s", out)
		}
		code, out, _ = run(t, "recovery", "ack", inc.ID, "--operator", "alice")
		if code != 0 || !strings.Contains(out, "still missing: re-attestation (warden recovery reattest "+inc.ID+")") {
			t.Errorf("ack: %d %s", code, out)
		}
	})
	for _, tc := range []struct{ name, args, want string }{
		{"escalate {}", `{}`, "to_profile is required."},
		{"escalate empty to_profile", `{"to_profile":"","escalation_type":"operator_request","reason":"x"}`, "to_profile is required."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errs := run(t, "tool", "escalate", tc.args)
			if code != cli.ExitFailure || errs != "warden: "+tc.want+" (invalid)\n" {
				t.Fatalf("%d %q, want %q", code, errs, tc.want)
			}
		})
	}
	t.Run("amount as a string", func(t *testing.T) {
		code, _, errs := run(t, "tool", "treasury_debit", `{"budget_id":"b","amount":"5","description":"x"}`)
		if want := `warden: Field "amount" must be a whole number, not a string. (invalid)` + "\n"; code != cli.ExitFailure || errs != want {
			t.Fatalf("%d %q, want %q", code, errs, want)
		}
	})
}

// TestIntegrityScanExitCode (issue 10, item 4): a scan that finds a
// violation exits 3 (a check found tampering), with the incident named; a
// clean scan exits 0.
func TestIntegrityScanExitCode(t *testing.T) {
	watched := t.TempDir()
	s := startServer(t, filepath.Join(t.TempDir(), "data"), "--dev", "--drill", "--integrity-root", watched)
	t.Setenv("WARDEN_URL", s.URL)
	file := filepath.Join(watched, "passwd")
	if err := os.WriteFile(file, []byte("root:x:0:0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := run(t, "integrity", "baseline", watched); code != 0 {
		t.Fatalf("baseline: %d %s", code, errs)
	}
	if code, out, errs := run(t, "integrity", "scan"); code != cli.ExitOK || !strings.HasPrefix(out, "clean:") {
		t.Fatalf("clean scan: %d %s %s", code, out, errs)
	}
	if err := os.WriteFile(file, []byte("root:x:0:0\nmallory:x:0:0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := run(t, "integrity", "scan")
	if code != cli.ExitVerify || !strings.HasPrefix(out, "VIOLATION:") || !strings.Contains(errs, "integrity violation") || !strings.Contains(errs, "INC-") {
		t.Fatalf("violation: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	code, out, _ = run(t, "integrity", "scan", "--json")
	if v := oneJSON(t, "integrity scan --json", out); code != cli.ExitVerify || v["clean"] != false {
		t.Fatalf("violation --json: exit %d: %v", code, v)
	}
}

// TestREADMEExitCodes: the README's exit code table lists exactly the
// codes the CLI exits with.
func TestREADMEExitCodes(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "| exit | meaning |")
	if !ok {
		t.Fatal("README has no exit code table (| exit | meaning |)")
	}
	var got []int
	for _, line := range strings.Split(section, "\n")[2:] {
		if !strings.HasPrefix(line, "| ") {
			break
		}
		n, err := strconv.Atoi(strings.TrimSpace(strings.Split(line, "|")[1]))
		if err != nil {
			t.Fatalf("README exit code row %q: %v", line, err)
		}
		got = append(got, n)
	}
	want := []int{cli.ExitOK, cli.ExitFailure, cli.ExitUsage, cli.ExitVerify, cli.ExitUnavailable}
	if !slices.Equal(got, want) {
		t.Fatalf("README exit codes %v, want %v (cli/cli.go)", got, want)
	}
}

// TestHelpTexts (issue 10, item 11): the help says what a newcomer needs.
func TestHelpTexts(t *testing.T) {
	help := func(args ...string) string {
		t.Helper()
		code, out, errs := run(t, append(args, "--help")...)
		if code != 0 {
			t.Fatalf("%v --help: %d %s", args, code, errs)
		}
		return out
	}
	out := help("incident", "report")
	for _, c := range warden.IncidentClasses {
		if !strings.Contains(out, c) {
			t.Errorf("incident report --help does not list class %s", c)
		}
	}
	out = help("tool")
	for _, tl := range governor.Tools() {
		if !strings.Contains(out, "  "+tl.Name+" (") {
			t.Errorf("tool --help does not list %s", tl.Name)
		}
	}
	if !strings.Contains(out, "arguments: budget_id, amount, description, [idempotency_key]") {
		t.Errorf("tool --help does not give treasury_debit's arguments:\n%s", out)
	}
	if out := help("approve"); !strings.Contains(out, "request_digest") || !strings.Contains(out, "warden escalate") {
		t.Errorf("approve --help does not say where the digest comes from:\n%s", out)
	}
	if out := help("recovery", "ack"); !regexp.MustCompile(`--operator string\s+.*\(required\)`).MatchString(out) {
		t.Errorf("recovery ack --help does not show --operator as required:\n%s", out)
	}
	if code, _, errs := run(t, "recovery", "ack", "INC-1", "--url", deadURL(t)); code != cli.ExitUsage || !strings.Contains(errs, `"operator"`) {
		t.Errorf("recovery ack without --operator: %d %s", code, errs)
	}
	if out := help("init"); !strings.Contains(out, "webhook.key") {
		t.Errorf("init --help does not name webhook.key:\n%s", out)
	}
}
