package recorder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine"
	"github.com/warden-sh/warden/ledger"
)

// Limits on reported incidents (the HTTP body limit bounds the total).
const (
	MaxDescription   = 4096
	MaxSource        = 256
	MaxEvidenceKeys  = 256
	MaxEvidenceKey   = 256
	MaxEvidenceValue = 8192
)

// ReportRequest is a reported security event. Severity, when given, may
// raise the class's default severity; only an operator may lower it, and
// then SeverityReason must say why (it is receipted; it is not used when
// the severity is not lowered).
type ReportRequest struct {
	Class          string            `json:"class"`
	Severity       string            `json:"severity,omitempty"`
	SeverityReason string            `json:"severity_reason,omitempty"`
	Source         string            `json:"source"`
	Description    string            `json:"description"`
	Evidence       map[string]string `json:"evidence,omitempty"`
	// IdempotencyKey (HTTP: the Idempotency-Key header) names this report
	// for retries: within warden.ReportKeyTTL, the same principal sending
	// the same key and the same report gets the incident the first one
	// created, not a second one. It is not part of the report's JSON.
	IdempotencyKey string `json:"-"`
}

// MaxSeverityReason bounds ReportRequest.SeverityReason.
const MaxSeverityReason = 1024

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
	case len(r.SeverityReason) > MaxSeverityReason:
		return warden.Errorf(warden.EINVALID, "severity_reason exceeds %d bytes.", MaxSeverityReason)
	}
	if err := warden.ValidateClass(r.Class); err != nil {
		return err
	}
	if r.Severity != "" {
		if _, err := warden.ParseSeverity(r.Severity); err != nil {
			return err
		}
	}
	for _, s := range []string{r.Class, r.Source, r.Description, r.SeverityReason} {
		if !utf8.ValidString(s) {
			return warden.Errorf(warden.EINVALID, "Fields must be valid UTF-8.")
		}
	}
	if err := validKey(r.IdempotencyKey); err != nil {
		return err
	}
	for k, v := range r.Evidence {
		if k == "" || len(k) > MaxEvidenceKey || len(v) > MaxEvidenceValue || !utf8.ValidString(k) || !utf8.ValidString(v) {
			return warden.Errorf(warden.EINVALID, "evidence key %q is empty, too long (key %d, value %d bytes max) or not UTF-8.", truncate(k, 64), MaxEvidenceKey, MaxEvidenceValue)
		}
	}
	return nil
}

// validKey checks an idempotency key: none, or 1 to MaxReportKeyLen
// visible ASCII characters.
func validKey(k string) error {
	if len(k) > warden.MaxReportKeyLen {
		return warden.Errorf(warden.EINVALID, "Idempotency-Key exceeds %d characters.", warden.MaxReportKeyLen)
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return warden.Errorf(warden.EINVALID, "Idempotency-Key must be visible ASCII characters (no spaces or control characters).")
		}
	}
	return nil
}

// requestHash identifies a report's content for its idempotency key:
// "sha256:" + hex of its canonical JSON (the key itself excluded), so the
// same report sent with other spacing or member order is the same.
func requestHash(r *ReportRequest) (string, error) {
	c, err := ledger.Canonical(r)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(c)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// reportKeysForgotten is how many expired keys a keyed report forgets in
// its own transaction: more than it adds, so the keys kept stay those of
// the last ReportKeyTTL plus a few, without a sweeper.
const reportKeysForgotten = 8

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

func (rec *Recorder) incidentDraft(typ string, inc *warden.Incident, principal string, detail any) warden.Draft {
	d := rec.core.Draft(typ, nil, "incident", inc.Class, string(inc.Severity))
	body, err := canonicalIncidentBody(inc, principal, rec.policyState().Digest, detail)
	if err != nil {
		// Let the store's canonicaliser report the problem.
		snap := *inc
		d.Body = incidentBody{Incident: &snap, Principal: principal, PolicyDigest: rec.policyState().Digest, Detail: detail}
		return d
	}
	d.Body = body
	return d
}

// incidentNote is an incident receipt that refers to the incident instead
// of carrying its snapshot: used beside the incident_reported receipt of
// the same transaction, which already holds the snapshot after this change.
func (rec *Recorder) incidentNote(typ string, inc *warden.Incident, principal string, detail any) warden.Draft {
	body := map[string]any{"incident_id": inc.ID, "class": inc.Class, "severity": inc.Severity, "principal": principal, "detail": detail}
	return rec.core.Draft(typ, body, "incident", inc.Class, string(inc.Severity))
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
	if err := engine.Authorize(p, "report incidents", warden.RoleReporter); err != nil {
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

// errLowerWithoutReason: an operator lowered a severity without saying why.
var errLowerWithoutReason = errors.New("lowered without a reason")

// reportedSeverity applies the class default as a floor: a report may
// raise it; a reporter's lower severity is raised to the default (the
// incident is still recorded, and its receipt says so); only an operator
// may lower it, with a reason. It returns the severity and the detail the
// incident_reported receipt carries (nil when the report's severity, or
// the default, stands without comment).
func reportedSeverity(p *warden.Principal, req *ReportRequest, def warden.Severity) (warden.Severity, map[string]any, error) {
	reason := strings.TrimSpace(req.SeverityReason)
	asked := warden.Severity(req.Severity)
	switch {
	case req.Severity == "":
		return def, nil, nil
	case asked.Rank() >= def.Rank():
		return asked, nil, nil // severity_reason matters only when lowering
	case !p.HasRole(warden.RoleOperator):
		return def, map[string]any{"severity_floor": map[string]any{"requested": asked, "applied": def,
			"rule": fmt.Sprintf("a reporter may raise class %s's default severity (%s), never lower it; only an operator may", req.Class, def)}}, nil
	case reason == "":
		return "", nil, errLowerWithoutReason
	}
	return asked, map[string]any{"severity_lowered": map[string]any{"from": def, "to": asked, "by": p.Name, "reason": reason}}, nil
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
//
// With an IdempotencyKey the principal used within warden.ReportKeyTTL for
// the same report, nothing is written and the incident that report created
// is returned as it is now; for a different report, ECONFLICT. If the
// containment ran but its outcome could not be saved (storage full), the
// error is EUNAVAILABLE naming the incident (Data "incident_id"); the
// outcome is saved once storage recovers (RecordHeldContainment).
func (rec *Recorder) ReportIncident(ctx context.Context, p *warden.Principal, req ReportRequest) (*warden.Incident, error) {
	inc, _, err := rec.Report(ctx, p, req)
	return inc, err
}

// Report is ReportIncident that also says whether the answer is a replay:
// an earlier report with the same IdempotencyKey created the incident.
func (rec *Recorder) Report(ctx context.Context, p *warden.Principal, req ReportRequest) (inc *warden.Incident, replayed bool, err error) {
	return rec.report(ctx, "recorder.ReportIncident", p, req, nil)
}

// report is ReportIncident with an optional duplicate check run inside the
// report's own transaction: when it finds an incident, that incident is
// returned (dup true) and nothing is written, so racing reporters of the
// same finding create one incident. op names the exported operation that
// asked, for errors.
func (rec *Recorder) report(ctx context.Context, op string, p *warden.Principal, req ReportRequest, duplicate func(tx warden.Tx) (*warden.Incident, error)) (*warden.Incident, bool, error) {
	if err := req.Validate(); err != nil {
		return nil, false, err
	}
	if err := authorizeReport(p, &req); err != nil {
		return nil, false, err
	}
	ps := rec.policyState()
	rule := ps.Policy.Rules[req.Class]
	sev, severityDetail, err := reportedSeverity(p, &req, rule.DefaultSeverity)
	if errors.Is(err, errLowerWithoutReason) {
		body := map[string]any{"operation": "report", "principal": p.Name, "class": req.Class, "source": req.Source,
			"severity": req.Severity, "class_default": rule.DefaultSeverity}
		return nil, false, rec.core.Update(ctx, op, func(tx warden.Tx) error {
			return rec.core.Deny(warden.ReceiptIncidentDenied, body, warden.EINVALID,
				"Severity %s is below class %s's default (%s): an operator may lower it only with a severity_reason saying why.", req.Severity, req.Class, rule.DefaultSeverity)
		})
	} else if err != nil {
		return nil, false, err
	}
	now := rec.core.Now()
	actions := executedActions(rule)
	external := needsTargets(actions)
	var keyDetail map[string]any
	if req.IdempotencyKey != "" {
		hash, err := requestHash(&req)
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w", op, err)
		}
		keyDetail = map[string]any{"idempotency_key": req.IdempotencyKey, "request_hash": hash}
		duplicate = keyed(p.Name, req.IdempotencyKey, hash, now, duplicate)
	}

	var inc *warden.Incident
	var deliveries, dup bool
	err = rec.core.Update(ctx, op, func(tx warden.Tx) error {
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
			Drill:              rec.core.Drill(),
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
			inc.ContainmentResults = alertResults(actions, now, rec.core.Drill())
			rec.settleContainment(inc, rule)
		}
		if err := tx.CreateIncident(inc); err != nil {
			return err
		}
		// The detail says what the severity rule did and names the
		// idempotency key; a plain report has none (as before either).
		var detail any
		if severityDetail != nil || keyDetail != nil {
			d := map[string]any{}
			maps.Copy(d, severityDetail)
			maps.Copy(d, keyDetail)
			detail = d
		}
		if _, err := tx.Append(rec.incidentDraft(warden.ReceiptIncidentReported, inc, p.Name, detail)); err != nil {
			return err
		}
		if keyDetail != nil {
			if err := tx.PutReportKey(&warden.ReportKey{Principal: p.Name, Key: req.IdempotencyKey,
				RequestHash: keyDetail["request_hash"].(string), IncidentID: inc.ID, CreatedAt: now}); err != nil {
				return err
			}
			if _, err := tx.ForgetReportKeys(now.Add(-warden.ReportKeyTTL), reportKeysForgotten); err != nil {
				return err
			}
		}
		if window != nil {
			detail := map[string]any{"from": inc.EscalatedFrom, "to": inc.Severity, "threshold": window.Threshold,
				"window_seconds": int(window.Window.Seconds()), "rule": fmt.Sprintf("%d %s incidents within %s escalate to %s", window.Threshold, window.Class, window.Window, window.Raise)}
			if _, err := tx.Append(rec.incidentNote(warden.ReceiptSeverityRaised, inc, p.Name, detail)); err != nil {
				return err
			}
			if err := rec.enqueueWebhooks(tx, ps, warden.EventEscalation, inc, now); err != nil {
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
			if _, err := tx.Append(rec.incidentNote(warden.ReceiptRecoveryRequired, inc, p.Name, r)); err != nil {
				return err
			}
		}
		if !external && len(actions) > 0 {
			// Alert-only results ride in the incident_reported snapshot.
			if err := rec.enqueueWebhooks(tx, ps, warden.EventContainment, inc, now); err != nil {
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
	if !external && len(actions) > 0 {
		rec.countContainment(inc.ContainmentResults) // alerts only: recorded with the report
	}
	if deliveries {
		rec.wake()
	}
	if !external {
		if len(actions) > 0 && rec.actuator != nil {
			for _, a := range actions {
				rec.execute(ctx, ps.Policy, a, inc) // log_alert: logs only
			}
		}
		return inc, false, nil
	}
	// The client may go away; containment must not.
	id := inc.ID
	inc, _, err = rec.containPending(context.WithoutCancel(ctx), op, ps, inc)
	if warden.ErrorCode(err) == warden.EUNAVAILABLE {
		retry := "A retry with the same Idempotency-Key returns the incident."
		if req.IdempotencyKey == "" {
			retry = "Do not report it again: it exists."
		}
		return nil, false, &warden.Error{Code: warden.EUNAVAILABLE, Data: map[string]any{"incident_id": id},
			Message: fmt.Sprintf("Storage is full: incident %s was recorded and its containment ran, but the outcome could not be saved; "+
				"warden saves it as soon as storage recovers. %s", id, retry)}
	}
	return inc, false, err
}

// keyed is the duplicate check of a report with an idempotency key, run
// inside the report's transaction before next (the caller's own check, if
// any): a key of the principal's still in force returns its incident if
// the report is the same, and ECONFLICT if it is not.
func keyed(principal, key, hash string, now time.Time, next func(tx warden.Tx) (*warden.Incident, error)) func(tx warden.Tx) (*warden.Incident, error) {
	return func(tx warden.Tx) (*warden.Incident, error) {
		k, err := tx.ReportKey(principal, key)
		switch {
		case warden.ErrorCode(err) == warden.ENOTFOUND:
		case err != nil:
			return nil, err
		case now.Sub(k.CreatedAt) > warden.ReportKeyTTL:
			// Expired (and forgotten by ForgetReportKeys): the key names a
			// new report.
		case k.RequestHash != hash:
			return nil, warden.Errorf(warden.ECONFLICT, "Idempotency-Key %q was already used for another report (incident %s) within the last %d hours: "+
				"a key names one report, so retry with the same report or use a new key.", key, k.IncidentID, int(warden.ReportKeyTTL.Hours()))
		default:
			return tx.Incident(k.IncidentID)
		}
		if next != nil {
			return next(tx)
		}
		return nil, nil
	}
}
