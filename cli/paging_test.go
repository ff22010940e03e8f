package cli_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
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
	data := filepath.Join(t.TempDir(), "data")
	s := startServer(t, data, "--dev", "--drill")
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

	// receipts list: every page, --limit N the first N, newest first too;
	// through the server and on the data directory alike.
	seqs := func(out string) []uint64 {
		t.Helper()
		var list []*warden.Receipt
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		var seqs []uint64
		for _, r := range list {
			seqs = append(seqs, r.Seq)
		}
		return seqs
	}
	code, out, errs = run(t, "receipts", "list", "--json", "--url", s.URL)
	every := seqs(out)
	if code != 0 || len(every) < 20 {
		t.Fatalf("receipts list: exit %d, %d receipts: %s", code, len(every), errs)
	}
	size := uint64(len(every))
	for k, seq := range every {
		if seq != uint64(k) {
			t.Fatalf("receipts list gives seq %d at %d: not every page in order", seq, k)
		}
	}
	for _, where := range [][]string{{"--url", s.URL}, {"--data", data}} {
		code, out, errs = run(t, append([]string{"receipts", "list", "--json", "--limit", "7", "--desc"}, where...)...)
		if got := seqs(out); code != 0 || len(got) != 7 || got[0] < size-1 || got[6] != got[0]-6 {
			t.Fatalf("receipts list --limit 7 --desc %v: exit %d, %v %s", where, code, got, errs)
		}
		code, out, errs = run(t, append([]string{"receipts", "list", "--json", "--limit", "9"}, where...)...)
		if got := seqs(out); code != 0 || len(got) != 9 || got[8] != 8 {
			t.Fatalf("receipts list --limit 9 %v: exit %d, %v %s", where, code, got, errs)
		}
	}
	code, out, errs = run(t, "receipts", "list", "--json", "--data", data)
	if got := seqs(out); code != 0 || uint64(len(got)) < size {
		t.Fatalf("receipts list --data: exit %d, %d receipts (the server had %d): %s", code, len(got), size, errs)
	}
}

// TestPagesStayOnTheServer: a next page on another host is refused, not
// followed, so the bearer token goes nowhere but the server it was given for.
func TestPagesStayOnTheServer(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		io.WriteString(w, "[]")
	}))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "<"+other.URL+"/api/v1/incidents?cursor=x>; rel=\"next\"")
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, "[]")
	}))
	defer srv.Close()
	code, _, errs := run(t, "incident", "list", "--url", srv.URL, "--token", "wdn_secret")
	if code == 0 || !strings.Contains(errs, "not following it") || elsewhere.Load() != 0 {
		t.Fatalf("exit %d, %d requests elsewhere, stderr %q", code, elsewhere.Load(), errs)
	}
}
