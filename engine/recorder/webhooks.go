package recorder

import (
	"context"
	"encoding/json"
	"time"

	warden "github.com/warden-sh/warden"
)

// WebhookPayload is what webhooks receive (the reference shape).
type WebhookPayload struct {
	Event     string           `json:"event"`
	Timestamp string           `json:"timestamp"`
	Incident  *warden.Incident `json:"incident"`
	Actions   []string         `json:"actions"`
	Severity  warden.Severity  `json:"severity"`
	Source    string           `json:"source"`
}

// enqueueWebhooks writes one outbox delivery per webhook subscribed to
// event, in the caller's transaction.
func (rec *Recorder) enqueueWebhooks(tx warden.Tx, ps *policyState, event string, inc *warden.Incident, now time.Time) error {
	urls := ps.Policy.WebhooksFor(event)
	if len(urls) == 0 {
		return nil
	}
	rec.pendingWake.Store(true)
	payload, err := json.Marshal(WebhookPayload{Event: event, Timestamp: warden.FormatTime(now), Incident: inc,
		Actions: inc.ContainmentActions, Severity: inc.Severity, Source: inc.Source})
	if err != nil {
		return err
	}
	for _, u := range urls {
		d := &warden.Delivery{Event: event, URL: u, Payload: payload, IncidentID: inc.ID, Status: warden.DeliveryPending, NextAttemptAt: now, CreatedAt: now}
		if err := tx.EnqueueDelivery(d); err != nil {
			return err
		}
	}
	return nil
}

// wake tells the webhook sender about deliveries committed since the last
// wake, if any.
func (rec *Recorder) wake() {
	if rec.waker != nil && rec.pendingWake.Swap(false) {
		rec.waker.Wake()
	}
}

// Deliveries lists recent webhook deliveries and their outcomes.
func (rec *Recorder) Deliveries(ctx context.Context, incidentID string, limit int) ([]*warden.Delivery, error) {
	out := []*warden.Delivery{}
	err := rec.core.View(ctx, "recorder.Deliveries", func(tx warden.ReadTx) error {
		l, err := tx.Deliveries(incidentID, limit)
		if l != nil {
			out = l
		}
		return err
	})
	return out, err
}

// RecordWebhookFailure receipts a webhook delivery that exhausted its
// attempts, so a lost alert is never silent.
func (rec *Recorder) RecordWebhookFailure(ctx context.Context, d *warden.Delivery) {
	body := map[string]any{"delivery_id": d.ID, "event": d.Event, "url": d.URL, "incident_id": d.IncidentID,
		"attempts": d.Attempts, "last_error": d.LastError, "last_status": d.LastStatus}
	if err := rec.core.Update(ctx, "recorder.RecordWebhookFailure", func(tx warden.Tx) error {
		_, err := tx.Append(rec.core.Draft(warden.ReceiptWebhookFailed, body, "webhook"))
		return err
	}); err != nil {
		rec.core.Logger().Error("webhook failure receipt not written", "err", err)
	}
}
