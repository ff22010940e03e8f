package recorder

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine"
	"github.com/warden-sh/warden/forensic"
	"github.com/warden-sh/warden/ledger"
	"golang.org/x/mod/sumdb/note"
)

// ForensicSummary describes an exported bundle.
type ForensicSummary struct {
	BundleHash   string `json:"bundle_hash"`
	Incidents    int    `json:"incidents"`
	AuditEntries int    `json:"audit_entries"`
	Proofs       int    `json:"inclusion_proofs"`
}

// bundleWriter writes JSON to out and, while hashing is on, to the bundle
// hash too; it remembers the first write error.
type bundleWriter struct {
	out  *bufio.Writer
	h    hash.Hash
	hash bool
	err  error
}

func (b *bundleWriter) raw(p []byte) {
	if b.err != nil {
		return
	}
	if _, b.err = b.out.Write(p); b.err == nil && b.hash {
		b.h.Write(p)
	}
}

func (b *bundleWriter) str(s string) { b.raw([]byte(s)) }

func (b *bundleWriter) canonical(v any) {
	if b.err != nil {
		return
	}
	c, err := ledger.Canonical(v)
	if err != nil {
		b.err = err
		return
	}
	b.raw(c)
}

// ExportForensic streams a signed forensic bundle (see package forensic) to
// w in bounded memory: incident-scroll receipts and incidents are read page
// by page from one snapshot. Forensic role. The export is receipted.
//
// The export MUST stay complete: every incident-scroll receipt and every
// incident, unfiltered, with system_state's counters from the same
// snapshot. forensic.Verify reports an incident with receipts but no record,
// and counters that disagree with the records, as tampering.
func (rec *Recorder) ExportForensic(ctx context.Context, p *warden.Principal, w io.Writer, version string) (*ForensicSummary, error) {
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
	ps := rec.policyState()
	bw := &bundleWriter{out: bufio.NewWriterSize(w, 1<<16), h: sha256.New(), hash: true}
	sum := &ForensicSummary{}
	err = rec.core.View(ctx, "recorder.ExportForensic", func(tx warden.ReadTx) error {
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

		// The hashed content, in RFC 8785 member order.
		bw.str(`{"audit_entries":[`)
		if err := rec.eachIncidentReceipt(tx, func(r *warden.Receipt) error {
			if sum.AuditEntries > 0 {
				bw.str(",")
			}
			bw.canonical(r)
			sum.AuditEntries++
			return bw.err
		}); err != nil {
			return err
		}
		bw.str(`],"exported_at":`)
		bw.canonical(warden.FormatTime(rec.core.Now()))
		bw.str(`,"incidents":[`)
		// All of them (no filter), in listing order: severity, then newest.
		if err := tx.Incidents(warden.IncidentFilter{}, func(i *warden.Incident) error {
			if sum.Incidents > 0 {
				bw.str(",")
			}
			bw.canonical(i)
			sum.Incidents++
			return bw.err
		}); err != nil {
			return err
		}
		bw.str(`],"policy_digest":`)
		bw.canonical(ps.Digest)
		bw.str(`,"system_state":`)
		bw.canonical(forensic.SystemState{
			TotalIncidents: stats.TotalIncidents, OpenIncidents: stats.OpenIncidents, ContainedCount: stats.ContainedCount,
			ResolvedCount: stats.ResolvedCount, ByClass: stats.ByClass, OpenBySeverity: stats.OpenBySeverity,
			PendingRecoveries: pending, AttestationState: att.State, IntegrityState: integ.State,
			LogSize: head.Size, CheckpointSize: cp.Size, Origin: signer.Name(), DrillMode: rec.core.Drill(), WardenVersion: version,
		})
		if bw.err != nil {
			return bw.err
		}
		bw.h.Write([]byte("}"))
		bw.hash = false
		sum.BundleHash = hex.EncodeToString(bw.h.Sum(nil))

		bundleNote, err := note.Sign(&note.Note{Text: forensic.NoteText(sum.BundleHash)}, signer)
		if err != nil {
			return err
		}
		bw.str(`,"bundle_hash":`)
		bw.canonical(sum.BundleHash)
		bw.str(`,"signature":`)
		bw.canonical(forensic.Sign(rec.hmacKey, sum.BundleHash))
		bw.str(`,"bundle_note":`)
		bw.canonical(string(bundleNote))
		bw.str(`,"pubkey":`)
		bw.canonical(rec.core.PublicKey())
		bw.str(`,"checkpoint":`)
		bw.canonical(cp.Note)
		bw.str(`,"format":`)
		bw.canonical(forensic.Format)
		bw.str(`,"inclusion_proofs":[`)
		if err := rec.eachIncidentReceipt(tx, func(r *warden.Receipt) error {
			if r.Seq >= cp.Size {
				return nil // newer than the checkpoint: reported as unanchored
			}
			hashes, err := ledger.InclusionProof(r.Seq, cp.Size, tx.MerkleHashes)
			if err != nil {
				return err
			}
			if sum.Proofs > 0 {
				bw.str(",")
			}
			b, err := json.Marshal(forensic.Proof{Seq: r.Seq, TreeSize: cp.Size, Hashes: nonNil(hashes)})
			if err != nil {
				return err
			}
			bw.raw(b)
			sum.Proofs++
			return bw.err
		}); err != nil {
			return err
		}
		bw.str("]}\n")
		return bw.err
	})
	if err != nil {
		return nil, err
	}
	if err := bw.out.Flush(); err != nil {
		return nil, err
	}
	err = rec.core.Update(context.WithoutCancel(ctx), "recorder.ExportForensic", func(tx warden.Tx) error {
		_, err := tx.Append(rec.core.Draft(warden.ReceiptForensicExport, map[string]any{"by": p.Name, "summary": sum}, "forensic"))
		return err
	})
	return sum, err
}

// eachIncidentReceipt pages through the incident scroll in seq order.
func (rec *Recorder) eachIncidentReceipt(tx warden.ReadTx, fn func(*warden.Receipt) error) error {
	var after *uint64
	for {
		page, err := tx.Receipts(warden.ReceiptFilter{Scroll: warden.ScrollIncident, After: after, Limit: warden.MaxPageSize})
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

func nonNil(h [][]byte) [][]byte {
	if h == nil {
		return [][]byte{}
	}
	return h
}
