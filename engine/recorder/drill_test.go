package recorder_test

import (
	"context"
	"testing"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/contain"
	"github.com/warden-sh/warden/engine/recorder"
	"github.com/warden-sh/warden/engine/stack"
	"github.com/warden-sh/warden/wardentest"
)

// TestDrillModeNeverCallsALiveActuator wires a live HTTP actuator into an
// engine in drill mode, as a wiring mistake would: the engine decides, so
// neither a report's containment nor a phoenix lockdown's actions reach the
// target, and every result says it was a dry run.
func TestDrillModeNeverCallsALiveActuator(t *testing.T) {
	tg := wardentest.MustTarget(t)
	env := wardentest.MustEnv(t, wardentest.Containment(wardentest.TargetPolicy(tg.URL)), wardentest.Drill,
		func(c *stack.Config) {
			if _, ok := c.Recorder.Actuator.(*contain.HTTPActuator); !ok {
				t.Fatalf("actuator %T, want the live HTTP one", c.Recorder.Actuator)
			}
		})

	inc := env.MustReport(t, nil, recorder.ReportRequest{Class: warden.ClassUnauthorizedAccess, Source: "agent-7",
		Description: "drill: credential stuffing", Evidence: map[string]string{"model_path": "/models/m.bin"}})
	if inc.State != warden.StateContained || len(inc.ContainmentResults) != 3 {
		t.Fatalf("drill incident %s with %d results, want contained with 3", inc.State, len(inc.ContainmentResults))
	}
	pol, _ := env.Recorder.Policy()
	lock := env.Recorder.RunActions(context.Background(), pol, []string{warden.ActionFreezeAgent, warden.ActionDisableAirlock, warden.ActionQuarantineModel}, inc)
	for _, r := range append(inc.ContainmentResults, lock...) {
		if !r.DryRun || !r.Success || r.Attempts != 0 && r.Action != warden.ActionLogAlert {
			t.Errorf("drill result %+v: want a dry-run success that made no attempt", r)
		}
	}
	if calls := tg.Paths(); len(calls) != 0 {
		t.Fatalf("an engine in drill mode called the live target: %v", calls)
	}
}
