package recorder_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine/recorder"
	"github.com/warden-sh/warden/wardentest"
)

// TestReportIdempotencyKey: a report retried with its Idempotency-Key gets
// the incident the first one created, writing nothing; the same key with
// another report is a conflict naming the rule; keys are per principal,
// recorded in the incident_reported receipt, kept across a restart, and
// forgotten after warden.ReportKeyTTL, a few per keyed report, so the
// store keeps only the last day's keys.
func TestReportIdempotencyKey(t *testing.T) {
	tg := wardentest.MustTarget(t)
	env := wardentest.MustEnv(t, wardentest.Containment(wardentest.TargetPolicy(tg.URL)))
	ctx := t.Context()
	alice := &warden.Principal{Name: "alice", Roles: []warden.Role{warden.RoleReporter}, Source: "agent-7"}
	bob := &warden.Principal{Name: "bob", Roles: []warden.Role{warden.RoleReporter}, Source: "agent-7"}
	req := func(key, desc string) recorder.ReportRequest {
		return recorder.ReportRequest{Class: warden.ClassToolCallBurst, Source: "agent-7", Description: desc,
			Evidence: map[string]string{"calls": "900", "window": "10s"}, IdempotencyKey: key}
	}
	report := func(p *warden.Principal, r recorder.ReportRequest, wantReplay bool) *warden.Incident {
		t.Helper()
		inc, replayed, err := env.Recorder.Report(ctx, p, r)
		if err != nil || replayed != wantReplay {
			t.Fatalf("report %q by %s: replayed %v, %v; want replayed %v", r.IdempotencyKey, p.Name, replayed, err, wantReplay)
		}
		return inc
	}
	count := func() (int, int) {
		return len(allIncidents(t, env)), len(env.MustReceipts(t, warden.ReceiptFilter{}))
	}

	first := report(alice, req("retry-1", "burst"), false)
	incidents, receipts := count()
	again := report(alice, req("retry-1", "burst"), true)
	if again.ID != first.ID || again.State != warden.StateContained {
		t.Fatalf("replay returned %s (%s), want %s as it is now", again.ID, again.State, first.ID)
	}
	if i, r := count(); i != incidents || r != receipts {
		t.Fatalf("a replay wrote: %d incidents, %d receipts; want %d, %d", i, r, incidents, receipts)
	}
	if n := len(tg.Requests()); n != 1 {
		t.Fatalf("target called %d times, want once", n)
	}
	_, _, err := env.Recorder.Report(ctx, alice, req("retry-1", "another burst"))
	if warden.ErrorCode(err) != warden.ECONFLICT || !strings.Contains(warden.ErrorMessage(err), `Idempotency-Key "retry-1" was already used for another report (incident `+first.ID) {
		t.Fatalf("same key, other report: %v", err)
	}
	if other := report(bob, req("retry-1", "burst"), false); other.ID == first.ID {
		t.Fatal("a key of alice's answered bob's report")
	}

	// The receipt carries the key: the key table is a projection of it.
	var body struct {
		Detail struct {
			Key  string `json:"idempotency_key"`
			Hash string `json:"request_hash"`
		}
	}
	rs := receiptsOf(t, env, warden.ReceiptIncidentReported, first.ID)
	if len(rs) != 1 || json.Unmarshal(rs[0].Detail, &body.Detail) != nil || body.Detail.Key != "retry-1" || !strings.HasPrefix(body.Detail.Hash, "sha256:") {
		t.Fatalf("incident_reported detail %s: want the key and the request hash", rs[0].Detail)
	}

	for _, bad := range []string{"has space", "tab\t", strings.Repeat("k", warden.MaxReportKeyLen+1), "é"} {
		if _, _, err := env.Recorder.Report(ctx, alice, req(bad, "burst")); warden.ErrorCode(err) != warden.EINVALID {
			t.Errorf("key %q: %v, want %s", bad, err, warden.EINVALID)
		}
	}

	// Kept across a restart.
	env = env.MustReopen(t, wardentest.Containment(wardentest.TargetPolicy(tg.URL)))
	if inc := report(alice, req("retry-1", "burst"), true); inc.ID != first.ID {
		t.Fatalf("after a restart the key answers %s, want %s", inc.ID, first.ID)
	}

	// Forgotten after the TTL: the key names a new report.
	for i := range 9 {
		env.Clock.Advance(time.Millisecond)
		report(alice, req(fmt.Sprintf("old-%d", i), "burst"), false)
	}
	env.Clock.Advance(warden.ReportKeyTTL - 9*time.Millisecond)
	report(alice, req("retry-1", "burst"), true) // kept for the whole TTL
	env.Clock.Advance(10 * time.Millisecond)     // past it for every key
	renewed := report(alice, req("retry-1", "burst"), false)
	if renewed.ID == first.ID {
		t.Fatal("an expired key still answered")
	}
	report(alice, req("retry-1", "burst"), true)
	kept := func() int {
		n := 0
		err := env.Store.View(ctx, func(tx warden.ReadTx) error {
			for _, k := range []string{"old-0", "old-1", "old-2", "old-3", "old-4", "old-5", "old-6", "old-7", "old-8"} {
				if _, err := tx.ReportKey("alice", k); err == nil {
					n++
				} else if warden.ErrorCode(err) != warden.ENOTFOUND {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	// The renewed report forgot the 8 oldest expired keys (bob's and
	// old-0 to old-6); the next keyed report forgets the rest.
	if n := kept(); n != 2 {
		t.Fatalf("%d expired keys kept after one keyed report, want 2", n)
	}
	report(alice, req("new", "burst"), false)
	if n := kept(); n != 0 {
		t.Fatalf("%d expired keys kept after two keyed reports, want 0", n)
	}
}
