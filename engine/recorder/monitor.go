package recorder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine"
)

// RecordBaseline snapshots paths as the integrity baseline (admin), receipted.
func (rec *Recorder) RecordBaseline(ctx context.Context, p *warden.Principal, paths []string) (*warden.IntegrityBaseline, error) {
	if err := engine.Authorize(p, "record the integrity baseline", warden.RoleAdmin); err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, warden.Errorf(warden.EINVALID, "Give at least one path to baseline.")
	}
	if rec.integrity == nil {
		return nil, warden.Errorf(warden.EINTERNAL, "no integrity checker configured")
	}
	b, err := rec.integrity.Snapshot(ctx, paths)
	if warden.ErrorCode(err) == warden.EINTERNAL {
		return nil, fmt.Errorf("recorder.RecordBaseline: %w", err)
	} else if err != nil {
		return nil, err // the checker's sentence, as it is
	}
	b.CreatedAt, b.CreatedBy = warden.FormatTime(rec.core.Now()), p.Name
	err = rec.core.Update(ctx, "recorder.RecordBaseline", func(tx warden.Tx) error {
		if err := tx.PutIntegrityBaseline(b); err != nil {
			return err
		}
		_, err := tx.Append(rec.core.Draft(warden.ReceiptIntegrityBaseline, b, "integrity"))
		return err
	})
	if err != nil {
		return nil, err
	}
	return b, nil
}

// ScanResult is the outcome of an integrity scan.
type ScanResult struct {
	Clean    bool              `json:"clean"`
	Files    int               `json:"files"`
	Evidence map[string]string `json:"evidence"`
	// Incident is the integrity_violation reported for the findings, or
	// the still-open one already reporting the same findings.
	Incident *warden.Incident `json:"incident"`
	Reported bool             `json:"reported"`
}

// IntegrityScan re-hashes the baseline. Findings are reported as an
// integrity_violation incident (evidence: paths and both hashes) unless an
// unresolved one already reports exactly these findings. ENOTFOUND without
// a baseline.
func (rec *Recorder) IntegrityScan(ctx context.Context, p *warden.Principal) (*ScanResult, error) {
	if err := engine.Authorize(p, "scan integrity", warden.RoleOperator); err != nil {
		return nil, err
	}
	var b *warden.IntegrityBaseline
	err := rec.core.View(ctx, "recorder.IntegrityScan", func(tx warden.ReadTx) (err error) {
		b, err = tx.IntegrityBaseline()
		return err
	})
	if warden.ErrorCode(err) == warden.ENOTFOUND {
		return nil, warden.Errorf(warden.ENOTFOUND, "No integrity baseline: record one with `warden integrity baseline PATH…`.")
	} else if err != nil {
		return nil, err
	}
	if rec.integrity == nil {
		return nil, fmt.Errorf("recorder.IntegrityScan: no integrity checker configured")
	}
	clean, evidence, fp, err := rec.integrity.Check(ctx, b)
	if err != nil {
		// A scan that cannot read a watched file fails closed: it is a
		// violation in itself (the file may have been made unreadable to
		// hide a change).
		msg := err.Error()
		sum := sha256.Sum256([]byte(msg))
		clean, fp = false, "scan-error:"+hex.EncodeToString(sum[:8])
		evidence = map[string]string{"scan_error": msg, "summary": "integrity scan failed: " + truncate(msg, 200)}
	}
	evidence = boundEvidence(evidence)
	res := &ScanResult{Clean: clean, Files: len(b.Files), Evidence: evidence}
	if clean {
		return res, nil
	}
	evidence["fingerprint"] = fp
	monitor := &warden.Principal{Name: "warden:integrity-monitor", Roles: []warden.Role{warden.RoleAdmin}}
	// The same unresolved violation is not reported twice, even by racing
	// scans: the check runs inside the report's transaction.
	inc, dup, err := rec.report(ctx, "recorder.IntegrityScan", monitor, ReportRequest{
		Class:       warden.ClassIntegrityViolation,
		Source:      "warden:integrity-monitor",
		Description: "File integrity baseline mismatch: " + evidence["summary"],
		Evidence:    evidence,
	}, func(tx warden.Tx) (*warden.Incident, error) {
		var found *warden.Incident
		err := tx.Incidents(warden.IncidentFilter{Class: warden.ClassIntegrityViolation}, func(i *warden.Incident) error {
			if i.State != warden.StateResolved && i.Evidence["fingerprint"] == fp {
				found = i
				return errStop
			}
			return nil
		})
		if err != nil && err != errStop {
			return nil, err
		}
		return found, nil
	})
	if err != nil {
		return nil, err
	}
	if dup {
		res.Incident = inc
		return res, nil
	}
	res.Incident, res.Reported = inc, true
	return res, nil
}

var errStop = fmt.Errorf("stop")

// TrustState is the attestation or integrity state (runbook step 10).
type TrustState struct {
	State string `json:"state"` // trusted or degraded
	// Pending lists the incidents keeping the state degraded, oldest
	// first, at most MaxTrustPending of them; PendingCount counts them all.
	Pending      []string `json:"pending_incidents"`
	PendingCount int      `json:"pending_count"`
	Detail       string   `json:"detail"`
}

// MaxTrustPending bounds TrustState.Pending: the states are public and
// cheap, whatever a flood of incidents left pending.
const MaxTrustPending = 100

func (st *TrustState) add(id string) {
	st.PendingCount++
	if len(st.Pending) < MaxTrustPending {
		st.Pending = append(st.Pending, id)
	}
}

// AttestationState is degraded while any recovery requirement still needs
// re-attestation, trusted otherwise. Its cost grows with the incomplete
// requirements only, never with the incidents stored.
func (rec *Recorder) AttestationState(ctx context.Context) (*TrustState, error) {
	st := &TrustState{State: "trusted", Pending: []string{}, Detail: "no incident awaits re-attestation"}
	err := rec.core.View(ctx, "recorder.AttestationState", func(tx warden.ReadTx) error {
		return tx.Requirements(true, func(r *warden.RecoveryRequirement) error {
			if r.RequireReattest && r.ReAttestedAt == "" {
				st.add(r.IncidentID)
			}
			return nil
		})
	})
	if st.PendingCount > 0 {
		st.State, st.Detail = "degraded", fmt.Sprintf("%d incident(s) await re-attestation", st.PendingCount)
	}
	rec.ledgerDegrades(st)
	return st, err
}

// ledgerDegrades makes a trust state degraded while the startup check has
// found the ledger or the state tampered and no operator has decided: the
// trust root itself is then in question.
func (rec *Recorder) ledgerDegrades(st *TrustState) {
	if c := rec.core.Ledger(); c.Refuses() {
		st.State, st.Detail = "degraded", "the ledger failed verification: "+c.Reason
	}
}

// IntegrityState is degraded while any integrity_violation incident has
// not completed its recovery. integrity_violation latches, so each has a
// requirement from its report on, and a resolved one has completed it:
// the incomplete requirements are all there is to look at.
func (rec *Recorder) IntegrityState(ctx context.Context) (*TrustState, error) {
	st := &TrustState{State: "trusted", Pending: []string{}, Detail: "no unrecovered integrity violation"}
	err := rec.core.View(ctx, "recorder.IntegrityState", func(tx warden.ReadTx) error {
		return tx.Requirements(true, func(r *warden.RecoveryRequirement) error {
			i, err := tx.Incident(r.IncidentID)
			if err != nil {
				return err
			}
			if i.Class == warden.ClassIntegrityViolation {
				st.add(i.ID)
			}
			return nil
		})
	})
	if st.PendingCount > 0 {
		st.State, st.Detail = "degraded", fmt.Sprintf("%d integrity violation(s) not recovered", st.PendingCount)
	}
	rec.ledgerDegrades(st)
	return st, err
}

// boundEvidence fits monitor findings into the limits every incident's
// evidence obeys, so a hostile file name (a 4 KiB path, thousands of
// files) can never make the violation unreportable: long keys become
// "file:<hash>" with the path moved into the value, long values are cut
// with a note, and entries past the key limit are dropped with a count
// (the summary and the path lists stay).
func boundEvidence(ev map[string]string) map[string]string {
	out := make(map[string]string, len(ev))
	keys := make([]string, 0, len(ev))
	for k := range ev {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	dropped := 0
	for _, k := range keys {
		v := ev[k]
		if len(k) > MaxEvidenceKey || !utf8.ValidString(k) {
			sum := sha256.Sum256([]byte(k))
			v = "path=" + strings.ToValidUTF8(k, "?") + " " + v
			k = "file:" + hex.EncodeToString(sum[:8])
		}
		if len(v) > MaxEvidenceValue || !utf8.ValidString(v) {
			v = truncate(strings.ToValidUTF8(v, "?"), MaxEvidenceValue-64) + fmt.Sprintf(" (%d bytes cut)", len(v))
		}
		if len(out) >= MaxEvidenceKeys-2 {
			dropped++
			continue
		}
		out[k] = v
	}
	if dropped > 0 {
		out["evidence_dropped"] = fmt.Sprintf("%d more entries", dropped)
	}
	return out
}
