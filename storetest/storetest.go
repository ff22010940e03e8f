// Package storetest is the conformance suite of warden.Store: every backend
// (today only SQLite) runs it unchanged and MUST pass it. It checks the
// guarantees documented on warden.Store through the interface alone.
package storetest

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"
	"time"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/ledger"
)

// Harness tells the suite how to get stores of the backend under test.
type Harness struct {
	// New returns a new, empty store. The harness closes it when the test
	// ends (t.Cleanup); the suite may close it earlier, so Close MUST be
	// idempotent.
	New func(t *testing.T) warden.Store
	// Reopen closes s and returns a new store over the same data, as a
	// restarted process would see it. The harness closes the new store
	// when the test ends. Nil skips the subtests that need it.
	Reopen func(t *testing.T, s warden.Store) warden.Store
}

// Run runs every conformance subtest against the harness's backend. The
// subtests run in parallel, each on its own store.
func Run(t *testing.T, h Harness) {
	if h.New == nil {
		t.Fatal("storetest.Run: Harness.New is nil")
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, h Harness)
	}{
		{"EmptyStore", testEmptyStore},
		{"AppendDenseSeqs", testAppendDenseSeqs},
		{"SealedFields", testSealedFields},
		{"InvalidDraft", testInvalidDraft},
		{"HeadRoots", testHeadRoots},
		{"ReadOwnWrites", testReadOwnWrites},
		{"RollbackOnError", testRollbackOnError},
		{"RollbackOnPanic", testRollbackOnPanic},
		{"ConcurrentUpdates", testConcurrentUpdates},
		{"ConcurrentUpdatesWithFailures", testConcurrentUpdatesWithFailures},
		{"ReceiptsFilter", testReceiptsFilter},
		{"ReceiptsPageSize", testReceiptsPageSize},
		{"ScanReceipts", testScanReceipts},
		{"InclusionProofs", testInclusionProofs},
		{"ConsistencyProofs", testConsistencyProofs},
		{"MerkleHashesMissing", testMerkleHashesMissing},
		{"Checkpoints", testCheckpoints},
		{"Credentials", testCredentials},
		{"Meta", testMeta},
		{"ViewSnapshot", testViewSnapshot},
		{"StreamSnapshot", testStreamSnapshot},
		{"StreamsNeverHoldViews", testStreamsNeverHoldViews},
		{"CanceledContext", testCanceledContext},
		{"Close", testClose},
		{"Reopen", testReopen},
		{"Escalations", testEscalations},
		{"DueEscalations", testDueEscalations},
		{"Budgets", testBudgets},
		{"TreasuryOps", testTreasuryOps},
		{"Approvals", testApprovals},
		{"ApproverKeys", testApproverKeys},
		{"EachRow", testEachRow},
		{"ColumnsAgree", testColumnsAgree},
		{"GovernanceReopen", testGovernanceReopen},
		{"GovernanceRollback", testGovernanceRollback},
		{"Counters", testCounters},
		{"CountersConcurrent", testCountersConcurrent},
		{"IncidentRecords", testIncidentRecords},
		{"IncidentListing", testIncidentListing},
		{"IncidentPaging", testIncidentPaging},
		{"IncidentsViewSnapshot", testIncidentsViewSnapshot},
		{"CountIncidentsIn", testCountIncidentsIn},
		{"OperatorCounts", testOperatorCounts},
		{"IncidentStats", testIncidentStats},
		{"IncidentStatsConcurrent", testIncidentStatsConcurrent},
		{"Totals", testTotals},
		{"Requirements", testRequirements},
		{"PendingContainment", testPendingContainment},
		{"IntegrityBaseline", testIntegrityBaseline},
		{"Deliveries", testDeliveries},
		{"IncidentRollback", testIncidentRollback},
		{"IncidentsConcurrent", testIncidentsConcurrent},
		{"IncidentReopen", testIncidentReopen},
		{"ReportKeys", testReportKeys},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, h)
		})
	}
}

// base is the clock of every draft: fixed, at microsecond precision so
// that every backend stores it exactly.
var base = time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.UTC)

// at returns base plus n milliseconds.
func at(n int) time.Time { return base.Add(time.Duration(n) * time.Millisecond) }

// draft returns a valid draft numbered n.
func draft(n int) warden.Draft {
	return warden.Draft{
		Type:   "test_event",
		Scroll: warden.ScrollSystem,
		Tags:   []string{"test"},
		Time:   at(n),
		Body:   map[string]any{"n": n},
	}
}

// MustUpdate runs fn in s.Update and fails the test on error.
func MustUpdate(tb testing.TB, s warden.Store, fn func(tx warden.Tx) error) {
	tb.Helper()
	if err := s.Update(context.Background(), fn); err != nil {
		tb.Fatalf("Update: %v", err)
	}
}

// MustView runs fn in s.View and fails the test on error.
func MustView(tb testing.TB, s warden.Store, fn func(tx warden.ReadTx) error) {
	tb.Helper()
	if err := s.View(context.Background(), fn); err != nil {
		tb.Fatalf("View: %v", err)
	}
}

// MustAppend appends the drafts in one Update and returns the receipts.
func MustAppend(tb testing.TB, s warden.Store, ds ...warden.Draft) []*warden.Receipt {
	tb.Helper()
	out := make([]*warden.Receipt, 0, len(ds))
	MustUpdate(tb, s, func(tx warden.Tx) error {
		out = out[:0]
		for _, d := range ds {
			r, err := tx.Append(d)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	return out
}

// MustHead returns the committed head.
func MustHead(tb testing.TB, s warden.Store) *warden.LogHead {
	tb.Helper()
	var h *warden.LogHead
	MustView(tb, s, func(tx warden.ReadTx) (err error) {
		h, err = tx.Head()
		return err
	})
	return h
}

// MustAllReceipts returns the whole log in seq order.
func MustAllReceipts(tb testing.TB, s warden.Store) []*warden.Receipt {
	tb.Helper()
	out := []*warden.Receipt{}
	MustView(tb, s, func(tx warden.ReadTx) error {
		return tx.ScanReceipts(0, func(r *warden.Receipt) error {
			out = append(out, r)
			return nil
		})
	})
	return out
}

// leafHash decodes a receipt's hex leaf hash.
func leafHash(tb testing.TB, r *warden.Receipt) []byte {
	tb.Helper()
	h, err := hex.DecodeString(r.LeafHash)
	if err != nil || len(h) != ledger.HashSize {
		tb.Fatalf("receipt %d: leaf hash %q is not %d hex bytes", r.Seq, r.LeafHash, ledger.HashSize)
	}
	return h
}

// rootOf returns the RFC 6962 root over the leaf hashes.
func rootOf(tb testing.TB, leaves [][]byte) []byte {
	tb.Helper()
	t := ledger.NewTree()
	for _, l := range leaves {
		if err := t.Append(l, nil); err != nil {
			tb.Fatal(err)
		}
	}
	return t.Root()
}

// wantCode fails the test unless err carries the warden error code.
//
// It reports with Errorf, never Fatalf: it is called inside Update fns,
// which a backend may run on a goroutine of its own, where t.Fatal would
// kill the backend's writer instead of stopping the test.
func wantCode(tb testing.TB, err error, code string) {
	tb.Helper()
	if got := warden.ErrorCode(err); got != code {
		tb.Errorf("error code = %q (%v), want %q", got, err, code)
	}
}

// CheckLog verifies that the committed log is dense from 0, that every
// receipt re-hashes to its leaf hash, and that the head's global and
// scroll roots are those of trees rebuilt from the leaves. It returns the
// log.
func CheckLog(tb testing.TB, s warden.Store) []*warden.Receipt {
	tb.Helper()
	log := MustAllReceipts(tb, s)
	head := MustHead(tb, s)
	leaves := make([][]byte, len(log))
	scrolls := map[string][][]byte{}
	for i, r := range log {
		if r.Seq != uint64(i) {
			tb.Fatalf("log position %d holds seq %d; seqs are not dense", i, r.Seq)
		}
		leaf, err := ledger.CheckReceipt(r)
		if err != nil {
			tb.Fatalf("receipt %d does not re-hash: %v", r.Seq, err)
		}
		leaves[i] = leaf
		scrolls[r.Scroll] = append(scrolls[r.Scroll], leaf)
	}
	if head.Size != uint64(len(log)) {
		tb.Fatalf("head size = %d, log has %d receipts", head.Size, len(log))
	}
	if len(log) == 0 {
		if head.RootHash != nil {
			tb.Fatalf("empty log: head root = %x, want nil", head.RootHash)
		}
	} else if want := rootOf(tb, leaves); !bytesEqual(head.RootHash, want) {
		tb.Fatalf("head root = %x, tree over the log = %x", head.RootHash, want)
	}
	if len(head.Scrolls) != len(scrolls) {
		tb.Fatalf("head has %d scrolls, log has %d: %v", len(head.Scrolls), len(scrolls), head.Scrolls)
	}
	for name, ls := range scrolls {
		sh, ok := head.Scrolls[name]
		if !ok {
			tb.Fatalf("head lacks scroll %q", name)
		}
		if sh.Size != uint64(len(ls)) {
			tb.Fatalf("scroll %q size = %d, log has %d", name, sh.Size, len(ls))
		}
		if want := rootOf(tb, ls); !bytesEqual(sh.RootHash, want) {
			tb.Fatalf("scroll %q root = %x, tree over its receipts = %x", name, sh.RootHash, want)
		}
	}
	return log
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }

// errBoom is what failing fns return.
var errBoom = errors.New("boom")

func seqs(rs []*warden.Receipt) []uint64 {
	out := make([]uint64, len(rs))
	for i, r := range rs {
		out[i] = r.Seq
	}
	return out
}

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
