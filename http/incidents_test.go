package http_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
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

// apiErr is the JSON error body of every refusal.
type apiErr struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// call sends method url with body (a string is sent as is, anything else
// as JSON; nil sends nothing) and decodes the answer into out if non-nil.
// It returns the status and the raw answer, and fails the test unless the
// answer is JSON.
func call(t *testing.T, method, url, token string, body, out any) (int, []byte) {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if r != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s %s: status %d Content-Type %q: %s", method, url, resp.StatusCode, ct, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, url, err, data)
		}
	}
	return resp.StatusCode, data
}

// mustCall is call that fails the test unless the status is want.
func mustCall(t *testing.T, want int, method, url, token string, body, out any) []byte {
	t.Helper()
	st, data := call(t, method, url, token, body, out)
	if st != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, url, st, want, data)
	}
	return data
}

func receiptCount(t *testing.T, env *wardentest.Env, f warden.ReceiptFilter) int {
	t.Helper()
	return len(env.MustReceipts(t, f))
}

func report(class, source string) map[string]any {
	return map[string]any{"class": class, "source": source, "description": "test " + class}
}

// incidentEnv is an env whose containment targets all answer 200.
func incidentEnv(t *testing.T, opts ...wardentest.Option) (*wardentest.Env, string, *wardentest.Target) {
	t.Helper()
	tg := wardentest.MustTarget(t)
	env := wardentest.MustEnv(t, append([]wardentest.Option{wardentest.Containment(wardentest.TargetPolicy(tg.URL)),
		func(c *stack.Config) { c.Core.AuthFailureBurst = 1 << 20 }}, opts...)...)
	mustStart(t, env)
	base, _ := env.MustServer(t)
	return env, base, tg
}

// mustStart does what a starting server does: receipt the start and sign a
// checkpoint (re-attestation verifies the ledger against checkpoints).
func mustStart(t *testing.T, env *wardentest.Env) {
	t.Helper()
	if _, err := env.Core.Start(t.Context(), engine.StartInfo{Version: "test"}); err != nil {
		t.Fatal(err)
	}
}

// TestIncidentBadRequests: every malformed request is a 400 with a JSON
// error that says what is wrong, and writes nothing.
func TestIncidentBadRequests(t *testing.T) {
	env, base, _ := incidentEnv(t)
	valid := `{"class":"tool_call_burst","source":"agent-1","description":"burst"}`
	cases := []struct {
		name, method, path, body, want string
	}{
		{"missing class", "POST", "/api/v1/incidents/report", `{"source":"a","description":"d"}`, "class is required"},
		{"missing source", "POST", "/api/v1/incidents/report", `{"class":"tool_call_burst","description":"d"}`, "source is required"},
		{"missing description", "POST", "/api/v1/incidents/report", `{"class":"tool_call_burst","source":"a"}`, "description is required"},
		{"blank description", "POST", "/api/v1/incidents/report", `{"class":"tool_call_burst","source":"a","description":"  "}`, "description is required"},
		{"unknown class", "POST", "/api/v1/incidents/report", `{"class":"ufo","source":"a","description":"d"}`, `Unknown incident class "ufo"`},
		{"unknown severity", "POST", "/api/v1/incidents/report", `{"class":"tool_call_burst","severity":"apocalyptic","source":"a","description":"d"}`, `Unknown severity "apocalyptic"`},
		{"unknown field", "POST", "/api/v1/incidents/report", `{"class":"tool_call_burst","source":"a","description":"d","sevrity":"low"}`, `unknown field "sevrity"`},
		{"trailing data", "POST", "/api/v1/incidents/report", valid + `{}`, "data after the JSON object"},
		{"trailing junk", "POST", "/api/v1/incidents/report", valid + `x`, "data after the JSON object"},
		{"wrong type", "POST", "/api/v1/incidents/report", `{"class":"tool_call_burst","source":"a","description":"d","evidence":{"k":1}}`, `Every value in field "evidence" must be a string, not a number.`},
		{"empty body", "POST", "/api/v1/incidents/report", ``, "empty"},
		{"over 64 KiB", "POST", "/api/v1/incidents/report", `{"class":"tool_call_burst","source":"a","description":"` + strings.Repeat("x", 64<<10) + `"}`, "exceeds 65536 bytes"},
		{"query on report", "POST", "/api/v1/incidents/report?dry=1", valid, `Unknown query parameter "dry"`},
		{"unknown list param", "GET", "/api/v1/incidents?status=open", "", `Unknown query parameter "status"`},
		{"bad state filter", "GET", "/api/v1/incidents?state=closed", "", `Unknown incident state "closed"`},
		{"bad class filter", "GET", "/api/v1/incidents?class=ufo", "", `Unknown incident class "ufo"`},
		{"bad severity filter", "GET", "/api/v1/incidents?severity=huge", "", `Unknown severity "huge"`},
		{"bad limit", "GET", "/api/v1/incidents?limit=0", "", "limit must be between 1 and 1000"},
		{"limit past a page", "GET", "/api/v1/incidents?limit=1001", "", "limit must be between 1 and 1000"},
		{"bad cursor", "GET", "/api/v1/incidents?cursor=xyz", "", "is not one this listing gave"},
		{"repeated param", "GET", "/api/v1/incidents?state=open&state=contained", "", "more than once"},
		{"get without id", "GET", "/api/v1/incidents/get", "", "id is required"},
		{"get with empty id", "GET", "/api/v1/incidents/get?id=", "", "id is required"},
		{"get with other param", "GET", "/api/v1/incidents/get?incident=INC-1", "", `Unknown query parameter "incident"`},
		{"stats with param", "GET", "/api/v1/stats?x=1", "", `Unknown query parameter "x"`},
		{"resolve without id", "POST", "/api/v1/incidents/resolve", `{}`, "id is required"},
		{"resolve unknown field", "POST", "/api/v1/incidents/resolve", `{"incident_id":"INC-1"}`, `unknown field "incident_id"`},
		{"acknowledge without id", "POST", "/api/v1/incidents/acknowledge", `{"id":""}`, "id is required"},
		{"recovery ack without id", "POST", "/api/v1/recovery/ack", `{"operator":"admin@secai"}`, "incident_id is required"},
		{"recovery ack unknown field", "POST", "/api/v1/recovery/ack", `{"id":"INC-1"}`, `unknown field "id"`},
		{"reattest without id", "POST", "/api/v1/recovery/reattest", `{}`, "incident_id is required"},
		{"deliveries bad limit", "GET", "/api/v1/webhooks/deliveries?limit=5000", "", "limit must be between 1 and 1000"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := receiptCount(t, env, warden.ReceiptFilter{})
			var e apiErr
			var body any
			if tc.method == "POST" {
				body = tc.body
			}
			mustCall(t, 400, tc.method, base+tc.path, env.Admin, body, &e)
			if e.Code != warden.EINVALID && e.Code != warden.ETOOLARGE {
				t.Errorf("code %q", e.Code)
			}
			if !strings.Contains(e.Error, tc.want) {
				t.Errorf("error %q does not say %q", e.Error, tc.want)
			}
			if after := receiptCount(t, env, warden.ReceiptFilter{}); after != before {
				t.Errorf("a 400 wrote %d receipts", after-before)
			}
		})
	}
	if st := env.MustStats(t); st.TotalIncidents != 0 {
		t.Fatalf("bad requests created incidents: %+v", st)
	}
	// The valid body itself is accepted, so the cases above fail for their
	// stated reason only.
	mustCall(t, 201, "POST", base+"/api/v1/incidents/report", env.Admin, valid, nil)
}

// TestIncidentAuth: no or bad token is 401; a reporter may report only its
// own source and allowed classes (403); every refusal is an auth_failure
// receipt and creates no incident.
func TestIncidentAuth(t *testing.T) {
	env, base, _ := incidentEnv(t)
	reporter := env.MustCredential(t, engine.CredentialSpec{Name: "agent-1-reporter", Roles: []warden.Role{warden.RoleReporter},
		Source: "agent-1", Classes: []string{warden.ClassPromptInjection, warden.ClassToolCallBurst}})
	reader := env.MustCredential(t, engine.CredentialSpec{Name: "reader", Roles: []warden.Role{warden.RoleRead}})
	cases := []struct {
		name, token string
		body        map[string]any
		status      int
		want        string
	}{
		{"no token", "", report(warden.ClassToolCallBurst, "agent-1"), 401, ""},
		{"unknown token", "wdn_nope", report(warden.ClassToolCallBurst, "agent-1"), 401, ""},
		{"other source", reporter, report(warden.ClassToolCallBurst, "agent-2"), 403, `only report for source "agent-1"`},
		{"class not allowed", reporter, report(warden.ClassAttestationFailure, "agent-1"), 403, `may not report class "attestation_failure"`},
		{"reader cannot report", reader, report(warden.ClassToolCallBurst, "agent-1"), 403, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := receiptCount(t, env, warden.ReceiptFilter{Type: warden.ReceiptAuthFailure})
			var e apiErr
			mustCall(t, tc.status, "POST", base+"/api/v1/incidents/report", tc.token, tc.body, &e)
			if !strings.Contains(e.Error, tc.want) {
				t.Errorf("error %q does not say %q", e.Error, tc.want)
			}
			fails := env.MustReceipts(t, warden.ReceiptFilter{Type: warden.ReceiptAuthFailure})
			if len(fails) != before+1 {
				t.Fatalf("auth_failure receipts %d → %d, want one more", before, len(fails))
			}
			var f engine.AuthFailure
			if err := json.Unmarshal(fails[len(fails)-1].Body, &f); err != nil {
				t.Fatal(err)
			}
			if f.Status != tc.status || f.Path != "/api/v1/incidents/report" || !strings.Contains(f.Reason, tc.want) {
				t.Errorf("auth_failure receipt %+v", f)
			}
		})
	}
	if st := env.MustStats(t); st.TotalIncidents != 0 {
		t.Fatalf("refused reports created incidents: %+v", st)
	}
	var inc warden.Incident
	mustCall(t, 201, "POST", base+"/api/v1/incidents/report", reporter, report(warden.ClassPromptInjection, "agent-1"), &inc)
	if inc.ReportedBy != "agent-1-reporter" || inc.Source != "agent-1" {
		t.Fatalf("reported %+v", inc)
	}
	// Reporters cannot resolve what they report.
	mustCall(t, 403, "POST", base+"/api/v1/incidents/resolve", reporter, map[string]string{"id": inc.ID}, nil)
}

// TestIncidentNotFound: an unknown incident id is 404 on every route that
// takes one, and changes nothing.
func TestIncidentNotFound(t *testing.T) {
	env, base, _ := incidentEnv(t)
	const id = "INC-20260314-120000-9999"
	cases := []struct{ method, path string }{
		{"GET", "/api/v1/incidents/get?id=" + id},
		{"POST", "/api/v1/incidents/resolve"},
		{"POST", "/api/v1/incidents/acknowledge"},
		{"POST", "/api/v1/recovery/ack"},
		{"POST", "/api/v1/recovery/reattest"},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			var body any
			switch {
			case strings.HasPrefix(tc.path, "/api/v1/incidents/") && tc.method == "POST":
				body = map[string]string{"id": id}
			case tc.path == "/api/v1/recovery/ack":
				body = map[string]string{"incident_id": id, "operator": "admin@secai"}
			case tc.method == "POST":
				body = map[string]string{"incident_id": id}
			}
			before := receiptCount(t, env, warden.ReceiptFilter{})
			var e apiErr
			mustCall(t, 404, tc.method, base+tc.path, env.Admin, body, &e)
			if e.Code != warden.ENOTFOUND || !strings.Contains(e.Error, id) {
				t.Errorf("404 body %+v", e)
			}
			if after := receiptCount(t, env, warden.ReceiptFilter{}); after != before {
				t.Errorf("a 404 wrote %d receipts", after-before)
			}
		})
	}
}

// TestIncidentMethodNotAllowed: each incident route answers a wrong method
// with a JSON 405 and an Allow header naming the right one.
func TestIncidentMethodNotAllowed(t *testing.T) {
	_, base, _ := incidentEnv(t)
	routes := map[string]string{
		"/health":                       "GET",
		"/api/v1/incidents/report":      "POST",
		"/api/v1/incidents":             "GET",
		"/api/v1/incidents/get":         "GET",
		"/api/v1/incidents/resolve":     "POST",
		"/api/v1/incidents/acknowledge": "POST",
		"/api/v1/recovery/status":       "GET",
		"/api/v1/recovery/ack":          "POST",
		"/api/v1/recovery/reattest":     "POST",
		"/api/v1/stats":                 "GET",
		"/api/v1/forensic/export":       "GET",
		"/api/v1/reload":                "POST",
		"/api/v1/policy":                "GET",
		"/api/v1/attestation/state":     "GET",
		"/api/v1/integrity/state":       "GET",
		"/api/v1/integrity/scan":        "POST",
		"/api/v1/integrity/baseline":    "POST",
		"/api/v1/webhooks/deliveries":   "GET",
	}
	for path, allowed := range routes {
		wrong := []string{"PUT", "DELETE", "PATCH"}
		if allowed == "GET" {
			wrong = append(wrong, "POST")
		} else {
			wrong = append(wrong, "GET")
		}
		for _, m := range wrong {
			t.Run(m+" "+path, func(t *testing.T) {
				req, _ := http.NewRequest(m, base+path, strings.NewReader(`{}`))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				var e apiErr
				if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
					t.Fatal(err)
				}
				if resp.StatusCode != 405 || resp.Header.Get("Allow") != allowed || e.Code != "method_not_allowed" ||
					!strings.Contains(e.Error, allowed) || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
					t.Fatalf("%d Allow %q %+v", resp.StatusCode, resp.Header.Get("Allow"), e)
				}
			})
		}
	}
}

// snapshot is the state a refused request must leave unchanged.
type snapshot struct {
	Incident    *warden.Incident
	Requirement *warden.RecoveryRequirement
	Stats       *warden.IncidentStats
}

func snap(t *testing.T, env *wardentest.Env, id string) snapshot {
	t.Helper()
	return snapshot{env.MustIncident(t, id), env.MustRequirement(t, id), env.MustStats(t)}
}

// TestIncidentConflicts: every 409 names its reason, writes exactly one
// receipt (tagged denied) and changes no state.
func TestIncidentConflicts(t *testing.T) {
	env, base, _ := incidentEnv(t)
	mk := func(class string) string {
		var inc warden.Incident
		mustCall(t, 201, "POST", base+"/api/v1/incidents/report", env.Admin, report(class, "agent-1"), &inc)
		return inc.ID
	}
	latched := mk(warden.ClassAttestationFailure)       // needs ack + re-attestation
	ackOnly := mk(warden.ClassManifestMismatch)         // high, latched: ack only
	plain := mk(warden.ClassToolCallBurst)              // no requirement
	acked := mk(warden.ClassUnauthorizedAccess)         // critical: ack + re-attestation
	resolved := mk(warden.ClassForbiddenAirlockRequest) // resolved below
	acknowledged := mk(warden.ClassPromptInjection)     // acknowledged below
	mustCall(t, 200, "POST", base+"/api/v1/recovery/ack", env.Admin, map[string]string{"incident_id": acked, "operator": "admin@secai"}, nil)
	mustCall(t, 200, "POST", base+"/api/v1/incidents/resolve", env.Admin, map[string]string{"id": resolved}, nil)
	mustCall(t, 200, "POST", base+"/api/v1/incidents/acknowledge", env.Admin, map[string]string{"id": acknowledged}, nil)

	cases := []struct {
		name, path, id string
		body           any
		want           []string // substrings of the error
		not            []string // must not be named
	}{
		{"resolve latched", "/api/v1/incidents/resolve", latched, map[string]string{"id": latched},
			[]string{"latched", "attestation_failure", "acknowledgment", "re-attestation"}, nil},
		{"acknowledge latched", "/api/v1/incidents/acknowledge", latched, map[string]string{"id": latched},
			[]string{"latched", "acknowledgment", "re-attestation"}, nil},
		{"resolve latched ack-only", "/api/v1/incidents/resolve", ackOnly, map[string]string{"id": ackOnly},
			[]string{"manifest_mismatch", "acknowledgment"}, []string{"re-attestation"}},
		{"resolve acked, not re-attested", "/api/v1/incidents/resolve", acked, map[string]string{"id": acked},
			[]string{"re-attestation"}, []string{"acknowledgment ("}},
		{"double resolve", "/api/v1/incidents/resolve", resolved, map[string]string{"id": resolved},
			[]string{"already resolved"}, nil},
		{"acknowledge resolved", "/api/v1/incidents/acknowledge", resolved, map[string]string{"id": resolved},
			[]string{"already resolved"}, nil},
		{"double acknowledge", "/api/v1/incidents/acknowledge", acknowledged, map[string]string{"id": acknowledged},
			[]string{"already acknowledged"}, nil},
		{"recovery ack twice", "/api/v1/recovery/ack", acked, map[string]string{"incident_id": acked, "operator": "someone"},
			[]string{"already acknowledged", "admin@secai"}, nil},
		{"recovery ack without requirement", "/api/v1/recovery/ack", plain, map[string]string{"incident_id": plain},
			[]string{"no recovery requirement"}, nil},
		{"reattest without requirement", "/api/v1/recovery/reattest", plain, map[string]string{"incident_id": plain},
			[]string{"no recovery requirement"}, nil},
		{"reattest not required", "/api/v1/recovery/reattest", ackOnly, map[string]string{"incident_id": ackOnly},
			[]string{"does not require re-attestation"}, nil},
		{"reattest before ack", "/api/v1/recovery/reattest", latched, map[string]string{"incident_id": latched},
			[]string{"must be acknowledged"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := snap(t, env, tc.id)
			all := receiptCount(t, env, warden.ReceiptFilter{})
			denied := receiptCount(t, env, warden.ReceiptFilter{Tag: "denied"})
			var e apiErr
			mustCall(t, 409, "POST", base+tc.path, env.Admin, tc.body, &e)
			if e.Code != warden.ECONFLICT {
				t.Errorf("code %q", e.Code)
			}
			for _, w := range tc.want {
				if !strings.Contains(e.Error, w) {
					t.Errorf("error %q does not name %q", e.Error, w)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(e.Error, w) {
					t.Errorf("error %q names %q, which is not missing", e.Error, w)
				}
			}
			if d := cmp.Diff(before, snap(t, env, tc.id)); d != "" {
				t.Errorf("a 409 changed state (-before +after):\n%s", d)
			}
			if got := receiptCount(t, env, warden.ReceiptFilter{}); got != all+1 {
				t.Errorf("a 409 wrote %d receipts, want exactly 1", got-all)
			}
			list := env.MustReceipts(t, warden.ReceiptFilter{Tag: "denied"})
			if len(list) != denied+1 {
				t.Fatalf("denied receipts %d → %d", denied, len(list))
			}
			var body struct {
				IncidentID string `json:"incident_id"`
				Reason     string `json:"reason"`
				Code       string `json:"code"`
			}
			last := list[len(list)-1]
			if err := json.Unmarshal(last.Body, &body); err != nil {
				t.Fatal(err)
			}
			if last.Scroll != warden.ScrollIncident || body.IncidentID != tc.id || body.Reason != e.Error || body.Code != warden.ECONFLICT {
				t.Errorf("denial receipt %s %s", last.Scroll, last.Body)
			}
		})
	}
}

// TestIncidentListing: GET /api/v1/incidents is a bare JSON array ([] when
// empty), sorted by severity then newest, filterable, and uncapped.
func TestIncidentListing(t *testing.T) {
	env, base, _ := incidentEnv(t)
	raw := mustCall(t, 200, "GET", base+"/api/v1/incidents", env.Admin, nil, nil)
	if strings.TrimSpace(string(raw)) != "[]" {
		t.Fatalf("empty listing %q", raw)
	}
	raw = mustCall(t, 200, "GET", base+"/api/v1/incidents?state=resolved&class=prompt_injection", env.Admin, nil, nil)
	if strings.TrimSpace(string(raw)) != "[]" {
		t.Fatalf("empty filtered listing %q", raw)
	}

	// A small deterministic order first.
	var ids []string
	for _, r := range []struct {
		class string
		sev   warden.Severity
	}{
		{warden.ClassToolCallBurst, warden.SeverityLow},
		{warden.ClassAttestationFailure, ""}, // critical
		{warden.ClassToolCallBurst, warden.SeverityHigh},
		{warden.ClassPromptInjection, warden.SeverityLow},
		{warden.ClassUnauthorizedAccess, ""}, // critical
	} {
		env.Clock.Advance(time.Second)
		inc := env.MustReport(t, nil, recorder.ReportRequest{Class: r.class, Severity: string(r.sev), SeverityReason: "test", Source: "s", Description: "d"})
		ids = append(ids, inc.ID)
	}
	want := []string{ids[4], ids[1], ids[2], ids[3], ids[0]}
	var list []warden.Incident
	mustCall(t, 200, "GET", base+"/api/v1/incidents", env.Admin, nil, &list)
	var got []string
	for _, i := range list {
		got = append(got, i.ID)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("order (-want +got):\n%s", d)
	}
	list = nil
	mustCall(t, 200, "GET", base+"/api/v1/incidents?class=tool_call_burst&severity=low", env.Admin, nil, &list)
	if len(list) != 1 || list[0].ID != ids[0] {
		t.Fatalf("filtered: %+v", list)
	}
	list = nil
	mustCall(t, 200, "GET", base+"/api/v1/incidents?limit=2", env.Admin, nil, &list)
	if len(list) != 2 || list[0].ID != want[0] || list[1].ID != want[1] {
		t.Fatalf("limit=2: %+v", list)
	}

	// 1,500 more, reported concurrently, all listed in order page by page.
	const n = 1500
	reported := map[string]bool{}
	for _, id := range ids {
		reported[id] = true
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sevs := []string{"low", "medium", "high", ""}
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				inc, err := env.Recorder.ReportIncident(context.Background(), wardentest.AdminPrincipal, recorder.ReportRequest{
					Class: warden.ClassForbiddenAirlockRequest, Severity: sevs[i%len(sevs)], SeverityReason: "test", Source: "airlock", Description: strconv.Itoa(i)})
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				reported[inc.ID] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	list = nil
	for _, p := range mustPages(t, base+"/api/v1/incidents", env.Admin) {
		var page []warden.Incident
		if err := json.Unmarshal(p.body, &page); err != nil {
			t.Fatal(err)
		}
		if len(page) != warden.DefaultPageSize && p.next != "" {
			t.Fatalf("a page of %d before the last (default limit %d)", len(page), warden.DefaultPageSize)
		}
		list = append(list, page...)
	}
	if len(list) != n+len(ids) || len(reported) != n+len(ids) {
		t.Fatalf("listed %d of %d incidents (%d unique ids reported)", len(list), n+len(ids), len(reported))
	}
	seen := map[string]bool{}
	for k, i := range list {
		if !reported[i.ID] || seen[i.ID] {
			t.Fatalf("listing entry %d: %s unknown or repeated", k, i.ID)
		}
		seen[i.ID] = true
		if k == 0 {
			continue
		}
		prev := list[k-1]
		if prev.Severity.Rank() < i.Severity.Rank() || (prev.Severity == i.Severity && prev.Number <= i.Number) {
			t.Fatalf("entries %d,%d out of order: %s/%d then %s/%d", k-1, k, prev.Severity, prev.Number, i.Severity, i.Number)
		}
	}
	if st := env.MustStats(t); st.TotalIncidents != int64(n+len(ids)) {
		t.Fatalf("stats total %d", st.TotalIncidents)
	}
}

// TestStats: /api/v1/stats and /health count exactly after a mix of
// reports, escalations, failed containment, acknowledgment and resolutions.
func TestStats(t *testing.T) {
	env, base, _ := incidentEnv(t)
	rep := func(class string, ev map[string]string) warden.Incident {
		t.Helper()
		var inc warden.Incident
		b := report(class, "agent-1")
		if ev != nil {
			b["evidence"] = ev
		}
		mustCall(t, 201, "POST", base+"/api/v1/incidents/report", env.Admin, b, &inc)
		return inc
	}
	var tools []warden.Incident
	for i := 0; i < 5; i++ {
		tools = append(tools, rep(warden.ClassToolCallBurst, nil))
	}
	if tools[4].Severity != warden.SeverityHigh || tools[3].Severity != warden.SeverityMedium {
		t.Fatalf("tool_call_burst window: %s, %s", tools[3].Severity, tools[4].Severity)
	}
	air1 := rep(warden.ClassForbiddenAirlockRequest, nil)
	air2 := rep(warden.ClassForbiddenAirlockRequest, nil)
	rep(warden.ClassAttestationFailure, nil)
	// No model_path: quarantine cannot run, containment fails.
	mm := rep(warden.ClassManifestMismatch, nil)
	if mm.State != warden.StateContainmentFailed {
		t.Fatalf("manifest_mismatch without model_path: %s", mm.State)
	}
	for _, id := range []string{tools[0].ID, tools[1].ID, air1.ID} {
		mustCall(t, 200, "POST", base+"/api/v1/incidents/resolve", env.Admin, map[string]string{"id": id}, nil)
	}
	mustCall(t, 200, "POST", base+"/api/v1/incidents/acknowledge", env.Admin, map[string]string{"id": air2.ID}, nil)

	want := &warden.IncidentStats{
		TotalIncidents: 9,
		OpenIncidents:  5, // tool ×3 (2 medium, 1 high), attestation critical, manifest high
		ContainedCount: 7, // auto-contained: tool ×5, attestation, manifest (not forbidden_airlock_request)
		ResolvedCount:  3,
		ByClass: map[string]int64{warden.ClassToolCallBurst: 5, warden.ClassForbiddenAirlockRequest: 2,
			warden.ClassAttestationFailure: 1, warden.ClassManifestMismatch: 1},
		OpenBySeverity: map[string]int64{"medium": 2, "high": 2, "critical": 1},
	}
	var got warden.IncidentStats
	mustCall(t, 200, "GET", base+"/api/v1/stats", env.Admin, nil, &got)
	if d := cmp.Diff(want, &got); d != "" {
		t.Fatalf("stats (-want +got):\n%s", d)
	}
	// The counters agree with a recount of the listing.
	var list []warden.Incident
	mustCall(t, 200, "GET", base+"/api/v1/incidents", env.Admin, nil, &list)
	recount := &warden.IncidentStats{ByClass: map[string]int64{}, OpenBySeverity: map[string]int64{}}
	for _, i := range list {
		recount.TotalIncidents++
		recount.ByClass[i.Class]++
		if i.State.IsOpen() {
			recount.OpenIncidents++
			recount.OpenBySeverity[string(i.Severity)]++
		}
		if i.State == warden.StateResolved {
			recount.ResolvedCount++
		}
		if i.AutoContained {
			recount.ContainedCount++
		}
	}
	if d := cmp.Diff(want, recount); d != "" {
		t.Fatalf("listing recount (-want +got):\n%s", d)
	}
	var health struct {
		Status         string `json:"status"`
		OpenIncidents  int64  `json:"open_incidents"`
		TotalIncidents int64  `json:"total_incidents"`
	}
	mustCall(t, 200, "GET", base+"/health", "", nil, &health)
	if health.Status != "ok" || health.OpenIncidents != want.OpenIncidents || health.TotalIncidents != want.TotalIncidents {
		t.Fatalf("health %+v", health)
	}
}

// TestPolicyReload: POST /api/v1/reload swaps in a valid changed file (new
// digest, policy_loaded receipt, new rules in force) and refuses an invalid
// one with 400 naming the problem, keeping the old policy, receipted.
func TestPolicyReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "containment.yaml")
	if err := os.WriteFile(path, contain.DefaultPolicyYAML(), 0o644); err != nil {
		t.Fatal(err)
	}
	load := func() (*warden.ContainmentPolicy, error) {
		p, _, err := contain.LoadPolicy(path)
		return p, err
	}
	initial, err := load()
	if err != nil {
		t.Fatal(err)
	}
	env, base, _ := incidentEnv(t, func(c *stack.Config) { c.Recorder.Policy, c.Recorder.LoadPolicy = initial, load })
	operator := env.MustCredential(t, engine.CredentialSpec{Name: "op", Roles: []warden.Role{warden.RoleOperator}})
	reader := env.MustCredential(t, engine.CredentialSpec{Name: "rd", Roles: []warden.Role{warden.RoleRead}})
	type policyAnswer struct {
		Digest string                   `json:"digest"`
		Policy warden.ContainmentPolicy `json:"policy"`
	}
	var p0 policyAnswer
	mustCall(t, 200, "GET", base+"/api/v1/policy", reader, nil, &p0)
	mustCall(t, 403, "POST", base+"/api/v1/reload", reader, nil, nil)

	// A valid, changed file.
	changed := bytes.Replace(contain.DefaultPolicyYAML(), []byte("default_severity: medium"), []byte("default_severity: low"), 1)
	if bytes.Equal(changed, contain.DefaultPolicyYAML()) {
		t.Fatal("the default policy YAML has no medium default to change")
	}
	if err := os.WriteFile(path, changed, 0o644); err != nil {
		t.Fatal(err)
	}
	var ok struct {
		Status       string `json:"status"`
		PolicyDigest string `json:"policy_digest"`
	}
	mustCall(t, 200, "POST", base+"/api/v1/reload", operator, nil, &ok)
	if ok.Status != "reloaded" || ok.PolicyDigest == "" || ok.PolicyDigest == p0.Digest {
		t.Fatalf("reload answer %+v, old digest %s", ok, p0.Digest)
	}
	var p1 policyAnswer
	mustCall(t, 200, "GET", base+"/api/v1/policy", reader, nil, &p1)
	if p1.Digest != ok.PolicyDigest {
		t.Fatalf("policy in force %s, reload said %s", p1.Digest, ok.PolicyDigest)
	}
	lowered := ""
	for c, r := range p1.Policy.Rules {
		if r.DefaultSeverity != p0.Policy.Rules[c].DefaultSeverity {
			lowered = c
		}
	}
	if lowered == "" || p1.Policy.Rules[lowered].DefaultSeverity != warden.SeverityLow {
		t.Fatalf("no rule changed to low: %+v", p1.Policy.Rules)
	}
	loaded := env.MustReceipts(t, warden.ReceiptFilter{Scroll: warden.ScrollPolicy, Type: warden.ReceiptPolicyLoaded})
	var lb struct {
		Digest         string `json:"digest"`
		PreviousDigest string `json:"previous_digest"`
		By             string `json:"by"`
		Changed        bool   `json:"changed"`
	}
	if len(loaded) != 1 || json.Unmarshal(loaded[0].Body, &lb) != nil || lb.Digest != ok.PolicyDigest || lb.PreviousDigest != p0.Digest || lb.By != "op" || !lb.Changed {
		t.Fatalf("policy_loaded receipts %d: %+v", len(loaded), lb)
	}
	var inc warden.Incident
	mustCall(t, 201, "POST", base+"/api/v1/incidents/report", env.Admin, report(lowered, "agent-1"), &inc)
	if inc.Severity != warden.SeverityLow {
		t.Fatalf("reloaded default severity not in force: %s", inc.Severity)
	}

	// An invalid file: unknown key.
	bad := append(append([]byte{}, changed...), []byte("\nbogus_key: 1\n")...)
	if err := os.WriteFile(path, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	var e apiErr
	mustCall(t, 400, "POST", base+"/api/v1/reload", operator, nil, &e)
	if e.Code != warden.EINVALID || !strings.Contains(e.Error, "bogus_key") || !strings.Contains(e.Error, "previous policy stays in force") {
		t.Fatalf("invalid reload: %+v", e)
	}
	var p2 policyAnswer
	mustCall(t, 200, "GET", base+"/api/v1/policy", reader, nil, &p2)
	if p2.Digest != p1.Digest {
		t.Fatalf("an invalid file replaced the policy: %s → %s", p1.Digest, p2.Digest)
	}
	failed := env.MustReceipts(t, warden.ReceiptFilter{Scroll: warden.ScrollPolicy, Type: warden.ReceiptPolicyReloadFailed})
	var fb struct {
		KeptDigest string `json:"kept_digest"`
		Reason     string `json:"reason"`
	}
	if len(failed) != 1 || json.Unmarshal(failed[0].Body, &fb) != nil || fb.KeptDigest != p1.Digest || fb.Reason != e.Error {
		t.Fatalf("policy_reload_failed receipts %d: %+v", len(failed), fb)
	}
	if n := receiptCount(t, env, warden.ReceiptFilter{Type: warden.ReceiptPolicyLoaded}); n != 1 {
		t.Fatalf("%d policy_loaded receipts after a failed reload", n)
	}
	inc = warden.Incident{}
	mustCall(t, 201, "POST", base+"/api/v1/incidents/report", env.Admin, report(lowered, "agent-1"), &inc)
	if inc.Severity != warden.SeverityLow {
		t.Fatalf("policy after failed reload: %s", inc.Severity)
	}
}

type deliveriesAnswer struct {
	Deliveries []warden.Delivery `json:"deliveries"`
	Count      int               `json:"count"`
}

// TestWebhooks: a report enqueues a containment delivery that the sender
// delivers signed, in the reference payload shape; a failing receiver is
// retried per the backoff as the clock advances, then failed and receipted;
// recovery steps enqueue recovery deliveries.
func TestWebhooks(t *testing.T) {
	hook := wardentest.MustTarget(t)
	tg := wardentest.MustTarget(t)
	pol := wardentest.TargetPolicy(tg.URL)
	pol.Alerting.Webhooks = []warden.Webhook{{URL: hook.URL + "/hook", Events: []string{warden.EventContainment, warden.EventRecovery}}}
	env := wardentest.MustEnv(t, wardentest.Containment(pol))
	mustStart(t, env)
	base, _ := env.MustServer(t)
	sender := &contain.WebhookSender{
		Outbox: env.Recorder, Clock: env.Clock.Now, HMACKey: env.Dir.WebhookKey, MaxAttempts: 3,
		Logger: slog.New(slog.DiscardHandler),
	}
	runOnce := func(want int) {
		t.Helper()
		n, err := sender.RunOnce(t.Context())
		if err != nil || n != want {
			t.Fatalf("RunOnce at %s: sent %d, %v; want %d", env.Clock.Now(), n, err, want)
		}
	}
	deliveries := func(id string) []warden.Delivery {
		t.Helper()
		var d deliveriesAnswer
		mustCall(t, 200, "GET", base+"/api/v1/webhooks/deliveries?incident_id="+id, env.Admin, nil, &d)
		if d.Count != len(d.Deliveries) {
			t.Fatalf("count %d for %d deliveries", d.Count, len(d.Deliveries))
		}
		return d.Deliveries
	}

	var inc warden.Incident
	mustCall(t, 201, "POST", base+"/api/v1/incidents/report", env.Admin, report(warden.ClassAttestationFailure, "tpm"), &inc)
	ds := deliveries(inc.ID)
	if len(ds) != 1 || ds[0].Event != warden.EventContainment || ds[0].Status != warden.DeliveryPending || ds[0].URL != hook.URL+"/hook" {
		t.Fatalf("after report: %+v", ds)
	}
	runOnce(1)
	runOnce(0)
	reqs := hook.Requests()
	if len(reqs) != 1 {
		t.Fatalf("receiver got %d requests", len(reqs))
	}
	r := reqs[0]
	ts := r.Header.Get(contain.HeaderTimestamp)
	if r.Method != "POST" || r.Path != "/hook" || r.Header.Get(contain.HeaderEvent) != warden.EventContainment ||
		r.Header.Get(contain.HeaderDelivery) != strconv.FormatUint(ds[0].ID, 10) || ts != strconv.FormatInt(env.Clock.Now().Unix(), 10) {
		t.Fatalf("webhook request %s %s %v", r.Method, r.Path, r.Header)
	}
	sig := r.Header.Get(contain.HeaderSignature)
	if !contain.VerifyWebhookSignature(env.Dir.WebhookKey, ts, r.Body, sig) {
		t.Fatalf("signature %q does not verify", sig)
	}
	// The documented format, computed independently of package contain.
	mac := hmac.New(sha256.New, env.Dir.WebhookKey)
	mac.Write([]byte(ts + "." + string(r.Body)))
	if want := "sha256=" + hex.EncodeToString(mac.Sum(nil)); sig != want {
		t.Fatalf("signature %q, want HMAC-SHA256(key, timestamp.payload) = %q", sig, want)
	}
	if contain.VerifyWebhookSignature([]byte("another key of thirty-two bytes!"), ts, r.Body, sig) ||
		contain.VerifyWebhookSignature(env.Dir.WebhookKey, ts, append(bytes.Clone(r.Body), ' '), sig) {
		t.Fatal("signature verifies under the wrong key or a changed payload")
	}
	var shape map[string]json.RawMessage
	if err := json.Unmarshal(r.Body, &shape); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range shape {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if d := cmp.Diff([]string{"actions", "event", "incident", "severity", "source", "timestamp"}, keys); d != "" {
		t.Fatalf("payload keys (-want +got):\n%s", d)
	}
	var payload recorder.WebhookPayload
	if err := json.Unmarshal(r.Body, &payload); err != nil {
		t.Fatal(err)
	}
	if payload.Event != warden.EventContainment || payload.Incident == nil || payload.Incident.ID != inc.ID ||
		payload.Incident.State != warden.StateContained || payload.Severity != warden.SeverityCritical || payload.Source != "tpm" ||
		!slices.Equal(payload.Actions, inc.ContainmentActions) || payload.Timestamp != warden.FormatTime(env.Clock.Now()) {
		t.Fatalf("payload %s", r.Body)
	}
	ds = deliveries(inc.ID)
	if ds[0].Status != warden.DeliveryDelivered || ds[0].Attempts != 1 || ds[0].LastStatus != 200 {
		t.Fatalf("delivered: %+v", ds[0])
	}

	// Recovery steps enqueue recovery deliveries; the receiver now fails.
	hook.Respond("*", 500)
	mustCall(t, 200, "POST", base+"/api/v1/recovery/ack", env.Admin, map[string]string{"incident_id": inc.ID, "operator": "admin@secai"}, nil)
	mustCall(t, 200, "POST", base+"/api/v1/recovery/reattest", env.Admin, map[string]string{"incident_id": inc.ID}, nil)
	recovery := func() []warden.Delivery {
		var out []warden.Delivery
		for _, d := range deliveries(inc.ID) {
			if d.Event == warden.EventRecovery {
				out = append(out, d)
			}
		}
		return out
	}
	if rs := recovery(); len(rs) != 2 || rs[0].Status != warden.DeliveryPending || rs[1].Status != warden.DeliveryPending {
		t.Fatalf("recovery deliveries %+v", rs)
	}
	// Default backoff: 1 s after the first failure, 2 s after the second.
	runOnce(2)
	runOnce(0)
	env.Clock.Advance(time.Second - time.Nanosecond)
	runOnce(0)
	env.Clock.Advance(time.Nanosecond)
	runOnce(2)
	env.Clock.Advance(time.Second)
	runOnce(0)
	env.Clock.Advance(time.Second)
	runOnce(2) // third attempt: MaxAttempts reached
	env.Clock.Advance(time.Hour)
	runOnce(0)
	if got := len(hook.Requests()); got != 1+2*3 {
		t.Fatalf("receiver got %d requests, want 7", got)
	}
	for _, rq := range hook.Requests()[1:] {
		if rq.Header.Get(contain.HeaderEvent) != warden.EventRecovery ||
			!contain.VerifyWebhookSignature(env.Dir.WebhookKey, rq.Header.Get(contain.HeaderTimestamp), rq.Body, rq.Header.Get(contain.HeaderSignature)) {
			t.Fatalf("retry %v", rq.Header)
		}
	}
	for _, d := range recovery() {
		if d.Status != warden.DeliveryFailed || d.Attempts != 3 || d.LastStatus != 500 || !strings.Contains(d.LastError, "HTTP 500") {
			t.Fatalf("failed delivery %+v", d)
		}
	}
	fails := env.MustReceipts(t, warden.ReceiptFilter{Type: warden.ReceiptWebhookFailed})
	if len(fails) != 2 {
		t.Fatalf("%d webhook_delivery_failed receipts, want 2", len(fails))
	}
	for _, f := range fails {
		var b struct {
			IncidentID string `json:"incident_id"`
			Event      string `json:"event"`
			Attempts   int    `json:"attempts"`
			LastStatus int    `json:"last_status"`
		}
		if err := json.Unmarshal(f.Body, &b); err != nil || f.Scroll != warden.ScrollIncident ||
			b.IncidentID != inc.ID || b.Event != warden.EventRecovery || b.Attempts != 3 || b.LastStatus != 500 {
			t.Fatalf("failure receipt %s %s", f.Scroll, f.Body)
		}
	}
	var all deliveriesAnswer
	mustCall(t, 200, "GET", base+"/api/v1/webhooks/deliveries", env.Admin, nil, &all)
	if all.Count != 3 {
		t.Fatalf("all deliveries: %+v", all)
	}
}

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// TestIntegrityScan: a baseline scans clean; a changed file is reported
// once as an integrity_violation naming the path and both hashes; the
// integrity state is degraded; re-attestation is refused while the file
// differs and succeeds once it is restored; resolving makes it trusted.
func TestIntegrityScan(t *testing.T) {
	env, base, _ := incidentEnv(t)
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.conf"), filepath.Join(dir, "sub", "b.conf")
	if err := os.MkdirAll(filepath.Dir(b), 0o755); err != nil {
		t.Fatal(err)
	}
	for p, s := range map[string]string{a: "alpha\n", b: "beta\n"} {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	type scanAnswer struct {
		Clean    bool              `json:"clean"`
		Files    int               `json:"files"`
		Evidence map[string]string `json:"evidence"`
		Incident *warden.Incident  `json:"incident"`
		Reported bool              `json:"reported"`
	}
	type state struct {
		State   string   `json:"state"`
		Pending []string `json:"pending_incidents"`
	}
	integrityState := func() state {
		var s state
		mustCall(t, 200, "GET", base+"/api/v1/integrity/state", "", nil, &s)
		return s
	}
	var bl struct{ Files int }
	mustCall(t, 200, "POST", base+"/api/v1/integrity/baseline", env.Admin, map[string]any{"paths": []string{dir}}, &bl)
	if bl.Files != 2 {
		t.Fatalf("baseline files %d", bl.Files)
	}
	var scan scanAnswer
	mustCall(t, 200, "POST", base+"/api/v1/integrity/scan", env.Admin, nil, &scan)
	if !scan.Clean || scan.Incident != nil || scan.Files != 2 {
		t.Fatalf("clean scan %+v", scan)
	}
	if s := integrityState(); s.State != "trusted" {
		t.Fatalf("state before change %+v", s)
	}

	if err := os.WriteFile(a, []byte("tampered\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustCall(t, 200, "POST", base+"/api/v1/integrity/scan", env.Admin, nil, &scan)
	inc := scan.Incident
	if scan.Clean || !scan.Reported || inc == nil || inc.Class != warden.ClassIntegrityViolation || inc.Severity != warden.SeverityCritical {
		t.Fatalf("scan after change %+v", scan)
	}
	if inc.Evidence["changed"] != a || inc.Evidence[a] != "expected="+sha("alpha\n")+" actual="+sha("tampered\n") {
		t.Fatalf("evidence %v", inc.Evidence)
	}
	if _, ok := inc.Evidence[b]; ok {
		t.Fatalf("unchanged file named in evidence %v", inc.Evidence)
	}
	if s := integrityState(); s.State != "degraded" || !slices.Equal(s.Pending, []string{inc.ID}) {
		t.Fatalf("state after change %+v", s)
	}
	// The same violation is not reported twice.
	mustCall(t, 200, "POST", base+"/api/v1/integrity/scan", env.Admin, nil, &scan)
	if scan.Reported || scan.Incident == nil || scan.Incident.ID != inc.ID {
		t.Fatalf("second scan %+v", scan)
	}
	if st := env.MustStats(t); st.TotalIncidents != 1 {
		t.Fatalf("duplicate violation reported: %+v", st)
	}

	mustCall(t, 200, "POST", base+"/api/v1/recovery/ack", env.Admin, map[string]string{"incident_id": inc.ID, "operator": "admin@secai"}, nil)
	before := snap(t, env, inc.ID)
	denied := receiptCount(t, env, warden.ReceiptFilter{Tag: "denied"})
	var e apiErr
	mustCall(t, 409, "POST", base+"/api/v1/recovery/reattest", env.Admin, map[string]string{"incident_id": inc.ID}, &e)
	if !strings.Contains(e.Error, "integrity baseline mismatch") || !strings.Contains(e.Error, "1 changed") {
		t.Fatalf("reattest with the file changed: %+v", e)
	}
	if d := cmp.Diff(before, snap(t, env, inc.ID)); d != "" {
		t.Fatalf("refused reattest changed state:\n%s", d)
	}
	if got := receiptCount(t, env, warden.ReceiptFilter{Tag: "denied"}); got != denied+1 {
		t.Fatalf("refused reattest: %d denied receipts, want %d", got, denied+1)
	}

	if err := os.WriteFile(a, []byte("alpha\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var re struct {
		Status      string                     `json:"status"`
		Requirement warden.RecoveryRequirement `json:"requirement"`
	}
	mustCall(t, 200, "POST", base+"/api/v1/recovery/reattest", env.Admin, map[string]string{"incident_id": inc.ID}, &re)
	if re.Status != "re-attestation recorded" || !re.Requirement.RecoveryComplete || re.Requirement.ReAttestedAt == "" {
		t.Fatalf("reattest after restore %+v", re)
	}
	mustCall(t, 200, "POST", base+"/api/v1/incidents/resolve", env.Admin, map[string]string{"id": inc.ID}, nil)
	if s := integrityState(); s.State != "trusted" || len(s.Pending) != 0 {
		t.Fatalf("state after recovery %+v", s)
	}
	mustCall(t, 200, "POST", base+"/api/v1/integrity/scan", env.Admin, nil, &scan)
	if !scan.Clean {
		t.Fatalf("scan after restore %+v", scan)
	}
}
