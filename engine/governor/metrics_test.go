package governor_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine/governor"
	"github.com/warden-sh/warden/wardentest"
)

// TestGovernorMetrics: active escalations by profile and every budget's
// remainder, as RefreshMetrics last read them.
func TestGovernorMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	env := wardentest.MustEnv(t, wardentest.Metrics(reg))
	ctx := t.Context()
	esc := func(p warden.Profile) string {
		return wardentest.Series("warden_escalations_active", "profile", string(p))
	}
	budget := func(id, cur string) string {
		return wardentest.Series("warden_budget_remaining", "budget", id, "currency", cur)
	}
	check := func(when string, want map[string]float64) {
		t.Helper()
		if err := env.Governor.RefreshMetrics(ctx); err != nil {
			t.Fatal(err)
		}
		got := wardentest.MustGather(t, reg)
		sub := map[string]float64{}
		for k := range want {
			if v, ok := got[k]; ok {
				sub[k] = v
			}
		}
		if d := cmp.Diff(want, sub); d != "" {
			t.Errorf("%s: metrics (-want +got):\n%s", when, d)
		}
	}
	check("empty", map[string]float64{esc(warden.ProfileOperator): 0, esc(warden.ProfileGuardian): 0, esc(warden.ProfileSovereign): 0})

	a, b := agent("agent-a"), agent("agent-b")
	mustEscalate(t, env, a, warden.ProfileOperator)
	top := mustEscalate(t, env, a, warden.ProfileGuardian)
	mustEscalate(t, env, b, warden.ProfileOperator)
	for _, c := range []governor.CreateBudgetRequest{
		{BudgetID: "b1", Name: "one", Allocated: 1000, Currency: "UNITS"},
		{BudgetID: "b2", Name: "two", Allocated: 50, Currency: "EUR"},
	} {
		if _, err := env.Governor.CreateBudget(ctx, a, c); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := env.Governor.Debit(ctx, a, governor.MoveRequest{BudgetID: "b1", Amount: 300, Description: "x"}); err != nil {
		t.Fatal(err)
	}
	check("escalated and spent", map[string]float64{
		esc(warden.ProfileOperator): 2, esc(warden.ProfileGuardian): 1, esc(warden.ProfilePhoenix): 0,
		budget("b1", "UNITS"): 700, budget("b2", "EUR"): 50,
	})

	if _, err := env.Governor.Deescalate(ctx, wardentest.AdminPrincipal, governor.DeescalateRequest{EscalationID: top.EscalationID, DeescalationType: string(warden.DeescalationOperatorRelease)}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Governor.Credit(ctx, wardentest.AdminPrincipal, governor.MoveRequest{BudgetID: "b2", Amount: 25, Description: "y"}); err != nil {
		t.Fatal(err)
	}
	check("de-escalated and credited", map[string]float64{
		esc(warden.ProfileOperator): 2, esc(warden.ProfileGuardian): 0,
		budget("b1", "UNITS"): 700, budget("b2", "EUR"): 75,
	})
}
