package cli_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/cli"
)

// TestListCommandsPage (issue 10, item 7): `incident list`, `recovery
// status` and `credential list --url` follow the server's Link headers
// until the listing ends (or --limit), so the user gets every item as
// before, in the same format, however small the pages.
func TestListCommandsPage(t *testing.T) {
	s := startServer(t, filepath.Join(t.TempDir(), "data"), "--dev", "--drill")
	classes := []string{warden.ClassToolCallBurst, warden.ClassUnauthorizedAccess, warden.ClassPromptInjection}
	for i := range 11 {
		if st := httpJSON(t, "POST", s.URL+"/api/v1/incidents/report", "", map[string]any{
			"class": classes[i%3], "source": "agent-1", "description": fmt.Sprint("paging ", i),
		}, nil); st != 201 {
			t.Fatalf("report: %d", st)
		}
	}
	for i := range 4 {
		if st := httpJSON(t, "POST", s.URL+"/api/v1/credentials", "", map[string]any{"name": fmt.Sprint("reader-", i), "roles": []string{"read"}}, nil); st != 201 {
			t.Fatalf("credential: %d", st)
		}
	}
	var all []*warden.Incident
	if st := httpJSON(t, "GET", s.URL+"/api/v1/incidents?limit=1000", "", nil, &all); st != 200 || len(all) != 11 {
		t.Fatalf("listing: %d, %d incidents", st, len(all))
	}
	defer cli.SetPageSize(3)()

	ids := func(out string) []string {
		t.Helper()
		var list []*warden.Incident
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		var ids []string
		for _, i := range list {
			ids = append(ids, i.ID)
		}
		return ids
	}
	var want []string
	for _, i := range all {
		want = append(want, i.ID)
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"incident", "list", "--json"}, want},
		{[]string{"incident", "list", "--json", "--limit", "5"}, want[:5]},
		{[]string{"incident", "list", "--json", "--limit", "2"}, want[:2]},
		{[]string{"incident", "list", "--json", "--limit", "50"}, want},
	} {
		code, out, errs := run(t, append(tc.args, "--url", s.URL)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", tc.args, code, errs)
		}
		if diff := cmp.Diff(tc.want, ids(out)); diff != "" {
			t.Errorf("%v (-want +got):\n%s", tc.args, diff)
		}
	}
	// The table: a header and every incident.
	code, out, errs := run(t, "incident", "list", "--url", s.URL)
	if lines := strings.Split(strings.TrimSpace(out), "\n"); code != 0 || len(lines) != 12 || !strings.HasPrefix(lines[0], "ID") {
		t.Fatalf("incident list: exit %d, %d lines: %s %s", code, len(lines), out, errs)
	}

	code, out, errs = run(t, "recovery", "status", "--json", "--url", s.URL)
	var st struct {
		PendingRecoveries []*warden.RecoveryRequirement `json:"pending_recoveries"`
		Count             int                           `json:"count"`
	}
	var allSt struct {
		Count int `json:"count"`
	}
	httpJSON(t, "GET", s.URL+"/api/v1/recovery/status?limit=1000", "", nil, &allSt)
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil || allSt.Count < 4 || st.Count != allSt.Count || len(st.PendingRecoveries) != allSt.Count {
		t.Fatalf("recovery status: exit %d %v: %s %s", code, err, out, errs)
	}

	code, out, errs = run(t, "credential", "list", "--json", "--url", s.URL)
	var creds []*warden.Credential
	var allCreds struct {
		Count int `json:"count"`
	}
	httpJSON(t, "GET", s.URL+"/api/v1/credentials?limit=1000", "", nil, &allCreds)
	if err := json.Unmarshal([]byte(out), &creds); code != 0 || err != nil || allCreds.Count < 4 || len(creds) != allCreds.Count {
		t.Fatalf("credential list: exit %d %v, %d credentials: %s %s", code, err, len(creds), out, errs)
	}
}
