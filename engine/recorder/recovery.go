package recorder

import (
	"context"
	"errors"
	"fmt"
	"strings"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine"
	"github.com/warden-sh/warden/ledger"
)

// latchReason explains why a requirement blocks an incident transition.
func latchReason(inc *warden.Incident, r *warden.RecoveryRequirement) string {
	why := "its severity is critical"
	if warden.IsLatched(inc.Class) {
		why = fmt.Sprintf("class %s is latched", inc.Class)
	}
	return fmt.Sprintf("incident %s is latched (%s) until the recovery ceremony completes; missing: %s",
		inc.ID, why, strings.Join(r.Missing(), " and "))
}

// ResolveIncident resolves an incident. An incident with an incomplete
// recovery requirement, one whose containment is still running, or one
// already resolved is refused with ECONFLICT naming what is missing, and
// the refusal is receipted. ENOTFOUND if unknown.
func (rec *Recorder) ResolveIncident(ctx context.Context, p *warden.Principal, id string) (*warden.Incident, error) {
	return rec.transition(ctx, "recorder.ResolveIncident", p, id, "resolve", warden.ReceiptIncidentResolved, func(inc *warden.Incident) {
		inc.State = warden.StateResolved
		inc.ResolvedAt = warden.FormatTime(rec.core.Now())
		inc.ResolvedBy = p.Name
	})
}

// AcknowledgeIncident marks an open incident acknowledged (reviewed by an
// operator), under the same latch rule as resolving.
func (rec *Recorder) AcknowledgeIncident(ctx context.Context, p *warden.Principal, id string) (*warden.Incident, error) {
	return rec.transition(ctx, "recorder.AcknowledgeIncident", p, id, "acknowledge", warden.ReceiptIncidentAcknowledged, func(inc *warden.Incident) {
		inc.State = warden.StateAcknowledged
		inc.AcknowledgedAt = warden.FormatTime(rec.core.Now())
		inc.AcknowledgedBy = p.Name
	})
}

func (rec *Recorder) transition(ctx context.Context, op string, p *warden.Principal, id, verb, receipt string, apply func(*warden.Incident)) (*warden.Incident, error) {
	if err := engine.Authorize(p, verb+" incidents", warden.RoleOperator); err != nil {
		return nil, err
	}
	if id == "" {
		return nil, warden.Errorf(warden.EINVALID, "id is required.")
	}
	var inc *warden.Incident
	err := rec.core.Update(ctx, op, func(tx warden.Tx) (err error) {
		if inc, err = tx.Incident(id); warden.ErrorCode(err) == warden.ENOTFOUND {
			return warden.Errorf(warden.ENOTFOUND, "Incident %q not found.", truncate(id, 64))
		} else if err != nil {
			return err
		}
		deny := func(format string, args ...any) error {
			return rec.core.Deny(warden.ReceiptIncidentDenied, map[string]any{"incident_id": id, "operation": verb, "principal": p.Name, "state": inc.State}, warden.ECONFLICT, format, args...)
		}
		switch {
		case inc.State == warden.StateResolved:
			return deny("Incident %s is already resolved (at %s).", id, inc.ResolvedAt)
		case verb == "acknowledge" && inc.State == warden.StateAcknowledged:
			return deny("Incident %s is already acknowledged (at %s).", id, inc.AcknowledgedAt)
		case inc.ContainmentPending:
			return deny("Incident %s cannot be %sd while its containment is still running.", id, verb)
		}
		r, err := tx.Requirement(id)
		if err != nil && warden.ErrorCode(err) != warden.ENOTFOUND {
			return err
		}
		if r != nil && !r.RecoveryComplete {
			return deny("Cannot %s: %s.", verb, latchReason(inc, r))
		}
		apply(inc)
		if err := tx.UpdateIncident(inc); err != nil {
			return err
		}
		_, err = tx.Append(rec.incidentDraft(receipt, inc, p.Name, nil))
		return err
	})
	if err != nil {
		return nil, err
	}
	return inc, nil
}

// recoveryStep loads an incident's requirement for a ceremony step, with
// the refusals every step shares.
func (rec *Recorder) recoveryStep(tx warden.Tx, p *warden.Principal, id, step string) (*warden.Incident, *warden.RecoveryRequirement, error) {
	inc, err := tx.Incident(id)
	if warden.ErrorCode(err) == warden.ENOTFOUND {
		return nil, nil, warden.Errorf(warden.ENOTFOUND, "Incident %q not found.", truncate(id, 64))
	} else if err != nil {
		return nil, nil, err
	}
	deny := func(format string, args ...any) error {
		return rec.core.Deny(warden.ReceiptRecoveryDenied, map[string]any{"incident_id": id, "step": step, "principal": p.Name}, warden.ECONFLICT, format, args...)
	}
	r, err := tx.Requirement(id)
	if warden.ErrorCode(err) == warden.ENOTFOUND {
		return nil, nil, deny("Incident %s has no recovery requirement (class %s, severity %s is neither latched nor critical); resolve it directly.", id, inc.Class, inc.Severity)
	} else if err != nil {
		return nil, nil, err
	}
	return inc, r, nil
}

// AckRequest is POST /api/v1/recovery/ack's body. Operator is the name the
// operator gives (the runbook's "admin@secai"; the principal's name when
// empty).
type AckRequest struct {
	IncidentID string `json:"incident_id"`
	Operator   string `json:"operator"`
}

// RecoveryAck records the operator's acknowledgment of a latched or
// critical incident (ceremony step 6); the authenticated principal is
// recorded beside the name the operator gives. ECONFLICT if the incident
// has no requirement or is already acknowledged.
func (rec *Recorder) RecoveryAck(ctx context.Context, p *warden.Principal, ack AckRequest) (*warden.RecoveryRequirement, error) {
	id, operator := ack.IncidentID, ack.Operator
	if err := engine.Authorize(p, "acknowledge recoveries", warden.RoleRecoveryAdmin); err != nil {
		return nil, err
	}
	if id == "" {
		return nil, warden.Errorf(warden.EINVALID, "incident_id is required.")
	}
	if strings.TrimSpace(operator) == "" {
		operator = p.Name
	}
	if len(operator) > 256 {
		return nil, warden.Errorf(warden.EINVALID, "operator exceeds 256 bytes.")
	}
	var r *warden.RecoveryRequirement
	now := rec.core.Now()
	err := rec.core.Update(ctx, "recorder.RecoveryAck", func(tx warden.Tx) error {
		inc, req, err := rec.recoveryStep(tx, p, id, "ack")
		if err != nil {
			return err
		}
		if req.AckedAt != "" {
			return rec.core.Deny(warden.ReceiptRecoveryDenied, map[string]any{"incident_id": id, "step": "ack", "principal": p.Name},
				warden.ECONFLICT, "Incident %s was already acknowledged by %s at %s.", id, req.AckedBy, req.AckedAt)
		}
		req.AckedAt, req.AckedBy, req.AckedByPrincipal = warden.FormatTime(now), operator, p.Name
		req.Settle()
		if err := tx.PutRequirement(req); err != nil {
			return err
		}
		inc.AckedAt, inc.AckedBy = req.AckedAt, req.AckedBy
		if err := tx.UpdateIncident(inc); err != nil {
			return err
		}
		if _, err := tx.Append(rec.incidentDraft(warden.ReceiptRecoveryAcknowledged, inc, p.Name, req)); err != nil {
			return err
		}
		r = req
		return rec.enqueueWebhooks(tx, rec.policyState(), warden.EventRecovery, inc, now)
	})
	if err != nil {
		return nil, err
	}
	rec.wake()
	return r, nil
}

// Reattest re-establishes the trust root after an incident that requires
// it (ceremony step 7). It is real: it re-verifies the whole ledger against
// its signed checkpoints and re-checks the integrity baseline, and refuses
// (ECONFLICT, receipted, with the reason) if either fails, if an
// integrity_violation has no baseline to re-check, if the incident was not
// acknowledged first, or does not require re-attestation.
func (rec *Recorder) Reattest(ctx context.Context, p *warden.Principal, id string) (*warden.RecoveryRequirement, error) {
	if err := engine.Authorize(p, "re-attest", warden.RoleRecoveryAdmin); err != nil {
		return nil, err
	}
	if id == "" {
		return nil, warden.Errorf(warden.EINVALID, "incident_id is required.")
	}
	denyBody := map[string]any{"incident_id": id, "step": "reattest", "principal": p.Name}
	// Cheap refusals first, before the expensive checks.
	var pre error
	var class string
	if err := rec.core.View(ctx, "recorder.Reattest", func(tx warden.ReadTx) error {
		r, err := tx.Requirement(id)
		if err != nil {
			pre = errNoRequirement // recoveryStep below reports it precisely
			return nil
		}
		inc, err := tx.Incident(id)
		if err != nil {
			return err
		}
		class = inc.Class
		if !r.RequireReattest {
			pre = fmt.Errorf("Incident %s does not require re-attestation (only critical, attestation_failure and integrity_violation incidents do).", id)
		} else if r.AckedAt == "" {
			pre = fmt.Errorf("Incident %s must be acknowledged (warden recovery ack, or POST /api/v1/recovery/ack) before re-attestation.", id)
		} else if r.ReAttestedAt != "" {
			pre = fmt.Errorf("Incident %s was already re-attested at %s.", id, r.ReAttestedAt)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	check := map[string]any{}
	var failure string
	if pre == errNoRequirement {
		pre = nil
	} else if pre == nil {
		failure = rec.attestationChecks(ctx, check, class == warden.ClassIntegrityViolation)
	}
	var r *warden.RecoveryRequirement
	now := rec.core.Now()
	err := rec.core.Update(ctx, "recorder.Reattest", func(tx warden.Tx) error {
		inc, req, err := rec.recoveryStep(tx, p, id, "reattest")
		if err != nil {
			return err
		}
		// The cheap checks again, inside the transaction: a concurrent
		// re-attestation may have won since they first ran.
		if pre == nil {
			switch {
			case !req.RequireReattest:
				pre = fmt.Errorf("Incident %s does not require re-attestation (only critical, attestation_failure and integrity_violation incidents do).", id)
			case req.AckedAt == "":
				pre = fmt.Errorf("Incident %s must be acknowledged (warden recovery ack, or POST /api/v1/recovery/ack) before re-attestation.", id)
			case req.ReAttestedAt != "":
				pre = fmt.Errorf("Incident %s was already re-attested at %s.", id, req.ReAttestedAt)
			}
		}
		if pre != nil {
			return rec.core.Deny(warden.ReceiptRecoveryDenied, denyBody, warden.ECONFLICT, "%s", pre.Error())
		}
		if failure != "" {
			denyBody["checks"] = check
			return rec.core.Deny(warden.ReceiptRecoveryDenied, denyBody, warden.ECONFLICT, "Re-attestation refused: %s", failure)
		}
		req.ReAttestedAt, req.ReAttestedByPrincipal = warden.FormatTime(now), p.Name
		req.Settle()
		if err := tx.PutRequirement(req); err != nil {
			return err
		}
		if _, err := tx.Append(rec.incidentDraft(warden.ReceiptRecoveryReattested, inc, p.Name, map[string]any{"requirement": req, "checks": check})); err != nil {
			return err
		}
		r = req
		return rec.enqueueWebhooks(tx, rec.policyState(), warden.EventRecovery, inc, now)
	})
	if err != nil {
		return nil, err
	}
	rec.wake()
	return r, nil
}

var errNoRequirement = errors.New("no requirement")

// attestationChecks verifies the ledger and the integrity baseline, filling
// check with what was verified; it returns "" when both hold. Without a
// baseline only the ledger is vouched for, which is refused when
// needBaseline (an integrity_violation: nothing else shows the files are
// as they should be again).
func (rec *Recorder) attestationChecks(ctx context.Context, check map[string]any, needBaseline bool) string {
	_, known := rec.core.KeyState()
	if known == nil {
		return "no ledger public key is configured to verify against"
	}
	v := ledger.NewVerifier(known, "")
	v.AllowUnanchored = true // the live log grows between checkpoints
	sum, err := engine.VerifyStore(ctx, rec.core.Store(), v)
	var ve *ledger.VerifyError
	if errors.As(err, &ve) {
		return fmt.Sprintf("ledger verification failed: %v", ve)
	} else if err != nil {
		rec.core.Logger().Error("re-attestation: ledger verification could not run", "err", err)
		return "ledger verification could not run (details in the server log)"
	}
	check["ledger"] = map[string]any{"receipts": sum.Count, "checkpoint_size": sum.CheckpointSize, "checkpoints": sum.Checkpoints, "root": sum.Root}
	var b *warden.IntegrityBaseline
	err = rec.core.View(ctx, "recorder.attestationChecks", func(tx warden.ReadTx) (err error) {
		b, err = tx.IntegrityBaseline()
		return err
	})
	switch {
	case warden.ErrorCode(err) == warden.ENOTFOUND && needBaseline:
		check["integrity"] = "no baseline recorded"
		return "an integrity_violation is re-attested only against an integrity baseline that scans clean, and none is recorded (restore the files, record one with `warden integrity baseline PATH…`, then re-attest)"
	case warden.ErrorCode(err) == warden.ENOTFOUND:
		check["integrity"] = "no baseline recorded"
		return ""
	case err != nil:
		rec.core.Logger().Error("re-attestation: reading the integrity baseline", "err", err)
		return "the integrity baseline could not be read (details in the server log)"
	case rec.integrity == nil:
		return "an integrity baseline exists but no integrity checker is configured"
	}
	clean, evidence, _, err := rec.integrity.Check(ctx, b)
	if err != nil {
		return fmt.Sprintf("integrity check failed: %v", err)
	}
	if !clean {
		return fmt.Sprintf("integrity baseline mismatch: %s (restore the files or record a new baseline)", evidence["summary"])
	}
	check["integrity"] = map[string]any{"files": len(b.Files), "clean": true}
	return ""
}
