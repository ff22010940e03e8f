package recorder_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine"
	"github.com/warden-sh/warden/engine/recorder"
	"github.com/warden-sh/warden/wardentest"
)

// TestContainmentRecordedAfterStorageRecovers runs the recorder on a real
// 8 MiB tmpfs. The containment target fills the disk when it is called, so
// the incident is committed, its actions run, and their outcome cannot be
// recorded. The report says storage is full and names the incident; the
// core is degraded; nothing can be written. Once space is freed, the probe
// receipts the outage and the held outcome is recorded in-process (no
// restart): the targets are not called again, and the containment is
// receipted once.
func TestContainmentRecordedAfterStorageRecovers(t *testing.T) {
	dir := wardentest.MustSmallFS(t, 8<<20)
	var (
		once   sync.Once
		filler *wardentest.Filler
		mu     sync.Mutex
		calls  []string
	)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		calls = append(calls, r.URL.Path)
		mu.Unlock()
		once.Do(func() {
			var err error
			if filler, err = wardentest.Fill(dir); err != nil {
				t.Errorf("filling the disk: %v", err)
			}
		})
		io.WriteString(w, `{"status":"ok"}`)
	}))
	t.Cleanup(target.Close)
	env := wardentest.MustEnvAt(t, dir, wardentest.Containment(wardentest.TargetPolicy(target.URL)))
	ctx := t.Context()
	req := recorder.ReportRequest{Class: warden.ClassUnauthorizedAccess, Source: "agent-7", Description: "token replay"}

	_, err := env.Recorder.ReportIncident(ctx, wardentest.AdminPrincipal, req)
	var we *warden.Error
	if !errors.As(err, &we) || we.Code != warden.EUNAVAILABLE || !strings.HasPrefix(we.Message, "Storage is full") || we.Data["incident_id"] == nil {
		t.Fatalf("report whose containment cannot be recorded: %v; want %s saying storage is full and naming the incident", err, warden.EUNAVAILABLE)
	}
	t.Cleanup(filler.Free)
	id := we.Data["incident_id"].(string)
	if inc := env.MustIncident(t, id); !inc.ContainmentPending || inc.State != warden.StateOpen {
		t.Fatalf("incident %s: %s, pending %v; want open and pending", id, inc.State, inc.ContainmentPending)
	}
	if held := env.Recorder.HeldContainment(); !slices.Equal(held, []string{id}) {
		t.Fatalf("held containment %v, want [%s]", held, id)
	}
	degraded := func(want bool) *warden.Health {
		t.Helper()
		h, err := env.Recorder.Health(ctx)
		if err != nil {
			t.Fatalf("health while storage is full: %v (reads must still work)", err)
		}
		if got := h.Status == "degraded"; got != want || got != (len(h.Degraded) == 1) {
			t.Fatalf("health %+v, degraded %v; want degraded %v", h, h.Degraded, want)
		}
		if want && (h.Degraded[0].Cause != warden.CauseStorageUnavailable || !strings.Contains(h.Degraded[0].Message, "Storage is full")) {
			t.Fatalf("degradation %+v does not name the full storage", h.Degraded[0])
		}
		return h
	}
	degraded(true)

	// While full: every write is refused the same way, and nothing moves.
	if _, err := env.Recorder.ReportIncident(ctx, wardentest.AdminPrincipal, req); warden.ErrorCode(err) != warden.EUNAVAILABLE {
		t.Fatalf("report on a full disk: %v", err)
	}
	if n, err := env.Recorder.RecordHeldContainment(ctx); n != 0 || warden.ErrorCode(err) != warden.EUNAVAILABLE {
		t.Fatalf("recording held containment on a full disk: %d, %v", n, err)
	}
	if ok, err := env.Core.ProbeStorage(ctx); ok || warden.ErrorCode(err) != warden.EUNAVAILABLE {
		t.Fatalf("probe on a full disk: %v, %v", ok, err)
	}
	if h := degraded(true); h.Degraded[0].FailedWrites != 3 {
		t.Fatalf("failed writes %d, want 3 (the containment record, the report, the held record; not the probe)", h.Degraded[0].FailedWrites)
	}

	filler.Free()
	if ok, err := env.Core.ProbeStorage(ctx); !ok || err != nil {
		t.Fatalf("probe after freeing space: %v, %v", ok, err)
	}
	degraded(false)
	rs := env.MustReceipts(t, warden.ReceiptFilter{Type: warden.ReceiptStorageRecovered})
	var rec engine.StorageRecovered
	if len(rs) != 1 || json.Unmarshal(rs[0].Body, &rec) != nil || rec.FailedWrites != 3 || rec.Cause != warden.CauseStorageUnavailable {
		t.Fatalf("storage_recovered receipts %d: %+v", len(rs), rec)
	}
	if n, err := env.Recorder.RecordHeldContainment(ctx); n != 1 || err != nil {
		t.Fatalf("recording held containment after recovery: %d, %v", n, err)
	}
	if n, err := env.Recorder.RecordHeldContainment(ctx); n != 0 || err != nil || len(env.Recorder.HeldContainment()) != 0 {
		t.Fatalf("second recording: %d, %v, held %v", n, err, env.Recorder.HeldContainment())
	}
	inc := env.MustIncident(t, id)
	if inc.State != warden.StateContained || inc.ContainmentPending || len(inc.ContainmentResults) != 3 {
		t.Fatalf("incident after recovery: %s, pending %v, %d results", inc.State, inc.ContainmentPending, len(inc.ContainmentResults))
	}
	receipts := receiptsOf(t, env, warden.ReceiptContainment, id)
	var detail struct{ Delayed string }
	if len(receipts) != 1 || json.Unmarshal(receipts[0].Detail, &detail) != nil || !strings.HasPrefix(detail.Delayed, "Storage is full") {
		t.Fatalf("%d incident_containment receipts for %s (detail %+v); want one saying it was delayed by the full storage", len(receipts), id, detail)
	}
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(calls)
	if want := []string{"/api/v1/freeze", "/api/v1/vault/relock"}; !slices.Equal(calls, want) {
		t.Fatalf("target calls %v, want %v: each action once, none again on recovery", calls, want)
	}
}

// TestNoWebhookSentWhileItsOutcomeCannotBeRecorded: while writes fail for
// lack of storage, no delivery is due (its outcome would be lost and the
// same alert sent on every poll); once writes work, it is due again.
func TestNoWebhookSentWhileItsOutcomeCannotBeRecorded(t *testing.T) {
	dir := wardentest.MustSmallFS(t, 8<<20)
	hook := wardentest.MustTarget(t)
	pol := warden.DefaultPolicy()
	pol.Alerting.Webhooks = []warden.Webhook{{URL: hook.URL + "/hook", Events: []string{warden.EventContainment}}}
	env := wardentest.MustEnvAt(t, dir, wardentest.Containment(pol))
	ctx := t.Context()
	env.MustReport(t, nil, recorder.ReportRequest{Class: warden.ClassForbiddenAirlockRequest, Source: "airlock", Description: "egress"})
	due := func() int {
		t.Helper()
		dests, err := env.Recorder.DueDestinations(ctx, env.Clock.Now(), 10)
		if err != nil {
			t.Fatal(err)
		}
		d, err := env.Recorder.DueDeliveries(ctx, env.Clock.Now(), warden.Destination(hook.URL+"/hook"), 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(dests) != min(len(d), 1) {
			t.Fatalf("due destinations %v with %d deliveries due to %s", dests, len(d), hook.URL)
		}
		return len(d)
	}
	if n := due(); n != 1 {
		t.Fatalf("%d deliveries due, want 1", n)
	}
	filler, err := wardentest.Fill(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(filler.Free)
	if _, err := env.Recorder.ReportIncident(ctx, wardentest.AdminPrincipal, recorder.ReportRequest{Class: warden.ClassForbiddenAirlockRequest,
		Source: "airlock", Description: "egress"}); warden.ErrorCode(err) != warden.EUNAVAILABLE {
		t.Fatalf("report on a full disk: %v", err)
	}
	if n := due(); n != 0 {
		t.Fatalf("%d deliveries due while their outcome cannot be recorded", n)
	}
	filler.Free()
	if ok, err := env.Core.ProbeStorage(ctx); err != nil || !ok {
		t.Fatalf("probe after freeing space: %v %v", ok, err)
	}
	if n := due(); n != 1 {
		t.Fatalf("%d deliveries due once writes work, want 1", n)
	}
}
