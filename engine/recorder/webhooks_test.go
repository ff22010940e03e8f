package recorder_test

import (
	"database/sql"
	"encoding/json"
	"log/slog"
	"net/http"
	"testing"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/contain"
	"github.com/warden-sh/warden/engine/recorder"
	"github.com/warden-sh/warden/wardentest"
	_ "modernc.org/sqlite"
)

// TestWebhookFinalFailureReceiptedWithItsRow: the sender reports a
// delivery's last failed attempt through the recorder, which marks it
// failed and receipts it in one transaction. A fault between the two (here
// a trigger that refuses the receipt, as a crash or a full disk would)
// leaves neither: the delivery stays pending and is failed, and receipted,
// once the fault is gone. Never a failed delivery without its receipt.
func TestWebhookFinalFailureReceiptedWithItsRow(t *testing.T) {
	hook := wardentest.MustTarget(t)
	hook.Respond("*", http.StatusInternalServerError)
	pol := warden.DefaultPolicy()
	pol.Alerting.Webhooks = []warden.Webhook{{URL: hook.URL + "/hook", Events: []string{warden.EventContainment}}}
	env := wardentest.MustEnv(t, wardentest.Containment(pol))
	inc := env.MustReport(t, nil, recorder.ReportRequest{Class: warden.ClassForbiddenAirlockRequest, Source: "airlock", Description: "egress to a blocked host"})
	sender := &contain.WebhookSender{Outbox: env.Recorder, Clock: env.Clock.Now, MaxAttempts: 1, Logger: slog.New(slog.DiscardHandler)}

	// consistent checks that every failed delivery has exactly one receipt
	// and every receipt a failed delivery, and returns the delivery.
	consistent := func() *warden.Delivery {
		t.Helper()
		page, err := env.Recorder.Deliveries(t.Context(), warden.DeliveryFilter{IncidentID: inc.ID, Limit: 10})
		if err != nil || len(page.Items) != 1 {
			t.Fatalf("deliveries %v, %v; want one", page, err)
		}
		ds := page.Items
		receipted := 0
		for _, r := range env.MustReceipts(t, warden.ReceiptFilter{Type: warden.ReceiptWebhookFailed}) {
			var b struct {
				DeliveryID uint64 `json:"delivery_id"`
			}
			if err := json.Unmarshal(r.Body, &b); err != nil {
				t.Fatal(err)
			}
			if b.DeliveryID == ds[0].ID {
				receipted++
			}
		}
		if failed := ds[0].Status == warden.DeliveryFailed; failed && receipted != 1 || !failed && receipted != 0 {
			t.Fatalf("delivery %s after %d attempts with %d webhook_delivery_failed receipts", ds[0].Status, ds[0].Attempts, receipted)
		}
		return ds[0]
	}

	db, err := sql.Open("sqlite", "file:"+env.Dir.DBPath()+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TRIGGER inject_fault BEFORE INSERT ON receipts WHEN NEW.type = 'webhook_delivery_failed'
		BEGIN SELECT RAISE(ABORT, 'injected fault: the receipt cannot be written'); END`); err != nil {
		t.Fatal(err)
	}
	if _, err := sender.RunOnce(t.Context()); err == nil {
		t.Fatal("RunOnce recorded a final failure whose receipt could not be written")
	}
	if d := consistent(); d.Status != warden.DeliveryPending || d.Attempts != 0 {
		t.Fatalf("after the fault: delivery %s, %d attempts; want pending and untouched", d.Status, d.Attempts)
	}

	if _, err := db.Exec(`DROP TRIGGER inject_fault`); err != nil {
		t.Fatal(err)
	}
	if _, err := sender.RunOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	if d := consistent(); d.Status != warden.DeliveryFailed || d.Attempts != 1 {
		t.Fatalf("after the fault is gone: delivery %s, %d attempts; want failed after 1", d.Status, d.Attempts)
	}
	if n := len(hook.Requests()); n != 2 {
		t.Fatalf("receiver got %d requests, want 2 (the unrecorded attempt is sent again)", n)
	}
}
