package recorder_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine/recorder"
	"github.com/warden-sh/warden/wardentest"
)

// TestReportIsDurableBeforeTargetsAreCalled: when a containment target is
// called, the incident is already committed, pending its containment, and
// readable by anyone (here the target reads the store on its own
// connection). A crash at that moment leaves it for ResumeContainment.
func TestReportIsDurableBeforeTargetsAreCalled(t *testing.T) {
	var env *wardentest.Env
	var mu sync.Mutex
	var calls int
	var problems []string
	tg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			IncidentID string `json:"incident_id"`
		}
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		calls++
		if err := json.Unmarshal(b, &body); err != nil || body.IncidentID == "" {
			problems = append(problems, "a call without an incident_id: "+string(b))
		} else if err := env.Store.View(r.Context(), func(tx warden.ReadTx) error {
			inc, err := tx.Incident(body.IncidentID)
			if err != nil {
				return err
			}
			if !inc.ContainmentPending {
				problems = append(problems, body.IncidentID+" is committed but not pending its containment")
			}
			return nil
		}); err != nil {
			problems = append(problems, "target called before "+body.IncidentID+" was committed: "+err.Error())
		}
		io.WriteString(w, `{"status":"ok"}`)
	}))
	defer tg.Close()
	env = wardentest.MustEnv(t, wardentest.Containment(wardentest.TargetPolicy(tg.URL)))
	for range 5 {
		inc := env.MustReport(t, wardentest.AdminPrincipal, recorder.ReportRequest{Class: warden.ClassToolCallBurst, Source: "agent-1", Description: "burst"})
		if inc.State != warden.StateContained || inc.ContainmentPending {
			t.Errorf("incident %s: state %s, pending %v", inc.ID, inc.State, inc.ContainmentPending)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if calls == 0 {
		t.Fatal("no target was called")
	}
	for _, p := range problems {
		t.Error(p)
	}
}
