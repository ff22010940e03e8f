package governor_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine"
	"github.com/warden-sh/warden/engine/governor"
	"github.com/warden-sh/warden/engine/stack"
	"github.com/warden-sh/warden/sqlite"
	"github.com/warden-sh/warden/wardentest"
)

func agent(name string) *warden.Principal {
	return &warden.Principal{Name: name, Roles: []warden.Role{warden.RoleRead}}
}

func mustEscalate(t *testing.T, env *wardentest.Env, p *warden.Principal, to warden.Profile, extra ...func(*governor.EscalateRequest)) *governor.EscalateResult {
	t.Helper()
	req := governor.EscalateRequest{ToProfile: string(to), EscalationType: string(warden.EscalationOperatorRequest), Reason: "test"}
	for _, f := range extra {
		f(&req)
	}
	res, err := env.Governor.Escalate(context.Background(), p, req)
	if err != nil {
		t.Fatalf("escalate to %s: %v", to, err)
	}
	return res
}

func receiptsOfType(t *testing.T, env *wardentest.Env, typ string) []*warden.Receipt {
	t.Helper()
	return env.MustReceipts(t, warden.ReceiptFilter{Type: typ})
}

func TestLadderRulesAndSeedSentences(t *testing.T) {
	env := wardentest.MustEnv(t)
	ctx := context.Background()
	a := agent("agent-1")
	cases := []struct {
		name string
		req  governor.EscalateRequest
		want string
		data string
	}{
		{"skip level", governor.EscalateRequest{ToProfile: "guardian", EscalationType: "threat_detected", Reason: "x"}, "No escalation path from observer to guardian", ""},
		{"claimed from_profile", governor.EscalateRequest{FromProfile: "operator", ToProfile: "guardian", EscalationType: "threat_detected", Reason: "x"}, "No escalation path from operator to guardian", ""},
		{"downward", governor.EscalateRequest{ToProfile: "observer", EscalationType: "threat_detected", Reason: "x"}, "No escalation path from observer to observer", ""},
		{"no reason", governor.EscalateRequest{ToProfile: "operator", EscalationType: "operator_request"}, "requires a reason", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(receiptsOfType(t, env, warden.ReceiptEscalationDenied))
			_, err := env.Governor.Escalate(ctx, a, tc.req)
			if warden.ErrorCode(err) != warden.EDENIED || !strings.Contains(warden.ErrorMessage(err), tc.want) {
				t.Fatalf("got %v, want denial containing %q", err, tc.want)
			}
			if n := len(receiptsOfType(t, env, warden.ReceiptEscalationDenied)); n != before+1 {
				t.Fatalf("denial not receipted")
			}
			if p, _ := env.Governor.CurrentProfile(ctx, a.Name); p != warden.ProfileObserver {
				t.Fatalf("profile changed to %s", p)
			}
		})
	}
	mustEscalate(t, env, a, warden.ProfileOperator)
	mustEscalate(t, env, a, warden.ProfileGuardian)
	// guardian → phoenix without approval: the seed's sentence and flag.
	_, err := env.Governor.Escalate(ctx, a, governor.EscalateRequest{ToProfile: "phoenix", EscalationType: "crisis_declared", Reason: "x"})
	var we *warden.Error
	if !errors.As(err, &we) || !strings.Contains(we.Message, "Escalation to phoenix requires approval") || we.Data["approval_required"] != true || we.Data["request_digest"] == nil {
		t.Fatalf("missing approval: %#v", err)
	}
	digest := we.Data["request_digest"].(string)
	// Self-approval and unknown approvers are denied; so is an approver who has not approved.
	for _, approver := range []string{"agent-1", "nobody"} {
		_, err := env.Governor.Escalate(ctx, a, governor.EscalateRequest{ToProfile: "phoenix", EscalationType: "crisis_declared", Reason: "x", ApprovedBy: governor.StringList{approver}})
		if warden.ErrorCode(err) != warden.EDENIED {
			t.Fatalf("approver %s: %v", approver, err)
		}
	}
	env.MustCredential(t, engine.CredentialSpec{Name: "approver-1", Roles: []warden.Role{warden.RoleApprover}})
	_, err = env.Governor.Escalate(ctx, a, governor.EscalateRequest{ToProfile: "phoenix", EscalationType: "crisis_declared", Reason: "x", ApprovedBy: governor.StringList{"approver-1"}})
	if warden.ErrorCode(err) != warden.EDENIED || !strings.Contains(warden.ErrorMessage(err), "has not approved") {
		t.Fatalf("unapproved: %v", err)
	}
	approver := &warden.Principal{Name: "approver-1", Roles: []warden.Role{warden.RoleApprover}}
	if _, err := env.Governor.Approve(ctx, a, digest); warden.ErrorCode(err) != warden.EFORBIDDEN {
		t.Fatalf("non-approver approved: %v", err)
	}
	if _, err := env.Governor.Approve(ctx, approver, digest); err != nil {
		t.Fatal(err)
	}
	res := mustEscalate(t, env, a, warden.ProfilePhoenix, func(r *governor.EscalateRequest) {
		r.EscalationType, r.ApprovedBy = "crisis_declared", governor.StringList{"approver-1"}
	})
	if res.ExpiresAt == nil || !res.Reversible {
		t.Fatalf("phoenix escalation: %+v", res)
	}
	// The approval was for one escalation: the digest moved on.
	// phoenix → sovereign is human-only.
	_, err = env.Governor.Escalate(ctx, a, governor.EscalateRequest{ToProfile: "sovereign", EscalationType: "crisis_declared", Reason: "x", ApprovedBy: governor.StringList{"approver-1"}})
	if !strings.Contains(warden.ErrorMessage(err), "Escalation to sovereign requires human (sovereign) approval") {
		t.Fatalf("sovereign: %v", err)
	}
	// Back to baseline, one receipted hop at a time.
	before := len(receiptsOfType(t, env, warden.ReceiptDeescalation))
	d, err := env.Governor.Deescalate(ctx, a, governor.DeescalateRequest{EscalationID: res.EscalationID, DeescalationType: string(warden.DeescalationCrisisConcluded), Reason: "done"})
	if err != nil || len(d.Hops) != 3 || d.ToProfile != warden.ProfileObserver {
		t.Fatalf("deescalate: %+v %v", d, err)
	}
	if n := len(receiptsOfType(t, env, warden.ReceiptDeescalation)); n != before+3 {
		t.Fatalf("%d de-escalation receipts, want 3", n-before)
	}
	if _, err := env.Governor.Deescalate(ctx, a, governor.DeescalateRequest{EscalationID: res.EscalationID, DeescalationType: string(warden.DeescalationOperatorRelease), Reason: ""}); !strings.Contains(warden.ErrorMessage(err), "not found or already inactive") {
		t.Fatalf("second deescalate: %v", err)
	}
}

// TestEscalateMissingArguments: a missing or empty target profile or
// escalation type is named as required, the same sentence whether the
// member is absent (the decoder) or empty (the ladder), for every
// transport; never `Unknown profile ""`.
func TestEscalateMissingArguments(t *testing.T) {
	env := wardentest.MustEnv(t)
	a := agent("agent-1")
	for _, tc := range []struct{ args, want string }{
		{`{}`, "to_profile is required."},
		{`{"to_profile":"","escalation_type":"operator_request","reason":"x"}`, "to_profile is required."},
		{`{"to_profile":"operator","escalation_type":"","reason":"x"}`, "escalation_type is required."},
		{`{"to_profile":"operator","reason":"x"}`, "escalation_type is required."},
	} {
		_, err := env.Governor.CallTool(context.Background(), a, "escalate", json.RawMessage(tc.args))
		if warden.ErrorCode(err) != warden.EINVALID || warden.ErrorMessage(err) != tc.want {
			t.Errorf("escalate %s: %v, want invalid %q", tc.args, err, tc.want)
		}
	}
}

func TestTemContextHashIsInsideTheReceipt(t *testing.T) {
	env := wardentest.MustEnv(t)
	res := mustEscalate(t, env, agent("a"), warden.ProfileOperator)
	rs := receiptsOfType(t, env, warden.ReceiptEscalation)
	var body struct {
		TemContextHash string `json:"tem_context_hash"`
		EscalationID   string `json:"escalation_id"`
	}
	json.Unmarshal(rs[len(rs)-1].Body, &body)
	if body.TemContextHash == "" || body.TemContextHash != res.TemContextHash || body.EscalationID != res.EscalationID || rs[len(rs)-1].RootHash != res.ReceiptHash {
		t.Fatalf("receipt body %+v vs result %+v", body, res)
	}
}

func TestTTLSweepOneHopAtATimeAndSurvivesRestart(t *testing.T) {
	env := wardentest.MustEnv(t)
	ctx := context.Background()
	a := agent("agent-ttl")
	mustEscalate(t, env, a, warden.ProfileOperator)                                                              // TTL 3600
	mustEscalate(t, env, a, warden.ProfileGuardian, func(r *governor.EscalateRequest) { r.TTLSeconds = 999999 }) // capped at 7200

	// Restart in the middle: close the store, reopen the same file, new engine.
	env.Store.Close()
	st, err := sqlite.Open(env.Dir.DBPath(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s, err := stack.New(stack.Config{Core: engine.Options{Store: st, Clock: env.Clock.Now, Signer: env.Dir.Signer, PublicKey: env.Dir.PublicKey}})
	if err != nil {
		t.Fatal(err)
	}
	gov := s.Governor
	if p, _ := gov.CurrentProfile(ctx, a.Name); p != warden.ProfileGuardian {
		t.Fatalf("after restart profile %s", p)
	}
	// guardian's deadline is capped at the operator hop's (a hop never
	// outlives the one it stands on): nothing moves before 3600 s ...
	env.Clock.Advance(3599 * time.Second)
	if res, err := gov.SweepExpired(ctx); err != nil || len(res) != 0 {
		t.Fatalf("sweep before the deadline: %v %v", res, err)
	}
	// ... and at 3600 s guardian comes down, then operator: two receipts.
	env.Clock.Advance(time.Second)
	res, err := gov.SweepExpired(ctx)
	if err != nil || len(res) != 2 {
		t.Fatalf("sweep: %+v %v", res, err)
	}
	if p, _ := gov.CurrentProfile(ctx, a.Name); p != warden.ProfileObserver {
		t.Fatalf("profile after sweep %s", p)
	}
	var list []*warden.Receipt
	st.View(ctx, func(tx warden.ReadTx) (err error) {
		list, err = tx.Receipts(warden.ReceiptFilter{Type: warden.ReceiptDeescalation, Limit: 100})
		return err
	})
	if len(list) != 2 {
		t.Fatalf("%d de-escalation receipts", len(list))
	}
	var first struct {
		FromProfile, ToProfile, DeescalationType string `json:"-"`
	}
	_ = first
	if !strings.Contains(string(list[0].Body), `"to_profile":"guardian"`) || !strings.Contains(string(list[0].Body), `"deescalation_type":"timeout_expired"`) {
		t.Fatalf("first hop down: %s", list[0].Body)
	}
}

// TestConcurrentDebitsNeverOverspend: N goroutines' debits together exceed
// the balance; exactly an affordable set succeeds and the rest are
// receipted denials.
func TestConcurrentDebitsNeverOverspend(t *testing.T) {
	env := wardentest.MustEnv(t)
	ctx := context.Background()
	op := agent("treasurer")
	if _, err := env.Governor.CreateBudget(ctx, op, governor.CreateBudgetRequest{BudgetID: "b1", Name: "B", Allocated: 1000, Currency: "UNITS"}); err != nil {
		t.Fatal(err)
	}
	const n = 64
	var ok, insufficient atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, err := env.Governor.Debit(ctx, op, governor.MoveRequest{BudgetID: "b1", Amount: 37, Description: fmt.Sprint(i)})
			switch warden.ErrorCode(err) {
			case "":
				ok.Add(1)
			case warden.EINSUFFICIENT:
				insufficient.Add(1)
			default:
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	if ok.Load() != 1000/37 || insufficient.Load() != n-1000/37 {
		t.Fatalf("%d succeeded, %d insufficient; want %d and %d", ok.Load(), insufficient.Load(), 1000/37, n-1000/37)
	}
	b, _ := env.Governor.Budget(ctx, "b1")
	if b.Balance != 1000-37*(1000/37) || b.Balance < 0 {
		t.Fatalf("balance %d", b.Balance)
	}
	if d := len(receiptsOfType(t, env, warden.ReceiptTreasuryDeny)); d != int(insufficient.Load()) {
		t.Fatalf("%d denial receipts for %d denials", d, insufficient.Load())
	}
}

func TestDebitIdempotencyAndDenialReceipt(t *testing.T) {
	env := wardentest.MustEnv(t)
	ctx := context.Background()
	op := agent("a")
	env.Governor.CreateBudget(ctx, op, governor.CreateBudgetRequest{BudgetID: "drill-budget-001", Name: "Drill Training Budget", Allocated: 100, Currency: "DRILL_UNITS"})
	_, err := env.Governor.Debit(ctx, op, governor.MoveRequest{BudgetID: "drill-budget-001", Amount: 500, Description: "DRILL: Intentional over-budget attempt"})
	if !strings.Contains(strings.ToLower(warden.ErrorMessage(err)), "insufficient") {
		t.Fatalf("over budget: %v", err)
	}
	denials := receiptsOfType(t, env, warden.ReceiptTreasuryDeny)
	var body map[string]any
	json.Unmarshal(denials[0].Body, &body)
	if body["attempted_action"] != "debit" || body["requested"] != float64(500) || body["available"] != float64(100) || body["reason"] == nil {
		t.Fatalf("denial body %v", body)
	}
	r1, err := env.Governor.Debit(ctx, op, governor.MoveRequest{BudgetID: "drill-budget-001", Amount: 30, Description: "x", IdempotencyKey: "k1"})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := env.Governor.Debit(ctx, op, governor.MoveRequest{BudgetID: "drill-budget-001", Amount: 30, Description: "x", IdempotencyKey: "k1"})
	if err != nil || !r2.IdempotentReplay || r2.ReceiptHash != r1.ReceiptHash || r2.Balance != 70 {
		t.Fatalf("replay: %+v %v", r2, err)
	}
	if b, _ := env.Governor.Budget(ctx, "drill-budget-001"); b.Balance != 70 {
		t.Fatalf("retried debit counted twice: balance %d", b.Balance)
	}
	if _, err := env.Governor.Debit(ctx, op, governor.MoveRequest{BudgetID: "drill-budget-001", Amount: 31, IdempotencyKey: "k1"}); warden.ErrorCode(err) != warden.ECONFLICT {
		t.Fatalf("key reuse with another amount: %v", err)
	}
}

func TestDrillBudgetsAreIsolatedAndCapped(t *testing.T) {
	drill := wardentest.MustEnv(t, wardentest.Drill)
	ctx := context.Background()
	op := agent("a")
	if _, err := drill.Governor.CreateBudget(ctx, op, governor.CreateBudgetRequest{BudgetID: "big", Allocated: 1001, Currency: "U"}); warden.ErrorCode(err) != warden.EDENIED {
		t.Fatalf("over the drill ceiling: %v", err)
	}
	if _, err := drill.Governor.CreateBudget(ctx, op, governor.CreateBudgetRequest{BudgetID: "ok", Allocated: 1000, Currency: "U"}); err != nil {
		t.Fatal(err)
	}
	// The same store under a real engine cannot touch the drill budget.
	real, err := stack.New(stack.Config{Core: engine.Options{Store: drill.Store, Clock: drill.Clock.Now, Signer: drill.Dir.Signer, PublicKey: drill.Dir.PublicKey}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := real.Governor.Debit(ctx, op, governor.MoveRequest{BudgetID: "ok", Amount: 1}); warden.ErrorCode(err) != warden.EDENIED {
		t.Fatalf("real engine debited a drill budget: %v", err)
	}
}

func TestAuthorityMatrix(t *testing.T) {
	env := wardentest.MustEnv(t)
	ctx := context.Background()
	a := agent("tem-caller")
	before := len(receiptsOfType(t, env, warden.ReceiptAuthFailure))
	_, err := env.Governor.CallTool(ctx, a, "cognitive_invoke_tem", json.RawMessage(`{"threat_id":"t1"}`))
	if warden.ErrorCode(err) != warden.EDENIED || !strings.Contains(warden.ErrorMessage(err), "requires profile guardian") {
		t.Fatalf("tem at observer: %v", err)
	}
	if n := len(receiptsOfType(t, env, warden.ReceiptAuthFailure)); n != before+1 {
		t.Fatalf("authority denial not receipted as auth_failure")
	}
	mustEscalate(t, env, a, warden.ProfileOperator)
	mustEscalate(t, env, a, warden.ProfileGuardian)
	if _, err := env.Governor.CallTool(ctx, a, "cognitive_invoke_tem", json.RawMessage(`{"threat_id":"t1"}`)); err != nil {
		t.Fatalf("tem at guardian: %v", err)
	}
	if _, err := env.Governor.CallTool(ctx, a, "cognitive_invoke_tem", json.RawMessage(`{"bogus":1}`)); warden.ErrorCode(err) != warden.EINVALID {
		t.Fatalf("unknown argument: %v", err)
	}
	if _, err := env.Governor.CallTool(ctx, a, "no_such_tool", nil); warden.ErrorCode(err) != warden.ENOTFOUND {
		t.Fatalf("unknown tool: %v", err)
	}
}

// BenchmarkAuthorityDecision: the in-memory authority decision.
func BenchmarkAuthorityDecision(b *testing.B) {
	profiles := warden.Profiles
	tools := []string{"cognitive_invoke_tem", "treasury_debit", "escalate", "phoenix_lockdown"}
	for i := 0; b.Loop(); i++ {
		governor.Authorized(governor.DefaultAuthority, tools[i%len(tools)], profiles[i%len(profiles)])
	}
}

// BenchmarkDebit measures durable debits with 64 concurrent agents.
func BenchmarkDebit(b *testing.B) {
	env := wardentest.MustEnv(b)
	ctx := context.Background()
	op := agent("a")
	env.Governor.CreateBudget(ctx, op, governor.CreateBudgetRequest{BudgetID: "b", Allocated: governor.MaxAmount, Currency: "U"})
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := env.Governor.Debit(ctx, op, governor.MoveRequest{BudgetID: "b", Amount: 1, Description: "bench"}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "debits/s")
}

// BenchmarkEscalate measures durable escalations with 64 concurrent agents,
// each escalating a fresh subject observer → operator.
func BenchmarkEscalate(b *testing.B) {
	env := wardentest.MustEnv(b)
	ctx := context.Background()
	var n atomic.Int64
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p := agent(fmt.Sprintf("agent-%d", n.Add(1)))
			if _, err := env.Governor.Escalate(ctx, p, governor.EscalateRequest{ToProfile: "operator", EscalationType: "operator_request", Reason: "bench"}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "escalations/s")
}

// BenchmarkGovernanceSerialLatency reports p50/p99 of one client's durable
// escalate and debit calls.
func BenchmarkGovernanceSerialLatency(b *testing.B) {
	env := wardentest.MustEnv(b)
	ctx := context.Background()
	op := agent("solo")
	env.Governor.CreateBudget(ctx, op, governor.CreateBudgetRequest{BudgetID: "b", Allocated: governor.MaxAmount, Currency: "U"})
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		var err error
		if i%2 == 0 {
			_, err = env.Governor.Escalate(ctx, agent(fmt.Sprintf("s-%d", i)), governor.EscalateRequest{ToProfile: "operator", EscalationType: "operator_request", Reason: "bench"})
		} else {
			_, err = env.Governor.Debit(ctx, op, governor.MoveRequest{BudgetID: "b", Amount: 1})
		}
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// TestQuorumAndSignedApprovals: a 2-of-M quorum needs two distinct
// approvers; one may approve with its credential, the other with an ed25519
// signature over the request digest; a bad signature is denied.
func TestQuorumAndSignedApprovals(t *testing.T) {
	ladder := warden.DefaultLadder()
	for i := range ladder.Hops {
		if ladder.Hops[i].To == warden.ProfilePhoenix {
			ladder.Hops[i].Quorum = 2
		}
	}
	env := wardentest.MustEnv(t, func(c *stack.Config) { c.Governor.Ladder = ladder })
	ctx := context.Background()
	a := agent("crisis-agent")
	mustEscalate(t, env, a, warden.ProfileOperator)
	mustEscalate(t, env, a, warden.ProfileGuardian)
	env.MustCredential(t, engine.CredentialSpec{Name: "appr-1", Roles: []warden.Role{warden.RoleApprover}})
	env.MustCredential(t, engine.CredentialSpec{Name: "appr-2", Roles: []warden.Role{warden.RoleApprover}})
	pub, priv, _ := ed25519.GenerateKey(nil)
	root := &warden.Principal{Name: "root", Roles: []warden.Role{warden.RoleAdmin}}
	if _, err := env.Governor.RegisterApproverKey(ctx, root, governor.ApproverKeyRequest{Approver: "appr-2", PublicKey: base64.StdEncoding.EncodeToString(pub)}); err != nil {
		t.Fatal(err)
	}
	req := governor.EscalateRequest{ToProfile: "phoenix", EscalationType: "crisis_declared", Reason: "outage"}
	_, err := env.Governor.Escalate(ctx, a, req)
	var we *warden.Error
	if !errors.As(err, &we) {
		t.Fatalf("no approval: %v", err)
	}
	digest := we.Data["request_digest"].(string)
	if _, err := env.Governor.Approve(ctx, &warden.Principal{Name: "appr-1", Roles: []warden.Role{warden.RoleApprover}}, digest); err != nil {
		t.Fatal(err)
	}
	req.ApprovedBy = governor.StringList{"appr-1"}
	if _, err := env.Governor.Escalate(ctx, a, req); !strings.Contains(warden.ErrorMessage(err), "1 of 2 approvals") {
		t.Fatalf("one of two: %v", err)
	}
	req.ApprovedBy = governor.StringList{"appr-1", "appr-2"}
	req.ApprovalSignatures = map[string]string{"appr-2": base64.StdEncoding.EncodeToString(ed25519.Sign(priv, []byte("not the digest")))}
	if _, err := env.Governor.Escalate(ctx, a, req); !strings.Contains(warden.ErrorMessage(err), "does not verify") {
		t.Fatalf("bad signature: %v", err)
	}
	req.ApprovalSignatures["appr-2"] = base64.StdEncoding.EncodeToString(ed25519.Sign(priv, []byte(digest)))
	res, err := env.Governor.Escalate(ctx, a, req)
	if err != nil || res.ToProfile != warden.ProfilePhoenix || len(res.ApprovedBy) != 2 {
		t.Fatalf("quorum met: %+v %v", res, err)
	}
}

// TestEscalateOnThreatThresholds: observer → operator at any confidence,
// operator → guardian from 0.8, guardian → phoenix from 0.95 (and phoenix
// still needs approval); below the threshold the seed's sentence is
// returned, escalated false, and the refusal is receipted.
func TestEscalateOnThreatThresholds(t *testing.T) {
	env := wardentest.MustEnv(t)
	ctx := context.Background()
	a := agent("sensor")
	call := func(conf float64) (any, error) {
		return env.Governor.CallTool(ctx, a, "escalate_on_threat", json.RawMessage(fmt.Sprintf(`{"threat_id":"t","threat_type":"x","confidence":%g}`, conf)))
	}
	if res, err := call(0.1); err != nil || res.(*governor.EscalateResult).ToProfile != warden.ProfileOperator {
		t.Fatalf("observer at 0.1: %v %v", res, err)
	}
	before := len(receiptsOfType(t, env, warden.ReceiptEscalationDenied))
	_, err := call(0.79)
	var we *warden.Error
	if !errors.As(err, &we) || we.Message != "Confidence 0.79 insufficient for escalation from operator" || we.Data["escalated"] != false {
		t.Fatalf("operator at 0.79: %#v", err)
	}
	if n := len(receiptsOfType(t, env, warden.ReceiptEscalationDenied)); n != before+1 {
		t.Fatalf("insufficient confidence not receipted")
	}
	if res, err := call(0.8); err != nil || res.(*governor.EscalateResult).ToProfile != warden.ProfileGuardian {
		t.Fatalf("operator at 0.8: %v %v", res, err)
	}
	if _, err := call(0.94); !strings.Contains(warden.ErrorMessage(err), "insufficient for escalation from guardian") {
		t.Fatalf("guardian at 0.94: %v", err)
	}
	if _, err := call(0.95); !strings.Contains(warden.ErrorMessage(err), "Escalation to phoenix requires approval") {
		t.Fatalf("guardian at 0.95: %v", err)
	}
}

// TestSovereignIsIrreversibleWithoutOverride: phoenix → sovereign needs a
// sovereign_override with approval (by humans, for a human); it then falls
// only to sovereign_revoke by a human admin, with the seed's sentence
// otherwise.
func TestSovereignIsIrreversibleWithoutOverride(t *testing.T) {
	env := wardentest.MustEnv(t)
	ctx := context.Background()
	a := agent("crisis")
	env.MustCredential(t, engine.CredentialSpec{Name: "crisis", Roles: a.Roles, Human: true})
	approver := &warden.Principal{Name: "appr", Roles: []warden.Role{warden.RoleApprover}}
	env.MustCredential(t, engine.CredentialSpec{Name: "appr", Roles: []warden.Role{warden.RoleApprover}, Human: true})
	mustEscalate(t, env, a, warden.ProfileOperator)
	mustEscalate(t, env, a, warden.ProfileGuardian)
	approve := func(to warden.Profile, typ string) *governor.EscalateResult {
		t.Helper()
		req := governor.EscalateRequest{ToProfile: string(to), EscalationType: typ, Reason: "r"}
		_, err := env.Governor.Escalate(ctx, a, req)
		var we *warden.Error
		if !errors.As(err, &we) || we.Data["request_digest"] == nil {
			t.Fatalf("escalate to %s without approval: %v", to, err)
		}
		if _, err := env.Governor.Approve(ctx, approver, we.Data["request_digest"].(string)); err != nil {
			t.Fatal(err)
		}
		req.ApprovedBy = governor.StringList{"appr"}
		res, err := env.Governor.Escalate(ctx, a, req)
		if err != nil {
			t.Fatalf("escalate to %s: %v", to, err)
		}
		return res
	}
	approve(warden.ProfilePhoenix, "crisis_declared")
	sov := approve(warden.ProfileSovereign, "sovereign_override")
	if sov.Reversible || sov.ExpiresAt != nil {
		t.Fatalf("sovereign hop: %+v", sov)
	}
	if _, err := env.Governor.Deescalate(ctx, a, governor.DeescalateRequest{EscalationID: sov.EscalationID, DeescalationType: string(warden.DeescalationOperatorRelease), Reason: ""}); warden.ErrorMessage(err) != fmt.Sprintf("Escalation %s is not reversible without sovereign override", sov.EscalationID) {
		t.Fatalf("release of sovereign: %v", err)
	}
	if _, err := env.Governor.Deescalate(ctx, &warden.Principal{Name: "op", Roles: []warden.Role{warden.RoleOperator}}, governor.DeescalateRequest{EscalationID: sov.EscalationID, DeescalationType: string(warden.DeescalationSovereignRevoke)}); warden.ErrorCode(err) != warden.EDENIED {
		t.Fatalf("sovereign_revoke by a non-admin: %v", err)
	}
	// An admin that is not marked human may not either.
	env.MustCredential(t, engine.CredentialSpec{Name: "admin-bot", Roles: []warden.Role{warden.RoleAdmin}})
	if _, err := env.Governor.Deescalate(ctx, &warden.Principal{Name: "admin-bot", Roles: []warden.Role{warden.RoleAdmin}}, governor.DeescalateRequest{EscalationID: sov.EscalationID, DeescalationType: string(warden.DeescalationSovereignRevoke)}); warden.ErrorCode(err) != warden.EDENIED ||
		!strings.Contains(warden.ErrorMessage(err), "only a human admin may revoke it") {
		t.Fatalf("sovereign_revoke by a non-human admin: %v", err)
	}
	env.MustCredential(t, engine.CredentialSpec{Name: "human", Roles: []warden.Role{warden.RoleAdmin}, Human: true})
	res, err := env.Governor.Deescalate(ctx, &warden.Principal{Name: "human", Roles: []warden.Role{warden.RoleAdmin}}, governor.DeescalateRequest{EscalationID: sov.EscalationID, DeescalationType: string(warden.DeescalationSovereignRevoke)})
	if err != nil || res.ToProfile != warden.ProfileObserver || len(res.Hops) != 4 {
		t.Fatalf("sovereign_revoke by an admin: %+v %v", res, err)
	}
}
