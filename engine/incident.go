package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/ledger"
)

// Incident receipt types, all in the incident scroll.
const (
	ReceiptIncidentReported     = "incident_reported"
	ReceiptSeverityRaised       = "incident_severity_raised"
	ReceiptRecoveryRequired     = "recovery_required"
	ReceiptContainment          = "incident_containment"
	ReceiptIncidentAcknowledged = "incident_acknowledged"
	ReceiptIncidentResolved     = "incident_resolved"
	ReceiptIncidentDenied       = "incident_denied"
	ReceiptRecoveryAcknowledged = "recovery_acknowledged"
	ReceiptRecoveryReattested   = "recovery_reattested"
	ReceiptRecoveryDenied       = "recovery_denied"
	ReceiptWebhookFailed        = "webhook_delivery_failed"
)

// Limits on reported incidents (the HTTP body limit bounds the total).
const (
	MaxDescription   = 4096
	MaxSource        = 256
	MaxEvidenceKeys  = 256
	MaxEvidenceKey   = 256
	MaxEvidenceValue = 8192
)

// ReportRequest is a reported security event.
type ReportRequest struct {
	Class       string            `json:"class"`
	Severity    string            `json:"severity,omitempty"`
	Source      string            `json:"source"`
	Description string            `json:"description"`
	Evidence    map[string]string `json:"evidence,omitempty"`
}

// Validate checks a report's fields: EINVALID naming the first bad one.
func (r *ReportRequest) Validate() error {
	switch {
	case r.Class == "":
		return warden.Errorf(warden.EINVALID, "class is required.")
	case r.Source == "":
		return warden.Errorf(warden.EINVALID, "source is required.")
	case strings.TrimSpace(r.Description) == "":
		return warden.Errorf(warden.EINVALID, "description is required.")
	case len(r.Source) > MaxSource:
		return warden.Errorf(warden.EINVALID, "source exceeds %d bytes.", MaxSource)
	case len(r.Description) > MaxDescription:
		return warden.Errorf(warden.EINVALID, "description exceeds %d bytes.", MaxDescription)
	case len(r.Evidence) > MaxEvidenceKeys:
		return warden.Errorf(warden.EINVALID, "evidence has more than %d keys.", MaxEvidenceKeys)
	}
	if err := warden.ValidateClass(r.Class); err != nil {
		return err
	}
	if r.Severity != "" {
		if _, err := warden.ParseSeverity(r.Severity); err != nil {
			return err
		}
	}
	for _, s := range []string{r.Class, r.Source, r.Description} {
		if !utf8.ValidString(s) {
			return warden.Errorf(warden.EINVALID, "Fields must be valid UTF-8.")
		}
	}
	for k, v := range r.Evidence {
		if k == "" || len(k) > MaxEvidenceKey || len(v) > MaxEvidenceValue || !utf8.ValidString(k) || !utf8.ValidString(v) {
			return warden.Errorf(warden.EINVALID, "evidence key %q is empty, too long (key %d, value %d bytes max) or not UTF-8.", truncate(k, 64), MaxEvidenceKey, MaxEvidenceValue)
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// incidentBody is the body of every incident receipt: the full incident
// after the transition, so a forensic verifier can check an incident record
// against its latest receipt.
type incidentBody struct {
	Incident     *warden.Incident `json:"incident"`
	Principal    string           `json:"principal"`
	PolicyDigest string           `json:"policy_digest,omitempty"`
	// Detail explains the transition (window, requirement, denial…).
	Detail any `json:"detail,omitempty"`
}

func (e *Engine) incidentDraft(typ string, inc *warden.Incident, principal string, detail any) warden.Draft {
	d := e.draft(typ, warden.ScrollIncident, nil, "incident", inc.Class, string(inc.Severity))
	body, err := canonicalIncidentBody(inc, principal, e.policyState().Digest, detail)
	if err != nil {
		// Let the store's canonicaliser report the problem.
		snap := *inc
		d.Body = incidentBody{Incident: &snap, Principal: principal, PolicyDigest: e.policyState().Digest, Detail: detail}
		return d
	}
	d.Body = body
	return d
}

// incidentNote is an incident receipt that refers to the incident instead
// of carrying its snapshot: used beside the incident_reported receipt of
// the same transaction, which already holds the snapshot after this change.
func (e *Engine) incidentNote(typ string, inc *warden.Incident, principal string, detail any) warden.Draft {
	body := map[string]any{"incident_id": inc.ID, "class": inc.Class, "severity": inc.Severity, "principal": principal, "detail": detail}
	return e.draft(typ, warden.ScrollIncident, body, "incident", inc.Class, string(inc.Severity))
}

// canonicalIncidentBody writes an incidentBody directly in RFC 8785 form
// (members in key order: detail, incident, policy_digest, principal), so
// the store, which runs every write on one goroutine, only checks it
// instead of rewriting it. The result is byte-identical to canonicalising
// the incidentBody struct (TestIncidentBodyIsCanonical).
func canonicalIncidentBody(inc *warden.Incident, principal, digest string, detail any) (json.RawMessage, error) {
	incident, err := ledger.Canonical(inc)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(incident)+256)
	out = append(out, '{')
	if detail != nil {
		d, err := ledger.Canonical(detail)
		if err != nil {
			return nil, err
		}
		if string(d) != "null" {
			out = append(out, `"detail":`...)
			out = append(out, d...)
			out = append(out, ',')
		}
	}
	out = append(out, `"incident":`...)
	out = append(out, incident...)
	for _, kv := range [][2]string{{"policy_digest", digest}, {"principal", principal}} {
		if kv[0] == "policy_digest" && kv[1] == "" {
			continue
		}
		v, err := ledger.Canonical(kv[1])
		if err != nil {
			return nil, err
		}
		out = append(out, `,"`+kv[0]+`":`...)
		out = append(out, v...)
	}
	return append(out, '}'), nil
}

// authorizeReport enforces a reporter's binding to its source and classes.
func authorizeReport(p *warden.Principal, req *ReportRequest) error {
	if err := Authorize(p, "report incidents", warden.RoleReporter); err != nil {
		return err
	}
	if p.HasRole(warden.RoleAdmin) {
		return nil
	}
	if p.Source != req.Source {
		return warden.Errorf(warden.EFORBIDDEN, "Reporter %q may only report for source %q, not %q.", p.Name, p.Source, req.Source)
	}
	if len(p.Classes) > 0 && !slices.Contains(p.Classes, req.Class) {
		return warden.Errorf(warden.EFORBIDDEN, "Reporter %q may not report class %q; it may report %s.", p.Name, req.Class, strings.Join(p.Classes, ", "))
	}
	return nil
}

// executedActions returns the actions a report runs: the rule's actions when
// it auto-contains, otherwise only its log_alert (an alert, not containment).
func executedActions(rule warden.ClassRule) []string {
	if rule.AutoContain {
		return slices.Clone(rule.Actions)
	}
	var out []string
	for _, a := range rule.Actions {
		if a == warden.ActionLogAlert {
			out = append(out, a)
		}
	}
	return out
}

// needsTargets reports whether any action calls an external target.
func needsTargets(actions []string) bool {
	for _, a := range actions {
		if a != warden.ActionLogAlert {
			return true
		}
	}
	return false
}

// ReportIncident records a security event and contains it.
//
// In one transaction it assigns the id, applies the class's severity window,
// stores the incident, creates the recovery requirement of a latched or
// critical incident, and writes their receipts. Containment actions that
// call targets run after that commit and their results are recorded in a
// second transaction; if warden dies in between, ResumeContainment finishes
// the job on the next start. The state becomes contained only if every
// action succeeded, else containment_failed. EFORBIDDEN if the reporter is
// bound to another source or class; EINVALID for a bad report.
func (e *Engine) ReportIncident(ctx context.Context, p *warden.Principal, req ReportRequest) (*warden.Incident, error) {
	inc, _, err := e.report(ctx, p, req, nil)
	return inc, err
}

// report is ReportIncident with an optional duplicate check run inside the
// report's own transaction: when it finds an incident, that incident is
// returned (dup true) and nothing is written, so racing reporters of the
// same finding create one incident.
func (e *Engine) report(ctx context.Context, p *warden.Principal, req ReportRequest, duplicate func(tx warden.Tx) (*warden.Incident, error)) (*warden.Incident, bool, error) {
	if err := req.Validate(); err != nil {
		return nil, false, err
	}
	if err := authorizeReport(p, &req); err != nil {
		return nil, false, err
	}
	ps := e.policyState()
	rule := ps.Policy.Rules[req.Class]
	now := e.now()
	actions := executedActions(rule)
	external := needsTargets(actions)

	var inc *warden.Incident
	var deliveries, dup bool
	err := e.update(ctx, func(tx warden.Tx) error {
		if duplicate != nil {
			existing, err := duplicate(tx)
			if err != nil {
				return err
			}
			if existing != nil {
				inc, dup = existing, true
				return nil
			}
		}
		n, err := tx.NextCounter("incident")
		if err != nil {
			return err
		}
		sev := rule.DefaultSeverity
		if req.Severity != "" {
			sev = warden.Severity(req.Severity)
		}
		inc = &warden.Incident{
			ID:                 fmt.Sprintf("INC-%s-%04d", now.UTC().Format("20060102-150405"), n),
			Number:             n,
			CreatedAt:          warden.FormatTime(now),
			Class:              req.Class,
			Severity:           sev,
			State:              warden.StateOpen,
			Source:             req.Source,
			Description:        req.Description,
			Evidence:           req.Evidence,
			ContainmentActions: actions,
			ContainmentResults: []warden.ContainmentResult{},
			ReportedBy:         p.Name,
			AutoContained:      rule.AutoContain,
			ContainmentPending: len(actions) > 0,
			Drill:              e.drill,
		}
		if inc.Evidence == nil {
			inc.Evidence = map[string]string{}
		}
		if inc.ContainmentActions == nil {
			inc.ContainmentActions = []string{}
		}
		var window *warden.SeverityWindow
		if w := warden.WindowFor(req.Class); w != nil {
			recent, err := tx.CountIncidentsIn(req.Class, now.Add(-w.Window), now, w.Threshold)
			if err != nil {
				return err
			}
			var raised warden.Severity
			if raised, window = warden.EscalateSeverity(req.Class, sev, recent); window != nil {
				inc.EscalatedFrom, inc.Severity = sev, raised
			}
		}
		if !external && len(actions) > 0 {
			// Only alerts: their effect is the webhook outbox row written
			// below and a log line emitted once this commits.
			inc.ContainmentResults = alertResults(actions, now, e.drill)
			e.settleContainment(inc, rule)
		}
		if err := tx.CreateIncident(inc); err != nil {
			return err
		}
		if _, err := tx.Append(e.incidentDraft(ReceiptIncidentReported, inc, p.Name, nil)); err != nil {
			return err
		}
		if window != nil {
			detail := map[string]any{"from": inc.EscalatedFrom, "to": inc.Severity, "threshold": window.Threshold,
				"window_seconds": int(window.Window.Seconds()), "rule": fmt.Sprintf("%d %s incidents within %s escalate to %s", window.Threshold, window.Class, window.Window, window.Raise)}
			if _, err := tx.Append(e.incidentNote(ReceiptSeverityRaised, inc, p.Name, detail)); err != nil {
				return err
			}
			if err := e.enqueueWebhooks(tx, ps, warden.EventEscalation, inc, now); err != nil {
				return err
			}
			deliveries = true
		}
		if warden.NeedsRequirement(inc.Class, inc.Severity) {
			r := &warden.RecoveryRequirement{
				IncidentID:      inc.ID,
				RequireAck:      true,
				RequireReattest: warden.NeedsReattest(inc.Class, inc.Severity),
				CreatedAt:       warden.FormatTime(now),
			}
			r.Settle()
			if err := tx.PutRequirement(r); err != nil {
				return err
			}
			if _, err := tx.Append(e.incidentNote(ReceiptRecoveryRequired, inc, p.Name, r)); err != nil {
				return err
			}
		}
		if !external && len(actions) > 0 {
			// Alert-only results ride in the incident_reported snapshot.
			if err := e.enqueueWebhooks(tx, ps, warden.EventContainment, inc, now); err != nil {
				return err
			}
			deliveries = true
		}
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	if dup {
		return inc, true, nil
	}
	e.countReceipt(warden.ScrollIncident)
	if deliveries {
		e.wake()
	}
	if !external {
		if len(actions) > 0 && e.actuator != nil {
			for _, a := range actions {
				e.actuator.Execute(ctx, ps.Policy, a, inc) // log_alert: logs only
			}
		}
		return inc, false, nil
	}
	// The client may go away; containment must not.
	inc, _, err = e.contain(context.WithoutCancel(ctx), inc.ID)
	return inc, false, err
}

// alertResults records log_alert actions, which cannot fail: the alert is
// the committed webhook delivery and the log line that follows the commit.
func alertResults(actions []string, now time.Time, drill bool) []warden.ContainmentResult {
	out := make([]warden.ContainmentResult, len(actions))
	for i, a := range actions {
		out[i] = warden.ContainmentResult{Action: a, Success: true, Error: "", CompletedAt: warden.FormatTime(now), DryRun: drill, Attempts: 1}
	}
	return out
}

// runActions executes actions concurrently through the actuator.
func (e *Engine) runActions(ctx context.Context, ps *policyState, actions []string, inc *warden.Incident) []warden.ContainmentResult {
	results := make([]warden.ContainmentResult, len(actions))
	act := e.actuator
	var wg sync.WaitGroup
	for i, a := range actions {
		wg.Add(1)
		go func(i int, a string) {
			defer wg.Done()
			defer func() {
				if r := recover(); r != nil {
					results[i] = warden.ContainmentResult{Action: a, Error: fmt.Sprintf("actuator panicked: %v", r), CompletedAt: warden.FormatTime(e.now())}
				}
			}()
			if act == nil {
				results[i] = warden.ContainmentResult{Action: a, Error: "no containment actuator configured", CompletedAt: warden.FormatTime(e.now())}
				return
			}
			results[i] = act.Execute(ctx, ps.Policy, a, inc)
			results[i].Action = a
		}(i, a)
	}
	wg.Wait()
	return results
}

// settleContainment sets the state from the results: contained only if the
// class auto-contains and every action succeeded.
func (e *Engine) settleContainment(inc *warden.Incident, rule warden.ClassRule) {
	inc.ContainmentPending = false
	if !rule.AutoContain {
		return // alerts only: the incident stays open
	}
	for _, r := range inc.ContainmentResults {
		if !r.Success {
			inc.State = warden.StateContainmentFailed
			return
		}
	}
	inc.State = warden.StateContained
}

// contain runs the pending containment of an incident and records it;
// recorded says whether this call recorded it (false: it was not pending,
// or another process recorded it first).
func (e *Engine) contain(ctx context.Context, id string) (inc *warden.Incident, recorded bool, err error) {
	ps := e.policyState()
	if err := e.store.View(ctx, func(tx warden.ReadTx) (err error) {
		inc, err = tx.Incident(id)
		return err
	}); err != nil {
		return nil, false, err
	}
	if !inc.ContainmentPending {
		return inc, false, nil
	}
	results := e.runActions(ctx, ps, inc.ContainmentActions, inc)
	now := e.now()
	err = e.update(ctx, func(tx warden.Tx) (err error) {
		recorded = false
		if inc, err = tx.Incident(id); err != nil {
			return err
		}
		if !inc.ContainmentPending {
			return nil // another process recorded it first
		}
		recorded = true
		inc.ContainmentResults = results
		e.settleContainment(inc, ruleOf(ps, inc.Class))
		if err := tx.UpdateIncident(inc); err != nil {
			return err
		}
		if _, err := tx.Append(e.incidentDraft(ReceiptContainment, inc, "warden", map[string]any{"results": results})); err != nil {
			return err
		}
		return e.enqueueWebhooks(tx, ps, warden.EventContainment, inc, now)
	})
	if err != nil {
		return nil, false, err
	}
	if recorded {
		e.countReceipt(warden.ScrollIncident)
		e.wake()
	}
	return inc, recorded, nil
}

func ruleOf(ps *policyState, class string) warden.ClassRule {
	return ps.Policy.Rules[class]
}

// InterruptedContainment lists the incidents whose containment a crash
// interrupted (still marked pending). A server calls it before it accepts
// reports, then hands the list to ResumeContainment: an incident reported
// after the list was taken is contained by its own request, so no target
// is called twice for it.
func (e *Engine) InterruptedContainment(ctx context.Context) ([]string, error) {
	var ids []string
	err := e.store.View(ctx, func(tx warden.ReadTx) error {
		return tx.PendingContainment(func(i *warden.Incident) error {
			ids = append(ids, i.ID)
			return nil
		})
	})
	return ids, err
}

// ResumeContainment finishes the interrupted containment of ids (from
// InterruptedContainment) and records it. An incident recorded meanwhile
// (by another process) is skipped. It returns how many it finished.
func (e *Engine) ResumeContainment(ctx context.Context, ids []string) (int, error) {
	// One incident that cannot be finished does not hold up the others.
	var errs []error
	done := 0
	for _, id := range ids {
		_, recorded, err := e.contain(ctx, id)
		if err != nil {
			errs = append(errs, fmt.Errorf("engine.ResumeContainment %s: %w", id, err))
			continue
		}
		if recorded {
			done++
		}
	}
	return done, errors.Join(errs...)
}

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
func (e *Engine) enqueueWebhooks(tx warden.Tx, ps *policyState, event string, inc *warden.Incident, now time.Time) error {
	urls := ps.Policy.WebhooksFor(event)
	if len(urls) == 0 {
		return nil
	}
	e.pendingWake.Store(true)
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
func (e *Engine) wake() {
	if e.waker != nil && e.pendingWake.Swap(false) {
		e.waker.Wake()
	}
}

// Deliveries lists recent webhook deliveries and their outcomes.
func (e *Engine) Deliveries(ctx context.Context, incidentID string, limit int) ([]*warden.Delivery, error) {
	out := []*warden.Delivery{}
	err := e.store.View(ctx, func(tx warden.ReadTx) error {
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
func (e *Engine) RecordWebhookFailure(ctx context.Context, d *warden.Delivery) {
	body := map[string]any{"delivery_id": d.ID, "event": d.Event, "url": d.URL, "incident_id": d.IncidentID,
		"attempts": d.Attempts, "last_error": d.LastError, "last_status": d.LastStatus}
	if err := e.store.Update(ctx, func(tx warden.Tx) error {
		_, err := tx.Append(e.draft(ReceiptWebhookFailed, warden.ScrollIncident, body, "webhook"))
		return err
	}); err != nil {
		e.log.Error("webhook failure receipt not written", "err", err)
	}
}
