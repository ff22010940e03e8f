package http_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine"
	"github.com/warden-sh/warden/engine/recorder"
	"github.com/warden-sh/warden/wardentest"
)

// page is one answer of a listing: its body, its X-Total-Count ("" when
// absent) and the path and query its Link header names ("" on the last).
type page struct {
	body  []byte
	total string
	next  string
}

// mustPages GETs url and every next page its Link headers name, as a
// client does, and checks that each Link is a same-server reference
// keeping the request's parameters, and that the total is the same on
// every page.
func mustPages(t *testing.T, u, token string) []page {
	t.Helper()
	base, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	var out []page
	for next := u; next != ""; {
		req, err := http.NewRequest("GET", next, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s %v", next, resp.StatusCode, body, err)
		}
		p := page{body: body, total: resp.Header.Get("X-Total-Count")}
		if len(out) > 0 && p.total != out[0].total {
			t.Fatalf("X-Total-Count %q on page %d, %q on the first", p.total, len(out)+1, out[0].total)
		}
		next = ""
		if link := resp.Header.Get("Link"); link != "" {
			target, ok := strings.CutSuffix(link, `>; rel="next"`)
			if !ok || !strings.HasPrefix(target, "</") {
				t.Fatalf("Link %q is not one same-server rel=next reference", link)
			}
			nu, err := base.Parse(target[1:])
			if err != nil {
				t.Fatal(err)
			}
			// The next page keeps every parameter but its cursor.
			for k, v := range base.Query() {
				if k != "cursor" && k != "after" && k != "before" && nu.Query().Get(k) != v[0] {
					t.Fatalf("Link %q drops or changes %s=%s", link, k, v[0])
				}
			}
			p.next, next = target[1:], nu.String()
		}
		out = append(out, p)
		if len(out) > 10_000 {
			t.Fatal("the Link headers never end")
		}
	}
	return out
}

// pagingEnv has incidents of several classes, severities and states,
// recovery requirements, webhook deliveries and credentials.
func pagingEnv(t *testing.T) (*wardentest.Env, string) {
	t.Helper()
	hook := wardentest.MustTarget(t)
	tg := wardentest.MustTarget(t)
	pol := wardentest.TargetPolicy(tg.URL)
	pol.Alerting.Webhooks = []warden.Webhook{{URL: hook.URL + "/hook", Events: []string{warden.EventContainment}}}
	env := wardentest.MustEnv(t, wardentest.Containment(pol))
	mustStart(t, env)
	base, _ := env.MustServer(t)
	classes := []string{warden.ClassToolCallBurst, warden.ClassPromptInjection, warden.ClassForbiddenAirlockRequest, warden.ClassUnauthorizedAccess, warden.ClassPolicyBypassAttempt}
	for i := range 130 {
		inc := env.MustReport(t, nil, recorder.ReportRequest{Class: classes[i%len(classes)], Source: "agent-" + strconv.Itoa(i%3), Description: "paging " + strconv.Itoa(i)})
		if i%4 == 0 && !warden.NeedsRequirement(inc.Class, inc.Severity) {
			if _, err := env.Recorder.ResolveIncident(context.Background(), wardentest.AdminPrincipal, inc.ID); err != nil {
				t.Fatal(err)
			}
		}
		env.Clock.Advance(7 * 60 * 1e9) // past most severity windows, so severities vary
	}
	for i := range 12 {
		env.MustCredential(t, engine.CredentialSpec{Name: fmt.Sprintf("reader-%02d", i), Roles: []warden.Role{warden.RoleRead}})
	}
	return env, base
}

// TestIncidentListingPages (issue 10, item 7): the incident listing is a
// bare array of at most limit incidents (100 by default); the pages its
// Link headers chain together are the whole listing, in order, for every
// filter, and X-Total-Count says how many incidents match — from the stats
// counters or counted, the same either way.
func TestIncidentListingPages(t *testing.T) {
	env, base := pagingEnv(t)
	all := func(f warden.IncidentFilter) []string {
		ids := []string{}
		if err := env.Recorder.Incidents(t.Context(), f, func(i *warden.Incident) error {
			ids = append(ids, i.ID)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return ids
	}
	for _, f := range []warden.IncidentFilter{
		{},
		{Class: warden.ClassPromptInjection},
		{State: warden.StateResolved},
		{State: warden.StateContained},
		{Severity: warden.SeverityHigh},
		{Class: warden.ClassToolCallBurst, State: warden.StateResolved},
		{Class: warden.ClassPromptInjection, Severity: warden.SeverityCritical},
		{State: warden.StateContained, Severity: warden.SeverityCritical},
		{Class: warden.ClassForbiddenAirlockRequest, State: warden.StateOpen},
	} {
		want := all(f)
		for _, limit := range []int{0, 7, 1000} {
			q := url.Values{}
			if f.Class != "" {
				q.Set("class", f.Class)
			}
			if f.State != "" {
				q.Set("state", string(f.State))
			}
			if f.Severity != "" {
				q.Set("severity", string(f.Severity))
			}
			per := warden.DefaultPageSize
			if limit > 0 {
				q.Set("limit", strconv.Itoa(limit))
				per = limit
			}
			name := fmt.Sprintf("%+v limit %d", f, limit)
			got := []string{}
			pages := mustPages(t, base+"/api/v1/incidents?"+q.Encode(), env.Admin)
			for i, p := range pages {
				if !strings.HasPrefix(string(p.body), "[") {
					t.Fatalf("%s: page %d is not a bare array: %.40s", name, i, p.body)
				}
				var list []*warden.Incident
				if err := json.Unmarshal(p.body, &list); err != nil {
					t.Fatal(err)
				}
				if (p.next != "" && len(list) != per) || len(list) > per || (len(list) == 0 && len(want) > 0) {
					t.Fatalf("%s: page %d of %d has %d incidents", name, i+1, len(pages), len(list))
				}
				for _, inc := range list {
					got = append(got, inc.ID)
				}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s: pages (-listing +pages):\n%s", name, diff)
			}
			if pages[0].total != strconv.Itoa(len(want)) {
				t.Errorf("%s: X-Total-Count %q, want %d", name, pages[0].total, len(want))
			}
			if wantPages := max(1, (len(want)+per-1)/per); len(pages) != wantPages {
				t.Errorf("%s: %d pages for %d incidents, want %d (no empty last page)", name, len(pages), len(want), wantPages)
			}
		}
	}
	// A cursor of another listing is refused, not misread.
	var e apiErr
	creds := mustPages(t, base+"/api/v1/credentials?limit=2", env.Admin)
	other, _ := url.Parse(creds[0].next)
	mustCall(t, 400, "GET", base+"/api/v1/incidents?cursor="+other.Query().Get("cursor"), env.Admin, nil, &e)
	if e.Code != warden.EINVALID || !strings.Contains(e.Error, "is not one this listing gave") {
		t.Fatalf("another listing's cursor: %+v", e)
	}
}

// TestListingsPage: every other listing that grows pages the same way:
// receipts (after/before, next_after/next_before), recovery status,
// webhook deliveries (before) and credentials (cursor); each keeps its
// answer's shape, its count is the page's, and X-Total-Count the whole
// listing's (receipts: not with tag=, which would read every receipt).
func TestListingsPage(t *testing.T) {
	env, base := pagingEnv(t)
	ctx := context.Background()

	t.Run("receipts", func(t *testing.T) {
		for _, tc := range []struct {
			query string
			f     warden.ReceiptFilter
			total bool
		}{
			{"", warden.ReceiptFilter{}, true},
			{"scroll=incident", warden.ReceiptFilter{Scroll: warden.ScrollIncident}, true},
			{"type=incident_reported", warden.ReceiptFilter{Type: "incident_reported"}, true},
			{"scroll=incident&type=incident_resolved", warden.ReceiptFilter{Scroll: warden.ScrollIncident, Type: "incident_resolved"}, true},
			{"tag=no-such-tag", warden.ReceiptFilter{Tag: "no-such-tag"}, false},
			{"after=40&limit=1000", warden.ReceiptFilter{After: ptr(uint64(40))}, true},
			{"order=desc&limit=1000", warden.ReceiptFilter{Descending: true}, true},
			{"order=desc&before=300&type=incident_reported", warden.ReceiptFilter{Descending: true, Before: ptr(uint64(300)), Type: "incident_reported"}, true},
		} {
			all := env.MustReceipts(t, warden.ReceiptFilter{Scroll: tc.f.Scroll, Type: tc.f.Type, Tag: tc.f.Tag})
			var want []uint64
			for _, r := range all {
				if (tc.f.After == nil || r.Seq > *tc.f.After) && (tc.f.Before == nil || r.Seq < *tc.f.Before) {
					want = append(want, r.Seq)
				}
			}
			if tc.f.Descending {
				for i, j := 0, len(want)-1; i < j; i, j = i+1, j-1 {
					want[i], want[j] = want[j], want[i]
				}
			}
			for _, limit := range []string{"", "&limit=9"} {
				q := tc.query + limit
				if strings.Contains(tc.query, "limit=") && limit != "" {
					continue
				}
				var got []uint64
				pages := mustPages(t, base+"/api/v1/receipts?"+q, env.Admin)
				for i, p := range pages {
					var l struct {
						Receipts   []*warden.Receipt `json:"receipts"`
						Count      int               `json:"count"`
						NextAfter  *uint64           `json:"next_after"`
						NextBefore *uint64           `json:"next_before"`
					}
					if err := json.Unmarshal(p.body, &l); err != nil {
						t.Fatal(err)
					}
					if l.Count != len(l.Receipts) {
						t.Fatalf("%s: count %d for %d receipts", q, l.Count, len(l.Receipts))
					}
					cursor := l.NextAfter
					if tc.f.Descending {
						cursor = l.NextBefore
					}
					if (p.next != "") != (cursor != nil) || (cursor != nil && *cursor != l.Receipts[len(l.Receipts)-1].Seq) {
						t.Fatalf("%s: page %d: Link %q, next_after %v, next_before %v", q, i, p.next, l.NextAfter, l.NextBefore)
					}
					for _, r := range l.Receipts {
						got = append(got, r.Seq)
					}
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("%s: pages (-want +got):\n%s", q, diff)
				}
				wantTotal := ""
				if tc.total {
					wantTotal = strconv.Itoa(len(all))
				}
				if pages[0].total != wantTotal {
					t.Errorf("%s: X-Total-Count %q, want %q", q, pages[0].total, wantTotal)
				}
			}
		}
	})

	t.Run("recovery status", func(t *testing.T) {
		var want []string
		if err := env.Store.View(ctx, func(tx warden.ReadTx) error {
			return tx.Requirements(true, func(r *warden.RecoveryRequirement) error {
				want = append(want, r.IncidentID)
				return nil
			})
		}); err != nil {
			t.Fatal(err)
		}
		if len(want) < 10 {
			t.Fatalf("only %d pending recoveries in the fixture", len(want))
		}
		var got []string
		pages := mustPages(t, base+"/api/v1/recovery/status?limit=4", env.Admin)
		for _, p := range pages {
			var st struct {
				PendingRecoveries []*warden.RecoveryRequirement `json:"pending_recoveries"`
				Count             int                           `json:"count"`
			}
			if err := json.Unmarshal(p.body, &st); err != nil {
				t.Fatal(err)
			}
			if st.Count != len(st.PendingRecoveries) || st.Count > 4 || st.PendingRecoveries == nil {
				t.Fatalf("count %d for %v", st.Count, st.PendingRecoveries)
			}
			for _, r := range st.PendingRecoveries {
				got = append(got, r.IncidentID)
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("pages (-want +got):\n%s", diff)
		}
		if pages[0].total != strconv.Itoa(len(want)) {
			t.Errorf("X-Total-Count %q, want %d", pages[0].total, len(want))
		}
	})

	t.Run("webhook deliveries", func(t *testing.T) {
		for _, id := range []string{"", env.MustDeliveries(t, "")[5].IncidentID} {
			var want []uint64
			for _, d := range env.MustDeliveries(t, id) {
				want = append(want, d.ID)
			}
			var got []uint64
			pages := mustPages(t, base+"/api/v1/webhooks/deliveries?limit=11&incident_id="+id, env.Admin)
			for _, p := range pages {
				var l deliveriesAnswer
				if err := json.Unmarshal(p.body, &l); err != nil {
					t.Fatal(err)
				}
				if l.Count != len(l.Deliveries) || l.Count > 11 {
					t.Fatalf("count %d for %d deliveries", l.Count, len(l.Deliveries))
				}
				for _, d := range l.Deliveries {
					got = append(got, d.ID)
				}
			}
			if diff := cmp.Diff(want, got); diff != "" || len(want) == 0 {
				t.Errorf("incident %q: pages (-want +got):\n%s", id, diff)
			}
			if pages[0].total != strconv.Itoa(len(want)) {
				t.Errorf("incident %q: X-Total-Count %q, want %d", id, pages[0].total, len(want))
			}
		}
	})

	t.Run("credentials", func(t *testing.T) {
		all, err := env.Core.Credentials(ctx, wardentest.AdminPrincipal)
		if err != nil {
			t.Fatal(err)
		}
		var want, got []string
		for _, c := range all {
			want = append(want, c.Name)
		}
		pages := mustPages(t, base+"/api/v1/credentials?limit=5", env.Admin)
		for _, p := range pages {
			var l struct {
				Credentials []*warden.Credential `json:"credentials"`
				Count       int                  `json:"count"`
			}
			if err := json.Unmarshal(p.body, &l); err != nil {
				t.Fatal(err)
			}
			if l.Count != len(l.Credentials) || l.Count > 5 {
				t.Fatalf("count %d for %d credentials", l.Count, len(l.Credentials))
			}
			for _, c := range l.Credentials {
				got = append(got, c.Name)
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("pages (-want +got):\n%s", diff)
		}
		if pages[0].total != strconv.Itoa(len(want)) || len(pages) != (len(want)+4)/5 {
			t.Errorf("X-Total-Count %q and %d pages for %d credentials", pages[0].total, len(pages), len(want))
		}
	})
}

// TestReceiptPageOfTheMostEndsExactly: a page of warden.MaxPageSize
// receipts, the most the store gives at once, still knows whether it is
// the last.
func TestReceiptPageOfTheMostEndsExactly(t *testing.T) {
	env := wardentest.MustEnv(t)
	// Enough receipts in one transaction, straight into the store.
	if err := env.Store.Update(t.Context(), func(tx warden.Tx) error {
		for i := range warden.MaxPageSize + 10 {
			if _, err := tx.Append(warden.Draft{Type: "test_filler", Scroll: warden.ScrollSystem, Time: env.Clock.Now(), Body: map[string]int{"i": i}}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	n := uint64(receiptTotal(t, env))
	for _, tc := range []struct {
		f    warden.ReceiptFilter
		more bool
	}{
		{warden.ReceiptFilter{After: ptr(n - warden.MaxPageSize - 1)}, false}, // exactly the rest
		{warden.ReceiptFilter{After: ptr(n - warden.MaxPageSize - 2)}, true},
		{warden.ReceiptFilter{Descending: true, Before: ptr(uint64(warden.MaxPageSize))}, false},
		{warden.ReceiptFilter{Descending: true, Before: ptr(uint64(warden.MaxPageSize + 1))}, true},
		{warden.ReceiptFilter{Type: "test_filler", After: ptr(n - warden.MaxPageSize - 1)}, false},
	} {
		tc.f.Limit = warden.MaxPageSize
		page, err := env.Core.ListReceipts(t.Context(), tc.f)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Items) != warden.MaxPageSize || (page.Next != nil) != tc.more {
			t.Errorf("%+v: %d receipts, next %v; want %d and a next page %v", tc.f, len(page.Items), page.Next, warden.MaxPageSize, tc.more)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func receiptTotal(t *testing.T, env *wardentest.Env) int {
	t.Helper()
	var n uint64
	if err := env.Store.View(t.Context(), func(tx warden.ReadTx) error {
		h, err := tx.Head()
		if err == nil {
			n = h.Size
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return int(n)
}
