package sqlite

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	warden "github.com/warden-sh/warden"
)

// getRecord decodes the record column of the one row q selects, or returns
// notFound().
func getRecord[T any](r *reader, method string, notFound func() error, q string, args ...any) (*T, error) {
	var rec string
	err := r.q.queryRow(q, args...).Scan(&rec)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound()
	} else if err != nil {
		return nil, fmt.Errorf("sqlite.%s: %w", method, err)
	}
	var v T
	if err := json.Unmarshal([]byte(rec), &v); err != nil {
		return nil, fmt.Errorf("sqlite.%s: %w", method, err)
	}
	return &v, nil
}

// listRecords decodes the record column of every row q selects, in order;
// never nil.
func listRecords[T any](r *reader, method, q string, args ...any) ([]*T, error) {
	rows, err := r.q.query(q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite.%s: %w", method, err)
	}
	defer rows.Close()
	out := []*T{}
	for rows.Next() {
		var rec string
		if err := rows.Scan(&rec); err != nil {
			return nil, fmt.Errorf("sqlite.%s: %w", method, err)
		}
		var v T
		if err := json.Unmarshal([]byte(rec), &v); err != nil {
			return nil, fmt.Errorf("sqlite.%s: %w", method, err)
		}
		out = append(out, &v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite.%s: %w", method, err)
	}
	return out, nil
}

// PutEscalation creates or replaces an escalation. EINVALID without an id
// or subject, with an unknown ToProfile or an unparseable ExpiresAt.
func (t *writeTx) PutEscalation(e *warden.Escalation) error {
	if err := t.check(); err != nil {
		return err
	}
	switch {
	case e == nil:
		return warden.Errorf(warden.EINVALID, "An escalation is required.")
	case e.EscalationID == "" || e.Subject == "":
		return warden.Errorf(warden.EINVALID, "An escalation needs an id and a subject.")
	case e.ToProfile.Rank() == 0:
		return warden.Errorf(warden.EINVALID, "Escalation to_profile %q is not on the ladder.", e.ToProfile)
	}
	var expires any // NULL: no TTL
	if e.ExpiresAt != nil {
		exp, ok := e.Expiry()
		if !ok {
			return warden.Errorf(warden.EINVALID, "Escalation expires_at %q is not RFC 3339.", *e.ExpiresAt)
		}
		expires = exp.UnixNano()
	}
	rec, err := json.Marshal(e)
	if err != nil {
		return t.failed("PutEscalation", err)
	}
	if _, err := t.q.exec(`INSERT INTO escalations (escalation_id, subject, depth, active, auto_deescalate, expires_ns, record)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (escalation_id) DO UPDATE SET subject = excluded.subject, depth = excluded.depth,
			active = excluded.active, auto_deescalate = excluded.auto_deescalate,
			expires_ns = excluded.expires_ns, record = excluded.record`,
		e.EscalationID, e.Subject, e.ToProfile.Rank(), boolInt(e.Active), boolInt(e.AutoDeescalate), expires, string(rec)); err != nil {
		return t.failed("PutEscalation", err)
	}
	return nil
}

// Escalation returns one escalation, active or not.
func (r *reader) Escalation(id string) (*warden.Escalation, error) {
	return getRecord[warden.Escalation](r, "Escalation",
		func() error { return warden.Errorf(warden.ENOTFOUND, "Escalation %q not found.", id) },
		"SELECT record FROM escalations WHERE escalation_id = ?", id)
}

// The active stacks, read in escalations_active order.
const (
	sqlActiveEscalations  = "SELECT record FROM escalations WHERE active = 1 ORDER BY subject, depth, escalation_id"
	sqlSubjectEscalations = "SELECT record FROM escalations WHERE active = 1 AND subject = ? ORDER BY depth, escalation_id"
)

// ActiveEscalations returns a subject's (or every subject's) active
// escalations, lowest hop first.
func (r *reader) ActiveEscalations(subject string) ([]*warden.Escalation, error) {
	if subject == "" {
		return listRecords[warden.Escalation](r, "ActiveEscalations", sqlActiveEscalations)
	}
	return listRecords[warden.Escalation](r, "ActiveEscalations", sqlSubjectEscalations, subject)
}

// CountActiveEscalations counts the active escalations by profile, from
// the partial index escalations_active alone (depth is ToProfile's rank).
func (r *reader) CountActiveEscalations() (map[warden.Profile]int64, error) {
	rows, err := r.q.query("SELECT depth, COUNT(*) FROM escalations WHERE active = 1 GROUP BY depth")
	if err != nil {
		return nil, fmt.Errorf("sqlite.CountActiveEscalations: %w", err)
	}
	defer rows.Close()
	out := map[warden.Profile]int64{}
	for rows.Next() {
		var depth int
		var n int64
		if err := rows.Scan(&depth, &n); err != nil {
			return nil, fmt.Errorf("sqlite.CountActiveEscalations: %w", err)
		}
		if depth < 1 || depth > len(warden.Profiles) {
			return nil, fmt.Errorf("sqlite.CountActiveEscalations: depth %d out of range", depth)
		}
		out[warden.Profiles[depth-1]] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite.CountActiveEscalations: %w", err)
	}
	return out, nil
}

// sqlDueEscalations walks escalations_due (active, auto-de-escalating
// escalations with a TTL) in expiry order and keeps those with no active
// hop above them, probing escalations_active once per candidate. Inactive
// history is in neither index.
const sqlDueEscalations = `SELECT e.record FROM escalations AS e
	WHERE e.active = 1 AND e.auto_deescalate = 1 AND e.expires_ns IS NOT NULL AND e.expires_ns <= ?
	AND NOT EXISTS (SELECT 1 FROM escalations AS h
		WHERE h.active = 1 AND h.subject = e.subject AND h.depth > e.depth)
	ORDER BY e.expires_ns, e.escalation_id LIMIT ?`

// DueEscalations returns up to limit expired tops of subjects' stacks that
// de-escalate automatically, soonest first.
func (r *reader) DueEscalations(now time.Time, limit int) ([]*warden.Escalation, error) {
	return listRecords[warden.Escalation](r, "DueEscalations", sqlDueEscalations, now.UnixNano(), limit)
}

// CreateBudget stores a new budget. EINVALID without an id, ECONFLICT if
// the id exists.
func (t *writeTx) CreateBudget(b *warden.Budget) error {
	if err := t.check(); err != nil {
		return err
	}
	if b == nil || b.BudgetID == "" {
		return warden.Errorf(warden.EINVALID, "A budget needs an id.")
	}
	rec, err := json.Marshal(b)
	if err != nil {
		return t.failed("CreateBudget", err)
	}
	res, err := t.q.exec("INSERT INTO budgets (budget_id, record) VALUES (?, ?) ON CONFLICT (budget_id) DO NOTHING",
		b.BudgetID, string(rec))
	if err != nil {
		return t.failed("CreateBudget", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return t.failed("CreateBudget", err)
	} else if n == 0 {
		return warden.Errorf(warden.ECONFLICT, "Budget %q already exists.", b.BudgetID)
	}
	return nil
}

// UpdateBudget replaces a budget. ENOTFOUND if it does not exist.
func (t *writeTx) UpdateBudget(b *warden.Budget) error {
	if err := t.check(); err != nil {
		return err
	}
	if b == nil {
		return warden.Errorf(warden.EINVALID, "A budget is required.")
	}
	rec, err := json.Marshal(b)
	if err != nil {
		return t.failed("UpdateBudget", err)
	}
	res, err := t.q.exec("UPDATE budgets SET record = ? WHERE budget_id = ?", string(rec), b.BudgetID)
	if err != nil {
		return t.failed("UpdateBudget", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return t.failed("UpdateBudget", err)
	} else if n == 0 {
		return warden.Errorf(warden.ENOTFOUND, "Budget %q not found.", b.BudgetID)
	}
	return nil
}

// Budget returns one budget.
func (r *reader) Budget(id string) (*warden.Budget, error) {
	return getRecord[warden.Budget](r, "Budget",
		func() error { return warden.Errorf(warden.ENOTFOUND, "Budget %q not found.", id) },
		"SELECT record FROM budgets WHERE budget_id = ?", id)
}

// Budgets lists every budget by id.
func (r *reader) Budgets() ([]*warden.Budget, error) {
	return listRecords[warden.Budget](r, "Budgets", "SELECT record FROM budgets ORDER BY budget_id")
}

// PutTreasuryOp records an operation. EINVALID without a budget id;
// ECONFLICT if its non-empty idempotency key was used for that budget. An
// operation without a key is stored apart and never conflicts.
func (t *writeTx) PutTreasuryOp(op *warden.TreasuryOp) error {
	if err := t.check(); err != nil {
		return err
	}
	if op == nil || op.BudgetID == "" {
		return warden.Errorf(warden.EINVALID, "A treasury operation needs a budget id.")
	}
	rec, err := json.Marshal(op)
	if err != nil {
		return t.failed("PutTreasuryOp", err)
	}
	if op.IdempotencyKey == "" {
		if _, err := t.q.exec("INSERT INTO treasury_ops_unkeyed (budget_id, record) VALUES (?, ?)",
			op.BudgetID, string(rec)); err != nil {
			return t.failed("PutTreasuryOp", err)
		}
		return nil
	}
	res, err := t.q.exec(`INSERT INTO treasury_ops (budget_id, idempotency_key, record) VALUES (?, ?, ?)
		ON CONFLICT (budget_id, idempotency_key) DO NOTHING`, op.BudgetID, op.IdempotencyKey, string(rec))
	if err != nil {
		return t.failed("PutTreasuryOp", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return t.failed("PutTreasuryOp", err)
	} else if n == 0 {
		return warden.Errorf(warden.ECONFLICT, "Idempotency key %q was already used for budget %q.", op.IdempotencyKey, op.BudgetID)
	}
	return nil
}

// TreasuryOp returns the operation recorded under a budget's idempotency
// key; ENOTFOUND for the empty key, which names no operation.
func (r *reader) TreasuryOp(budgetID, key string) (*warden.TreasuryOp, error) {
	notFound := func() error {
		return warden.Errorf(warden.ENOTFOUND, "No operation on budget %q has idempotency key %q.", budgetID, key)
	}
	if key == "" {
		return nil, notFound()
	}
	return getRecord[warden.TreasuryOp](r, "TreasuryOp", notFound,
		"SELECT record FROM treasury_ops WHERE budget_id = ? AND idempotency_key = ?", budgetID, key)
}

// PutApproval records an approval; a repeat by the same approver for the
// same digest keeps the first. EINVALID without a digest or approver.
func (t *writeTx) PutApproval(a *warden.Approval) error {
	if err := t.check(); err != nil {
		return err
	}
	if a == nil || a.RequestDigest == "" || a.Approver == "" {
		return warden.Errorf(warden.EINVALID, "An approval needs a request digest and an approver.")
	}
	rec, err := json.Marshal(a)
	if err != nil {
		return t.failed("PutApproval", err)
	}
	if _, err := t.q.exec(`INSERT INTO approvals (request_digest, approver, record) VALUES (?, ?, ?)
		ON CONFLICT (request_digest, approver) DO NOTHING`, a.RequestDigest, a.Approver, string(rec)); err != nil {
		return t.failed("PutApproval", err)
	}
	return nil
}

// Approvals returns a digest's approvals ordered by approver.
func (r *reader) Approvals(digest string) ([]*warden.Approval, error) {
	return listRecords[warden.Approval](r, "Approvals",
		"SELECT record FROM approvals WHERE request_digest = ? ORDER BY approver", digest)
}

// PutApproverKey registers or replaces an approver's key. EINVALID without
// an approver.
func (t *writeTx) PutApproverKey(k *warden.ApproverKey) error {
	if err := t.check(); err != nil {
		return err
	}
	if k == nil || k.Approver == "" {
		return warden.Errorf(warden.EINVALID, "An approver key needs an approver.")
	}
	rec, err := json.Marshal(k)
	if err != nil {
		return t.failed("PutApproverKey", err)
	}
	if _, err := t.q.exec(`INSERT INTO approver_keys (approver, record) VALUES (?, ?)
		ON CONFLICT (approver) DO UPDATE SET record = excluded.record`, k.Approver, string(rec)); err != nil {
		return t.failed("PutApproverKey", err)
	}
	return nil
}

// ApproverKey returns an approver's registered key.
func (r *reader) ApproverKey(approver string) (*warden.ApproverKey, error) {
	return getRecord[warden.ApproverKey](r, "ApproverKey",
		func() error { return warden.Errorf(warden.ENOTFOUND, "Approver %q has no registered key.", approver) },
		"SELECT record FROM approver_keys WHERE approver = ?", approver)
}

// eachRecord streams the record column of every row of table in primary
// key order, a page at a time (keyset paging), so memory stays bounded and
// no statement stays open while fn runs. keys are the primary key columns.
func eachRecord[T any](r *reader, method, table string, keys []string, fn func(*T) error) error {
	cols := strings.Join(keys, ", ")
	marks := strings.TrimSuffix(strings.Repeat("?, ", len(keys)), ", ")
	first := fmt.Sprintf("SELECT %s, record FROM %s ORDER BY %s LIMIT %d", cols, table, cols, scanPage)
	next := fmt.Sprintf("SELECT %s, record FROM %s WHERE (%s) > (%s) ORDER BY %s LIMIT %d", cols, table, cols, marks, cols, scanPage)
	var last []any
	for {
		q, args := first, []any(nil)
		if last != nil {
			q, args = next, last
		}
		rows, err := r.q.query(q, args...)
		if err != nil {
			return fmt.Errorf("sqlite.%s: %w", method, err)
		}
		var page []*T
		for rows.Next() {
			key := make([]any, len(keys))
			dest := make([]any, len(keys)+1)
			for i := range key {
				dest[i] = &key[i]
			}
			var rec string
			dest[len(keys)] = &rec
			if err := rows.Scan(dest...); err != nil {
				rows.Close()
				return fmt.Errorf("sqlite.%s: %w", method, err)
			}
			var v T
			if err := json.Unmarshal([]byte(rec), &v); err != nil {
				rows.Close()
				return fmt.Errorf("sqlite.%s: %s %v: %w", method, table, key, err)
			}
			page, last = append(page, &v), key
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return fmt.Errorf("sqlite.%s: %w", method, err)
		}
		for _, v := range page {
			if err := fn(v); err != nil {
				return err
			}
		}
		if len(page) < scanPage {
			return nil
		}
	}
}

// EachEscalation streams every escalation, active or not, by id.
func (r *reader) EachEscalation(fn func(*warden.Escalation) error) error {
	return eachRecord(r, "EachEscalation", "escalations", []string{"escalation_id"}, fn)
}

// EachTreasuryOp streams every recorded operation: those with an
// idempotency key by budget and key, then the others in the order written.
func (r *reader) EachTreasuryOp(fn func(*warden.TreasuryOp) error) error {
	if err := eachRecord(r, "EachTreasuryOp", "treasury_ops", []string{"budget_id", "idempotency_key"}, fn); err != nil {
		return err
	}
	return eachRecord(r, "EachTreasuryOp", "treasury_ops_unkeyed", []string{"id"}, fn)
}

// EachApproval streams every approval by digest and approver.
func (r *reader) EachApproval(fn func(*warden.Approval) error) error {
	return eachRecord(r, "EachApproval", "approvals", []string{"request_digest", "approver"}, fn)
}

// EachApproverKey streams every registered approver key by approver.
func (r *reader) EachApproverKey(fn func(*warden.ApproverKey) error) error {
	return eachRecord(r, "EachApproverKey", "approver_keys", []string{"approver"}, fn)
}
