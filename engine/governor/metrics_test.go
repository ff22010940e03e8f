package governor_test

import (
	"fmt"
	"strings"
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
	budget := func(cur string) string {
		return wardentest.Series("warden_budget_remaining", "currency", cur)
	}
	budgets := func(cur string) string {
		return wardentest.Series("warden_budgets", "currency", cur)
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
		{BudgetID: "b3", Name: "three", Allocated: 10, Currency: "EUR"},
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
		budget("UNITS"): 700, budget("EUR"): 60, budgets("UNITS"): 1, budgets("EUR"): 2,
	})

	if _, err := env.Governor.Deescalate(ctx, wardentest.AdminPrincipal, governor.DeescalateRequest{EscalationID: top.EscalationID, DeescalationType: string(warden.DeescalationOperatorRelease)}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Governor.Credit(ctx, wardentest.AdminPrincipal, governor.MoveRequest{BudgetID: "b2", Amount: 25, Description: "y"}); err != nil {
		t.Fatal(err)
	}
	check("de-escalated and credited", map[string]float64{
		esc(warden.ProfileOperator): 2, esc(warden.ProfileGuardian): 0,
		budget("UNITS"): 700, budget("EUR"): 85,
	})

	// Budgets in many currencies (any agent may make them) show as the
	// MaxBudgetCurrencies with the most budgets and "other"; no budget is
	// named.
	for i := range governor.MaxBudgetCurrencies + 5 {
		if _, err := env.Governor.CreateBudget(ctx, a, governor.CreateBudgetRequest{BudgetID: fmt.Sprint("x", i), Name: "x", Allocated: 1, Currency: fmt.Sprintf("C%02d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := env.Governor.RefreshMetrics(ctx); err != nil {
		t.Fatal(err)
	}
	got := wardentest.MustGather(t, reg)
	series, other := 0, 0.0
	for k, v := range got {
		if strings.HasPrefix(k, "warden_budgets{") {
			series++
		}
		if k == budgets("other") {
			other = v
		}
		if strings.Contains(k, "budget=") {
			t.Errorf("a budget is named on /metrics: %s", k)
		}
	}
	// 23 currencies: EUR (2 budgets) first, then the 1-budget ones by
	// name, C00…C14; C15…C20 and UNITS are summed as "other".
	if series != governor.MaxBudgetCurrencies+1 || other != 7 || got[budgets("EUR")] != 2 || got[budget("UNITS")] != 0 {
		t.Errorf("%d currency series, %v budgets in \"other\", EUR %v, UNITS %v; want %d, 7, 2, none",
			series, other, got[budgets("EUR")], got[budget("UNITS")], governor.MaxBudgetCurrencies+1)
	}
}
