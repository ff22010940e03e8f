package cli_test

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warden-sh/warden/cli"
)

// TestGovernanceThroughTheCLI drives the ladder and the treasury with
// warden's own commands against a dev server.
func TestGovernanceThroughTheCLI(t *testing.T) {
	s := startServer(t, filepath.Join(t.TempDir(), "data"), "--dev")
	t.Setenv("WARDEN_URL", s.URL)
	ok := func(v any, args ...string) {
		t.Helper()
		code, out, errs := run(t, append(args, "--json")...)
		if code != 0 {
			t.Fatalf("warden %s: %d %s %s", strings.Join(args, " "), code, out, errs)
		}
		if v != nil {
			if err := json.Unmarshal([]byte(out), v); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
		}
	}
	var esc struct {
		Success      bool
		EscalationID string `json:"escalation_id"`
		ToProfile    string `json:"to_profile"`
	}
	ok(&esc, "escalate", "--to", "operator", "--reason", "maintenance window")
	if !esc.Success || esc.ToProfile != "operator" {
		t.Fatalf("escalate: %+v", esc)
	}
	code, _, errs := run(t, "escalate", "--to", "phoenix", "--type", "crisis_declared", "--reason", "x")
	if code != cli.ExitFailure || !strings.Contains(errs, "No escalation path from operator to phoenix") {
		t.Fatalf("skip level: %d %s", code, errs)
	}
	var active struct {
		ActiveCount int `json:"active_count"`
	}
	ok(&active, "escalations")
	if active.ActiveCount != 1 {
		t.Fatalf("active: %+v", active)
	}
	ok(nil, "budget", "create", "ops", "--allocated", "100", "--currency", "UNITS")
	code, _, errs = run(t, "budget", "debit", "ops", "--amount", "500")
	if code != cli.ExitFailure || !strings.Contains(errs, "insufficient") {
		t.Fatalf("over budget: %d %s", code, errs)
	}
	var bal struct{ Balance int64 }
	ok(nil, "budget", "debit", "ops", "--amount", "40", "--idempotency-key", "k")
	ok(nil, "budget", "debit", "ops", "--amount", "40", "--idempotency-key", "k")
	ok(&bal, "budget", "balance", "ops")
	if bal.Balance != 60 {
		t.Fatalf("balance %d", bal.Balance)
	}
	ok(nil, "decide", "--decision", "hold deploys", "--confidence", "0.7")
	code, _, errs = run(t, "tem", "--threat-id", "t1")
	if code != cli.ExitFailure || !strings.Contains(errs, "requires profile guardian") {
		t.Fatalf("tem at operator: %d %s", code, errs)
	}
	ok(nil, "guardian", "status")
	ok(nil, "deescalate", esc.EscalationID, "--type", "operator_release")
	ok(&active, "escalations")
	if active.ActiveCount != 0 {
		t.Fatalf("active after deescalate: %+v", active)
	}
	var hist struct{ Count int }
	ok(&hist, "escalations", "history")
	if hist.Count != 2 {
		t.Fatalf("history: %+v", hist)
	}
}
