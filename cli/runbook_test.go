package cli_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/contain"
)

// targetServer stands in for the agent, airlock and registry: it records
// every containment call and answers 200 (or what fail says).
type targetServer struct {
	*httptest.Server
	mu    sync.Mutex
	calls []string
	fail  map[string]int // path → status
}

func newTargets(t *testing.T) *targetServer {
	ts := &targetServer{fail: map[string]int{}}
	ts.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ts.mu.Lock()
		ts.calls = append(ts.calls, r.Method+" "+r.URL.Path)
		status := ts.fail[r.URL.Path]
		ts.mu.Unlock()
		if status != 0 {
			w.WriteHeader(status)
			return
		}
		w.Write([]byte(`{"status":"ok"}`))
	}))
	t.Cleanup(ts.Close)
	return ts
}

func (ts *targetServer) Calls() []string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]string{}, ts.calls...)
}

// policyFile writes the runbook policy with every target at url.
func policyFile(t *testing.T, url string, extra ...string) string {
	t.Helper()
	y := string(contain.DefaultPolicyYAML())
	for _, port := range []string{"8476", "8490", "8470"} {
		y = strings.ReplaceAll(y, "http://127.0.0.1:"+port, url)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		y = strings.Replace(y, extra[i], extra[i+1], 1)
	}
	p := filepath.Join(t.TempDir(), "containment.yaml")
	if err := os.WriteFile(p, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

type apiError struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// TestRunbookCeremony walks the recovery runbook's ten steps, exactly as its
// curl commands do, against `warden serve --dev`, plus every refusal the
// latch imposes on the way.
func TestRunbookCeremony(t *testing.T) {
	targets := newTargets(t)
	data := filepath.Join(t.TempDir(), "data")
	s := startServer(t, data, "--dev", "--policy", policyFile(t, targets.URL))

	var inc warden.Incident
	if st := httpJSON(t, "POST", s.URL+"/api/v1/incidents/report", "", map[string]any{
		"class": "attestation_failure", "source": "tpm-agent", "description": "TPM2 quote mismatch",
		"evidence": map[string]string{"pcr7": "deadbeef"},
	}, &inc); st != 201 {
		t.Fatalf("report: %d", st)
	}
	if !strings.HasPrefix(inc.ID, "INC-") || inc.State != warden.StateContained || inc.Severity != warden.SeverityCritical {
		t.Fatalf("reported incident: %+v", inc)
	}
	if got := targets.Calls(); len(got) != 3 {
		t.Fatalf("containment calls: %v", got)
	}

	// 1. Detect.
	var health map[string]any
	httpJSON(t, "GET", s.URL+"/health", "", nil, &health)
	if health["status"] != "ok" || health["open_incidents"] != float64(1) || health["total_incidents"] != float64(1) {
		t.Fatalf("health: %v", health)
	}
	// 2. Identify: a bare array, as `jq '.[]'` expects.
	var contained []warden.Incident
	if st := httpJSON(t, "GET", s.URL+"/api/v1/incidents?state=contained", "", nil, &contained); st != 200 || len(contained) != 1 || contained[0].ID != inc.ID {
		t.Fatalf("contained: %d %+v", st, contained)
	}
	// 3. Review.
	var got warden.Incident
	if st := httpJSON(t, "GET", s.URL+"/api/v1/incidents/get?id="+inc.ID, "", nil, &got); st != 200 || got.Evidence["pcr7"] != "deadbeef" ||
		got.AckedAt != "" || got.AckedBy != "" {
		t.Fatalf("get: %d %+v", st, got)
	}
	// 5. Recovery requirements.
	var status struct {
		PendingRecoveries []map[string]any `json:"pending_recoveries"`
		Count             int              `json:"count"`
	}
	httpJSON(t, "GET", s.URL+"/api/v1/recovery/status", "", nil, &status)
	if status.Count != 1 || status.PendingRecoveries[0]["require_ack"] != true || status.PendingRecoveries[0]["require_reattest"] != true ||
		status.PendingRecoveries[0]["acked_at"] != "" || status.PendingRecoveries[0]["recovery_complete"] != false {
		t.Fatalf("recovery status: %+v", status)
	}
	// The latch: resolving now is refused, naming both missing steps.
	var e apiError
	if st := httpJSON(t, "POST", s.URL+"/api/v1/incidents/resolve", "", map[string]string{"id": inc.ID}, &e); st != 409 ||
		!strings.Contains(e.Error, "acknowledgment") || !strings.Contains(e.Error, "re-attestation") {
		t.Fatalf("resolve before ceremony: %d %+v", st, e)
	}
	if st := httpJSON(t, "POST", s.URL+"/api/v1/incidents/acknowledge", "", map[string]string{"id": inc.ID}, &e); st != 409 {
		t.Fatalf("acknowledge before ceremony: %d %+v", st, e)
	}
	if st := httpJSON(t, "POST", s.URL+"/api/v1/recovery/reattest", "", map[string]string{"incident_id": inc.ID}, &e); st != 409 || !strings.Contains(e.Error, "acknowledged") {
		t.Fatalf("reattest before ack: %d %+v", st, e)
	}
	// 6. Acknowledge.
	var ack map[string]any
	if st := httpJSON(t, "POST", s.URL+"/api/v1/recovery/ack", "", map[string]string{"incident_id": inc.ID, "operator": "admin@secai"}, &ack); st != 200 || ack["status"] != "acknowledged" {
		t.Fatalf("ack: %d %v", st, ack)
	}
	// "The incident record now has acked_at and acked_by populated."
	var acked map[string]any
	if st := httpJSON(t, "GET", s.URL+"/api/v1/incidents/get?id="+inc.ID, "", nil, &acked); st != 200 ||
		acked["acked_by"] != "admin@secai" || acked["acked_at"] == "" || acked["acked_at"] == nil {
		t.Fatalf("incident after ack: %d %v", st, acked)
	}
	if st := httpJSON(t, "POST", s.URL+"/api/v1/incidents/resolve", "", map[string]string{"id": inc.ID}, &e); st != 409 ||
		strings.Contains(e.Error, "acknowledgment") || !strings.Contains(e.Error, "re-attestation") {
		t.Fatalf("resolve after ack only: %d %+v", st, e)
	}
	var att map[string]any
	httpJSON(t, "GET", s.URL+"/api/v1/attestation/state", "", nil, &att)
	if att["state"] != "degraded" {
		t.Fatalf("attestation before reattest: %v", att)
	}
	// 7. Re-attest (re-verifies the ledger for real).
	var re map[string]any
	if st := httpJSON(t, "POST", s.URL+"/api/v1/recovery/reattest", "", map[string]string{"incident_id": inc.ID}, &re); st != 200 || re["status"] != "re-attestation recorded" {
		t.Fatalf("reattest: %d %v", st, re)
	}
	// 8. Verify recovery complete.
	raw := getRaw(t, s.URL+"/api/v1/recovery/status")
	if strings.TrimSpace(raw) != `{"pending_recoveries":[],"count":0}` {
		t.Fatalf("recovery status after ceremony: %s", raw)
	}
	// 9. Resolve.
	var resolved warden.Incident
	if st := httpJSON(t, "POST", s.URL+"/api/v1/incidents/resolve", "", map[string]string{"id": inc.ID}, &resolved); st != 200 ||
		resolved.State != warden.StateResolved || resolved.ResolvedAt == "" {
		t.Fatalf("resolve: %d %+v", st, resolved)
	}
	// 10. Health.
	httpJSON(t, "GET", s.URL+"/health", "", nil, &health)
	if health["open_incidents"] != float64(0) {
		t.Fatalf("health after: %v", health)
	}
	for _, path := range []string{"/api/v1/attestation/state", "/api/v1/integrity/state"} {
		var st map[string]any
		httpJSON(t, "GET", s.URL+path, "", nil, &st)
		if st["state"] != "trusted" {
			t.Fatalf("%s: %v", path, st)
		}
	}
	// Every refusal on the way was receipted.
	var denied struct{ Receipts []*warden.Receipt }
	httpJSON(t, "GET", s.URL+"/api/v1/receipts?scroll=incident&tag=denied&limit=100", "", nil, &denied)
	if len(denied.Receipts) != 4 {
		t.Fatalf("%d denial receipts, want 4", len(denied.Receipts))
	}
	s.stop(t)
	if code, out, errs := run(t, "verify", "--data", data); code != 0 {
		t.Fatalf("verify: %s %s", out, errs)
	}
}

func getRaw(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return b.String()
}
