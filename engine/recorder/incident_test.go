package recorder_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/contain"
	"github.com/warden-sh/warden/engine"
	"github.com/warden-sh/warden/engine/recorder"
	"github.com/warden-sh/warden/engine/stack"
	"github.com/warden-sh/warden/wardentest"
)

// incidentReceipt is the body every incident receipt carries.
type incidentReceipt struct {
	Incident warden.Incident `json:"incident"`
	// IncidentID names the incident in receipts that sit beside the one
	// carrying its snapshot (severity raised, recovery required).
	IncidentID string          `json:"incident_id"`
	Principal  string          `json:"principal"`
	Detail     json.RawMessage `json:"detail"`
	Tags       []string        `json:"-"`
}

// receiptsOf returns the receipts of type typ about incident id, oldest first.
func receiptsOf(t *testing.T, env *wardentest.Env, typ, id string) []incidentReceipt {
	t.Helper()
	var out []incidentReceipt
	for _, r := range env.MustReceipts(t, warden.ReceiptFilter{Scroll: warden.ScrollIncident, Type: typ}) {
		var b incidentReceipt
		if err := json.Unmarshal(r.Body, &b); err != nil {
			t.Fatalf("receipt %d: %v", r.Seq, err)
		}
		if b.Incident.ID == id || b.IncidentID == id {
			b.Tags = r.Tags
			out = append(out, b)
		}
	}
	return out
}

func allIncidents(t *testing.T, env *wardentest.Env) []*warden.Incident {
	t.Helper()
	var out []*warden.Incident
	if err := env.Recorder.Incidents(context.Background(), warden.IncidentFilter{}, func(i *warden.Incident) error {
		out = append(out, i)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func allRequirements(t *testing.T, env *wardentest.Env) []*warden.RecoveryRequirement {
	t.Helper()
	var out []*warden.RecoveryRequirement
	if err := env.Store.View(context.Background(), func(tx warden.ReadTx) error {
		return tx.Requirements(false, func(r *warden.RecoveryRequirement) error {
			out = append(out, r)
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

var idPattern = regexp.MustCompile(`^INC-\d{8}-\d{6}-\d{4,}$`)

// wantID is the id an incident numbered n reported at now must have.
func wantID(now time.Time, n uint64) string {
	return fmt.Sprintf("INC-%s-%04d", now.UTC().Format("20060102-150405"), n)
}

// TestIncidentIDsSurviveRestart: ids are INC-YYYYMMDD-HHMMSS-NNNN from the
// injected clock and a counter that only grows; closing the SQLite file and
// opening it again under a new engine keeps incidents, requirements, stats
// and the counter.
func TestIncidentIDsSurviveRestart(t *testing.T) {
	target := wardentest.MustTarget(t)
	pol := wardentest.TargetPolicy(target.URL)
	env := wardentest.MustEnv(t, wardentest.Containment(pol))

	reports := []recorder.ReportRequest{
		{Class: warden.ClassAttestationFailure, Source: "tpm", Description: "quote mismatch"},
		{Class: warden.ClassToolCallBurst, Source: "agent", Description: "burst"},
		{Class: warden.ClassManifestMismatch, Source: "registry", Description: "hash", Evidence: map[string]string{"model_path": "/m/x.gguf"}},
		{Class: warden.ClassForbiddenAirlockRequest, Source: "airlock", Description: "evil.example"},
		{Class: warden.ClassPromptInjection, Source: "agent", Description: "ignore previous", Severity: "low", SeverityReason: "test"},
	}
	seen := map[string]bool{}
	var last uint64
	for i, req := range reports {
		env.Clock.Advance(time.Duration(i) * 997 * time.Millisecond)
		inc := env.MustReport(t, nil, req)
		if !idPattern.MatchString(inc.ID) || inc.ID != wantID(env.Clock.Now(), inc.Number) {
			t.Fatalf("id %q (number %d) at %s, want %q", inc.ID, inc.Number, env.Clock.Now(), wantID(env.Clock.Now(), inc.Number))
		}
		if inc.Number != last+1 || seen[inc.ID] {
			t.Fatalf("incident %d: number %d after %d, id %s seen before: %v", i, inc.Number, last, inc.ID, seen[inc.ID])
		}
		seen[inc.ID], last = true, inc.Number
	}
	// Same second, same clock: still unique.
	a := env.MustReport(t, nil, reports[1])
	b := env.MustReport(t, nil, reports[1])
	if a.ID == b.ID || b.Number != a.Number+1 {
		t.Fatalf("same-second ids %s %s", a.ID, b.ID)
	}
	last = b.Number

	incidents, reqs, stats := allIncidents(t, env), allRequirements(t, env), env.MustStats(t)
	if len(reqs) != 2 || stats.TotalIncidents != int64(last) {
		t.Fatalf("before restart: %d requirements, stats %+v", len(reqs), stats)
	}

	env = env.MustReopen(t, wardentest.Containment(pol))
	if d := cmp.Diff(incidents, allIncidents(t, env)); d != "" {
		t.Errorf("incidents changed across restart (-before +after):\n%s", d)
	}
	if d := cmp.Diff(reqs, allRequirements(t, env)); d != "" {
		t.Errorf("requirements changed across restart (-before +after):\n%s", d)
	}
	if d := cmp.Diff(stats, env.MustStats(t)); d != "" {
		t.Errorf("stats changed across restart (-before +after):\n%s", d)
	}
	env.Clock.Advance(time.Hour)
	next := env.MustReport(t, nil, reports[3])
	if next.Number != last+1 || next.ID != wantID(env.Clock.Now(), last+1) || seen[next.ID] {
		t.Fatalf("after restart: id %s number %d, want number %d", next.ID, next.Number, last+1)
	}
	// The reopened engine still enforces the latch of the old incident.
	if _, err := env.Recorder.ResolveIncident(t.Context(), wardentest.AdminPrincipal, incidents[0].ID); warden.ErrorCode(err) != warden.ECONFLICT {
		t.Fatalf("resolve latched incident after restart: %v", err)
	}
}

// TestSeverityWindows drives each escalation rule of the runbook's table
// with the injected clock: threshold-1 events inside the window do not
// raise; the threshold-th does; events just outside and exactly at the
// window's edge do not count; severity never lowers.
func TestSeverityWindows(t *testing.T) {
	// The runbook's table, written out so a change to the rules fails here.
	table := []struct {
		class     string
		threshold int
		window    time.Duration
		def, to   warden.Severity
	}{
		{warden.ClassPromptInjection, 3, 5 * time.Minute, warden.SeverityHigh, warden.SeverityCritical},
		{warden.ClassToolCallBurst, 5, time.Minute, warden.SeverityMedium, warden.SeverityHigh},
		{warden.ClassPolicyBypassAttempt, 2, 10 * time.Minute, warden.SeverityHigh, warden.SeverityCritical},
		{warden.ClassForbiddenAirlockRequest, 5, 5 * time.Minute, warden.SeverityMedium, warden.SeverityHigh},
		{warden.ClassModelBehaviorAnomaly, 3, 15 * time.Minute, warden.SeverityHigh, warden.SeverityCritical},
	}
	for _, tc := range table {
		t.Run(tc.class, func(t *testing.T) {
			target := wardentest.MustTarget(t)
			hook := wardentest.MustTarget(t)
			pol := wardentest.TargetPolicy(target.URL)
			pol.Alerting.Webhooks = []warden.Webhook{{URL: hook.URL + "/escalations", Events: []string{warden.EventEscalation}}}
			env := wardentest.MustEnv(t, wardentest.Containment(pol))
			report := func(sev warden.Severity) *warden.Incident {
				t.Helper()
				return env.MustReport(t, nil, recorder.ReportRequest{Class: tc.class, Source: "agent-1", Severity: string(sev), SeverityReason: "test",
					Description: "event", Evidence: map[string]string{"model_path": "/models/m.gguf"}})
			}
			notRaised := func(inc *warden.Incident, want warden.Severity) {
				t.Helper()
				if inc.Severity != want || inc.EscalatedFrom != "" {
					t.Fatalf("%s: severity %s escalated from %q, want %s and not raised", inc.ID, inc.Severity, inc.EscalatedFrom, want)
				}
				if n := len(receiptsOf(t, env, warden.ReceiptSeverityRaised, inc.ID)); n != 0 {
					t.Fatalf("%s: %d incident_severity_raised receipts for an incident not raised", inc.ID, n)
				}
				for _, d := range env.MustDeliveries(t, inc.ID) {
					if d.Event == warden.EventEscalation {
						t.Fatalf("%s: escalation webhook enqueued for an incident not raised", inc.ID)
					}
				}
			}
			raised := func(inc *warden.Incident, from warden.Severity) {
				t.Helper()
				if inc.Severity != tc.to || inc.EscalatedFrom != from {
					t.Fatalf("%s: severity %s escalated from %q, want %s from %s", inc.ID, inc.Severity, inc.EscalatedFrom, tc.to, from)
				}
				if got := env.MustIncident(t, inc.ID); got.Severity != tc.to || got.EscalatedFrom != from {
					t.Fatalf("stored %s: %s from %q", inc.ID, got.Severity, got.EscalatedFrom)
				}
				rs := receiptsOf(t, env, warden.ReceiptSeverityRaised, inc.ID)
				if len(rs) != 1 {
					t.Fatalf("%s: %d incident_severity_raised receipts, want 1", inc.ID, len(rs))
				}
				var detail struct {
					From, To      warden.Severity
					Threshold     int
					WindowSeconds int `json:"window_seconds"`
				}
				if err := json.Unmarshal(rs[0].Detail, &detail); err != nil {
					t.Fatal(err)
				}
				if detail.From != from || detail.To != tc.to || detail.Threshold != tc.threshold || detail.WindowSeconds != int(tc.window/time.Second) {
					t.Fatalf("%s: raise receipt detail %+v", inc.ID, detail)
				}
				var hooks int
				for _, d := range env.MustDeliveries(t, inc.ID) {
					if d.Event == warden.EventEscalation {
						hooks++
						if d.URL != hook.URL+"/escalations" || d.Status != warden.DeliveryPending {
							t.Fatalf("escalation delivery %+v", d)
						}
					}
				}
				if hooks != 1 {
					t.Fatalf("%s: %d escalation deliveries, want 1", inc.ID, hooks)
				}
				req := env.MustRequirement(t, inc.ID)
				if tc.to != warden.SeverityCritical {
					if req != nil {
						t.Fatalf("%s raised to %s got a recovery requirement %+v", inc.ID, tc.to, req)
					}
					return
				}
				if req == nil || !req.RequireAck || !req.RequireReattest || req.RecoveryComplete {
					t.Fatalf("%s raised to critical: requirement %+v, want ack and re-attestation", inc.ID, req)
				}
				before := env.MustIncident(t, inc.ID)
				_, err := env.Recorder.ResolveIncident(t.Context(), wardentest.AdminPrincipal, inc.ID)
				if warden.ErrorCode(err) != warden.ECONFLICT || !strings.Contains(warden.ErrorMessage(err), "re-attestation") {
					t.Fatalf("resolving %s raised to critical: %v, want a latch conflict naming re-attestation", inc.ID, err)
				}
				if d := cmp.Diff(before, env.MustIncident(t, inc.ID)); d != "" {
					t.Fatalf("refused resolve changed the incident:\n%s", d)
				}
			}

			// Two old events: one just outside the window, one exactly on
			// its edge by the time the next events arrive.
			report("")
			env.Clock.Advance(time.Nanosecond)
			report("")
			env.Clock.Advance(tc.window) // old ones now at now-window-1ns and now-window
			for i := 0; i < tc.threshold-1; i++ {
				notRaised(report(""), tc.def)
			}
			// The threshold-th event inside the window is raised.
			inc := report("")
			raised(inc, tc.def)
			// Still inside (the window's events are window-1ns old): a
			// low report is raised too.
			env.Clock.Advance(tc.window - time.Nanosecond)
			raised(report(warden.SeverityLow), warden.SeverityLow)
			// Severity never lowers: an explicitly critical report in a hot
			// window stays critical and is not "raised".
			notRaised(report(warden.SeverityCritical), warden.SeverityCritical)
			// One nanosecond later the first batch has left the window.
			env.Clock.Advance(time.Nanosecond)
			if tc.threshold > 3 {
				notRaised(report(""), tc.def) // 2 recent + this one < threshold
			} else {
				raised(report(""), tc.def) // the 2 still inside count
			}
		})
	}
}

// TestContainmentAgainstRealTargets runs containment against a real HTTP
// target answering 200, 500, hanging, missing, and in drill mode.
func TestContainmentAgainstRealTargets(t *testing.T) {
	type targetBody struct {
		Action     string `json:"action"`
		Reason     string `json:"reason"`
		IncidentID string `json:"incident_id"`
		ModelPath  string `json:"model_path"`
		ModelName  string `json:"model_name"`
	}
	attestation := recorder.ReportRequest{Class: warden.ClassAttestationFailure, Source: "tpm", Description: "PCR7 mismatch"}
	cases := []struct {
		name      string
		req       recorder.ReportRequest
		setup     func(tg *wardentest.Target, pol *warden.ContainmentPolicy)
		drill     bool
		state     warden.IncidentState
		calls     []string          // requests the target must see, sorted
		errs      map[string]string // action → error substring ("" = success)
		latched   bool
		autoCount bool
	}{
		{
			name:    "all succeed",
			req:     attestation,
			state:   warden.StateContained,
			calls:   []string{"POST /api/v1/disable", "POST /api/v1/freeze", "POST /api/v1/vault/relock"},
			errs:    map[string]string{warden.ActionFreezeAgent: "", warden.ActionDisableAirlock: "", warden.ActionForceVaultRelock: ""},
			latched: true, autoCount: true,
		},
		{
			name:  "one target answers 500",
			req:   attestation,
			setup: func(tg *wardentest.Target, _ *warden.ContainmentPolicy) { tg.Respond(contain.PathDisable, 500) },
			state: warden.StateContainmentFailed,
			// 500 is transient: the default two retries are made.
			calls:   []string{"POST /api/v1/disable", "POST /api/v1/disable", "POST /api/v1/disable", "POST /api/v1/freeze", "POST /api/v1/vault/relock"},
			errs:    map[string]string{warden.ActionFreezeAgent: "", warden.ActionDisableAirlock: "HTTP 500", warden.ActionForceVaultRelock: ""},
			latched: true, autoCount: true,
		},
		{
			name: "one target hangs",
			req:  attestation,
			setup: func(tg *wardentest.Target, p *warden.ContainmentPolicy) {
				tg.Hang(contain.PathVaultRelock)
				p.Targets.Retries = new(int)
			},
			state:   warden.StateContainmentFailed,
			calls:   []string{"POST /api/v1/disable", "POST /api/v1/freeze", "POST /api/v1/vault/relock"},
			errs:    map[string]string{warden.ActionFreezeAgent: "", warden.ActionDisableAirlock: "", warden.ActionForceVaultRelock: "timed out"},
			latched: true, autoCount: true,
		},
		{
			name:    "no airlock target configured",
			req:     attestation,
			setup:   func(_ *wardentest.Target, p *warden.ContainmentPolicy) { p.Targets.Airlock = "" },
			state:   warden.StateContainmentFailed,
			calls:   []string{"POST /api/v1/freeze", "POST /api/v1/vault/relock"},
			errs:    map[string]string{warden.ActionFreezeAgent: "", warden.ActionDisableAirlock: "no airlock target configured", warden.ActionForceVaultRelock: ""},
			latched: true, autoCount: true,
		},
		{
			name:  "auto_contain false only alerts",
			req:   recorder.ReportRequest{Class: warden.ClassForbiddenAirlockRequest, Source: "airlock", Description: "exfil.example"},
			state: warden.StateOpen,
			errs:  map[string]string{warden.ActionLogAlert: ""},
		},
		{
			name: "quarantine sends the model from the evidence",
			req: recorder.ReportRequest{Class: warden.ClassManifestMismatch, Source: "registry", Description: "manifest hash",
				Evidence: map[string]string{"model_path": "/var/lib/models/llama-3.gguf", "model_name": "llama-3"}},
			state:   warden.StateContained,
			calls:   []string{"POST /api/v1/freeze", "POST /api/v1/quarantine"},
			errs:    map[string]string{warden.ActionQuarantineModel: "", warden.ActionFreezeAgent: ""},
			latched: true, autoCount: true,
		},
		{
			name:    "drill mode calls nothing",
			req:     attestation,
			drill:   true,
			state:   warden.StateContained,
			errs:    map[string]string{warden.ActionFreezeAgent: "", warden.ActionDisableAirlock: "", warden.ActionForceVaultRelock: ""},
			latched: true, autoCount: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tg := wardentest.MustTarget(t)
			pol := wardentest.TargetPolicy(tg.URL)
			if tc.setup != nil {
				tc.setup(tg, pol)
			}
			opts := []wardentest.Option{wardentest.Containment(pol), func(c *stack.Config) {
				act := c.Recorder.Actuator.(*contain.HTTPActuator)
				act.Token = func() (string, error) { return "target-token", nil }
			}}
			if tc.drill {
				opts = append(opts, wardentest.Drill, func(c *stack.Config) {
					c.Recorder.Actuator = &contain.DryRunActuator{Clock: c.Core.Clock, Logger: slog.New(slog.DiscardHandler)}
				})
			}
			env := wardentest.MustEnv(t, opts...)
			start := time.Now()
			inc := env.MustReport(t, nil, tc.req)
			if elapsed := time.Since(start); elapsed > 3*time.Second {
				t.Fatalf("containment took %s", elapsed)
			}
			stored := env.MustIncident(t, inc.ID)
			if d := cmp.Diff(inc, stored); d != "" {
				t.Fatalf("returned and stored incident differ:\n%s", d)
			}
			if inc.State != tc.state || inc.ContainmentPending || inc.AutoContained != tc.autoCount {
				t.Fatalf("state %s pending %v auto %v, want %s", inc.State, inc.ContainmentPending, inc.AutoContained, tc.state)
			}
			got := map[string]string{}
			for _, r := range inc.ContainmentResults {
				if r.CompletedAt == "" || r.Success != (r.Error == "") {
					t.Errorf("result %+v", r)
				}
				if r.DryRun != tc.drill {
					t.Errorf("result %s dry_run %v in drill %v", r.Action, r.DryRun, tc.drill)
				}
				got[r.Action] = r.Error
			}
			if len(got) != len(tc.errs) || len(inc.ContainmentResults) != len(tc.errs) {
				t.Fatalf("results %+v, want one per action of %v", inc.ContainmentResults, tc.errs)
			}
			for a, want := range tc.errs {
				if e, ok := got[a]; !ok || (want == "") != (e == "") || !strings.Contains(e, want) {
					t.Errorf("action %s: error %q, want %q", a, e, want)
				}
			}
			calls := tg.Paths()
			slices.Sort(calls)
			if d := cmp.Diff(tc.calls, calls); d != "" {
				t.Errorf("target calls (-want +got):\n%s", d)
			}
			for _, r := range tg.Requests() {
				var body targetBody
				if err := json.Unmarshal(r.Body, &body); err != nil {
					t.Fatal(err)
				}
				if body.IncidentID != inc.ID || body.Action == "" || !strings.Contains(body.Reason, inc.ID) ||
					r.Header.Get("Authorization") != "Bearer target-token" || r.Header.Get("Content-Type") != "application/json" {
					t.Errorf("target request %s %+v %v", r.Path, body, r.Header)
				}
				if r.Path == contain.PathQuarantine && (body.ModelPath != "/var/lib/models/llama-3.gguf" || body.ModelName != "llama-3" || body.Action != "quarantine") {
					t.Errorf("quarantine body %+v", body)
				}
			}
			// Still open (containment_failed counts as open) and latched.
			st := env.MustStats(t)
			if st.OpenIncidents != 1 || st.OpenBySeverity[string(inc.Severity)] != 1 {
				t.Errorf("stats %+v: the incident must count as open", st)
			}
			if req := env.MustRequirement(t, inc.ID); (req != nil) != tc.latched {
				t.Errorf("requirement %+v, latched %v", req, tc.latched)
			}
			if tc.latched {
				if _, err := env.Recorder.ResolveIncident(t.Context(), wardentest.AdminPrincipal, inc.ID); warden.ErrorCode(err) != warden.ECONFLICT {
					t.Errorf("resolve of a latched %s incident: %v", inc.State, err)
				}
			}
			// The results are receipted exactly once, with the final state:
			// in incident_containment, or (alerts only, contained in the
			// report's own transaction) in the incident_reported snapshot.
			var recorded []incidentReceipt
			for _, typ := range []string{warden.ReceiptIncidentReported, warden.ReceiptContainment} {
				for _, r := range receiptsOf(t, env, typ, inc.ID) {
					if len(r.Incident.ContainmentResults) > 0 {
						recorded = append(recorded, r)
					}
				}
			}
			if len(recorded) != 1 || recorded[0].Incident.State != tc.state {
				t.Fatalf("%d receipts record containment results, want 1 with state %s: %+v", len(recorded), tc.state, recorded)
			}
			if d := cmp.Diff(inc.ContainmentResults, recorded[0].Incident.ContainmentResults); d != "" {
				t.Fatalf("receipted results differ from the incident's (-incident +receipt):\n%s", d)
			}
			for _, typ := range []string{warden.ReceiptIncidentReported, warden.ReceiptContainment} {
				for _, r := range receiptsOf(t, env, typ, inc.ID) {
					if slices.Contains(r.Tags, "DRILL/incident") != tc.drill {
						t.Errorf("%s receipt tags %v in drill %v", typ, r.Tags, tc.drill)
					}
				}
			}
		})
	}
}

// storePending stores an incident whose report committed but whose
// containment is not recorded yet, as a crash or a request still running
// containment leaves it.
func storePending(t *testing.T, env *wardentest.Env, class string, sev warden.Severity, desc string, actions ...string) *warden.Incident {
	t.Helper()
	now := env.Clock.Now()
	var inc *warden.Incident
	if err := env.Store.Update(t.Context(), func(tx warden.Tx) error {
		n, err := tx.NextCounter("incident")
		if err != nil {
			return err
		}
		inc = &warden.Incident{
			ID: wantID(now, n), Number: n, CreatedAt: warden.FormatTime(now),
			Class: class, Severity: sev, State: warden.StateOpen,
			Source: "agent-1", Description: desc, Evidence: map[string]string{},
			ContainmentActions: actions, ContainmentResults: []warden.ContainmentResult{},
			ReportedBy: "test", AutoContained: true, ContainmentPending: true,
		}
		return tx.CreateIncident(inc)
	}); err != nil {
		t.Fatal(err)
	}
	return inc
}

// TestResumeContainmentAfterCrash: an incident stored with its containment
// pending (a crash between the report's transaction and the containment's)
// is contained by ResumeContainment on the next start, exactly once.
func TestResumeContainmentAfterCrash(t *testing.T) {
	tg := wardentest.MustTarget(t)
	pol := wardentest.TargetPolicy(tg.URL)
	env := wardentest.MustEnv(t, wardentest.Containment(pol))
	ctx := t.Context()
	inc := storePending(t, env, warden.ClassPromptInjection, warden.SeverityHigh, "crashed mid-containment",
		warden.ActionFreezeAgent, warden.ActionLogAlert)
	// While pending, it cannot be resolved; the refusal changes nothing.
	if _, err := env.Recorder.ResolveIncident(ctx, wardentest.AdminPrincipal, inc.ID); warden.ErrorCode(err) != warden.ECONFLICT ||
		!strings.Contains(warden.ErrorMessage(err), "containment is still running") {
		t.Fatalf("resolve while pending: %v", err)
	}

	env = env.MustReopen(t, wardentest.Containment(pol)) // the restart
	interrupted, err := env.Recorder.InterruptedContainment(ctx)
	if err != nil || len(interrupted) != 1 || interrupted[0] != inc.ID {
		t.Fatalf("InterruptedContainment: %v, %v", interrupted, err)
	}
	n, err := env.Recorder.ResumeContainment(ctx, interrupted)
	if err != nil || n != 1 {
		t.Fatalf("ResumeContainment: %d, %v", n, err)
	}
	got := env.MustIncident(t, inc.ID)
	if got.State != warden.StateContained || got.ContainmentPending || len(got.ContainmentResults) != 2 {
		t.Fatalf("after resume: %+v", got)
	}
	if d := cmp.Diff([]string{"POST /api/v1/freeze"}, tg.Paths()); d != "" {
		t.Fatalf("target calls:\n%s", d)
	}
	if cs := receiptsOf(t, env, warden.ReceiptContainment, inc.ID); len(cs) != 1 {
		t.Fatalf("%d containment receipts, want 1", len(cs))
	}
	before := len(env.MustReceipts(t, warden.ReceiptFilter{}))
	if n, err := env.Recorder.ResumeContainment(ctx, interrupted); err != nil || n != 0 {
		t.Fatalf("second ResumeContainment: %d, %v", n, err)
	}
	if after := len(env.MustReceipts(t, warden.ReceiptFilter{})); after != before || len(tg.Requests()) != 1 {
		t.Fatalf("second resume wrote %d receipts, made %d calls", after-before, len(tg.Requests())-1)
	}
	if st := env.MustStats(t); st.OpenIncidents != 1 || st.ContainedCount != 1 || st.TotalIncidents != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestConcurrentRecoveryStepsHappenOnce: racing callers of the same
// ceremony step get exactly one success; the rest are refused (409), so
// the step is receipted and announced once.
func TestConcurrentRecoveryStepsHappenOnce(t *testing.T) {
	tg := wardentest.MustTarget(t)
	env := wardentest.MustEnv(t, wardentest.Containment(wardentest.TargetPolicy(tg.URL)))
	ctx := t.Context()
	if _, err := env.Core.Start(ctx, engine.StartInfo{Version: "test"}); err != nil {
		t.Fatal(err)
	}
	inc := env.MustReport(t, nil, recorder.ReportRequest{Class: warden.ClassAttestationFailure, Source: "tpm", Description: "quote"})
	// Fewer racers than the read pool has connections (see
	// TestConcurrentColdReadsDoNotDeadlock), and a deadline regardless.
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	const racers = 3
	race := func(step func() error) (ok, conflict int) {
		t.Helper()
		errs := make(chan error, racers)
		start := make(chan struct{})
		for i := 0; i < racers; i++ {
			go func() {
				<-start
				errs <- step()
			}()
		}
		close(start)
		for i := 0; i < racers; i++ {
			switch err := <-errs; warden.ErrorCode(err) {
			case "":
				ok++
			case warden.ECONFLICT:
				conflict++
			default:
				t.Errorf("unexpected error %v", err)
			}
		}
		return ok, conflict
	}
	for _, step := range []struct {
		name    string
		receipt string
		do      func() error
	}{
		{"ack", warden.ReceiptRecoveryAcknowledged, func() error {
			_, err := env.Recorder.RecoveryAck(ctx, wardentest.AdminPrincipal, recorder.AckRequest{IncidentID: inc.ID, Operator: "admin@secai"})
			return err
		}},
		{"reattest", warden.ReceiptRecoveryReattested, func() error {
			_, err := env.Recorder.Reattest(ctx, wardentest.AdminPrincipal, inc.ID)
			return err
		}},
		{"resolve", warden.ReceiptIncidentResolved, func() error {
			_, err := env.Recorder.ResolveIncident(ctx, wardentest.AdminPrincipal, inc.ID)
			return err
		}},
	} {
		ok, conflict := race(step.do)
		if ok != 1 || conflict != racers-1 {
			t.Errorf("%s: %d succeeded, %d refused; want exactly one success", step.name, ok, conflict)
		}
		if n := len(receiptsOf(t, env, step.receipt, inc.ID)); n != 1 {
			t.Errorf("%s: %d %s receipts, want 1", step.name, n, step.receipt)
		}
	}
}

// TestConcurrentIntegrityScansReportOnce: the periodic and an on-demand
// scan racing over the same change report one integrity_violation, not two.
// (Three scanners: fewer than the read pool's connections, see
// TestConcurrentColdReadsDoNotDeadlock.)
func TestConcurrentIntegrityScansReportOnce(t *testing.T) {
	env := changedBaselineEnv(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	const scanners = 3
	ids := map[string]bool{}
	for _, res := range concurrentScans(ctx, t, env, scanners) {
		if res.err != nil {
			t.Fatal(res.err)
		}
		if res.Incident != nil {
			ids[res.Incident.ID] = true
		}
	}
	if st := env.MustStats(t); st.TotalIncidents != 1 || len(ids) != 1 {
		t.Fatalf("%d racing scans reported %d incidents %v; want one", scanners, st.TotalIncidents, ids)
	}
}

// TestConcurrentColdReadsDoNotDeadlock: as many concurrent requests as the
// SQLite read pool has connections, each reading through statements not yet
// prepared, must all complete (each holds a pooled connection; preparing a
// statement must not need another one).
func TestConcurrentColdReadsDoNotDeadlock(t *testing.T) {
	env := changedBaselineEnv(t)
	// sqlite.Options.ReadConns defaults to max(4, 2·NumCPU).
	n := max(4, 2*runtime.NumCPU())
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	for _, res := range concurrentScans(ctx, t, env, n) {
		if res.err != nil {
			t.Fatalf("%d concurrent scans on a fresh store: %v (deadlocked until the deadline?)", n, res.err)
		}
	}
}

// changedBaselineEnv is an env with an integrity baseline whose one file
// has since changed.
func changedBaselineEnv(t *testing.T) *wardentest.Env {
	t.Helper()
	tg := wardentest.MustTarget(t)
	env := wardentest.MustEnv(t, wardentest.Containment(wardentest.TargetPolicy(tg.URL)))
	file := filepath.Join(t.TempDir(), "watched.conf")
	if err := os.WriteFile(file, []byte("v1"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Recorder.RecordBaseline(t.Context(), wardentest.AdminPrincipal, []string{file}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte("v2"), 0o644); err != nil {
		t.Fatal(err)
	}
	return env
}

type scanOutcome struct {
	*recorder.ScanResult
	err error
}

// concurrentScans starts n integrity scans at once and waits for all.
func concurrentScans(ctx context.Context, t *testing.T, env *wardentest.Env, n int) []scanOutcome {
	t.Helper()
	out := make(chan scanOutcome, n)
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		go func() {
			<-start
			res, err := env.Recorder.IntegrityScan(ctx, wardentest.AdminPrincipal)
			out <- scanOutcome{res, err}
		}()
	}
	close(start)
	var all []scanOutcome
	for i := 0; i < n; i++ {
		all = append(all, <-out)
	}
	return all
}

// TestResumeLeavesNewReportsToTheirOwnRequest: the list of interrupted
// containment is taken before reports are accepted, and ResumeContainment
// works from that list only: an incident whose report committed after it
// (pending, its own request about to contain it) is not touched, so its
// targets are not called twice.
func TestResumeLeavesNewReportsToTheirOwnRequest(t *testing.T) {
	tg := wardentest.MustTarget(t)
	env := wardentest.MustEnv(t, wardentest.Containment(wardentest.TargetPolicy(tg.URL)))
	ctx := t.Context()
	interrupted, err := env.Recorder.InterruptedContainment(ctx)
	if err != nil || len(interrupted) != 0 {
		t.Fatalf("InterruptedContainment on a fresh store: %v, %v", interrupted, err)
	}
	// A report that committed after the list was taken, its containment
	// not yet recorded by its own request.
	inc := storePending(t, env, warden.ClassToolCallBurst, warden.SeverityMedium, "in flight", warden.ActionFreezeAgent)
	if n, err := env.Recorder.ResumeContainment(ctx, interrupted); err != nil || n != 0 {
		t.Fatalf("ResumeContainment: %d, %v", n, err)
	}
	if calls := tg.Paths(); len(calls) != 0 {
		t.Fatalf("resume called the in-flight report's targets: %v", calls)
	}
	if got := env.MustIncident(t, inc.ID); !got.ContainmentPending {
		t.Fatalf("resume recorded the in-flight report's containment: %+v", got)
	}
}

// TestRecoveryRequirementMatrix: every class at every severity gets the
// runbook's requirement: one (ack always) iff the class latches or the
// severity is critical; re-attestation iff critical, attestation_failure
// or integrity_violation. The expectations are written out, not derived
// from the rule under test.
func TestRecoveryRequirementMatrix(t *testing.T) {
	env := wardentest.MustEnv(t, wardentest.Drill)
	type rule struct{ latched, reattest bool }
	byClass := map[string]rule{
		warden.ClassAttestationFailure:      {true, true},
		warden.ClassIntegrityViolation:      {true, true},
		warden.ClassUnauthorizedAccess:      {true, false},
		warden.ClassManifestMismatch:        {true, false},
		warden.ClassPolicyBypassAttempt:     {false, false},
		warden.ClassPromptInjection:         {false, false},
		warden.ClassToolCallBurst:           {false, false},
		warden.ClassModelBehaviorAnomaly:    {false, false},
		warden.ClassForbiddenAirlockRequest: {false, false},
	}
	if len(byClass) != len(warden.IncidentClasses) {
		t.Fatalf("the table covers %d classes, there are %d", len(byClass), len(warden.IncidentClasses))
	}
	for _, class := range warden.IncidentClasses {
		for _, sev := range []warden.Severity{warden.SeverityLow, warden.SeverityMedium, warden.SeverityHigh, warden.SeverityCritical} {
			env.Clock.Advance(time.Hour) // outside every severity window
			inc := env.MustReport(t, nil, recorder.ReportRequest{Class: class, Severity: string(sev), SeverityReason: "matrix", Source: "agent-1",
				Description: "matrix", Evidence: map[string]string{"model_path": "/models/m.gguf"}})
			if inc.Severity != sev {
				t.Fatalf("%s/%s: reported at %s", class, sev, inc.Severity)
			}
			crit := sev == warden.SeverityCritical
			want := byClass[class]
			req := env.MustRequirement(t, inc.ID)
			if (req != nil) != (want.latched || crit) {
				t.Fatalf("%s/%s: requirement %+v, want one: %v", class, sev, req, want.latched || crit)
			}
			if req == nil {
				if _, err := env.Recorder.ResolveIncident(t.Context(), wardentest.AdminPrincipal, inc.ID); err != nil {
					t.Fatalf("%s/%s without a requirement does not resolve directly: %v", class, sev, err)
				}
				continue
			}
			if !req.RequireAck || req.RequireReattest != (want.reattest || crit) {
				t.Fatalf("%s/%s: requirement %+v, want ack and re-attestation %v", class, sev, req, want.reattest || crit)
			}
		}
	}
}

// TestWindowIgnoresIncidentsAfterNow: a window is (now-window, now]; after
// the clock steps back, incidents stamped later than now do not count.
func TestWindowIgnoresIncidentsAfterNow(t *testing.T) {
	env := wardentest.MustEnv(t, wardentest.Drill)
	report := func() *warden.Incident {
		return env.MustReport(t, nil, recorder.ReportRequest{Class: warden.ClassPromptInjection, Source: "agent-1", Description: "injection"})
	}
	report()
	report()
	env.Clock.Advance(-time.Minute) // the clock steps back
	if inc := report(); inc.Severity != warden.SeverityHigh || inc.EscalatedFrom != "" {
		t.Fatalf("raised by incidents from the future: %s (from %q)", inc.Severity, inc.EscalatedFrom)
	}
	env.Clock.Advance(2 * time.Minute) // all three now in the past, within 5 minutes
	if inc := report(); inc.Severity != warden.SeverityCritical {
		t.Fatalf("the fourth within the window is %s, want critical", inc.Severity)
	}
}
