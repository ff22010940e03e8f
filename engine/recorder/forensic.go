package recorder

import (
	"context"
	"fmt"
	"io"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine"
	"github.com/warden-sh/warden/forensic"
)

// ExportForensic streams a signed forensic bundle (package forensic owns
// the format) to w in bounded memory: incident-scroll receipts and
// incidents are read page by page from one snapshot. Forensic role. The
// export is receipted.
//
// The export MUST stay complete: every incident-scroll receipt and every
// incident, unfiltered, with system_state's counters from the same
// snapshot. forensic.Verify reports an incident with receipts but no record,
// and counters that disagree with the records, as tampering.
func (rec *Recorder) ExportForensic(ctx context.Context, p *warden.Principal, w io.Writer, version string) (*forensic.Summary, error) {
	if err := engine.Authorize(p, "export forensic bundles", warden.RoleForensic); err != nil {
		return nil, err
	}
	signer, _ := rec.core.KeyState()
	if signer == nil || len(rec.hmacKey) == 0 {
		return nil, fmt.Errorf("recorder.ExportForensic: signing keys not configured")
	}
	// Anchor everything so far, so the audit entries are provable.
	if _, err := rec.core.Checkpoint(ctx); err != nil {
		return nil, err
	}
	att, err := rec.AttestationState(ctx)
	if err != nil {
		return nil, err
	}
	integ, err := rec.IntegrityState(ctx)
	if err != nil {
		return nil, err
	}
	digest := rec.policyState().Digest
	var sum *forensic.Summary
	// One snapshot for the whole bundle (forensic.Source's contract), held
	// while the client downloads it: a Stream, so it never holds what
	// authentication, /health and writes need.
	err = rec.core.Stream(ctx, "recorder.ExportForensic", func(tx warden.ReadTx) error {
		head, err := tx.Head()
		if err != nil {
			return err
		}
		cp, err := tx.LatestCheckpoint()
		if err != nil {
			return err
		}
		stats, err := tx.IncidentStats()
		if err != nil {
			return err
		}
		pending := 0
		if err := tx.Requirements(true, func(*warden.RecoveryRequirement) error { pending++; return nil }); err != nil {
			return err
		}
		h := forensic.Header{
			ExportedAt:   rec.core.Now(),
			PolicyDigest: digest,
			SystemState: forensic.SystemState{
				TotalIncidents: stats.TotalIncidents, OpenIncidents: stats.OpenIncidents, ContainedCount: stats.ContainedCount,
				ResolvedCount: stats.ResolvedCount, ByClass: stats.ByClass, OpenBySeverity: stats.OpenBySeverity,
				PendingRecoveries: pending, AttestationState: att.State, IntegrityState: integ.State,
				LogSize: head.Size, CheckpointSize: cp.Size, Origin: signer.Name(), DrillMode: rec.core.Drill(), WardenVersion: version,
			},
			PublicKey:  rec.core.PublicKey(),
			Checkpoint: cp,
		}
		sum, err = forensic.Write(w, snapshot{tx}, h, forensic.Keys{HMAC: rec.hmacKey, Signer: signer})
		return err
	})
	if err != nil {
		return nil, err
	}
	err = rec.core.Update(context.WithoutCancel(ctx), "recorder.ExportForensic", func(tx warden.Tx) error {
		_, err := tx.Append(rec.core.Draft(warden.ReceiptForensicExport, map[string]any{"by": p.Name, "summary": sum}, "forensic"))
		return err
	})
	return sum, err
}

// snapshot is a forensic.Source over one read transaction.
type snapshot struct{ warden.ReadTx }

// AuditEntries pages through the incident scroll in seq order.
func (s snapshot) AuditEntries(fn func(*warden.Receipt) error) error {
	var after *uint64
	for {
		page, err := s.Receipts(warden.ReceiptFilter{Scroll: warden.ScrollIncident, After: after, Limit: warden.MaxPageSize})
		if err != nil {
			return err
		}
		for _, r := range page {
			if err := fn(r); err != nil {
				return err
			}
		}
		if len(page) < warden.MaxPageSize {
			return nil
		}
		last := page[len(page)-1].Seq
		after = &last
	}
}

// Incidents lists every incident, unfiltered, in listing order.
func (s snapshot) Incidents(fn func(*warden.Incident) error) error {
	return s.ReadTx.Incidents(warden.IncidentFilter{}, fn)
}
