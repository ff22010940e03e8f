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

// DeliveryPage is a page of the webhook deliveries; the cursor is the
// last delivery's id.
type DeliveryPage = warden.Page[*warden.Delivery, uint64]

// Deliveries returns a page of webhook deliveries and their outcomes,
// newest first: at most f.Limit (1 to warden.MaxPageSize) older than
// f.Before (0: from the newest), of f.IncidentID or all, the next page's
// cursor if there is one, and how many there are (counted: the cost grows
// with them), from one snapshot.
func (rec *Recorder) Deliveries(ctx context.Context, f warden.DeliveryFilter) (*DeliveryPage, error) {
	if err := warden.CheckPageLimit(f.Limit); err != nil {
		return nil, err
	}
	limit := f.Limit
	f.Limit++
	page := &DeliveryPage{Items: []*warden.Delivery{}}
	err := rec.core.View(ctx, "recorder.Deliveries", func(tx warden.ReadTx) error {
		total, err := tx.CountDeliveries(f.IncidentID)
		if err != nil {
			return err
		}
		page.Total = &total
		l, err := tx.Deliveries(f)
		if l != nil {
			page.Items = l
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(page.Items) > limit {
		page.Items = page.Items[:limit]
		next := page.Items[limit-1].ID
		page.Next = &next
	}
	return page, nil
}

// DueDestinations returns up to limit destinations with webhook
// deliveries due at now, the longest waiting first (warden.WebhookOutbox).
func (rec *Recorder) DueDestinations(ctx context.Context, now time.Time, limit int) ([]string, error) {
	if rec.outcomesRefused() {
		return []string{}, nil
	}
	var dests []string
	err := rec.core.View(ctx, "recorder.DueDestinations", func(tx warden.ReadTx) (err error) {
		dests, err = tx.DueDestinations(now, limit)
		return err
	})
	return dests, err
}

// DueDeliveries returns up to limit webhook deliveries to destination due
// at now, oldest first (warden.WebhookOutbox).
func (rec *Recorder) DueDeliveries(ctx context.Context, now time.Time, destination string, limit int) ([]*warden.Delivery, error) {
	if rec.outcomesRefused() {
		return []*warden.Delivery{}, nil
	}
	var due []*warden.Delivery
	err := rec.core.View(ctx, "recorder.DueDeliveries", func(tx warden.ReadTx) (err error) {
		due, err = tx.DueDeliveries(now, destination, limit)
		return err
	})
	return due, err
}

// outcomesRefused reports whether a delivery's outcome could not be
// recorded now (storage full, writes refused). Nothing is due then: the
// delivery would stay due and be sent again on every poll.
func (rec *Recorder) outcomesRefused() bool {
	return len(rec.core.Degraded()) > 0
}

// RecordDelivery records a webhook delivery attempt's outcome
// (warden.WebhookOutbox). A delivery that exhausted its attempts is
// receipted in the same transaction that marks it failed, so a lost alert
// is never silent and a crash cannot separate the two. ENOTFOUND if the
// delivery does not exist.
func (rec *Recorder) RecordDelivery(ctx context.Context, d *warden.Delivery) error {
	return rec.core.Update(ctx, "recorder.RecordDelivery", func(tx warden.Tx) error {
		if err := tx.UpdateDelivery(d); err != nil {
			return err
		}
		if d.Status != warden.DeliveryFailed {
			return nil
		}
		body := map[string]any{"delivery_id": d.ID, "event": d.Event, "url": d.URL, "incident_id": d.IncidentID,
			"attempts": d.Attempts, "last_error": d.LastError, "last_status": d.LastStatus}
		_, err := tx.Append(rec.core.Draft(warden.ReceiptWebhookFailed, body, "webhook"))
		return err
	})
}

var _ warden.WebhookOutbox = (*Recorder)(nil)
