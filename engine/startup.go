package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/ledger"
)

// A server checks its own log and state before it signs anything on top of
// them, because a checkpoint signed over a hole makes the hole permanent:
//
//  1. before accepting writes, the tail: the cached head is readable, the
//     stored tree at the latest signed checkpoint is the signed root, every
//     receipt after it re-hashes and extends that tree to the cached head,
//     and no row lies past the head (CheckTail);
//  2. then the whole log and the state replay (CheckStore with every
//     projection): at once for a small log, in the background for a large
//     one, with progress in /health. Checkpoints are not signed until it
//     passes.
//
// A failure at either step sets the check to tampered: writes are refused
// (EUNAVAILABLE, naming the bad sequence number or row), nothing is
// signed, and the attestation and integrity states are degraded, until an
// operator restores the data or accepts the failure (AcceptTampered,
// receipted).

// Ledger returns the startup check's state (LedgerUnchecked where none ran).
func (e *Core) Ledger() warden.LedgerCheck {
	if c := e.ledger.Load(); c != nil {
		return *c
	}
	return warden.LedgerCheck{State: warden.LedgerUnchecked}
}

func (e *Core) setLedger(c warden.LedgerCheck) { e.ledger.Store(&c) }

// refuseWrites is Update's gate: EUNAVAILABLE while the check failed.
func (e *Core) refuseWrites() error {
	c := e.ledger.Load()
	if c == nil || !c.Refuses() {
		return nil
	}
	where := ""
	if c.FirstBadSeq != nil {
		where = fmt.Sprintf(" at sequence number %d", *c.FirstBadSeq)
	}
	return warden.Errorf(warden.EUNAVAILABLE, "Writes are refused: the ledger failed verification%s (%s). An operator must restore the data or accept the failure (warden serve --accept-tampered=%s).", where, c.Reason, c.Failure)
}

// signingPaused reports whether checkpoints must wait: the whole log has
// not been verified yet, or it failed.
func (e *Core) signingPaused() bool {
	c := e.ledger.Load()
	return c != nil && (c.State == warden.LedgerVerifying || c.State == warden.LedgerTampered)
}

// StartupCheck configures CheckAtStart.
type StartupCheck struct {
	// Projections are the state projections to replay (stack.Projections).
	Projections []Projection
	// SyncLimit is the largest log checked in full before CheckAtStart
	// returns; a larger one is checked in the background. Zero means
	// DefaultSyncLimit.
	SyncLimit uint64
	// Done, if set, is called when the whole check ends, with its state.
	Done func(warden.LedgerCheck)
	// Accept, if set, is an operator's decision to take writes despite
	// the failure it names (LedgerCheck.Failure), whenever the check
	// finds exactly that one, in the background included (AcceptTampered).
	Accept, AcceptedBy string
}

// DefaultSyncLimit: logs up to this size are verified in full before the
// server accepts writes (about a second of checking on a small machine).
const DefaultSyncLimit = 200_000

// CheckAtStart runs the startup check (see above). It returns once the
// tail is checked, and the whole log too when it is small; otherwise the
// rest runs on a goroutine until done or ctx ends. It returns an error only
// when the check could not run; tampering is a state, not an error: the
// server serves reads and refuses writes.
func (e *Core) CheckAtStart(ctx context.Context, c StartupCheck) error {
	if c.SyncLimit == 0 {
		c.SyncLimit = DefaultSyncLimit
	}
	e.setLedger(warden.LedgerCheck{State: warden.LedgerVerifying})
	// recordFailure, then the operator's decision if it names this failure.
	record := func(err error) bool {
		if !e.recordFailure(err) {
			return false
		}
		if c.Accept != "" && c.Accept == e.Ledger().Failure {
			if aerr := e.AcceptTampered(ctx, c.Accept, c.AcceptedBy); aerr != nil {
				e.log.Error("accepting the failed ledger check", "err", aerr)
			}
		}
		return true
	}
	size, anchored, err := e.CheckTail(ctx)
	if failed := record(err); failed || err != nil {
		if failed {
			err = nil
		}
		if c.Done != nil {
			c.Done(e.Ledger())
		}
		return err
	}
	e.setLedger(warden.LedgerCheck{State: warden.LedgerVerifying, Total: size})
	full := func(ctx context.Context) error {
		_, known := e.KeyState()
		v := ledger.NewVerifier(known, "")
		v.AllowUnanchored = true        // the tail was checked; a live log grows
		v.AllowNoCheckpoint = !anchored // CheckTail re-hashed it all from 0
		_, err := CheckStore(ctx, e.store, v, &StoreCheck{Projections: c.Projections, Progress: func(done, total uint64) {
			e.setLedger(warden.LedgerCheck{State: warden.LedgerVerifying, Checked: done, Total: total})
		}})
		if !record(err) && err == nil {
			n := e.Ledger().Total
			e.setLedger(warden.LedgerCheck{State: warden.LedgerVerified, Checked: n, Total: n})
		}
		if c.Done != nil && ctx.Err() == nil {
			c.Done(e.Ledger())
		}
		return err
	}
	if size <= c.SyncLimit {
		if err := full(ctx); err != nil && !isTampering(err) {
			return err
		}
		return nil
	}
	go func() {
		if err := full(ctx); err != nil && !isTampering(err) && ctx.Err() == nil {
			e.log.Error("startup verification could not run", "err", err)
		}
	}()
	return nil
}

// isTampering reports whether err is a check's finding (not a fault).
func isTampering(err error) bool {
	var ve *ledger.VerifyError
	var se *StateError
	var re *ReceiptError
	return errors.As(err, &ve) || errors.As(err, &se) || errors.As(err, &re)
}

// recordFailure sets the check to tampered for a finding and reports
// whether err was one.
func (e *Core) recordFailure(err error) bool {
	var ve *ledger.VerifyError
	var se *StateError
	var re *ReceiptError
	c := warden.LedgerCheck{State: warden.LedgerTampered}
	switch {
	case errors.As(err, &ve):
		c.FirstBadSeq, c.Reason, c.Failure = SeqPtr(ve.Seq), ve.Reason, fmt.Sprint(ve.Seq)
	case errors.As(err, &re):
		c.FirstBadSeq, c.Reason, c.Failure = SeqPtr(re.Seq), re.Error(), fmt.Sprint(re.Seq)
	case errors.As(err, &se):
		c.FirstBadSeq, c.Reason = se.Mismatches[0].Seq, se.Error()
		all, _ := json.Marshal(se)
		sum := sha256.Sum256(all)
		c.Failure = "state-" + hex.EncodeToString(sum[:6])
		// A credential row the receipts cannot explain authenticates no
		// one (all of them, when the list of mismatches was cut short).
		distrust := &distrusted{all: se.More > 0, names: map[string]bool{}}
		for _, m := range se.Mismatches {
			if m.Table == "credentials" {
				distrust.names[m.Key] = true
			}
		}
		e.distrust.Store(distrust)
	default:
		return false
	}
	prev := e.Ledger()
	c.Checked, c.Total = prev.Checked, prev.Total
	since := warden.FormatTime(e.now())
	e.tamperedSince.Store(&since)
	e.setLedger(c)
	return true // logged by the caller's Done, with what to do about it
}

// CheckTail checks what a server is about to build on: the cached head is
// readable; the latest signed checkpoint verifies with the trusted keys
// and the stored tree at its size has its root; every receipt after it
// re-hashes, follows in seq order and extends that tree to exactly the
// cached head; no row lies past the head. It returns the log's size and
// whether a checkpoint was found (without one the whole log is the tail),
// a *ledger.VerifyError for tampering, or another error when it could not
// run. Its cost grows with the receipts since the last checkpoint only.
func (e *Core) CheckTail(ctx context.Context) (size uint64, anchored bool, err error) {
	_, known := e.KeyState()
	tampered := func(seq uint64, format string, args ...any) error {
		return &ledger.VerifyError{Seq: seq, Reason: fmt.Sprintf(format, args...)}
	}
	err = e.store.View(ctx, func(tx warden.ReadTx) error {
		head, err := tx.Head()
		if err != nil {
			return tampered(0, "the store's ledger head cannot be read (%v)", err)
		}
		size = head.Size
		var from uint64
		tree := ledger.NewTree()
		cp, err := tx.LatestCheckpoint()
		switch {
		case warden.ErrorCode(err) == warden.ENOTFOUND:
			// Never anchored: the whole log is the tail.
		case err != nil:
			return err
		default:
			body, err := ledger.OpenCheckpoint([]byte(cp.Note), known)
			if err != nil {
				return tampered(cp.Size, "the latest checkpoint (size %d) does not verify with the trusted keys: %v", cp.Size, err)
			}
			if body.Size > head.Size {
				return tampered(head.Size, "a signed checkpoint covers %d receipts; the ledger head says %d: truncated", body.Size, head.Size)
			}
			if tree, err = ledger.TreeAt(body.Size, tx.MerkleHashes); err != nil {
				return tampered(body.Size, "the stored tree at the checkpoint's size %d cannot be read (%v)", body.Size, err)
			}
			if !bytes.Equal(tree.Root(), body.Root) {
				return tampered(body.Size, "the stored tree at size %d is not the signed checkpoint's root", body.Size)
			}
			from, anchored = body.Size, true
		}
		next := from
		err = tx.ScanReceipts(from, func(r *warden.Receipt) error {
			if r.Seq != next {
				return tampered(next, "receipt %d is missing (found %d)", next, r.Seq)
			}
			if r.Seq >= head.Size {
				return tampered(r.Seq, "receipt %d is beyond the ledger head (size %d): rows were added behind the store's back", r.Seq, head.Size)
			}
			leaf, err := ledger.CheckReceipt(r)
			if err != nil {
				return tampered(r.Seq, "%v", err)
			}
			next++
			return tree.Append(leaf, nil)
		})
		if err != nil {
			return err
		}
		if next != head.Size {
			return tampered(next, "the ledger head says %d entries; the receipts end at %d", head.Size, next)
		}
		if head.Size > 0 && !bytes.Equal(tree.Root(), head.RootHash) {
			return tampered(from, "the ledger head's root is not the tree of the receipts after checkpoint %d", from)
		}
		return nil
	})
	return size, anchored, err
}

// AcceptTampered lets a server whose check failed take writes again, on an
// operator's explicit decision: the decision is receipted
// (ledger_tamper_accepted, naming the failure) and checkpoints are signed
// from then on, so the log says forever that the hole was seen and
// accepted. what MUST be the failure's name (LedgerCheck.Failure: its
// first bad sequence number, or a digest of the state mismatches), so an
// operator accepts the failure they were shown, never another. The
// decision lasts for this process: at the next start the check runs again,
// and a failure is accepted again only when named again. Verification
// cannot see past an accepted hole in the log: receipts after it are
// checked by the tail check and new writes only, so restoring the data is
// better than accepting. ECONFLICT when the check did not fail, or failed
// elsewhere.
func (e *Core) AcceptTampered(ctx context.Context, what, by string) error {
	c := e.Ledger()
	if c.State != warden.LedgerTampered {
		return warden.Errorf(warden.ECONFLICT, "The ledger check is %s; there is no failure to accept.", c.State)
	}
	if want := c.Failure; what != want {
		return warden.Errorf(warden.ECONFLICT, "The ledger check failed at %q, not %q (%s); accept the failure you were shown.", want, what, c.Reason)
	}
	accepted := c
	accepted.State = warden.LedgerAccepted
	e.setLedger(accepted)
	err := e.Update(ctx, "engine.AcceptTampered", func(tx warden.Tx) error {
		_, err := tx.Append(e.Draft(warden.ReceiptTamperAccepted, map[string]any{"failure": what, "first_bad_seq": c.FirstBadSeq, "reason": c.Reason, "by": by}, "tamper"))
		return err
	})
	if err != nil {
		e.setLedger(c)
		return err
	}
	return nil
}

// distrusted are the credentials a failed state check found forged.
type distrusted struct {
	all   bool
	names map[string]bool
}
