package cli_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/cli"
	"github.com/warden-sh/warden/contain"
	"github.com/warden-sh/warden/wardentest"
)

// TestServeOnAFullDisk runs `warden serve` with its data directory on a
// real 16 MiB tmpfs and fills it the moment a containment target is
// called: the incident is committed, its containment runs, and its outcome
// cannot be recorded. While the disk is full every write is 503
// "unavailable" with Retry-After and a sentence saying storage is full,
// /health is 503 "degraded" naming the cause, a retry with the report's
// Idempotency-Key returns the original incident instead of a second one,
// and the log does not repeat itself line for line. Once space is freed,
// with no restart, /health is ok again, the interrupted containment is
// recorded (receipted once, its target not called again), new reports
// succeed, and the log verifies.
func TestServeOnAFullDisk(t *testing.T) {
	fs := wardentest.MustSmallFS(t, 16<<20)
	data := filepath.Join(fs, "data")

	var (
		armed  atomic.Bool
		once   sync.Once
		filled = make(chan *wardentest.Filler, 1)
		calls  atomic.Int32
	)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		calls.Add(1)
		if armed.Load() {
			once.Do(func() {
				f, err := wardentest.Fill(fs)
				if err != nil {
					t.Errorf("filling the disk: %v", err)
				}
				filled <- f
			})
		}
		io.WriteString(w, `{"status":"ok"}`)
	}))
	t.Cleanup(target.Close)
	policy := filepath.Join(t.TempDir(), "containment.yaml")
	yaml := contain.DefaultPolicyYAML()
	for _, port := range []string{"8476", "8490", "8470"} {
		yaml = bytes.ReplaceAll(yaml, []byte("http://127.0.0.1:"+port), []byte(target.URL))
	}
	if err := os.WriteFile(policy, yaml, 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, data, "--dev", "--policy", policy, "--integrity-interval", "0")

	type answer struct {
		status int
		header http.Header
		body   map[string]any
	}
	call := func(method, path, key string, in any) answer {
		t.Helper()
		var body io.Reader
		if in != nil {
			b, _ := json.Marshal(in)
			body = bytes.NewReader(b)
		}
		req, err := http.NewRequest(method, s.URL+path, body)
		if err != nil {
			t.Fatal(err)
		}
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		a := answer{status: resp.StatusCode, header: resp.Header}
		raw, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(raw, &a.body); err != nil {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
		}
		return a
	}
	report := map[string]any{"class": warden.ClassToolCallBurst, "source": "agent-7", "description": "900 tool calls in 10 s"}
	unavailable := func(a answer, what string) {
		t.Helper()
		if a.status != http.StatusServiceUnavailable || a.body["code"] != warden.EUNAVAILABLE || a.header.Get("Retry-After") == "" ||
			!strings.HasPrefix(a.body["error"].(string), "Storage is full") {
			t.Fatalf("%s on a full disk: %d %v (Retry-After %q); want 503 %s saying storage is full, with Retry-After",
				what, a.status, a.body, a.header.Get("Retry-After"), warden.EUNAVAILABLE)
		}
	}

	if a := call("POST", "/api/v1/incidents/report", "", report); a.status != http.StatusCreated || a.body["state"] != "contained" {
		t.Fatalf("report before the disk fills: %d %v", a.status, a.body)
	}
	armed.Store(true)
	start := time.Now()
	a := call("POST", "/api/v1/incidents/report", "retry-me", report)
	filler := <-filled
	t.Cleanup(filler.Free)
	unavailable(a, "the report whose containment fills the disk")
	id, _ := a.body["incident_id"].(string)
	if id == "" {
		t.Fatalf("the refusal does not name the incident it recorded: %v", a.body)
	}
	if h := call("GET", "/health", "", nil); h.status != http.StatusServiceUnavailable || h.body["status"] != "degraded" ||
		!strings.Contains(mustJSON(t, h.body["degraded"]), warden.CauseStorageUnavailable) {
		t.Fatalf("health on a full disk: %d %v; want 503 degraded naming %s", h.status, h.body, warden.CauseStorageUnavailable)
	}
	if v := scrape(t, s.URL)["warden_storage_degraded"]; v != 1 {
		t.Fatalf("warden_storage_degraded on a full disk: %v, want 1", v)
	}
	const flood = 200
	for range flood {
		unavailable(call("POST", "/api/v1/incidents/report", "", report), "a report")
	}
	// The client that got the error retries with its key: the incident it
	// created, not a second one, even while the disk is full.
	if a := call("POST", "/api/v1/incidents/report", "retry-me", report); a.status != http.StatusOK ||
		a.header.Get("Idempotent-Replayed") != "true" || a.body["id"] != id {
		t.Fatalf("retry with the key on a full disk: %d %v", a.status, a.body)
	}
	// The CLI: a refusal for lack of storage exits 75 (retry later); the
	// same retry with --idempotency-key gets the incident.
	if code, _, errs := run(t, "incident", "report", "--url", s.URL, "--class", warden.ClassToolCallBurst, "--source", "agent-7",
		"--description", "900 tool calls in 10 s"); code != cli.ExitUnavailable || !strings.Contains(errs, "(unavailable)") {
		t.Fatalf("warden incident report on a full disk: exit %d %q; want %d", code, errs, cli.ExitUnavailable)
	}
	code, out, errs := run(t, "incident", "report", "--url", s.URL, "--class", warden.ClassToolCallBurst, "--source", "agent-7",
		"--description", "900 tool calls in 10 s", "--idempotency-key", "retry-me", "--json")
	var inc warden.Incident
	if code != 0 || json.Unmarshal([]byte(out), &inc) != nil || inc.ID != id {
		t.Fatalf("warden incident report --idempotency-key on a full disk: exit %d %s %s; want incident %s", code, out, errs, id)
	}
	elapsed := time.Since(start)

	filler.Free()
	freed := time.Now()
	waitFor(t, "/health ok after freeing space", func() bool {
		return call("GET", "/health", "", nil).status == http.StatusOK
	})
	waitFor(t, "the interrupted containment recorded in-process", func() bool {
		return call("GET", "/api/v1/incidents/get?id="+id, "", nil).body["state"] == "contained"
	})
	t.Logf("healthy and the held containment recorded %s after space was freed", time.Since(freed).Round(time.Millisecond))
	if v := scrape(t, s.URL)["warden_storage_degraded"]; v != 0 {
		t.Fatalf("warden_storage_degraded once space is freed: %v, want 0", v)
	}
	if a := call("POST", "/api/v1/incidents/report", "retry-me", report); a.status != http.StatusOK || a.body["id"] != id || a.body["state"] != "contained" {
		t.Fatalf("retry with the key after recovery: %d %v", a.status, a.body)
	}
	if a := call("POST", "/api/v1/incidents/report", "", report); a.status != http.StatusCreated {
		t.Fatalf("report after recovery: %d %v", a.status, a.body)
	}
	if n := calls.Load(); n != 3 {
		t.Fatalf("target called %d times, want 3 (one freeze per incident; none again on recovery)", n)
	}
	var list struct{ Receipts []*warden.Receipt }
	httpJSON(t, "GET", s.URL+"/api/v1/receipts?scroll=incident&type="+warden.ReceiptContainment+"&limit=1000", "", nil, &list)
	n := 0
	for _, r := range list.Receipts {
		if bytes.Contains(r.Body, []byte(`"id":"`+id+`"`)) {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d incident_containment receipts for %s, want 1", n, id)
	}
	httpJSON(t, "GET", s.URL+"/api/v1/receipts?type="+warden.ReceiptStorageRecovered, "", nil, &list)
	var rec struct {
		FailedWrites uint64 `json:"failed_writes"`
	}
	if len(list.Receipts) != 1 || json.Unmarshal(list.Receipts[0].Body, &rec) != nil || rec.FailedWrites < flood+1 {
		t.Fatalf("storage_recovered receipts %d (%+v), want 1 counting at least %d refused writes", len(list.Receipts), rec, flood+1)
	}
	s.stop(t)

	// The log sampled the repeated lines: per level and message, a burst
	// of 10 and about one a second (a shutdown line may count those left).
	lines := map[string]int{}
	for _, l := range strings.Split(s.stderr.String(), "\n") {
		var ln struct{ Level, Msg string }
		if json.Unmarshal([]byte(l), &ln) == nil && (ln.Level == "WARN" || ln.Level == "ERROR") {
			lines[ln.Level+" "+ln.Msg]++
		}
	}
	limit := 10 + int(elapsed.Seconds()) + 2
	t.Logf("%d writes refused in %s; warning and error lines by message: %v", flood+2, elapsed.Round(time.Millisecond), lines)
	for k, n := range lines {
		if n > limit {
			t.Errorf("%d log lines %q while %d writes failed in %s; want at most %d", n, k, flood+2, elapsed.Round(time.Millisecond), limit)
		}
	}
	if lines["ERROR sqlite: write transaction failed"] == 0 {
		t.Errorf("the failed writes were not logged at all: %v", lines)
	}

	if code, out, errs := run(t, "verify", "--data", data); code != 0 {
		t.Fatalf("verify after the full disk: %d %s %s", code, out, errs)
	}
}

// waitFor polls cond until it holds, for at most 30 s: a real server's
// background loop does the work.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond) // polling a real process, not timing
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
