package recorder_test

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine/recorder"
	"github.com/warden-sh/warden/wardentest"
)

// reportedDetail is the detail of an incident's incident_reported receipt.
func reportedDetail(t *testing.T, env *wardentest.Env, id string) map[string]any {
	t.Helper()
	rs := receiptsOf(t, env, warden.ReceiptIncidentReported, id)
	if len(rs) != 1 {
		t.Fatalf("%d incident_reported receipts for %s", len(rs), id)
	}
	var d map[string]any
	if len(rs[0].Detail) > 0 {
		if err := json.Unmarshal(rs[0].Detail, &d); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// TestReporterCannotDowngradeAnIncident: for a reporter the class's
// default severity is a floor. An unauthorized_access reported as low is
// recorded critical — so it needs re-attestation, as the issue's
// downgrade avoided — and its receipt says what was asked and why it was
// not applied; raising stays free. An operator may lower a severity only
// with a reason, which the receipt carries; without one the report is
// refused and the refusal receipted.
func TestReporterCannotDowngradeAnIncident(t *testing.T) {
	env := wardentest.MustEnv(t, wardentest.Drill)
	reporter := &warden.Principal{Name: "gw-reporter", Roles: []warden.Role{warden.RoleReporter}, Source: "gw"}

	inc := env.MustReport(t, reporter, recorder.ReportRequest{Class: warden.ClassUnauthorizedAccess, Severity: "low", Source: "gw", Description: "vault opened"})
	if inc.Severity != warden.SeverityCritical {
		t.Fatalf("reporter's low unauthorized_access recorded %s, want critical (the class default)", inc.Severity)
	}
	if req := env.MustRequirement(t, inc.ID); !req.RequireReattest {
		t.Fatalf("floored incident's requirement %+v: re-attestation missing", req)
	}
	want := map[string]any{"severity_floor": map[string]any{"requested": "low", "applied": "critical",
		"rule": "a reporter may raise class unauthorized_access's default severity (critical), never lower it; only an operator may"}}
	if d := cmp.Diff(want, reportedDetail(t, env, inc.ID)); d != "" {
		t.Fatalf("floored report's receipt detail (-want +got):\n%s", d)
	}
	raised := env.MustReport(t, reporter, recorder.ReportRequest{Class: warden.ClassToolCallBurst, Severity: "high", Source: "gw", Description: "burst"})
	if raised.Severity != warden.SeverityHigh || reportedDetail(t, env, raised.ID) != nil {
		t.Fatalf("raised report: %s %v", raised.Severity, reportedDetail(t, env, raised.ID))
	}

	// A reporter that also holds the operator role is an operator.
	operator := &warden.Principal{Name: "ops", Roles: []warden.Role{warden.RoleReporter, warden.RoleOperator}, Source: "gw"}
	before := len(env.MustReceipts(t, warden.ReceiptFilter{Type: warden.ReceiptIncidentDenied}))
	_, err := env.Recorder.ReportIncident(t.Context(), operator, recorder.ReportRequest{Class: warden.ClassUnauthorizedAccess, Severity: "low", Source: "gw", Description: "false alarm"})
	if warden.ErrorCode(err) != warden.EINVALID || warden.ErrorMessage(err) != "Severity low is below class unauthorized_access's default (critical): an operator may lower it only with a severity_reason saying why." {
		t.Fatalf("operator lowering without a reason: %v", err)
	}
	if n := len(env.MustReceipts(t, warden.ReceiptFilter{Type: warden.ReceiptIncidentDenied})); n != before+1 {
		t.Fatal("refused lowering not receipted")
	}
	if st := env.MustStats(t); st.TotalIncidents != 2 {
		t.Fatalf("%d incidents after the refusal, want 2", st.TotalIncidents)
	}
	lowered := env.MustReport(t, operator, recorder.ReportRequest{Class: warden.ClassUnauthorizedAccess, Severity: "low", SeverityReason: "badge reader test, no access",
		Source: "gw", Description: "false alarm"})
	if lowered.Severity != warden.SeverityLow {
		t.Fatalf("operator's lowered report recorded %s", lowered.Severity)
	}
	want = map[string]any{"severity_lowered": map[string]any{"from": "critical", "to": "low", "by": "ops", "reason": "badge reader test, no access"}}
	if d := cmp.Diff(want, reportedDetail(t, env, lowered.ID)); d != "" {
		t.Fatalf("lowered report's receipt detail (-want +got):\n%s", d)
	}
}
