package recorder_test

import (
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine/recorder"
	"github.com/warden-sh/warden/wardentest"
)

// TestRecorderMetrics: containment outcomes are counted per action as
// they are recorded; the open and latched incident gauges and the webhook
// backlog hold what RefreshMetrics last read (a scrape reads no store),
// every class and severity present from the start.
func TestRecorderMetrics(t *testing.T) {
	target, hook := wardentest.MustTarget(t), wardentest.MustTarget(t)
	pol := wardentest.TargetPolicy(target.URL)
	pol.Alerting.Webhooks = []warden.Webhook{{URL: hook.URL, Events: []string{warden.EventContainment}}}
	reg := prometheus.NewRegistry()
	env := wardentest.MustEnv(t, wardentest.Containment(pol), wardentest.Metrics(reg))
	ctx := t.Context()

	burst := env.MustReport(t, nil, recorder.ReportRequest{Class: warden.ClassToolCallBurst, Source: "a", Description: "d"})
	target.Respond("*", http.StatusInternalServerError)
	violation := env.MustReport(t, nil, recorder.ReportRequest{Class: warden.ClassIntegrityViolation, Source: "fim", Description: "d"})
	alert := env.MustReport(t, nil, recorder.ReportRequest{Class: warden.ClassForbiddenAirlockRequest, Source: "airlock", Description: "d"})
	if _, err := env.Recorder.ResolveIncident(ctx, wardentest.AdminPrincipal, burst.ID); err != nil {
		t.Fatal(err)
	}
	if burst.State != warden.StateContained || violation.State != warden.StateContainmentFailed || alert.State != warden.StateOpen {
		t.Fatalf("states %s %s %s", burst.State, violation.State, alert.State)
	}

	open := func(class string, sev warden.Severity) string {
		return wardentest.Series("warden_incidents_open", "class", class, "severity", string(sev))
	}
	latched := func(class string, sev warden.Severity) string {
		return wardentest.Series("warden_incidents_latched", "class", class, "severity", string(sev))
	}
	actions := func(action, outcome string) string {
		return wardentest.Series("warden_containment_actions_total", "action", action, "outcome", outcome)
	}
	got := wardentest.MustGather(t, reg)
	for _, class := range warden.IncidentClasses {
		for _, sev := range warden.Severities {
			if v, ok := got[open(class, sev)]; !ok || v != 0 {
				t.Errorf("before the first refresh %s = %v (present %v), want 0", open(class, sev), v, ok)
			}
		}
	}
	want := map[string]float64{
		actions(warden.ActionFreezeAgent, "success"):        1,
		actions(warden.ActionFreezeAgent, "failure"):        1,
		actions(warden.ActionDisableAirlock, "failure"):     1,
		actions(warden.ActionForceVaultRelock, "failure"):   1,
		actions(warden.ActionLogAlert, "success"):           1,
		actions(warden.ActionQuarantineModel, "success"):    0,
		actions(warden.ActionFreezeAgent, "dry_run"):        0,
		"warden_webhook_deliveries_pending":                 0, // not refreshed yet
		open(warden.ClassIntegrityViolation, "critical"):    0,
		latched(warden.ClassIntegrityViolation, "critical"): 0,
	}
	diff(t, "before the first refresh", want, got)

	if err := env.Recorder.RefreshMetrics(ctx); err != nil {
		t.Fatal(err)
	}
	pending := 0
	for _, d := range env.MustDeliveries(t, "") {
		if d.Status == warden.DeliveryPending {
			pending++
		}
	}
	if pending == 0 {
		t.Fatal("no webhook delivery pending")
	}
	for k, v := range map[string]float64{
		"warden_webhook_deliveries_pending":                    float64(pending),
		open(warden.ClassIntegrityViolation, "critical"):       1,
		latched(warden.ClassIntegrityViolation, "critical"):    1,
		open(warden.ClassForbiddenAirlockRequest, "medium"):    1,
		latched(warden.ClassForbiddenAirlockRequest, "medium"): 0,
		open(warden.ClassToolCallBurst, "medium"):              0, // resolved
	} {
		want[k] = v
	}
	diff(t, "after a refresh", want, wardentest.MustGather(t, reg))

	// Drill mode: recorded, not run.
	dreg := prometheus.NewRegistry()
	drill := wardentest.MustEnv(t, wardentest.Containment(wardentest.TargetPolicy(target.URL)), wardentest.Drill, wardentest.Metrics(dreg))
	drill.MustReport(t, nil, recorder.ReportRequest{Class: warden.ClassToolCallBurst, Source: "a", Description: "d"})
	diff(t, "drill", map[string]float64{
		actions(warden.ActionFreezeAgent, "dry_run"): 1,
		actions(warden.ActionFreezeAgent, "success"): 0,
	}, wardentest.MustGather(t, dreg))
}

// diff reports the series of want whose value in got differs.
func diff(t *testing.T, when string, want, got map[string]float64) {
	t.Helper()
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
