package http_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	warden "github.com/warden-sh/warden"
)

// TestReportIdempotencyKeyHeader: the Idempotency-Key header of a report,
// as a token or an sf-string, makes a retry 200 with Idempotent-Replayed
// and the first incident; the key with another report is 409 conflict
// naming the rule; two headers or an empty one are 400.
func TestReportIdempotencyKeyHeader(t *testing.T) {
	env, base, _ := incidentEnv(t)
	post := func(keys []string, body map[string]any) (int, http.Header, map[string]any) {
		t.Helper()
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", base+"/api/v1/incidents/report", strings.NewReader(string(b)))
		req.Header.Set("Authorization", "Bearer "+env.Admin)
		for _, k := range keys {
			req.Header.Add("Idempotency-Key", k)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var out map[string]any
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%d %s", resp.StatusCode, raw)
		}
		return resp.StatusCode, resp.Header, out
	}
	rep := report(warden.ClassToolCallBurst, "agent-1")
	st, h, first := post([]string{"8e03978e-40d5-43e8-bc93-6894a57f9324"}, rep)
	if st != http.StatusCreated || h.Get("Idempotent-Replayed") != "" {
		t.Fatalf("first report: %d %v", st, first)
	}
	st, h, again := post([]string{`"8e03978e-40d5-43e8-bc93-6894a57f9324"`}, rep) // the sf-string form
	if st != http.StatusOK || h.Get("Idempotent-Replayed") != "true" || again["id"] != first["id"] {
		t.Fatalf("retry: %d %v %v", st, h, again)
	}
	other := report(warden.ClassToolCallBurst, "agent-1")
	other["description"] = "another burst"
	st, _, conflict := post([]string{"8e03978e-40d5-43e8-bc93-6894a57f9324"}, other)
	if st != http.StatusConflict || conflict["code"] != warden.ECONFLICT || !strings.Contains(conflict["error"].(string), "a key names one report") {
		t.Fatalf("same key, other report: %d %v", st, conflict)
	}
	for _, keys := range [][]string{{"a", "b"}, {""}, {`""`}, {"with space"}} {
		if st, _, out := post(keys, rep); st != http.StatusBadRequest || out["code"] != warden.EINVALID {
			t.Errorf("Idempotency-Key %q: %d %v, want 400", keys, st, out)
		}
	}
}
