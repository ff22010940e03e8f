package engine_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine"
	"github.com/warden-sh/warden/engine/governor"
	"github.com/warden-sh/warden/engine/recorder"
	"github.com/warden-sh/warden/engine/stack"
	"github.com/warden-sh/warden/wardentest"
)

// TestReceiptsMetricFollowsTheLog: warden_receipts_written_total grows
// exactly as the log does, scroll by scroll, across a mix of operations:
// reports with containment and requirements, latch refusals, receipted
// and rate-limited denials and auth failures and their flushed counts,
// credentials, the treasury, the ladder, a policy reload, a ceremony
// step, and operations that fail or write nothing.
func TestReceiptsMetricFollowsTheLog(t *testing.T) {
	reg := prometheus.NewRegistry()
	env := wardentest.MustEnv(t, wardentest.Metrics(reg), func(c *stack.Config) {
		c.Core.AuthFailureBurst, c.Core.DenialBurst = 2, 2
	})
	ctx := context.Background()
	admin, agent := wardentest.AdminPrincipal, &warden.Principal{Name: "agent-1", Roles: []warden.Role{warden.RoleRead}}
	check := func(step string) {
		t.Helper()
		var head *warden.LogHead
		if err := env.Store.View(ctx, func(tx warden.ReadTx) (err error) {
			head, err = tx.Head()
			return err
		}); err != nil {
			t.Fatal(err)
		}
		samples := wardentest.MustGather(t, reg)
		if got := wardentest.SumMetric(samples, "warden_receipts_written_total"); got != float64(head.Size) {
			t.Errorf("after %s: the metric counts %v receipts, the log holds %d", step, got, head.Size)
		}
		for _, s := range warden.Scrolls {
			if got, want := samples[wardentest.Series("warden_receipts_written_total", "scroll", s)], head.Scrolls[s].Size; got != float64(want) {
				t.Errorf("after %s: scroll %s: the metric counts %v, the log holds %d", step, s, got, want)
			}
		}
	}
	must := func(step string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		check(step)
	}
	refused := func(step string, err error, code string) {
		t.Helper()
		if warden.ErrorCode(err) != code {
			t.Fatalf("%s: got %v, want %s", step, err, code)
		}
		check(step)
	}
	check("bootstrap")

	_, err := env.Recorder.ReportIncident(ctx, admin, recorder.ReportRequest{Class: warden.ClassPromptInjection, Severity: "critical", Source: "s", Description: "d"})
	must("a critical report (its requirement in the same transaction)", err)
	latched, err := env.Recorder.ReportIncident(ctx, admin, recorder.ReportRequest{Class: warden.ClassIntegrityViolation, Source: "fim", Description: "d"})
	must("a latched report whose containment fails (no actuator)", err)
	_, err = env.Recorder.ResolveIncident(ctx, admin, latched.ID)
	refused("resolving a latched incident (a denial)", err, warden.ECONFLICT)
	_, err = env.Recorder.ResolveIncident(ctx, admin, "INC-nope")
	refused("resolving an unknown incident (no receipt)", err, warden.ENOTFOUND)
	_, err = env.Recorder.RecoveryAck(ctx, admin, recorder.AckRequest{IncidentID: latched.ID, Operator: "ops"})
	must("a recovery acknowledgment", err)

	for i := range 5 {
		env.Core.RecordAuthFailure(ctx, engine.AuthFailure{Status: 401, Code: warden.EUNAUTHORIZED, Reason: "no", Method: "GET", Path: fmt.Sprint("/", i), Remote: "127.0.0.1"})
	}
	check("auth failures past their burst")

	_, err = env.Core.AddCredential(ctx, admin, engine.CredentialSpec{Name: "bot", Roles: []warden.Role{warden.RoleRead}})
	must("a credential", err)
	_, err = env.Core.RevokeCredential(ctx, admin, "bot")
	must("its revocation", err)

	_, err = env.Governor.CreateBudget(ctx, agent, governor.CreateBudgetRequest{BudgetID: "b1", Name: "B", Allocated: 100, Currency: "UNITS"})
	must("a budget", err)
	_, err = env.Governor.Debit(ctx, agent, governor.MoveRequest{BudgetID: "b1", Amount: 60, Description: "ok"})
	must("a debit", err)
	for range 5 {
		_, err = env.Governor.Debit(ctx, agent, governor.MoveRequest{BudgetID: "b1", Amount: 60, Description: "too much"})
		refused("an overdraft (denials past their burst)", err, warden.EINSUFFICIENT)
	}
	esc, err := env.Governor.Escalate(ctx, agent, governor.EscalateRequest{ToProfile: "operator", EscalationType: string(warden.EscalationOperatorRequest), Reason: "test"})
	must("an escalation", err)
	_, err = env.Governor.Deescalate(ctx, admin, governor.DeescalateRequest{EscalationID: esc.EscalationID, DeescalationType: string(warden.DeescalationOperatorRelease)})
	must("its de-escalation", err)
	_, err = env.Recorder.ReloadPolicy(ctx, admin)
	must("a policy reload", err)
	must("flushing the suppressed counts", env.Core.FlushSuppressed(ctx))
	_, err = env.Core.Checkpoint(ctx)
	must("a checkpoint (no receipt)", err)

	failed := errors.New("fails after appending")
	err = env.Core.Update(ctx, "test.fail", func(tx warden.Tx) error {
		if _, err := tx.Append(env.Core.Draft(warden.ReceiptDecision, map[string]any{})); err != nil {
			return err
		}
		return failed
	})
	if !errors.Is(err, failed) {
		t.Fatal(err)
	}
	check("a failed operation (rolled back)")
}

// TestLedgerStateMetric: warden_ledger_verification_state is 1 for the
// state Core.Ledger is in and 0 for the others, with the check's progress;
// warden_storage_degraded is 0 while writes work (TestServeOnAFullDisk
// sees it 1 on a full disk).
func TestLedgerStateMetric(t *testing.T) {
	reg := prometheus.NewRegistry()
	env := wardentest.MustEnv(t, wardentest.Metrics(reg))
	state := func(s string) string { return wardentest.Series("warden_ledger_verification_state", "state", s) }
	check := func(when, current string, checked float64) {
		t.Helper()
		got := wardentest.MustGather(t, reg)
		for _, s := range []string{warden.LedgerUnchecked, warden.LedgerVerifying, warden.LedgerVerified, warden.LedgerTampered, warden.LedgerAccepted} {
			want := 0.0
			if s == current {
				want = 1
			}
			if v, ok := got[state(s)]; !ok || v != want {
				t.Errorf("%s: %s = %v (present %v), want %v", when, state(s), v, ok, want)
			}
		}
		if got["warden_ledger_verification_checked_receipts"] != checked || got["warden_ledger_verification_total_receipts"] != checked {
			t.Errorf("%s: checked %v of %v receipts, want %v of %v", when, got["warden_ledger_verification_checked_receipts"],
				got["warden_ledger_verification_total_receipts"], checked, checked)
		}
		if v, ok := got["warden_storage_degraded"]; !ok || v != 0 {
			t.Errorf("%s: warden_storage_degraded = %v (present %v), want 0", when, v, ok)
		}
	}
	check("before the check", warden.LedgerUnchecked, 0)
	size := logSize(t, env)
	if err := env.Core.CheckAtStart(t.Context(), engine.StartupCheck{Projections: env.Projections()}); err != nil {
		t.Fatal(err)
	}
	if c := env.Core.Ledger(); c.State != warden.LedgerVerified {
		t.Fatalf("startup check: %+v", c)
	}
	check("after the check", warden.LedgerVerified, float64(size))
}
