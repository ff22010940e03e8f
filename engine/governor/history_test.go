package governor_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine/governor"
	"github.com/warden-sh/warden/wardentest"
)

// TestEscalationHistoryIsNotCappedAtOnePage: the history pages backwards
// through every escalation receipt, so an old transition is found behind
// more than a store page (warden.MaxPageSize) of newer ones; a full answer
// says where the next page starts, the last page says there is none, and
// a limit beyond the maximum is refused rather than silently cut.
func TestEscalationHistoryIsNotCappedAtOnePage(t *testing.T) {
	env := wardentest.MustEnv(t)
	ctx := context.Background()
	old := agent("old-guardian")
	mustEscalate(t, env, old, warden.ProfileOperator)
	mustEscalate(t, env, old, warden.ProfileGuardian)

	const newer = warden.MaxPageSize + 100
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range newer {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			_, err := env.Governor.Escalate(ctx, agent(fmt.Sprintf("newer-%d", i)), governor.EscalateRequest{ToProfile: "operator", EscalationType: "operator_request", Reason: "load"})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()

	h, err := env.Governor.EscalationHistory(ctx, governor.HistoryRequest{Profile: "guardian"})
	if err != nil {
		t.Fatal(err)
	}
	if h.Count != 1 || len(h.History) != 1 || h.History[0].Subject != old.Name || h.History[0].ToProfile != warden.ProfileGuardian || h.NextBefore != nil {
		t.Fatalf("guardian history behind %d newer escalations: %+v", newer, h)
	}

	total := newer + 2
	seen := map[uint64]bool{}
	var before *uint64
	for page := 0; ; page++ {
		h, err := env.Governor.EscalationHistory(ctx, governor.HistoryRequest{Limit: warden.MaxPageSize, Before: before})
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range h.History {
			if seen[e.Seq] || (i > 0 && e.Seq >= h.History[i-1].Seq) {
				t.Fatalf("page %d: entry %d (seq %d) repeated or out of order", page, i, e.Seq)
			}
			seen[e.Seq] = true
		}
		if h.Count != len(h.History) {
			t.Fatalf("page %d: count %d for %d entries", page, h.Count, len(h.History))
		}
		if h.NextBefore == nil {
			break
		}
		if len(h.History) != warden.MaxPageSize || *h.NextBefore != h.History[len(h.History)-1].Seq {
			t.Fatalf("page %d: %d entries, next_before %d", page, len(h.History), *h.NextBefore)
		}
		before = h.NextBefore
	}
	if len(seen) != total {
		t.Fatalf("paged through %d entries, want %d", len(seen), total)
	}

	// Exactly a limit's worth left: the page is full and says nothing more.
	last := env.MustReceipts(t, warden.ReceiptFilter{Type: warden.ReceiptEscalation, Limit: 3})
	cut := last[2].Seq
	h, err = env.Governor.EscalationHistory(ctx, governor.HistoryRequest{Limit: 2, Before: &cut})
	if err != nil || h.Count != 2 || h.NextBefore != nil {
		t.Fatalf("the two oldest entries: %+v %v", h, err)
	}

	for _, limit := range []int{-1, warden.MaxPageSize + 1, 5000} {
		if _, err := env.Governor.EscalationHistory(ctx, governor.HistoryRequest{Limit: limit}); warden.ErrorCode(err) != warden.EINVALID {
			t.Errorf("limit %d: %v, want invalid", limit, err)
		}
	}
}

// TestAuditTrailPages: cognitive_audit_trail says when older receipts
// exist and reads on from there; a limit beyond the maximum is refused,
// not silently turned into 100.
func TestAuditTrailPages(t *testing.T) {
	env := wardentest.MustEnv(t)
	ctx := context.Background()
	a := agent("thinker")
	for i := range 3 {
		if _, err := env.Governor.Decide(ctx, a, governor.DecideRequest{Decision: fmt.Sprint("d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	first, err := env.Governor.AuditTrail(ctx, governor.AuditTrailRequest{Limit: 2})
	if err != nil || first.Count != 2 || first.NextBefore == nil || *first.NextBefore != first.Decisions[1].Seq {
		t.Fatalf("first page: %+v %v", first, err)
	}
	rest, err := env.Governor.AuditTrail(ctx, governor.AuditTrailRequest{Limit: 2, Before: first.NextBefore})
	if err != nil || rest.Count != 1 || rest.NextBefore != nil || rest.Decisions[0].Seq >= *first.NextBefore {
		t.Fatalf("second page: %+v %v", rest, err)
	}
	exact, err := env.Governor.AuditTrail(ctx, governor.AuditTrailRequest{Limit: 3})
	if err != nil || exact.Count != 3 || exact.NextBefore != nil {
		t.Fatalf("exactly a page: %+v %v", exact, err)
	}
	if _, err := env.Governor.AuditTrail(ctx, governor.AuditTrailRequest{Limit: warden.MaxPageSize + 1}); warden.ErrorCode(err) != warden.EINVALID {
		t.Fatalf("limit beyond the maximum: %v", err)
	}
}
