package sqlite

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/storetest"
)

// TestGovernanceQueryPlans checks that the escalation queries read only the
// partial indexes, which hold no de-escalated history: the sweeper's cost
// MUST NOT grow with the number of escalations ever made.
func TestGovernanceQueryPlans(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "w.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	partial := map[string]bool{}
	storetest.MustView(t, db, func(tx warden.ReadTx) error {
		rows, err := tx.(*viewTx).q.query("SELECT name, partial FROM pragma_index_list('escalations')")
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var name string
			var p bool
			if err := rows.Scan(&name, &p); err != nil {
				return err
			}
			partial[name] = p
		}
		return rows.Err()
	})
	for _, idx := range []string{"escalations_due", "escalations_active"} {
		if !partial[idx] {
			t.Errorf("index %s is not partial (indexes: %v)", idx, partial)
		}
	}
	for _, tt := range []struct {
		name  string
		query string
		args  []any
		want  []string // every step names one of these indexes
	}{
		{"DueEscalations", sqlDueEscalations, []any{int64(0), 10}, []string{"escalations_due", "escalations_active"}},
		{"ActiveEscalations all", sqlActiveEscalations, nil, []string{"escalations_active"}},
		{"ActiveEscalations subject", sqlSubjectEscalations, []any{"alice"}, []string{"escalations_active"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var plan []string
			storetest.MustView(t, db, func(tx warden.ReadTx) error {
				rows, err := tx.(*viewTx).q.query("EXPLAIN QUERY PLAN "+tt.query, tt.args...)
				if err != nil {
					return err
				}
				defer rows.Close()
				for rows.Next() {
					var id, parent, unused int
					var detail string
					if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
						return err
					}
					plan = append(plan, detail)
				}
				return rows.Err()
			})
			for _, step := range plan {
				if strings.HasPrefix(step, "CORRELATED") {
					continue
				}
				ok := false
				f := strings.Fields(step)
				for i := 0; i+1 < len(f); i++ {
					ok = ok || (f[i] == "INDEX" && slices.Contains(tt.want, f[i+1]))
				}
				if !ok || strings.Contains(step, "TEMP B-TREE") {
					t.Errorf("plan step %q does not read %v in order; plan:\n%s", step, tt.want, strings.Join(plan, "\n"))
				}
			}
		})
	}
}
