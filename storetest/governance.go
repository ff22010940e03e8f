package storetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	warden "github.com/warden-sh/warden"
)

// escalation returns an active hop of subject to profile to, expiring at
// expires (nil: no TTL).
func escalation(id, subject string, to warden.Profile, auto bool, expires *time.Time) *warden.Escalation {
	from := warden.Profiles[to.Rank()-2]
	e := &warden.Escalation{
		EscalationID:   id,
		Subject:        subject,
		RequestedBy:    "operator@example",
		FromProfile:    from,
		ToProfile:      to,
		EscalationType: warden.EscalationOperatorRequest,
		Reason:         "test " + id,
		Context:        warden.EscalationContext{MeshHealth: "healthy"},
		Reversible:     true,
		AutoDeescalate: auto,
		ApprovedBy:     []string{},
		CreatedAt:      warden.FormatTime(at(0)),
		TemContextHash: "blake3:" + id,
		ReceiptHash:    "sha256:" + id,
		Active:         true,
	}
	if expires != nil {
		ttl := int(expires.Sub(at(0)) / time.Second)
		s := warden.FormatTime(*expires)
		e.DeescalateAfterSeconds, e.ExpiresAt = &ttl, &s
	}
	return e
}

// putEscalations stores es in one Update.
func putEscalations(tb testing.TB, s warden.Store, es ...*warden.Escalation) {
	tb.Helper()
	MustUpdate(tb, s, func(tx warden.Tx) error {
		for _, e := range es {
			if err := tx.PutEscalation(e); err != nil {
				return err
			}
		}
		return nil
	})
}

// deactivate returns a de-escalated copy of e.
func deactivate(e *warden.Escalation, n int) *warden.Escalation {
	c := *e
	c.Active = false
	c.DeescalatedAt = ptr(warden.FormatTime(at(n)))
	c.DeescalationType = ptr(warden.DeescalationOperatorRelease)
	return &c
}

func escalationIDs(es []*warden.Escalation) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.EscalationID
	}
	return out
}

func testEscalations(t *testing.T, h Harness) {
	s := h.New(t)
	MustView(t, s, func(tx warden.ReadTx) error {
		_, err := tx.Escalation("esc_none")
		wantCode(t, err, warden.ENOTFOUND)
		got, err := tx.ActiveEscalations("")
		if err != nil {
			return err
		}
		if len(got) != 0 {
			t.Errorf("ActiveEscalations on an empty store = %v", escalationIDs(got))
		}
		return nil
	})

	full := escalation("esc_full", "alice", warden.ProfilePhoenix, true, ptr(at(1800_000)))
	full.EscalationType = warden.EscalationThreatDetected
	full.Context = warden.EscalationContext{
		ThreatID: ptr("thr_1"), ThreatType: ptr("exfiltration"), ThreatConfidence: ptr(0.97),
		ActiveAlerts: 3, MeshHealth: "degraded", TriggeringTool: ptr("shell"), TriggeringDecision: ptr("deny"),
	}
	full.ApprovedBy = []string{"bob", "carol"}
	full.DeescalateCondition = "threat_resolved"
	full.Drill = true
	aliceOp := escalation("esc_a1", "alice", warden.ProfileOperator, true, nil)
	aliceGuard := escalation("esc_a2", "alice", warden.ProfileGuardian, true, nil)
	bobOp := escalation("esc_b1", "bob", warden.ProfileOperator, true, nil)
	bobOp.ApprovedBy = nil
	aaron := escalation("esc_aa", "aaron", warden.ProfileSovereign, false, nil)
	gone := deactivate(escalation("esc_gone", "alice", warden.ProfileSovereign, true, nil), 5)
	// Stored out of order, in two Updates: order comes from the store.
	putEscalations(t, s, full, bobOp, gone)
	MustUpdate(t, s, func(tx warden.Tx) error {
		for _, e := range []*warden.Escalation{aliceGuard, aaron, aliceOp} {
			if err := tx.PutEscalation(e); err != nil {
				return err
			}
		}
		// The Update reads its own writes.
		got, err := tx.Escalation(aliceOp.EscalationID)
		if err != nil {
			return err
		}
		if diff := cmp.Diff(aliceOp, got); diff != "" {
			t.Errorf("Escalation inside the Update (-want +got):\n%s", diff)
		}
		return nil
	})

	MustView(t, s, func(tx warden.ReadTx) error {
		for _, want := range []*warden.Escalation{full, aliceOp, bobOp, gone} {
			got, err := tx.Escalation(want.EscalationID)
			if err != nil {
				return err
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Escalation(%s) (-want +got):\n%s", want.EscalationID, diff)
			}
		}
		for _, tt := range []struct {
			subject string
			want    []*warden.Escalation
		}{
			{"alice", []*warden.Escalation{aliceOp, aliceGuard, full}},
			{"bob", []*warden.Escalation{bobOp}},
			{"", []*warden.Escalation{aaron, aliceOp, aliceGuard, full, bobOp}},
			{"nobody", nil},
		} {
			got, err := tx.ActiveEscalations(tt.subject)
			if err != nil {
				return err
			}
			if diff := cmp.Diff(escalationIDs(tt.want), escalationIDs(got)); diff != "" {
				t.Errorf("ActiveEscalations(%q) ids (-want +got):\n%s", tt.subject, diff)
			}
			if len(got) > 0 {
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("ActiveEscalations(%q) (-want +got):\n%s", tt.subject, diff)
				}
			}
		}
		return nil
	})

	// PutEscalation replaces the record and every indexed column with it:
	// de-escalate the phoenix hop; move the inactive sovereign hop to bob
	// and reactivate it.
	fullOff := deactivate(full, 9)
	back := *gone
	back.Active, back.Subject, back.DeescalatedAt, back.DeescalationType = true, "bob", nil, nil
	putEscalations(t, s, fullOff, &back)
	MustView(t, s, func(tx warden.ReadTx) error {
		got, err := tx.Escalation(full.EscalationID)
		if err != nil {
			return err
		}
		if diff := cmp.Diff(fullOff, got); diff != "" {
			t.Errorf("Escalation after replacement (-want +got):\n%s", diff)
		}
		for subject, want := range map[string][]string{
			"alice": {"esc_a1", "esc_a2"},
			"bob":   {"esc_b1", "esc_gone"},
		} {
			got, err := tx.ActiveEscalations(subject)
			if err != nil {
				return err
			}
			if diff := cmp.Diff(want, escalationIDs(got)); diff != "" {
				t.Errorf("ActiveEscalations(%q) after replacement (-want +got):\n%s", subject, diff)
			}
		}
		return nil
	})

	badExpiry := escalation("esc_bad", "alice", warden.ProfileOperator, true, nil)
	badExpiry.ExpiresAt = ptr("tomorrow")
	for _, tt := range []struct {
		name string
		e    *warden.Escalation
	}{
		{"nil", nil},
		{"no id", escalation("", "alice", warden.ProfileOperator, true, nil)},
		{"no subject", escalation("esc_x", "", warden.ProfileOperator, true, nil)},
		{"unknown profile", func() *warden.Escalation {
			e := escalation("esc_x", "alice", warden.ProfileOperator, true, nil)
			e.ToProfile = "emperor"
			return e
		}()},
		{"bad expiry", badExpiry},
	} {
		err := s.Update(t.Context(), func(tx warden.Tx) error { return tx.PutEscalation(tt.e) })
		if warden.ErrorCode(err) != warden.EINVALID {
			t.Errorf("%s: PutEscalation returned %v, want code %s", tt.name, err, warden.EINVALID)
		}
	}
}

func testDueEscalations(t *testing.T, h Harness) {
	s := h.New(t)
	esc := func(id, subject string, to warden.Profile, auto bool, expiresMS int) *warden.Escalation {
		exp := at(expiresMS)
		return escalation(id, subject, to, auto, &exp)
	}
	// Expiry times in ms after base; now is 1000.
	aliceOp := esc("esc_alice_op", "alice", warden.ProfileOperator, true, 500)
	aliceGuard := esc("esc_alice_guard", "alice", warden.ProfileGuardian, true, 2000) // not yet expired
	bobOp := esc("esc_bob_op", "bob", warden.ProfileOperator, true, 100)
	bobGuard := esc("esc_bob_guard", "bob", warden.ProfileGuardian, true, 300)
	carol := esc("esc_carol", "carol", warden.ProfileOperator, true, 200)
	dave := esc("esc_dave", "dave", warden.ProfileGuardian, false, 50)                // never automatic
	erin := deactivate(esc("esc_erin", "erin", warden.ProfileOperator, true, 10), 20) // history
	frank := escalation("esc_frank", "frank", warden.ProfileOperator, true, nil)      // no TTL
	gina := esc("esc_gina", "gina", warden.ProfileOperator, true, 1000)               // expires exactly now
	harryOp := esc("esc_harry_op", "harry", warden.ProfileOperator, true, 400)
	harryTop := esc("esc_harry_top", "harry", warden.ProfileGuardian, false, 450) // a manual top blocks the hop below
	ivyOp := esc("esc_ivy_op", "ivy", warden.ProfileOperator, true, 600)
	ivyGone := deactivate(esc("esc_ivy_gone", "ivy", warden.ProfileGuardian, true, 700), 800) // an inactive hop above
	putEscalations(t, s, gina, ivyGone, aliceGuard, harryTop, bobOp, dave, carol, erin, aliceOp, frank, bobGuard, harryOp, ivyOp)

	due := func(nowMS, limit int) []string {
		t.Helper()
		var got []*warden.Escalation
		MustView(t, s, func(tx warden.ReadTx) (err error) {
			got, err = tx.DueEscalations(at(nowMS), limit)
			return err
		})
		return escalationIDs(got)
	}
	check := func(name string, want, got []string) {
		t.Helper()
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}
	check("due at 1000", []string{"esc_carol", "esc_bob_guard", "esc_ivy_op", "esc_gina"}, due(1000, 100))
	check("due at 1000, limit 2", []string{"esc_carol", "esc_bob_guard"}, due(1000, 2))
	check("due at 250", []string{"esc_carol"}, due(250, 100))
	check("due at 0", []string{}, due(0, 100))

	// Once a top is de-escalated, the hop below it is the top.
	putEscalations(t, s, deactivate(aliceGuard, 1001), deactivate(bobGuard, 1002))
	check("due after the tops fell", []string{"esc_bob_op", "esc_carol", "esc_alice_op", "esc_ivy_op", "esc_gina"}, due(1000, 100))

	// The records come back whole.
	MustView(t, s, func(tx warden.ReadTx) error {
		got, err := tx.DueEscalations(at(1000), 1)
		if err != nil {
			return err
		}
		if diff := cmp.Diff([]*warden.Escalation{bobOp}, got); diff != "" {
			t.Errorf("DueEscalations record (-want +got):\n%s", diff)
		}
		return nil
	})
}

func budget(id string, allocated int64) *warden.Budget {
	return &warden.Budget{
		BudgetID: id, Name: "Budget " + id, Allocated: allocated, Currency: "EUR",
		CreatedAt: warden.FormatTime(at(1)), CreatedBy: "alice",
	}
}

func testBudgets(t *testing.T, h Harness) {
	s := h.New(t)
	MustView(t, s, func(tx warden.ReadTx) error {
		got, err := tx.Budgets()
		if err != nil {
			return err
		}
		if got == nil || len(got) != 0 {
			t.Errorf("Budgets on an empty store = %#v, want an empty non-nil slice", got)
		}
		_, err = tx.Budget("b1")
		wantCode(t, err, warden.ENOTFOUND)
		return nil
	})
	b1, b2 := budget("b1", 100), budget("b2", 50)
	b2.Drill = true
	for _, b := range []*warden.Budget{b2, b1} {
		MustUpdate(t, s, func(tx warden.Tx) error { return tx.CreateBudget(b) })
	}
	upd := *b1
	upd.Spent, upd.Credited = 30, 5
	MustUpdate(t, s, func(tx warden.Tx) error { return tx.UpdateBudget(&upd) })
	for _, tt := range []struct {
		name string
		fn   func(tx warden.Tx) error
		code string
	}{
		{"create existing", func(tx warden.Tx) error { return tx.CreateBudget(budget("b1", 999)) }, warden.ECONFLICT},
		{"create without id", func(tx warden.Tx) error { return tx.CreateBudget(budget("", 1)) }, warden.EINVALID},
		{"create nil", func(tx warden.Tx) error { return tx.CreateBudget(nil) }, warden.EINVALID},
		{"update unknown", func(tx warden.Tx) error { return tx.UpdateBudget(budget("b9", 1)) }, warden.ENOTFOUND},
	} {
		err := s.Update(t.Context(), tt.fn)
		if warden.ErrorCode(err) != tt.code {
			t.Errorf("%s: returned %v, want code %s", tt.name, err, tt.code)
		}
	}
	MustView(t, s, func(tx warden.ReadTx) error {
		got, err := tx.Budget("b1")
		if err != nil {
			return err
		}
		if diff := cmp.Diff(&upd, got); diff != "" {
			t.Errorf("Budget(b1) (-want +got):\n%s", diff)
		}
		list, err := tx.Budgets()
		if err != nil {
			return err
		}
		if diff := cmp.Diff([]*warden.Budget{&upd, b2}, list); diff != "" {
			t.Errorf("Budgets (-want +got):\n%s", diff)
		}
		_, err = tx.Budget("b9")
		wantCode(t, err, warden.ENOTFOUND)
		return nil
	})
}

func treasuryOp(budgetID, key string, amount int64, seq uint64) *warden.TreasuryOp {
	return &warden.TreasuryOp{
		BudgetID: budgetID, IdempotencyKey: key, Kind: "debit", Amount: amount,
		Description: "test", BalanceAfter: 100 - amount, ReceiptHash: sprintf("sha256:%d", seq),
		Seq: seq, CreatedAt: warden.FormatTime(at(int(seq))), Principal: "alice",
	}
}

func testTreasuryOps(t *testing.T, h Harness) {
	s := h.New(t)
	first := treasuryOp("b1", "k1", 10, 1)
	sameKeyOtherBudget := treasuryOp("b2", "k1", 20, 2)
	MustUpdate(t, s, func(tx warden.Tx) error {
		if err := tx.PutTreasuryOp(first); err != nil {
			return err
		}
		if err := tx.PutTreasuryOp(sameKeyOtherBudget); err != nil {
			return err
		}
		// Operations without a key never conflict.
		for i := range 3 {
			if err := tx.PutTreasuryOp(treasuryOp("b1", "", 1, uint64(3+i))); err != nil {
				return err
			}
		}
		// The Update sees its own key.
		err := tx.PutTreasuryOp(treasuryOp("b1", "k1", 99, 9))
		wantCode(t, err, warden.ECONFLICT)
		return nil
	})
	for _, tt := range []struct {
		name string
		op   *warden.TreasuryOp
		code string
	}{
		{"reused key", treasuryOp("b1", "k1", 11, 10), warden.ECONFLICT},
		{"reused key, other budget", treasuryOp("b2", "k1", 12, 11), warden.ECONFLICT},
		{"no budget", treasuryOp("", "k2", 1, 12), warden.EINVALID},
		{"nil", nil, warden.EINVALID},
	} {
		err := s.Update(t.Context(), func(tx warden.Tx) error { return tx.PutTreasuryOp(tt.op) })
		if warden.ErrorCode(err) != tt.code {
			t.Errorf("%s: PutTreasuryOp returned %v, want code %s", tt.name, err, tt.code)
		}
	}
	MustUpdate(t, s, func(tx warden.Tx) error { return tx.PutTreasuryOp(treasuryOp("b1", "", 1, 13)) })
	MustView(t, s, func(tx warden.ReadTx) error {
		for _, want := range []*warden.TreasuryOp{first, sameKeyOtherBudget} {
			got, err := tx.TreasuryOp(want.BudgetID, want.IdempotencyKey)
			if err != nil {
				return err
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("TreasuryOp(%s, %s) (-want +got):\n%s", want.BudgetID, want.IdempotencyKey, diff)
			}
		}
		for _, k := range [][2]string{{"b1", ""}, {"b1", "k2"}, {"b3", "k1"}} {
			_, err := tx.TreasuryOp(k[0], k[1])
			wantCode(t, err, warden.ENOTFOUND)
		}
		return nil
	})
}

func testApprovals(t *testing.T, h Harness) {
	s := h.New(t)
	approval := func(digest, approver, method string, n int) *warden.Approval {
		return &warden.Approval{RequestDigest: digest, Approver: approver, Method: method, CreatedAt: warden.FormatTime(at(n))}
	}
	bob := approval("d1", "bob", "credential", 1)
	alice := approval("d1", "alice", "signature", 2)
	other := approval("d2", "alice", "credential", 3)
	MustUpdate(t, s, func(tx warden.Tx) error {
		for _, a := range []*warden.Approval{bob, alice, other} {
			if err := tx.PutApproval(a); err != nil {
				return err
			}
		}
		// A repeat in the same Update keeps the first.
		return tx.PutApproval(approval("d1", "bob", "signature", 4))
	})
	// And so does one in a later Update.
	MustUpdate(t, s, func(tx warden.Tx) error { return tx.PutApproval(approval("d1", "alice", "credential", 5)) })
	for _, tt := range []struct {
		name string
		a    *warden.Approval
	}{
		{"nil", nil},
		{"no digest", approval("", "bob", "credential", 6)},
		{"no approver", approval("d1", "", "credential", 6)},
	} {
		err := s.Update(t.Context(), func(tx warden.Tx) error { return tx.PutApproval(tt.a) })
		if warden.ErrorCode(err) != warden.EINVALID {
			t.Errorf("%s: PutApproval returned %v, want code %s", tt.name, err, warden.EINVALID)
		}
	}
	MustView(t, s, func(tx warden.ReadTx) error {
		for _, tt := range []struct {
			digest string
			want   []*warden.Approval
		}{
			{"d1", []*warden.Approval{alice, bob}},
			{"d2", []*warden.Approval{other}},
			{"d3", []*warden.Approval{}},
		} {
			got, err := tx.Approvals(tt.digest)
			if err != nil {
				return err
			}
			if got == nil {
				t.Errorf("Approvals(%s) = nil, want a non-nil slice", tt.digest)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Approvals(%s) (-want +got):\n%s", tt.digest, diff)
			}
		}
		return nil
	})
}

func approverKey(approver string, b byte, n int) *warden.ApproverKey {
	key := make([]byte, 32)
	for i := range key {
		key[i] = b + byte(i)
	}
	return &warden.ApproverKey{Approver: approver, PublicKey: key, CreatedAt: warden.FormatTime(at(n))}
}

func testApproverKeys(t *testing.T, h Harness) {
	s := h.New(t)
	alice1, alice2, bob := approverKey("alice", 1, 1), approverKey("alice", 2, 2), approverKey("bob", 3, 3)
	MustUpdate(t, s, func(tx warden.Tx) error {
		if err := tx.PutApproverKey(alice1); err != nil {
			return err
		}
		return tx.PutApproverKey(bob)
	})
	MustUpdate(t, s, func(tx warden.Tx) error { return tx.PutApproverKey(alice2) })
	for _, k := range []*warden.ApproverKey{nil, approverKey("", 4, 4)} {
		err := s.Update(t.Context(), func(tx warden.Tx) error { return tx.PutApproverKey(k) })
		wantCode(t, err, warden.EINVALID)
	}
	MustView(t, s, func(tx warden.ReadTx) error {
		for _, want := range []*warden.ApproverKey{alice2, bob} {
			got, err := tx.ApproverKey(want.Approver)
			if err != nil {
				return err
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("ApproverKey(%s) (-want +got):\n%s", want.Approver, diff)
			}
		}
		_, err := tx.ApproverKey("carol")
		wantCode(t, err, warden.ENOTFOUND)
		return nil
	})
}

// governanceState is one of everything governance stores.
type governanceState struct {
	escalation *warden.Escalation
	budget     *warden.Budget
	op         *warden.TreasuryOp
	approval   *warden.Approval
	key        *warden.ApproverKey
}

func newGovernanceState() governanceState {
	return governanceState{
		escalation: escalation("esc_g", "alice", warden.ProfileOperator, true, ptr(at(100))),
		budget:     budget("b1", 100),
		op:         treasuryOp("b1", "k1", 10, 1),
		approval:   &warden.Approval{RequestDigest: "d1", Approver: "bob", Method: "credential", CreatedAt: warden.FormatTime(at(2))},
		key:        approverKey("bob", 7, 3),
	}
}

func (g governanceState) put(tx warden.Tx) error {
	for _, err := range []func() error{
		func() error { return tx.PutEscalation(g.escalation) },
		func() error { return tx.CreateBudget(g.budget) },
		func() error { return tx.PutTreasuryOp(g.op) },
		func() error { return tx.PutApproval(g.approval) },
		func() error { return tx.PutApproverKey(g.key) },
	} {
		if err := err(); err != nil {
			return err
		}
	}
	return nil
}

// check compares everything governance stores with g.
func (g governanceState) check(t *testing.T, s warden.Store, when string) {
	t.Helper()
	MustView(t, s, func(tx warden.ReadTx) error {
		e, err := tx.Escalation(g.escalation.EscalationID)
		if err != nil {
			return err
		}
		if diff := cmp.Diff(g.escalation, e); diff != "" {
			t.Errorf("escalation %s (-want +got):\n%s", when, diff)
		}
		active, err := tx.ActiveEscalations("alice")
		if err != nil {
			return err
		}
		if diff := cmp.Diff([]*warden.Escalation{g.escalation}, active); diff != "" {
			t.Errorf("active escalations %s (-want +got):\n%s", when, diff)
		}
		due, err := tx.DueEscalations(at(100), 10)
		if err != nil {
			return err
		}
		if diff := cmp.Diff([]*warden.Escalation{g.escalation}, due); diff != "" {
			t.Errorf("due escalations %s (-want +got):\n%s", when, diff)
		}
		b, err := tx.Budgets()
		if err != nil {
			return err
		}
		if diff := cmp.Diff([]*warden.Budget{g.budget}, b); diff != "" {
			t.Errorf("budgets %s (-want +got):\n%s", when, diff)
		}
		op, err := tx.TreasuryOp(g.op.BudgetID, g.op.IdempotencyKey)
		if err != nil {
			return err
		}
		if diff := cmp.Diff(g.op, op); diff != "" {
			t.Errorf("treasury op %s (-want +got):\n%s", when, diff)
		}
		as, err := tx.Approvals(g.approval.RequestDigest)
		if err != nil {
			return err
		}
		if diff := cmp.Diff([]*warden.Approval{g.approval}, as); diff != "" {
			t.Errorf("approvals %s (-want +got):\n%s", when, diff)
		}
		k, err := tx.ApproverKey(g.key.Approver)
		if err != nil {
			return err
		}
		if diff := cmp.Diff(g.key, k); diff != "" {
			t.Errorf("approver key %s (-want +got):\n%s", when, diff)
		}
		return nil
	})
}

func testGovernanceReopen(t *testing.T, h Harness) {
	if h.Reopen == nil {
		t.Skip("the harness cannot reopen a store")
	}
	s := h.New(t)
	g := newGovernanceState()
	MustUpdate(t, s, g.put)
	g.check(t, s, "before reopen")
	s = h.Reopen(t, s)
	g.check(t, s, "after reopen")
	// Uniqueness survives too.
	err := s.Update(t.Context(), func(tx warden.Tx) error { return tx.PutTreasuryOp(treasuryOp("b1", "k1", 5, 9)) })
	wantCode(t, err, warden.ECONFLICT)
	err = s.Update(t.Context(), func(tx warden.Tx) error { return tx.CreateBudget(budget("b1", 5)) })
	wantCode(t, err, warden.ECONFLICT)
}

// testGovernanceRollback checks that an Update whose fn fails keeps none of
// its governance writes, and that the keys it used stay free.
func testGovernanceRollback(t *testing.T, h Harness) {
	s := h.New(t)
	g := newGovernanceState()
	MustUpdate(t, s, g.put)

	spent := *g.budget
	spent.Spent = 60
	offEsc := deactivate(g.escalation, 50)
	err := s.Update(t.Context(), func(tx warden.Tx) error {
		for _, err := range []func() error{
			func() error { return tx.PutEscalation(offEsc) },
			func() error {
				return tx.PutEscalation(escalation("esc_new", "bob", warden.ProfileOperator, true, ptr(at(10))))
			},
			func() error { return tx.UpdateBudget(&spent) },
			func() error { return tx.CreateBudget(budget("b2", 1)) },
			func() error { return tx.PutTreasuryOp(treasuryOp("b1", "k2", 60, 4)) },
			func() error { return tx.PutTreasuryOp(treasuryOp("b1", "", 1, 5)) },
			func() error {
				return tx.PutApproval(&warden.Approval{RequestDigest: "d1", Approver: "alice", CreatedAt: warden.FormatTime(at(6))})
			},
			func() error { return tx.PutApproverKey(approverKey("bob", 9, 7)) },
			func() error { return tx.PutApproverKey(approverKey("carol", 9, 8)) },
		} {
			if err := err(); err != nil {
				return err
			}
		}
		if _, err := tx.Append(draft(1)); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Update returned %v, want fn's error", err)
	}
	g.check(t, s, "after a failed Update")
	MustView(t, s, func(tx warden.ReadTx) error {
		_, err := tx.Escalation("esc_new")
		wantCode(t, err, warden.ENOTFOUND)
		_, err = tx.Budget("b2")
		wantCode(t, err, warden.ENOTFOUND)
		_, err = tx.TreasuryOp("b1", "k2")
		wantCode(t, err, warden.ENOTFOUND)
		_, err = tx.ApproverKey("carol")
		wantCode(t, err, warden.ENOTFOUND)
		return nil
	})
	if size := MustHead(t, s).Size; size != 0 {
		t.Errorf("log size after the failed Update = %d, want 0", size)
	}
	// The rolled-back keys are free.
	MustUpdate(t, s, func(tx warden.Tx) error {
		if err := tx.CreateBudget(budget("b2", 1)); err != nil {
			return err
		}
		return tx.PutTreasuryOp(treasuryOp("b1", "k2", 1, 9))
	})
}

// testEachRow: the Each methods stream every row, in their documented
// order, across page boundaries, and stop at fn's first error.
func testEachRow(t *testing.T, h Harness) {
	s := h.New(t)
	const n = 2345 // more than one page of any reasonable pager
	var escIDs, approvalKeys, approvers []string
	MustUpdate(t, s, func(tx warden.Tx) error {
		for i := n - 1; i >= 0; i-- { // written out of order
			e := escalation(sprintf("esc_%024x", i), sprintf("agent-%d", i%7), warden.ProfileOperator, true, nil)
			if i%3 == 0 {
				deactivate(e, i)
			}
			if err := tx.PutEscalation(e); err != nil {
				return err
			}
			escIDs = append(escIDs, e.EscalationID)
			a := &warden.Approval{RequestDigest: sprintf("%064x", i%11), Approver: sprintf("appr-%04d", i), Method: "credential", CreatedAt: warden.FormatTime(at(i))}
			if err := tx.PutApproval(a); err != nil {
				return err
			}
			approvalKeys = append(approvalKeys, a.RequestDigest+"/"+a.Approver)
			if i < 1500 {
				k := approverKey(sprintf("appr-%04d", i), byte(i), i)
				if err := tx.PutApproverKey(k); err != nil {
					return err
				}
				approvers = append(approvers, k.Approver)
			}
		}
		if err := tx.CreateBudget(budget("b1", 1<<40)); err != nil {
			return err
		}
		for i := 0; i < 1200; i++ {
			key := ""
			if i%2 == 0 {
				key = sprintf("k%05d", i)
			}
			if err := tx.PutTreasuryOp(treasuryOp("b1", key, 1, uint64(i))); err != nil {
				return err
			}
		}
		return nil
	})
	slices.Sort(escIDs)
	slices.Sort(approvalKeys)
	slices.Sort(approvers)
	MustView(t, s, func(tx warden.ReadTx) error {
		var got []string
		if err := tx.EachEscalation(func(e *warden.Escalation) error { got = append(got, e.EscalationID); return nil }); err != nil {
			return err
		}
		if !slices.Equal(got, escIDs) {
			t.Errorf("EachEscalation: %d escalations, want %d in id order", len(got), len(escIDs))
		}
		got = nil
		if err := tx.EachApproval(func(a *warden.Approval) error { got = append(got, a.RequestDigest+"/"+a.Approver); return nil }); err != nil {
			return err
		}
		if !slices.Equal(got, approvalKeys) {
			t.Errorf("EachApproval: %d approvals, want %d by digest then approver", len(got), len(approvalKeys))
		}
		got = nil
		if err := tx.EachApproverKey(func(k *warden.ApproverKey) error { got = append(got, k.Approver); return nil }); err != nil {
			return err
		}
		if !slices.Equal(got, approvers) {
			t.Errorf("EachApproverKey: %d keys, want %d by approver", len(got), len(approvers))
		}
		var keyed, unkeyed []uint64
		if err := tx.EachTreasuryOp(func(op *warden.TreasuryOp) error {
			if op.IdempotencyKey == "" {
				unkeyed = append(unkeyed, op.Seq)
			} else {
				keyed = append(keyed, op.Seq)
			}
			return nil
		}); err != nil {
			return err
		}
		if len(keyed) != 600 || len(unkeyed) != 600 || !slices.IsSorted(keyed) || !slices.IsSorted(unkeyed) {
			t.Errorf("EachTreasuryOp: %d keyed, %d unkeyed (want 600 each, in key and write order)", len(keyed), len(unkeyed))
		}
		stop := errors.New("stop")
		calls := 0
		if err := tx.EachEscalation(func(*warden.Escalation) error { calls++; return stop }); err != stop || calls != 1 {
			t.Errorf("EachEscalation after fn's error: %v after %d calls, want fn's error after 1", err, calls)
		}
		return nil
	})
}

// testColumnsAgree: on rows written only through the store, every column
// kept beside a record agrees with it (CheckColumns reports nothing), after
// creation and after updates.
func testColumnsAgree(t *testing.T, h Harness) {
	s := h.New(t)
	g := newGovernanceState()
	MustUpdate(t, s, g.put)
	createIncidents(t, s, pagedIncidents(1, 5)...)
	MustUpdate(t, s, func(tx warden.Tx) error {
		if err := tx.PutEscalation(deactivate(escalation("esc_x", "carol", warden.ProfileGuardian, false, nil), 5)); err != nil {
			return err
		}
		if err := tx.PutTreasuryOp(treasuryOp("b1", "", 5, 2)); err != nil {
			return err
		}
		i, err := tx.Incident(incidentID(2))
		if err != nil {
			return err
		}
		i.State, i.ContainmentPending = warden.StateResolved, false
		if err := tx.UpdateIncident(i); err != nil {
			return err
		}
		r := &warden.RecoveryRequirement{IncidentID: incidentID(3), RequireAck: true, CreatedAt: warden.FormatTime(at(9))}
		r.Settle()
		return tx.PutRequirement(r)
	})
	MustView(t, s, func(tx warden.ReadTx) error {
		return tx.CheckColumns(func(table, key, reason string) {
			t.Errorf("CheckColumns on an honest store: %s %s: %s", table, key, reason)
		})
	})
}
