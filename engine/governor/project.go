package governor

import (
	"crypto/sha256"
	"fmt"
	"slices"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine"
	"github.com/warden-sh/warden/ledger"
)

// Projections returns the governor's projections (see engine.Projection):
// escalations with each subject's escalation count, budgets, treasury
// operations, approvals and approver keys.
func (g *Governor) Projections() []engine.Projection {
	return []engine.Projection{newEscalationProjection(), newTreasuryProjection(), newApprovalProjection()}
}

// escalationProjection rebuilds the escalations table and the
// "escalations:<subject>" counters from profile_escalation and
// profile_deescalation. An escalation receipted before receipts carried
// the whole record (no created_at) is compared on what its receipts say.
type escalationProjection struct {
	escs   map[string]*projectedEscalation
	counts map[string]uint64 // escalations per subject
}

type projectedEscalation struct {
	warden.Escalation
	legacy bool
	seq    uint64
}

func newEscalationProjection() *escalationProjection {
	return &escalationProjection{escs: map[string]*projectedEscalation{}, counts: map[string]uint64{}}
}

func (p *escalationProjection) Apply(r *warden.Receipt) error {
	if r.Type != warden.ReceiptEscalation && r.Type != warden.ReceiptDeescalation {
		return nil
	}
	var b escalationBody
	if err := engine.Decode(r, &b); err != nil {
		return err
	}
	if r.Type == warden.ReceiptEscalation {
		if _, ok := p.escs[b.EscalationID]; ok {
			return engine.ReplayError(r, "escalation %s was already created", b.EscalationID)
		}
		e := &projectedEscalation{seq: r.Seq, legacy: b.CreatedAt == ""}
		e.Escalation = warden.Escalation{
			EscalationID: b.EscalationID, Subject: b.Subject, RequestedBy: b.RequestedBy, FromProfile: b.FromProfile, ToProfile: b.ToProfile,
			EscalationType: b.EscalationType, Reason: b.Reason, Context: b.Context, Reversible: b.Reversible, AutoDeescalate: b.AutoDeescalate,
			DeescalateAfterSeconds: b.DeescalateAfterSeconds, DeescalateCondition: b.DeescalateCondition, ApprovedBy: b.ApprovedBy,
			CreatedAt: b.CreatedAt, ExpiresAt: b.ExpiresAt, TemContextHash: b.TemContextHash, ReceiptHash: r.RootHash, Active: true, Drill: b.Drill,
		}
		if b.RequestReason != "" {
			e.Reason = b.RequestReason
		}
		p.escs[b.EscalationID] = e
		p.counts[b.Subject]++
		return nil
	}
	e, ok := p.escs[b.EscalationID]
	if !ok {
		return engine.ReplayError(r, "escalation %s de-escalated but never created", b.EscalationID)
	}
	if !e.Active {
		return engine.ReplayError(r, "escalation %s de-escalated twice", b.EscalationID)
	}
	e.Active, e.DeescalatedAt, e.DeescalationType, e.seq = false, b.DeescalatedAt, b.DeescalationType, r.Seq
	return nil
}

func (p *escalationProjection) Compare(tx warden.ReadTx, report func(engine.Mismatch)) error {
	seen := map[string]bool{}
	err := tx.EachEscalation(func(s *warden.Escalation) error {
		seen[s.EscalationID] = true
		want, ok := p.escs[s.EscalationID]
		if !ok {
			report(engine.Mismatch{Table: "escalations", Key: s.EscalationID, Reason: "no receipt created this escalation"})
			return nil
		}
		if why := want.differs(s); why != "" {
			report(engine.Mismatch{Table: "escalations", Key: s.EscalationID, Seq: engine.SeqPtr(want.seq), Reason: why})
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, id := range engine.SortedKeys(p.escs) {
		if !seen[id] {
			report(engine.Mismatch{Table: "escalations", Key: id, Seq: engine.SeqPtr(p.escs[id].seq), Reason: "the receipts created this escalation; the store has no such row"})
		}
	}
	for _, subject := range engine.SortedKeys(p.counts) {
		n, err := tx.Counter(generationKey(subject))
		if err != nil {
			return err
		}
		if n != p.counts[subject] {
			report(engine.Mismatch{Table: "counters", Key: generationKey(subject),
				Reason: fmt.Sprintf("%d, the receipts hold %d escalations of %s", n, p.counts[subject], subject)})
		}
	}
	return nil
}

// differs says how a stored escalation differs from the projected one.
func (e *projectedEscalation) differs(s *warden.Escalation) string {
	want := e.Escalation
	if e.legacy {
		// Only what old receipts said; the rest is taken as stored.
		want.RequestedBy, want.Reason, want.AutoDeescalate, want.DeescalateAfterSeconds = s.RequestedBy, s.Reason, s.AutoDeescalate, s.DeescalateAfterSeconds
		want.DeescalateCondition, want.CreatedAt, want.Drill = s.DeescalateCondition, s.CreatedAt, s.Drill
	}
	return engine.DiffRecords(&want, s)
}

// treasuryProjection rebuilds budgets from treasury_budget_created,
// treasury_debit and treasury_credit, and checks every stored treasury
// operation against the debit or credit receipt at its seq.
type treasuryProjection struct {
	budgets map[string]*warden.Budget
	last    map[string]uint64 // receipt that last changed each budget
	ops     []uint64          // seqs of debit and credit receipts, ascending
	digests [][32]byte        // the operation each of them records, hashed
}

func newTreasuryProjection() *treasuryProjection {
	return &treasuryProjection{budgets: map[string]*warden.Budget{}, last: map[string]uint64{}}
}

// moveBody is a debit's or credit's receipt body.
type moveBody struct {
	BudgetID       string `json:"budget_id"`
	Amount         int64  `json:"amount"`
	Description    string `json:"description"`
	BalanceAfter   int64  `json:"balance_after"`
	IdempotencyKey string `json:"idempotency_key"`
	Principal      string `json:"principal"`
}

func (p *treasuryProjection) Apply(r *warden.Receipt) error {
	switch r.Type {
	case warden.ReceiptBudgetCreated:
		var b struct {
			Budget *warden.Budget `json:"budget"`
		}
		if err := engine.Decode(r, &b); err != nil {
			return err
		}
		if b.Budget == nil {
			return engine.ReplayError(r, "no budget")
		}
		if _, ok := p.budgets[b.Budget.BudgetID]; ok {
			return engine.ReplayError(r, "budget %q was already created", b.Budget.BudgetID)
		}
		p.budgets[b.Budget.BudgetID], p.last[b.Budget.BudgetID] = b.Budget, r.Seq
	case warden.ReceiptDebit, warden.ReceiptCredit:
		var b moveBody
		if err := engine.Decode(r, &b); err != nil {
			return err
		}
		bud, ok := p.budgets[b.BudgetID]
		if !ok {
			return engine.ReplayError(r, "budget %q was never created", b.BudgetID)
		}
		if r.Type == warden.ReceiptDebit {
			bud.Spent += b.Amount
		} else {
			bud.Credited += b.Amount
		}
		if bud.Balance() != b.BalanceAfter {
			return engine.ReplayError(r, "balance_after %d, the receipts before it give %d", b.BalanceAfter, bud.Balance())
		}
		p.last[b.BudgetID] = r.Seq
		op, err := ledger.Canonical(opOf(r, &b))
		if err != nil {
			return engine.ReplayError(r, "%v", err)
		}
		p.ops, p.digests = append(p.ops, r.Seq), append(p.digests, sha256.Sum256(op))
	}
	return nil
}

// opOf is the treasury operation a debit or credit receipt records.
func opOf(r *warden.Receipt, b *moveBody) *warden.TreasuryOp {
	kind := map[string]string{warden.ReceiptDebit: "debit", warden.ReceiptCredit: "credit"}[r.Type]
	return &warden.TreasuryOp{BudgetID: b.BudgetID, IdempotencyKey: b.IdempotencyKey, Kind: kind, Amount: b.Amount, Description: b.Description,
		BalanceAfter: b.BalanceAfter, ReceiptHash: r.RootHash, Seq: r.Seq, CreatedAt: r.Timestamp, Principal: b.Principal}
}

func (p *treasuryProjection) Compare(tx warden.ReadTx, report func(engine.Mismatch)) error {
	stored, err := tx.Budgets()
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, s := range stored {
		seen[s.BudgetID] = true
		want, ok := p.budgets[s.BudgetID]
		if !ok {
			report(engine.Mismatch{Table: "budgets", Key: s.BudgetID, Reason: "no receipt created this budget"})
			continue
		}
		if why := engine.DiffRecords(want, s); why != "" {
			report(engine.Mismatch{Table: "budgets", Key: s.BudgetID, Seq: engine.SeqPtr(p.last[s.BudgetID]), Reason: why})
		}
	}
	for _, id := range engine.SortedKeys(p.budgets) {
		if !seen[id] {
			report(engine.Mismatch{Table: "budgets", Key: id, Seq: engine.SeqPtr(p.last[id]), Reason: "the receipts created this budget; the store has no such row"})
		}
	}
	// Every stored operation is the receipt at its seq, and each debit and
	// credit receipt has exactly one stored operation.
	found := make([]bool, len(p.ops))
	err = tx.EachTreasuryOp(func(op *warden.TreasuryOp) error {
		key := fmt.Sprintf("%s/seq %d", op.BudgetID, op.Seq)
		i, ok := slices.BinarySearch(p.ops, op.Seq)
		if !ok {
			report(engine.Mismatch{Table: "treasury_ops", Key: key, Reason: "no debit or credit receipt has this seq"})
			return nil
		}
		if found[i] {
			report(engine.Mismatch{Table: "treasury_ops", Key: key, Seq: engine.SeqPtr(op.Seq), Reason: "recorded twice"})
			return nil
		}
		found[i] = true
		got, err := ledger.Canonical(op)
		if err != nil {
			return err
		}
		if sha256.Sum256(got) == p.digests[i] {
			return nil
		}
		// Explain from the receipt (only for a mismatch).
		why := "differs from the operation its receipt records"
		if r, err := tx.Receipt(op.Seq); err == nil {
			var b moveBody
			if engine.Decode(r, &b) == nil {
				why = engine.DiffRecords(opOf(r, &b), op)
			}
		}
		report(engine.Mismatch{Table: "treasury_ops", Key: key, Seq: engine.SeqPtr(op.Seq), Reason: why})
		return nil
	})
	if err != nil {
		return err
	}
	for i, ok := range found {
		if !ok {
			report(engine.Mismatch{Table: "treasury_ops", Key: fmt.Sprintf("seq %d", p.ops[i]), Seq: engine.SeqPtr(p.ops[i]),
				Reason: "the receipts record this operation; the store has no such row"})
		}
	}
	return nil
}

// approvalProjection rebuilds approvals (approval_recorded) and approver
// keys (approver_key_registered; the latest registration stands). A key
// receipted before receipts carried created_at is compared on its key.
type approvalProjection struct {
	approvals map[string]*warden.Approval // digest + "/" + approver
	seqs      map[string]uint64
	keys      map[string]*warden.ApproverKey
	keySeqs   map[string]uint64
}

func newApprovalProjection() *approvalProjection {
	return &approvalProjection{approvals: map[string]*warden.Approval{}, seqs: map[string]uint64{},
		keys: map[string]*warden.ApproverKey{}, keySeqs: map[string]uint64{}}
}

func (p *approvalProjection) Apply(r *warden.Receipt) error {
	switch r.Type {
	case warden.ReceiptApproval:
		a := new(warden.Approval)
		if err := engine.Decode(r, a); err != nil {
			return err
		}
		k := a.RequestDigest + "/" + a.Approver
		if _, ok := p.approvals[k]; ok {
			return engine.ReplayError(r, "approval %s was already recorded", k)
		}
		p.approvals[k], p.seqs[k] = a, r.Seq
	case warden.ReceiptApproverKey:
		var b struct {
			Approver  string `json:"approver"`
			PublicKey []byte `json:"public_key"`
			CreatedAt string `json:"created_at"`
		}
		if err := engine.Decode(r, &b); err != nil {
			return err
		}
		p.keys[b.Approver] = &warden.ApproverKey{Approver: b.Approver, PublicKey: b.PublicKey, CreatedAt: b.CreatedAt}
		p.keySeqs[b.Approver] = r.Seq
	}
	return nil
}

func (p *approvalProjection) Compare(tx warden.ReadTx, report func(engine.Mismatch)) error {
	seen := map[string]bool{}
	err := tx.EachApproval(func(a *warden.Approval) error {
		k := a.RequestDigest + "/" + a.Approver
		seen[k] = true
		want, ok := p.approvals[k]
		if !ok {
			report(engine.Mismatch{Table: "approvals", Key: k, Reason: "no receipt recorded this approval"})
		} else if why := engine.DiffRecords(want, a); why != "" {
			report(engine.Mismatch{Table: "approvals", Key: k, Seq: engine.SeqPtr(p.seqs[k]), Reason: why})
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range engine.SortedKeys(p.approvals) {
		if !seen[k] {
			report(engine.Mismatch{Table: "approvals", Key: k, Seq: engine.SeqPtr(p.seqs[k]), Reason: "the receipts recorded this approval; the store has no such row"})
		}
	}
	seen = map[string]bool{}
	err = tx.EachApproverKey(func(k *warden.ApproverKey) error {
		seen[k.Approver] = true
		want, ok := p.keys[k.Approver]
		if !ok {
			report(engine.Mismatch{Table: "approver_keys", Key: k.Approver, Reason: "no receipt registered this key"})
			return nil
		}
		w := *want
		if w.CreatedAt == "" { // receipted before receipts carried it
			w.CreatedAt = k.CreatedAt
		}
		if why := engine.DiffRecords(&w, k); why != "" {
			report(engine.Mismatch{Table: "approver_keys", Key: k.Approver, Seq: engine.SeqPtr(p.keySeqs[k.Approver]), Reason: why})
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, a := range engine.SortedKeys(p.keys) {
		if !seen[a] {
			report(engine.Mismatch{Table: "approver_keys", Key: a, Seq: engine.SeqPtr(p.keySeqs[a]), Reason: "the receipts registered this key; the store has no such row"})
		}
	}
	return nil
}
