package governor_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/datadir"
	"github.com/warden-sh/warden/engine"
	"github.com/warden-sh/warden/engine/governor"
	"github.com/warden-sh/warden/engine/stack"
	"github.com/warden-sh/warden/wardentest"
)

// members returns the sorted member names of the JSON object at path
// (dot-separated; a number indexes an array) in v's JSON form.
func members(t *testing.T, v any, path string) []string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var cur any
	if err := json.Unmarshal(b, &cur); err != nil {
		t.Fatal(err)
	}
	if path != "" {
		for _, step := range strings.Split(path, ".") {
			switch c := cur.(type) {
			case map[string]any:
				cur = c[step]
			case []any:
				if len(c) == 0 {
					t.Fatalf("%s: empty array at %q", b, step)
				}
				cur = c[0]
			}
		}
	}
	obj, ok := cur.(map[string]any)
	if !ok {
		t.Fatalf("%s at %q is not an object: %s", path, path, b)
	}
	var out []string
	for k := range obj {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestToolResultMembers pins the JSON members every governance tool
// answers with: agents and scripts read them by name (seed 000's and
// 002's names), so a typed result must never rename or drop one. The
// lists are written out, not derived from the types.
func TestToolResultMembers(t *testing.T) {
	// Every tool at observer, so each can be called by one agent.
	open := map[string]warden.Profile{}
	for k := range governor.DefaultAuthority {
		open[k] = warden.ProfileObserver
	}
	mirror := t.TempDir()
	env := wardentest.MustEnv(t, func(c *stack.Config) {
		c.Governor.Authority = open
		c.Governor.Mirror = datadir.Mirror{Dir: mirror}
	})
	ctx := context.Background()
	a := &warden.Principal{Name: "agent-1", Roles: []warden.Role{warden.RoleOperator}, Human: true}
	// A human (key rotation and mass revocation need one), and a human
	// approver that mass revocation keeps.
	env.MustCredential(t, engine.CredentialSpec{Name: "agent-1", Roles: a.Roles, Human: true})
	env.MustCredential(t, engine.CredentialSpec{Name: "human-approver", Roles: []warden.Role{warden.RoleApprover}, Human: true})
	env.MustCredential(t, engineSpec("reader", warden.RoleRead))
	call := func(tool, args string) any {
		t.Helper()
		res, err := env.Governor.CallTool(ctx, a, tool, json.RawMessage(args))
		if err != nil {
			t.Fatalf("%s: %v", tool, err)
		}
		return res
	}
	if _, err := env.Core.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	escalation := []string{"escalation_id", "subject", "from_profile", "to_profile", "escalation_type", "created_at", "expires_at", "reversible", "tem_context_hash"}

	cases := []struct {
		tool, args, path string
		want             []string
	}{
		{"escalate", `{"to_profile":"operator","escalation_type":"operator_request","reason":"r"}`, "",
			[]string{"success", "escalation_id", "subject", "from_profile", "to_profile", "escalation_type", "reversible", "expires_at",
				"receipt_hash", "tem_context_hash", "deescalate_condition", "approved_by", "escalation"}},
		{"escalate_on_threat", `{"threat_id":"t1","threat_type":"exfiltration","confidence":0.85}`, "",
			[]string{"success", "escalation_id", "subject", "from_profile", "to_profile", "escalation_type", "reversible", "expires_at",
				"receipt_hash", "tem_context_hash", "deescalate_condition", "approved_by", "escalation"}},
		{"get_active_escalations", `{}`, "", []string{"active_count", "escalations"}},
		{"get_active_escalations", `{}`, "escalations.0", escalation},
		{"get_escalation_history", `{}`, "", []string{"history", "count", "next_before"}},
		{"get_escalation_history", `{}`, "history.0", []string{"escalation_id", "event_type", "from_profile", "to_profile", "subject",
			"timestamp", "receipt_hash", "seq", "context", "tags"}},
		{"cognitive_decide", `{"decision":"d"}`, "", []string{"success", "decision_id", "profile", "receipt_hash", "seq"}},
		{"cognitive_invoke_tem", `{"threat_id":"t"}`, "", []string{"success", "invocation_id", "profile", "tem_context_hash", "receipt_hash"}},
		{"cognitive_audit_trail", `{}`, "", []string{"decisions", "count", "next_before"}},
		{"treasury_create_budget", `{"budget_id":"b","name":"b","allocated":10,"currency":"U"}`, "",
			[]string{"success", "budget_id", "name", "allocated", "spent", "credited", "currency", "drill", "created_at", "created_by", "balance"}},
		{"treasury_debit", `{"budget_id":"b","amount":1,"description":"d"}`, "", []string{"success", "budget_id", "kind", "amount", "balance", "receipt_hash", "idempotent_replay"}},
		{"treasury_credit", `{"budget_id":"b","amount":2,"description":"c"}`, "", []string{"success", "budget_id", "kind", "amount", "balance", "receipt_hash", "idempotent_replay"}},
		{"treasury_balance", `{"budget_id":"b"}`, "", []string{"success", "budget_id", "name", "allocated", "spent", "credited", "currency", "drill", "created_at", "created_by", "balance"}},
		{"guardian_status", `{}`, "", []string{"status", "drill_mode", "log_size", "root_hash", "scroll_roots", "checkpoint"}},
		{"guardian_status", `{}`, "checkpoint", []string{"size", "root_hash", "note", "created_at"}},
		{"guardian_status", `{}`, "scroll_roots.identity", []string{"size", "root_hash"}},
		{"guardian_anchor", `{}`, "", []string{"success", "checkpoint_size", "root_hash", "checkpoint", "mirror_name", "mirrored", "receipt_hash", "tags"}},
		{"cognitive_context", `{"include":["health","treasury","escalations","profile","incidents","guardian"]}`, "",
			[]string{"health", "treasury", "escalations", "profile", "incidents", "guardian"}},
		{"cognitive_context", `{"include":["health"]}`, "", []string{"health"}},
		{"cognitive_context", `{"include":["health"]}`, "health", []string{"status", "open_incidents", "total_incidents", "receipts", "drill_mode"}},
		{"cognitive_context", `{"include":["treasury"]}`, "treasury", []string{"budgets", "count", "drill_mode", "drill_ceiling"}},
		{"cognitive_context", `{"include":["profile"]}`, "profile", []string{"principal", "profile"}},
		{"cognitive_context", `{"include":["escalations"]}`, "escalations", []string{"active_count", "escalations"}},
		{"cognitive_context", `{"include":["incidents"]}`, "incidents", []string{"total_incidents", "open_incidents", "contained_count", "resolved_count", "by_class", "open_by_severity"}},
		{"check_expired_escalations", `{}`, "", []string{"expired", "count"}},
		{"phoenix_revoke_credentials", `{}`, "", []string{"success", "revoked", "dry_run"}},
		{"phoenix_lockdown", `{"reason":"r"}`, "", []string{"success", "lockdown_id", "results", "dry_run"}},
		{"deescalate", `{"escalation_id":"ESC","deescalation_type":"operator_release"}`, "",
			[]string{"success", "escalation_id", "from_profile", "to_profile", "deescalation_type", "reason", "receipt_hash", "duration_seconds", "hops"}},
		{"phoenix_rotate_key", `{}`, "", []string{"success", "old_pubkey", "new_pubkey", "handover_checkpoint_size", "dry_run"}},
	}
	var escID string
	for _, tc := range cases {
		args := strings.Replace(tc.args, "ESC", escID, 1)
		res := call(tc.tool, args)
		if r, ok := res.(*governor.EscalateResult); ok {
			escID = r.EscalationID
		}
		want := slices.Clone(tc.want)
		slices.Sort(want)
		if d := cmp.Diff(want, members(t, res, tc.path)); d != "" {
			t.Errorf("%s %s at %q (-want +got):\n%s", tc.tool, tc.args, tc.path, d)
		}
	}
}

// TestDrillRotationMembers: a drill rotation answers that it was a dry run
// and nothing more.
func TestDrillRotationMembers(t *testing.T) {
	open := map[string]warden.Profile{}
	for k := range governor.DefaultAuthority {
		open[k] = warden.ProfileObserver
	}
	env := wardentest.MustEnv(t, wardentest.Drill, func(c *stack.Config) { c.Governor.Authority = open })
	env.MustCredential(t, engine.CredentialSpec{Name: "a", Roles: []warden.Role{warden.RoleRead}, Human: true})
	res, err := env.Governor.CallTool(context.Background(), &warden.Principal{Name: "a", Roles: []warden.Role{warden.RoleRead}}, "phoenix_rotate_key", nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"dry_run", "success"}, members(t, res, "")); d != "" {
		t.Error(d)
	}
}

// TestApprovalToolMembers: the approval tools' answers.
func TestApprovalToolMembers(t *testing.T) {
	env := wardentest.MustEnv(t)
	ctx := context.Background()
	env.MustCredential(t, engineSpec("ap", warden.RoleApprover))
	ap := &warden.Principal{Name: "ap", Roles: []warden.Role{warden.RoleApprover}}
	admin := &warden.Principal{Name: "root", Roles: []warden.Role{warden.RoleAdmin}}
	res, err := env.Governor.CallTool(ctx, ap, "approve_escalation", json.RawMessage(`{"request_digest":"`+strings.Repeat("ab", 32)+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"approval", "success"}, members(t, res, "")); d != "" {
		t.Error(d)
	}
	res, err = env.Governor.CallTool(ctx, admin, "register_approver_key", json.RawMessage(`{"approver":"ap","public_key":"`+strings.Repeat("A", 43)+`="}`))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"approver", "success"}, members(t, res, "")); d != "" {
		t.Error(d)
	}
}

func engineSpec(name string, role warden.Role) engine.CredentialSpec {
	return engine.CredentialSpec{Name: name, Roles: []warden.Role{role}}
}
