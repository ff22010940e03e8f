package cli_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/cli"
	"github.com/warden-sh/warden/engine"
	"github.com/warden-sh/warden/engine/governor"
	"github.com/warden-sh/warden/engine/recorder"
	"github.com/warden-sh/warden/ledger"
	"github.com/warden-sh/warden/wardentest"
)

// buildStateLog makes a stopped data directory whose receipts touch every
// state table: credentials (one revoked), incidents with containment, a
// recovery requirement through the ceremony, an integrity baseline,
// escalations (one de-escalated), an approval and an approver key, a budget
// with debits and a credit; everything anchored by a final checkpoint.
func buildStateLog(t *testing.T) string {
	data, _ := buildStateLogToken(t)
	return data
}

// buildStateLogToken is buildStateLog, also returning the token of the
// read-only credential "reader".
func buildStateLogToken(t *testing.T) (string, string) {
	t.Helper()
	target := wardentest.MustTarget(t)
	env := wardentest.MustEnv(t, wardentest.Containment(wardentest.TargetPolicy(target.URL)))
	ctx := context.Background()
	admin := wardentest.AdminPrincipal
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := env.Core.Start(ctx, engine.StartInfo{Version: "test"}); err != nil {
		t.Fatal(err)
	}
	reader := env.MustCredential(t, engine.CredentialSpec{Name: "reader", Roles: []warden.Role{warden.RoleRead}})
	env.MustCredential(t, engine.CredentialSpec{Name: "gone", Roles: []warden.Role{warden.RoleRead}})
	env.MustCredential(t, engine.CredentialSpec{Name: "appr", Roles: []warden.Role{warden.RoleApprover}})
	must(env.Core.RevokeCredential(ctx, admin, "gone"))

	inc := env.MustReport(t, nil, recorder.ReportRequest{Class: warden.ClassPromptInjection, Source: "agent-7", Description: "jailbreak", IdempotencyKey: "retry-1"})
	crit := env.MustReport(t, nil, recorder.ReportRequest{Class: warden.ClassUnauthorizedAccess, Severity: "critical", Source: "vault", Description: "opened"})
	must(env.Recorder.ResolveIncident(ctx, admin, inc.ID))
	must(env.Recorder.RecoveryAck(ctx, admin, recorder.AckRequest{IncidentID: crit.ID, Operator: "admin@secai"}))
	watched := filepath.Join(t.TempDir(), "watched")
	if err := os.WriteFile(watched, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	must(env.Recorder.RecordBaseline(ctx, admin, []string{watched}))

	agent := &warden.Principal{Name: "reader", Roles: []warden.Role{warden.RoleRead}}
	up, err := env.Governor.Escalate(ctx, agent, governor.EscalateRequest{ToProfile: "operator", EscalationType: "operator_request", Reason: "r"})
	must(up, err)
	must(env.Governor.Escalate(ctx, agent, governor.EscalateRequest{ToProfile: "guardian", EscalationType: "operator_request", Reason: "r"}))
	denied, err := env.Governor.Escalate(ctx, agent, governor.EscalateRequest{ToProfile: "phoenix", EscalationType: "crisis_declared", Reason: "r", ApprovedBy: governor.StringList{"appr"}})
	if err == nil {
		t.Fatalf("phoenix without an approval: %+v", denied)
	}
	var werr *warden.Error
	if !errors.As(err, &werr) || werr.Data["request_digest"] == nil {
		t.Fatalf("phoenix denial without a digest: %v", err)
	}
	must(env.Governor.Approve(ctx, &warden.Principal{Name: "appr", Roles: []warden.Role{warden.RoleApprover}}, werr.Data["request_digest"].(string)))
	must(env.Governor.Deescalate(ctx, admin, governor.DeescalateRequest{EscalationID: up.EscalationID, DeescalationType: "operator_release"}))
	must(env.Governor.RegisterApproverKey(ctx, admin, governor.ApproverKeyRequest{Approver: "appr", PublicKey: strings.Repeat("A", 43) + "="}))

	must(env.Governor.CreateBudget(ctx, admin, governor.CreateBudgetRequest{BudgetID: "b1", Allocated: 100, Currency: "USD"}))
	must(env.Governor.Debit(ctx, admin, governor.MoveRequest{BudgetID: "b1", Amount: 30, Description: "gpu", IdempotencyKey: "k1"}))
	must(env.Governor.Debit(ctx, admin, governor.MoveRequest{BudgetID: "b1", Amount: 5, Description: "net"}))
	must(env.Governor.Credit(ctx, admin, governor.MoveRequest{BudgetID: "b1", Amount: 10, Description: "top-up"}))

	if _, err := env.Core.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if err := env.Store.Close(); err != nil {
		t.Fatal(err)
	}
	return env.Dir.Path, reader
}

// TestVerifyReplaysState: the state tables of an honest store are exactly
// what replaying its receipts builds; each forged row, field or deletion is
// named by verify (exit 3, "tampered"), whichever table it is in.
func TestVerifyReplaysState(t *testing.T) {
	data := buildStateLog(t)
	if code, out, errs := run(t, "verify", "--data", data); code != 0 {
		t.Fatalf("honest store: %d %s %s", code, out, errs)
	}
	for _, tc := range []struct {
		name string
		sql  []string
		want string
	}{
		{"credential promoted", []string{`UPDATE credentials SET roles = '["admin"]' WHERE name = 'reader'`},
			`credentials "reader": roles [admin], the receipts say [read]`},
		{"credential made human", []string{`UPDATE credentials SET human = 1 WHERE name = 'reader'`},
			`credentials "reader": human true, the receipts say false`},
		{"credential unrevoked", []string{`UPDATE credentials SET revoked_at = NULL WHERE name = 'gone'`},
			`credentials "gone": not revoked, the receipts revoked it`},
		{"credential forged", []string{`INSERT INTO credentials (name, token_hash, roles, created_at) VALUES ('mallory', 'abc', '["admin"]', '2026-01-01T00:00:00Z')`},
			`credentials "mallory": no receipt created this credential`},
		{"token swapped", []string{`UPDATE credentials SET token_hash = 'abc' WHERE name = 'reader'`},
			`credentials "reader": token hash differs from the receipted one`},
		{"budget refilled", []string{`UPDATE budgets SET record = json_set(record, '$.spent', 0)`},
			`budgets "b1": [spent 0, the receipts say 35]`},
		{"debit shrunk", []string{`UPDATE treasury_ops_unkeyed SET record = json_set(record, '$.amount', 1)`},
			`treasury_ops "b1/seq`},
		{"incident resolved", []string{`UPDATE incidents SET state = 'resolved', record = json_set(record, '$.state', 'resolved') WHERE record LIKE '%unauthorized_access%'`},
			`incidents "INC-`},
		{"incident deleted", []string{`PRAGMA foreign_keys = OFF`, `DELETE FROM incidents WHERE record LIKE '%prompt_injection%'`},
			`the receipts hold this incident; the store has no such row`},
		{"latch released", []string{`UPDATE recovery_requirements SET complete = 1, record = json_set(record, '$.recovery_complete', json('true'))`},
			`recovery_requirements "INC-`},
		{"escalation made permanent", []string{`UPDATE escalations SET record = json_set(record, '$.auto_deescalate', json('false'))`},
			`escalations "esc_`},
		{"approval forged", []string{`INSERT INTO approvals (request_digest, approver, record) VALUES ('d', 'appr', '{"request_digest":"d","approver":"appr","method":"credential","created_at":"2026-01-01T00:00:00Z"}')`},
			`approvals "d/appr": no receipt recorded this approval`},
		{"approver key swapped", []string{`UPDATE approver_keys SET record = json_set(record, '$.public_key', 'QUFBQQ==')`},
			`approver_keys "appr"`},
		{"incident counter rewound", []string{`UPDATE counters SET value = 1 WHERE name = 'incident'`},
			`counters "incident": 1, the receipts hold 2 incidents`},
		{"stats forged", []string{`UPDATE incident_stats SET n = 0 WHERE key = 'open'`},
			`incident_stats "counters"`},
		{"idempotency key redirected", []string{`UPDATE report_keys SET incident_id = (SELECT id FROM incidents WHERE record LIKE '%unauthorized_access%')`},
			`report_keys "test-admin/retry-1": incident INC-`},
		// The columns the rules act on, edited behind the records' backs.
		{"escalation column reactivated", []string{`UPDATE escalations SET active = 1 WHERE record LIKE '%"active":false%'`},
			`escalations "esc_`},
		{"escalation column made permanent", []string{`UPDATE escalations SET auto_deescalate = 0`},
			`column auto_deescalate is 0; its record gives 1`},
		{"incident column resolved", []string{`UPDATE incidents SET state = 'resolved'`},
			`column state is resolved`},
		{"requirement column completed", []string{`UPDATE recovery_requirements SET complete = 1`},
			`recovery_requirements "INC-`},
		{"approval moved to another request", []string{`UPDATE approvals SET request_digest = 'abc'`},
			`approvals "abc/appr": column request_digest is abc`},
		{"baseline rewritten", []string{`UPDATE integrity_baseline SET record = json_set(record, '$.files[0].sha256', 'ff')`},
			`integrity_baseline "baseline"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := copyDir(t, data)
			attack(t, d, tc.sql...)
			code, _, errs := run(t, "verify", "--data", d)
			if code != cli.ExitVerify || !strings.Contains(errs, "tampered") || !strings.Contains(errs, tc.want) {
				t.Fatalf("exit %d %s\nwant exit %d naming %s", code, errs, cli.ExitVerify, tc.want)
			}
		})
	}
}

// forgedReceipt returns the SQL that inserts a well-formed receipt at seq,
// sealed as the ledger would seal it, as an attacker with the database
// would forge one.
func forgedReceipt(t *testing.T, seq uint64) string {
	t.Helper()
	r, _, err := ledger.NewReceipt(seq, warden.Draft{Type: warden.ReceiptCredential, Scroll: warden.ScrollIdentity, Time: time.Now(),
		Body: map[string]any{"name": "mallory", "roles": []string{"admin"}, "by": "admin"}, Tags: []string{"credential"}})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := hex.DecodeString(r.LeafHash)
	if err != nil {
		t.Fatal(err)
	}
	tags, _ := json.Marshal(r.Tags)
	return fmt.Sprintf(`INSERT INTO receipts VALUES (%d, '%s', '%s', '%s', '%s', '%s', '%s', '%s', x'%x')`,
		r.Seq, r.SchemaVersion, r.Type, r.Timestamp, r.Scroll, tags, r.RootHash, r.Body, leaf)
}

// TestVerifyTrustsNoCache: a corrupted ledger head and a row forged past
// the head are tampering, named with a sequence number, not internal errors.
func TestVerifyTrustsNoCache(t *testing.T) {
	data := buildStoppedLog(t, 4)
	d := copyDir(t, data)
	attack(t, d, `UPDATE ledger_head SET state = x'00'`)
	code, _, errs := run(t, "verify", "--data", d)
	if code != cli.ExitVerify || !strings.Contains(errs, "tampered: first bad sequence number 5:") || !strings.Contains(errs, "ledger head") {
		t.Fatalf("corrupt ledger head: %d %s", code, errs)
	}
	d = copyDir(t, data)
	attack(t, d, forgedReceipt(t, 5))
	code, _, errs = run(t, "verify", "--data", d)
	if code != cli.ExitVerify || !strings.Contains(errs, "tampered: first bad sequence number 5:") {
		t.Fatalf("row forged past the head: %d %s", code, errs)
	}
	code, _, errs = run(t, "verify", "--data", d, "--allow-unanchored")
	if code != cli.ExitVerify || !strings.Contains(errs, "first bad sequence number 5:") || !strings.Contains(errs, "beyond the ledger head") {
		t.Fatalf("row forged past the head, unanchored allowed: %d %s", code, errs)
	}
}
