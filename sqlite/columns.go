package sqlite

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	warden "github.com/warden-sh/warden"
)

// Beside each row's JSON record, the tables keep columns the queries and
// indexes use: an escalation's subject, whether it is active, when it
// expires; an incident's state and severity; whether a requirement is
// complete; the keys approvals and operations are found by. The rules act
// on those columns, so a column edited behind the record's back would
// change a decision while the record, which the state replay compares,
// still looks right. CheckColumns reports every such row.

// columnCheck derives, from a row's record, the columns the writer stores
// beside it (in the order of cols).
type columnCheck struct {
	table  string
	cols   []string // key columns first
	nkey   int      // how many of cols name the row in a report
	expect func(record []byte) ([]any, error)
}

var columnChecks = []columnCheck{
	{"escalations", []string{"escalation_id", "subject", "depth", "active", "auto_deescalate", "expires_ns"}, 1, func(rec []byte) ([]any, error) {
		var e warden.Escalation
		if err := json.Unmarshal(rec, &e); err != nil {
			return nil, err
		}
		var expires any
		if exp, ok := e.Expiry(); ok {
			expires = exp.UnixNano()
		}
		return []any{e.EscalationID, e.Subject, e.ToProfile.Rank(), boolInt(e.Active), boolInt(e.AutoDeescalate), expires}, nil
	}},
	{"incidents", []string{"id", "number", "class", "severity_rank", "state", "created_ns", "containment_pending"}, 1, func(rec []byte) ([]any, error) {
		var i warden.Incident
		if err := json.Unmarshal(rec, &i); err != nil {
			return nil, err
		}
		ns, err := createdNS(&i)
		if err != nil {
			return nil, err
		}
		return []any{i.ID, int64(i.Number), i.Class, i.Severity.Rank(), string(i.State), ns, boolInt(i.ContainmentPending)}, nil
	}},
	{"recovery_requirements", []string{"incident_id", "complete", "created_ns"}, 1, func(rec []byte) ([]any, error) {
		var r warden.RecoveryRequirement
		if err := json.Unmarshal(rec, &r); err != nil {
			return nil, err
		}
		ct, err := time.Parse(warden.TimeFormat, r.CreatedAt)
		if err != nil {
			return nil, err
		}
		return []any{r.IncidentID, boolInt(r.RecoveryComplete), ct.UnixNano()}, nil
	}},
	{"budgets", []string{"budget_id"}, 1, func(rec []byte) ([]any, error) {
		var b warden.Budget
		err := json.Unmarshal(rec, &b)
		return []any{b.BudgetID}, err
	}},
	{"treasury_ops", []string{"budget_id", "idempotency_key"}, 2, func(rec []byte) ([]any, error) {
		var op warden.TreasuryOp
		err := json.Unmarshal(rec, &op)
		return []any{op.BudgetID, op.IdempotencyKey}, err
	}},
	{"treasury_ops_unkeyed", []string{"id", "budget_id"}, 1, func(rec []byte) ([]any, error) {
		var op warden.TreasuryOp
		err := json.Unmarshal(rec, &op)
		return []any{nil, op.BudgetID}, err // id is the row's own
	}},
	{"approvals", []string{"request_digest", "approver"}, 2, func(rec []byte) ([]any, error) {
		var a warden.Approval
		err := json.Unmarshal(rec, &a)
		return []any{a.RequestDigest, a.Approver}, err
	}},
	{"approver_keys", []string{"approver"}, 1, func(rec []byte) ([]any, error) {
		var k warden.ApproverKey
		err := json.Unmarshal(rec, &k)
		return []any{k.Approver}, err
	}},
}

// CheckColumns reports every row whose stored columns are not what its
// record gives.
func (r *reader) CheckColumns(report func(table, key, reason string)) error {
	for _, c := range columnChecks {
		rows, err := r.q.query(fmt.Sprintf("SELECT %s, record FROM %s", strings.Join(c.cols, ", "), c.table))
		if err != nil {
			return fmt.Errorf("sqlite.CheckColumns: %w", err)
		}
		for rows.Next() {
			got := make([]any, len(c.cols))
			dest := make([]any, len(c.cols)+1)
			for i := range got {
				dest[i] = &got[i]
			}
			var rec []byte
			dest[len(c.cols)] = &rec
			if err := rows.Scan(dest...); err != nil {
				rows.Close()
				return fmt.Errorf("sqlite.CheckColumns: %w", err)
			}
			key := fmt.Sprint(got[:c.nkey]...)
			if c.nkey > 1 {
				key = fmt.Sprintf("%v/%v", got[0], got[1])
			}
			want, err := c.expect(rec)
			if err != nil {
				report(c.table, key, fmt.Sprintf("the record does not decode: %v", err))
				continue
			}
			for i, col := range c.cols {
				if want[i] != nil && !sameValue(got[i], want[i]) || want[i] == nil && col == "expires_ns" && got[i] != nil {
					report(c.table, key, fmt.Sprintf("column %s is %v; its record gives %v", col, orNull(got[i]), orNull(want[i])))
					break
				}
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return fmt.Errorf("sqlite.CheckColumns: %w", err)
		}
	}
	return nil
}

// sameValue compares a scanned column with an expected value.
func sameValue(got, want any) bool {
	switch w := want.(type) {
	case string:
		switch g := got.(type) {
		case string:
			return g == w
		case []byte:
			return string(g) == w
		}
		return false
	case int:
		g, ok := got.(int64)
		return ok && g == int64(w)
	case int64:
		g, ok := got.(int64)
		return ok && g == w
	}
	return false
}

func orNull(v any) any {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case []byte:
		return string(x)
	}
	return v
}
