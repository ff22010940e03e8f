package cli_test

import (
	"io"
	"net/http"
	"path/filepath"
	"testing"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/wardentest"
)

// scrape returns the samples of a server's /metrics.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d %v", resp.StatusCode, err)
	}
	return wardentest.ParseMetrics(t, string(body))
}

// TestServeMetrics: `warden serve` exposes what an operator graphs, on
// its registry: the startup verification state, storage degradation,
// containment outcomes, open and latched incidents, the webhook backlog,
// active escalations and budgets (refreshed by its metrics loop), and
// warden_receipts_written_total, which sums to the log's size.
func TestServeMetrics(t *testing.T) {
	targets := newTargets(t)
	hooks := newTargets(t)
	targets.fail["/api/v1/vault/relock"] = http.StatusInternalServerError
	policy := policyFile(t, targets.URL,
		"  # webhooks:\n  #   - url: https://alerts.example.internal/warden\n  #     events: [containment, escalation, recovery]",
		"  webhooks:\n    - url: "+hooks.URL+"/hook\n      events: [containment]")
	hooks.fail["/hook"] = http.StatusServiceUnavailable // deliveries stay pending, retried
	s := startServer(t, filepath.Join(t.TempDir(), "data"), "--dev", "--policy", policy, "--metrics-interval", "20ms", "--integrity-interval", "0")
	m := scrape(t, s.URL)
	for k, want := range map[string]float64{
		wardentest.Series("warden_ledger_verification_state", "state", warden.LedgerVerified): 1,
		wardentest.Series("warden_ledger_verification_state", "state", warden.LedgerTampered): 0,
		"warden_storage_degraded": 0,
		wardentest.Series("warden_incidents_open", "class", warden.ClassIntegrityViolation, "severity", "critical"): 0,
		"warden_webhook_deliveries_pending": 0,
	} {
		if v, ok := m[k]; !ok || v != want {
			t.Errorf("at start %s = %v (present %v), want %v", k, v, ok, want)
		}
	}

	var inc warden.Incident
	if st := httpJSON(t, "POST", s.URL+"/api/v1/incidents/report", "", map[string]any{"class": warden.ClassIntegrityViolation, "source": "fim", "description": "d"}, &inc); st != 201 {
		t.Fatalf("report: %d", st)
	}
	if inc.State != warden.StateContainmentFailed {
		t.Fatalf("containment: %s %+v", inc.State, inc.ContainmentResults)
	}
	if st := httpJSON(t, "POST", s.URL+"/api/v1/governance/escalate", "", map[string]any{"to_profile": "operator", "escalation_type": "operator_request", "reason": "metrics"}, nil); st != 200 {
		t.Fatalf("escalate: %d", st)
	}
	if st := httpJSON(t, "POST", s.URL+"/api/v1/governance/treasury_create_budget", "", map[string]any{"budget_id": "ops", "name": "Ops", "allocated": 500, "currency": "EUR"}, nil); st != 200 {
		t.Fatalf("budget: %d", st)
	}
	if st := httpJSON(t, "POST", s.URL+"/api/v1/incidents/resolve", "", map[string]any{"id": inc.ID}, nil); st != 409 {
		t.Fatalf("resolving a latched incident: %d", st) // a denial, receipted
	}

	want := map[string]float64{
		wardentest.Series("warden_incidents_open", "class", warden.ClassIntegrityViolation, "severity", "critical"):          1,
		wardentest.Series("warden_incidents_latched", "class", warden.ClassIntegrityViolation, "severity", "critical"):       1,
		wardentest.Series("warden_containment_actions_total", "action", warden.ActionFreezeAgent, "outcome", "success"):      1,
		wardentest.Series("warden_containment_actions_total", "action", warden.ActionDisableAirlock, "outcome", "success"):   1,
		wardentest.Series("warden_containment_actions_total", "action", warden.ActionForceVaultRelock, "outcome", "failure"): 1,
		wardentest.Series("warden_escalations_active", "profile", "operator"):                                                1,
		wardentest.Series("warden_budget_remaining", "currency", "EUR"):                                                      500,
		"warden_webhook_deliveries_pending": 1,
	}
	var last map[string]float64
	var receipts float64
	waitFor(t, "the metrics loop and the log to agree", func() bool {
		last = scrape(t, s.URL)
		var h struct{ Receipts uint64 }
		httpJSON(t, "GET", s.URL+"/health", "", nil, &h)
		receipts = float64(h.Receipts)
		for k, v := range want {
			if last[k] != v {
				return false
			}
		}
		return wardentest.SumMetric(last, "warden_receipts_written_total") == receipts
	})
	if receipts < 8 {
		t.Errorf("only %v receipts", receipts)
	}
}
