package mcp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/contain"
	"github.com/warden-sh/warden/engine"
	"github.com/warden-sh/warden/engine/stack"
	"github.com/warden-sh/warden/wardentest"
)

// The drills of seed 000 (the controlled failure drill runbook), each run
// by agents over MCP (SDK client, streamable HTTP) against a real server on
// 127.0.0.1:0 over a real store, in drill mode, with the clock injected.

// drillEnv is a drill-mode environment wired like `warden serve --drill`:
// the live HTTP actuator, which the engine in drill mode must only ask
// what it would do; serving /mcp.
func drillEnv(t *testing.T) (*wardentest.Env, string) {
	t.Helper()
	env := wardentest.MustEnv(t, wardentest.Drill, func(c *stack.Config) {
		c.Recorder.Actuator = &contain.HTTPActuator{Clock: c.Core.Clock, Logger: slog.New(slog.DiscardHandler)}
	})
	return env, env.MustMCPServer(t)
}

// Drill 0: pre-flight safety gates.
func TestDrill0PreflightGates(t *testing.T) {
	env, base := drillEnv(t)
	if _, err := env.Core.Start(context.Background(), engine.StartInfo{Version: "test", Addr: base}); err != nil {
		t.Fatal(err)
	}
	a := newAgent(t, env, base, "drill-agent", warden.RoleRead)

	// Pass condition: a receipt proves DRILL_MODE = ON.
	starts := env.MustReceipts(t, warden.ReceiptFilter{Type: warden.ReceiptServerStart, Tag: "DRILL_MODE=ON"})
	if len(starts) != 1 || body(t, starts[0])["drill_mode"] != true {
		t.Fatalf("server_start receipts tagged DRILL_MODE=ON: %v", starts)
	}

	ctx := a.call("cognitive_context", map[string]any{"include": []string{"health", "treasury"}})
	health := ctx["health"].(map[string]any)
	if health["status"] != "operational" || health["drill_mode"] != true {
		t.Fatalf("health = %v, want operational in drill mode", health)
	}
	treasury := ctx["treasury"].(map[string]any)
	if treasury["drill_mode"] != true || treasury["drill_ceiling"] != float64(warden.DrillBudgetCeiling) {
		t.Fatalf("treasury = %v, want drill mode with ceiling 1000", treasury)
	}

	// Treasury: training budgets isolated, ceiling 1000 enforced.
	a.refused("treasury_create_budget", map[string]any{"budget_id": "drill-over-ceiling", "name": "too big", "allocated": 1001, "currency": "DRILL_UNITS"},
		warden.EDENIED, "capped at 1000")
	denials := receipts(t, env, warden.ReceiptTreasuryDeny)
	if len(denials) != 1 || body(t, denials[0])["requested"] != float64(1001) {
		t.Fatalf("treasury_denial receipts for the 1001-unit budget: %v", denials)
	}
	b := a.call("treasury_create_budget", map[string]any{"budget_id": "drill-training", "name": "Training", "allocated": 1000, "currency": "DRILL_UNITS"})
	if b["drill"] != true || b["balance"] != float64(1000) {
		t.Fatalf("training budget = %v, want a drill budget of 1000", b)
	}
	// Verify the training budget exists.
	ctx = a.call("cognitive_context", map[string]any{"include": []string{"treasury"}})
	budgets := ctx["treasury"].(map[string]any)["budgets"].([]any)
	if len(budgets) != 1 || budgets[0].(map[string]any)["budget_id"] != "drill-training" {
		t.Fatalf("budgets in context = %v", budgets)
	}

	// Guardian anchoring: guardian only, tagged DRILL/*.
	a.refused("guardian_anchor", nil, warden.EDENIED, "requires profile guardian")
	a.escalate("operator")
	a.escalate("guardian")
	anchor := a.call("guardian_anchor", nil)
	if !slices.Contains(anchor["tags"].([]any), any("DRILL/anchor")) || !strings.HasPrefix(anchor["mirror_name"].(string), "DRILL-") {
		t.Fatalf("anchor = %v, want DRILL/anchor tag and DRILL- mirror name", anchor)
	}
	if r := byHash(t, env, anchor["receipt_hash"]); r.Type != warden.ReceiptGuardianAnchor || !hasTag(r, "DRILL/") {
		t.Fatalf("anchor receipt %s tags %v", r.Type, r.Tags)
	}

	// No receipt of a drill can be mistaken for a real one.
	for _, r := range env.MustReceipts(t, warden.ReceiptFilter{}) {
		if !hasTag(r, "DRILL/") {
			t.Errorf("receipt %d (%s) has no DRILL/* tag: %v", r.Seq, r.Type, r.Tags)
		}
	}
}

// Drill 1: false-positive threat → Tem → TTL de-escalation to baseline.
func TestDrill1FalsePositiveThreat(t *testing.T) {
	const marker = "DRILL/FP-THREAT/2025-12-18"
	env, base := drillEnv(t)
	a := newAgent(t, env, base, "drill-agent", warden.RoleRead)
	bystander := newAgent(t, env, base, "bystander", warden.RoleRead)
	t0 := env.Clock.Now()

	// Step 1, observer: reading context writes nothing.
	before := len(env.MustReceipts(t, warden.ReceiptFilter{}))
	if p := a.profile(); p != "observer" {
		t.Fatalf("baseline profile %s", p)
	}
	a.call("cognitive_context", map[string]any{"include": []string{"health", "escalations"}})
	if after := len(env.MustReceipts(t, warden.ReceiptFilter{})); after != before {
		t.Fatalf("read-only context wrote %d receipts", after-before)
	}

	// Step 2: operator, then the synthetic threat raises operator → guardian.
	op := a.escalate("operator")
	res := a.call("escalate_on_threat", map[string]any{"current_profile": "operator", "threat_id": "thr_" + marker,
		"threat_type": "synthetic_drill", "confidence": 0.92})
	if res["success"] != true || res["from_profile"] != "operator" || res["to_profile"] != "guardian" || res["reversible"] != true {
		t.Fatalf("escalate_on_threat = %v", res)
	}
	hash, _ := res["tem_context_hash"].(string)
	if hash == "" || res["escalation_id"] == "" || res["expires_at"] == nil {
		t.Fatalf("escalate_on_threat = %v, want tem_context_hash, escalation_id, expires_at", res)
	}
	rcpt := byHash(t, env, res["receipt_hash"])
	if b := body(t, rcpt); rcpt.Type != warden.ReceiptEscalation || b["tem_context_hash"] != hash || b["reversible"] != true {
		t.Fatalf("escalation receipt %s body %v, want tem_context_hash %s inside", rcpt.Type, b, hash)
	}
	if !slices.Contains(rcpt.Tags, "thr_"+marker) {
		t.Fatalf("escalation receipt tags %v lack the drill marker", rcpt.Tags)
	}

	// Steps 3 and 4, guardian: a decision and a Tem invocation, receipted.
	dec := a.call("cognitive_decide", map[string]any{"decision": "treat thr_" + marker + " as a false positive",
		"reasoning": "synthetic drill threat", "confidence": 0.9, "evidence": []string{"thr_" + marker}})
	if r := byHash(t, env, dec["receipt_hash"]); dec["profile"] != "guardian" || r.Type != warden.ReceiptDecision || r.Scroll != warden.ScrollCognitive {
		t.Fatalf("decision %v receipted as %s in %s", dec, r.Type, r.Scroll)
	}
	tem := a.call("cognitive_invoke_tem", map[string]any{"threat_id": "thr_" + marker, "threat_type": "synthetic_drill", "reason": "DRILL"})
	if r := byHash(t, env, tem["receipt_hash"]); tem["profile"] != "guardian" || r.Type != warden.ReceiptTemInvocation || r.Scroll != warden.ScrollCognitive ||
		body(t, r)["tem_context_hash"] != tem["tem_context_hash"] {
		t.Fatalf("tem %v receipted as %s in %s", tem, r.Type, r.Scroll)
	}

	// Fail condition: Tem invoked without guardian authority.
	failures := len(authFailures(t, env))
	bystander.refused("cognitive_invoke_tem", map[string]any{"threat_id": "thr_" + marker}, warden.EDENIED, "requires profile guardian")
	af := authFailures(t, env)
	if len(af) != failures+1 || af[len(af)-1]["tool"] != "cognitive_invoke_tem" || af[len(af)-1]["principal"] != "bystander" {
		t.Fatalf("auth_failure receipts after the observer's Tem call: %v", af[failures:])
	}
	if n := len(receipts(t, env, warden.ReceiptTemInvocation)); n != 1 {
		t.Fatalf("%d tem_invocation receipts, want only the guardian's", n)
	}

	// Steps 5 and 6: TTL de-escalation, from the stored deadlines. The
	// guardian hop's TTL is the hop's 7200 s at most; nothing comes down
	// before it, and past 7200 s the ladder is back at baseline, one
	// receipted hop at a time.
	deadline := func(m map[string]any) time.Time {
		t.Helper()
		at, err := time.Parse(warden.TimeFormat, m["expires_at"].(string))
		if err != nil {
			t.Fatal(err)
		}
		return at
	}
	guardianExp, operatorExp := deadline(res), deadline(op)
	if guardianExp.After(t0.Add(7200*time.Second)) || !guardianExp.After(t0) || operatorExp.After(guardianExp) {
		t.Fatalf("deadlines: operator %s, guardian %s (start %s)", operatorExp, guardianExp, t0)
	}
	env.Clock.Advance(guardianExp.Add(-time.Second).Sub(env.Clock.Now()))
	if got := a.call("check_expired_escalations", nil); got["count"] != float64(0) || a.profile() != "guardian" {
		t.Fatalf("sweep 1 s before the guardian deadline = %v, profile %s; want nothing undone", got, a.profile())
	}
	env.Clock.Advance(t0.Add(7201 * time.Second).Sub(env.Clock.Now()))
	swept := a.call("check_expired_escalations", nil)
	var hops []string
	for _, r := range swept["expired"].([]any) {
		for _, h := range r.(map[string]any)["hops"].([]any) {
			h := h.(map[string]any)
			hops = append(hops, fmt.Sprintf("%s→%s", h["from_profile"], h["to_profile"]))
		}
	}
	if want := []string{"guardian→operator", "operator→observer"}; !slices.Equal(hops, want) {
		t.Fatalf("sweep past the TTLs undid %v, want %v", hops, want)
	}
	if p := a.profile(); p != "observer" {
		t.Fatalf("final profile %s, want observer", p)
	}
	if act := a.call("get_active_escalations", nil); act["active_count"] != float64(0) {
		t.Fatalf("active escalations after return to baseline: %v", act)
	}

	// Every transition has exactly one receipt.
	ids := map[string]bool{op["escalation_id"].(string): true, res["escalation_id"].(string): true}
	for typ, wantType := range map[string]string{warden.ReceiptEscalation: "", warden.ReceiptDeescalation: "timeout_expired"} {
		count := map[string]int{}
		for _, r := range receipts(t, env, typ) {
			b := body(t, r)
			count[b["escalation_id"].(string)]++
			if wantType != "" && b["deescalation_type"] != wantType {
				t.Errorf("%s receipt %d: deescalation_type %v", typ, r.Seq, b["deescalation_type"])
			}
		}
		for id := range ids {
			if count[id] != 1 {
				t.Errorf("escalation %s has %d %s receipts, want 1", id, count[id], typ)
			}
		}
		if len(count) != len(ids) {
			t.Errorf("%s receipts for escalations %v, want only %v", typ, count, ids)
		}
	}

	// The drill marker is findable in the history.
	hist := a.call("get_escalation_history", nil)
	found := false
	for _, h := range hist["history"].([]any) {
		s, _ := json.Marshal(h)
		found = found || strings.Contains(string(s), marker)
	}
	if !found || hist["count"] != float64(4) {
		t.Fatalf("history (%v entries) lacks %s: %v", hist["count"], marker, hist["history"])
	}
}

// Drill 3: escalation abuse — skipping a level, missing approval.
func TestDrill3EscalationAbuse(t *testing.T) {
	env, base := drillEnv(t)
	a := newAgent(t, env, base, "drill-agent", warden.RoleRead)

	// A caller cannot claim a profile it does not hold.
	// The seed's calls omit reason (its escalate() had no such parameter);
	// warden requires it, as every hop of the seed's ladder does.
	a.refused("escalate", map[string]any{"from_profile": "guardian", "to_profile": "phoenix", "escalation_type": "crisis_declared", "reason": "DRILL: abuse"},
		warden.EDENIED, "No escalation path")

	a.escalate("operator")
	denied := len(receipts(t, env, warden.ReceiptEscalationDenied))
	m := a.refused("escalate", map[string]any{"from_profile": "operator", "to_profile": "phoenix", "escalation_type": "threat_detected", "reason": "DRILL: abuse"},
		warden.EDENIED, "No escalation path from operator to phoenix")
	if m["success"] != false {
		t.Fatalf("skip-level result %v", m)
	}
	if p := a.profile(); p != "operator" {
		t.Fatalf("profile after skip-level attempt: %s", p)
	}
	d := receipts(t, env, warden.ReceiptEscalationDenied)
	if len(d) != denied+1 || body(t, d[len(d)-1])["to_profile"] != "phoenix" || !strings.Contains(body(t, d[len(d)-1])["reason"].(string), "No escalation path") {
		t.Fatalf("skip-level denial receipts: %v", d[denied:])
	}

	a.escalate("guardian")
	m = a.refused("escalate", map[string]any{"from_profile": "guardian", "to_profile": "phoenix", "escalation_type": "crisis_declared", "reason": "DRILL: abuse"},
		warden.EDENIED, "requires approval")
	if m["approval_required"] != true || !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(fmt.Sprint(m["request_digest"])) {
		t.Fatalf("missing-approval result %v, want approval_required and request_digest", m)
	}
	if p := a.profile(); p != "guardian" {
		t.Fatalf("profile after missing-approval attempt: %s", p)
	}
	d = receipts(t, env, warden.ReceiptEscalationDenied)
	if last := body(t, d[len(d)-1]); len(d) != denied+2 || !strings.Contains(last["reason"].(string), "requires approval") {
		t.Fatalf("missing-approval denial receipts: %v", d[denied:])
	}
	if n := len(receipts(t, env, warden.ReceiptEscalation)); n != 2 {
		t.Fatalf("%d profile_escalation receipts, want 2 (no profile change from the abuse)", n)
	}
}

// Drill 2: budget pressure — an over-budget debit is blocked before write.
func TestDrill2BudgetPressure(t *testing.T) {
	env, base := drillEnv(t)
	a := newAgent(t, env, base, "drill-agent", warden.RoleRead)

	a.call("treasury_create_budget", map[string]any{"budget_id": "drill-budget-001", "name": "Drill Training Budget", "allocated": 100, "currency": "DRILL_UNITS"})
	m := a.refused("treasury_debit", map[string]any{"budget_id": "drill-budget-001", "amount": 500, "description": "DRILL: Intentional over-budget attempt"},
		warden.EINSUFFICIENT, "")
	if m["error"] == nil || !strings.Contains(strings.ToLower(m["error"].(string)), "insufficient") {
		t.Fatalf("over-budget debit = %v", m)
	}
	d := receipts(t, env, warden.ReceiptTreasuryDeny)
	if len(d) != 1 {
		t.Fatalf("%d treasury_denial receipts, want 1", len(d))
	}
	b := body(t, d[0])
	if b["attempted_action"] != "debit" || b["requested"] != float64(500) || b["available"] != float64(100) ||
		!strings.Contains(b["reason"].(string), "insufficient") || b["budget_id"] != "drill-budget-001" {
		t.Fatalf("treasury_denial body %v, want attempted action, requested, available and reason", b)
	}
	if n := len(receipts(t, env, warden.ReceiptDebit)); n != 0 {
		t.Fatalf("%d debit receipts after a blocked debit", n)
	}
	bal := a.call("treasury_balance", map[string]any{"budget_id": "drill-budget-001"})
	if bal["balance"] != float64(100) || bal["spent"] != float64(0) {
		t.Fatalf("balance after blocked debit = %v, want unchanged", bal)
	}
}

// Drill 4: Phoenix readiness, non-destructive.
func TestDrill4PhoenixReadiness(t *testing.T) {
	const approverName = "did:vm:sovereign:drill-approver"
	env, base := drillEnv(t)
	a := newAgent(t, env, base, "drill-agent", warden.RoleRead)
	approver := newAgent(t, env, base, approverName, warden.RoleApprover)
	a.escalate("operator")
	a.escalate("guardian")
	phoenix := map[string]any{"reason": "DRILL: Phoenix readiness test", "approved_by": approverName}

	// Unknown and self approvals are denied.
	a.refused("escalate_to_phoenix", map[string]any{"reason": "DRILL", "approved_by": "did:vm:nobody"}, warden.EDENIED, "not a registered approver")
	a.refused("escalate_to_phoenix", map[string]any{"reason": "DRILL", "approved_by": "drill-agent"}, warden.EDENIED, "cannot approve its own")

	// The named approver has not approved yet: denied, with the digest to approve.
	m := a.refused("escalate_to_phoenix", phoenix, warden.EDENIED, "requires approval")
	digest, _ := m["request_digest"].(string)
	if len(digest) != 64 || m["approval_required"] != true {
		t.Fatalf("denial %v, want request_digest and approval_required", m)
	}

	// A principal without the approver role cannot approve (receipted).
	failures := len(authFailures(t, env))
	a.refused("approve_escalation", map[string]any{"request_digest": digest}, warden.EFORBIDDEN, "approve escalations")
	if af := authFailures(t, env); len(af) != failures+1 || af[len(af)-1]["principal"] != "drill-agent" || af[len(af)-1]["status"] != float64(403) {
		t.Fatalf("auth_failure receipts after a non-approver's approval: %v", af[failures:])
	}
	a.refused("escalate_to_phoenix", phoenix, warden.EDENIED, "has not approved")

	// The approver approves in its own session; the retry enters phoenix.
	ap := approver.call("approve_escalation", map[string]any{"request_digest": digest})
	if ap["success"] != true || ap["approval"].(map[string]any)["approver"] != approverName {
		t.Fatalf("approval = %v", ap)
	}
	res := a.call("escalate_to_phoenix", phoenix)
	if res["to_profile"] != "phoenix" || res["expires_at"] == nil || !slices.Contains(res["approved_by"].([]any), any(approverName)) {
		t.Fatalf("escalate_to_phoenix = %v", res)
	}
	if r := byHash(t, env, res["receipt_hash"]); r.Type != warden.ReceiptEscalation || body(t, r)["to_profile"] != "phoenix" {
		t.Fatalf("phoenix activation receipt %s %v", r.Type, body(t, r))
	}
	active := a.call("get_active_escalations", nil)
	phoenixActive := false
	for _, e := range active["escalations"].([]any) {
		e := e.(map[string]any)
		phoenixActive = phoenixActive || (e["to_profile"] == "phoenix" && e["expires_at"] != nil)
	}
	if !phoenixActive {
		t.Fatalf("phoenix not active with a TTL: %v", active)
	}

	// Destructive operations are dry-run in drill mode.
	lock := a.call("phoenix_lockdown", map[string]any{"reason": "DRILL: readiness"})
	if lock["dry_run"] != true || lock["success"] != true {
		t.Fatalf("lockdown = %v, want a successful dry run", lock)
	}
	for _, r := range lock["results"].([]any) {
		if r.(map[string]any)["dry_run"] != true {
			t.Fatalf("lockdown action %v was not dry-run", r)
		}
	}
	// Mass revocation is not an agent's to run, drill or not: the agent
	// is refused (a human requester is needed), and the refusal receipted.
	failures = len(authFailures(t, env))
	a.refused("phoenix_revoke_credentials", nil, warden.EDENIED, "requires a human requester")
	if af := authFailures(t, env); len(af) != failures+1 || af[len(af)-1]["tool"] != "phoenix_revoke_credentials" {
		t.Fatalf("auth_failure receipts after the agent's mass revocation: %v", af[failures:])
	}
	approver.call("get_active_escalations", nil) // still authenticates: nothing was revoked
	if r := receipts(t, env, warden.ReceiptPhoenixLock); len(r) != 1 || body(t, r[0])["dry_run"] != true {
		t.Fatalf("%s receipts %v, want one dry run", warden.ReceiptPhoenixLock, r)
	}
	if r := receipts(t, env, warden.ReceiptPhoenixRevoke); len(r) != 0 {
		t.Fatalf("%s receipts %v after a refusal", warden.ReceiptPhoenixRevoke, r)
	}

	// De-escalate: back to baseline, one receipted hop at a time.
	before := len(receipts(t, env, warden.ReceiptDeescalation))
	a.call("deescalate", map[string]any{"escalation_id": res["escalation_id"], "deescalation_type": "crisis_concluded", "reason": "DRILL: Phoenix test complete"})
	if act := a.call("get_active_escalations", nil); act["active_count"] != float64(0) {
		t.Fatalf("active after crisis_concluded: %v", act)
	}
	var hops []string
	for _, r := range receipts(t, env, warden.ReceiptDeescalation)[before:] {
		b := body(t, r)
		if b["deescalation_type"] != "crisis_concluded" {
			t.Errorf("de-escalation receipt %d type %v", r.Seq, b["deescalation_type"])
		}
		hops = append(hops, fmt.Sprintf("%s→%s", b["to_profile"], b["from_profile"]))
	}
	if want := []string{"phoenix→guardian", "guardian→operator", "operator→observer"}; !slices.Equal(hops, want) {
		t.Fatalf("de-escalation receipts %v, want %v", hops, want)
	}
	if p := a.profile(); p != "observer" {
		t.Fatalf("final profile %s", p)
	}
}
