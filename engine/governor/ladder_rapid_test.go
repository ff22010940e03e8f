package governor_test

import (
	"context"
	"testing"
	"time"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine/governor"
	"github.com/warden-sh/warden/wardentest"
	"pgregory.net/rapid"
)

// TestLadderStateMachine drives random escalations, de-escalations, clock
// moves, sweeps and debits, and checks after every step: every transition
// has exactly one receipt, no escalation is active past its deadline after
// a sweep, no skip-level hop ever succeeds, no balance is below zero.
func TestLadderStateMachine(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		env := wardentest.MustEnv(t)
		ctx := context.Background()
		subjects := []*warden.Principal{agent("s1"), agent("s2")}
		op := agent("treasurer")
		if _, err := env.Governor.CreateBudget(ctx, op, governor.CreateBudgetRequest{BudgetID: "b", Allocated: 500, Currency: "U"}); err != nil {
			rt.Fatal(err)
		}
		escalations, hopsDown := 0, 0
		rt.Repeat(map[string]func(*rapid.T){
			"escalate": func(rt *rapid.T) {
				p := rapid.SampledFrom(subjects).Draw(rt, "subject")
				to := rapid.SampledFrom(warden.Profiles).Draw(rt, "to")
				before, _ := env.Governor.CurrentProfile(ctx, p.Name)
				res, err := env.Governor.Escalate(ctx, p, governor.EscalateRequest{ToProfile: string(to), EscalationType: "operator_request",
					Reason: "r", TTLSeconds: rapid.IntRange(0, 8000).Draw(rt, "ttl")})
				if err == nil {
					escalations++
					for _, x := range res.ExpiredFirst {
						hopsDown += len(x.Hops)
					}
					// Expired hops come down first, so the start may be lower
					// than before, but never a skipped level.
					if res.ToProfile.Rank() != res.FromProfile.Rank()+1 || res.FromProfile.Rank() > before.Rank() {
						rt.Fatalf("hop %s → %s with current %s succeeded", res.FromProfile, res.ToProfile, before)
					}
					if now, _ := env.Governor.CurrentProfile(ctx, p.Name); now != res.ToProfile {
						rt.Fatalf("profile %s after escalating to %s", now, res.ToProfile)
					}
				} else if warden.ErrorCode(err) != warden.EDENIED {
					rt.Fatalf("escalate: %v", err)
				}
			},
			"deescalate": func(rt *rapid.T) {
				p := rapid.SampledFrom(subjects).Draw(rt, "subject")
				act, err := env.Governor.ActiveEscalations(ctx, p.Name)
				if err != nil {
					rt.Fatal(err)
				}
				list := act.Escalations
				if len(list) == 0 {
					return
				}
				id := list[rapid.IntRange(0, len(list)-1).Draw(rt, "which")].EscalationID
				typ := rapid.SampledFrom([]warden.DeescalationType{warden.DeescalationOperatorRelease, warden.DeescalationCrisisConcluded}).Draw(rt, "type")
				res, err := env.Governor.Deescalate(ctx, p, governor.DeescalateRequest{EscalationID: id, DeescalationType: string(typ), Reason: "r"})
				if err != nil {
					rt.Fatalf("deescalate: %v", err)
				}
				hopsDown += len(res.Hops)
			},
			"advance": func(rt *rapid.T) {
				env.Clock.Advance(time.Duration(rapid.IntRange(1, 4000).Draw(rt, "seconds")) * time.Second)
			},
			"sweep": func(rt *rapid.T) {
				res, err := env.Governor.SweepExpired(ctx)
				if err != nil {
					rt.Fatal(err)
				}
				for _, r := range res {
					hopsDown += len(r.Hops)
				}
				now := env.Clock.Now()
				var active []*warden.Escalation
				env.Store.View(ctx, func(tx warden.ReadTx) (err error) {
					active, err = tx.ActiveEscalations("")
					return err
				})
				for _, a := range active {
					if exp, ok := a.Expiry(); ok && a.AutoDeescalate && !exp.After(now) {
						rt.Fatalf("escalation %s active past its deadline after a sweep", a.EscalationID)
					}
				}
			},
			"debit": func(rt *rapid.T) {
				_, err := env.Governor.Debit(ctx, op, governor.MoveRequest{BudgetID: "b", Amount: int64(rapid.IntRange(1, 200).Draw(rt, "amount"))})
				if err != nil && warden.ErrorCode(err) != warden.EINSUFFICIENT {
					rt.Fatal(err)
				}
			},
			"": func(rt *rapid.T) {
				if n := len(receiptsOfType(t, env, warden.ReceiptEscalation)); n != escalations {
					rt.Fatalf("%d escalation receipts for %d escalations", n, escalations)
				}
				if n := len(receiptsOfType(t, env, warden.ReceiptDeescalation)); n != hopsDown {
					rt.Fatalf("%d de-escalation receipts for %d hops down", n, hopsDown)
				}
				b, err := env.Governor.Budget(ctx, "b")
				if err != nil || b.Balance < 0 {
					rt.Fatalf("balance %v %v", b, err)
				}
			},
		})
	})
}
