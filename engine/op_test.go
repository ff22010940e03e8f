package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine"
	"github.com/warden-sh/warden/engine/governor"
	"github.com/warden-sh/warden/engine/recorder"
	"github.com/warden-sh/warden/engine/stack"
	"github.com/warden-sh/warden/wardentest"
)

func logSize(t *testing.T, env *wardentest.Env) uint64 {
	t.Helper()
	var n uint64
	if err := env.Store.View(context.Background(), func(tx warden.ReadTx) error {
		h, err := tx.Head()
		n = h.Size
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestUpdateNamesFaultsAndKeepsDomainErrors: a fault comes back named with
// the operation; a domain error comes back as it was, for the transports'
// tables; nothing the failed function did is kept.
func TestUpdateNamesFaultsAndKeepsDomainErrors(t *testing.T) {
	env := wardentest.MustEnv(t)
	ctx := context.Background()
	before := logSize(t, env)
	appendThen := func(ret error) func(tx warden.Tx) error {
		return func(tx warden.Tx) error {
			if _, err := tx.Append(env.Core.Draft(warden.ReceiptDecision, map[string]any{"x": 1})); err != nil {
				return err
			}
			return ret
		}
	}
	err := env.Core.Update(ctx, "test.fault", appendThen(errors.New("disk on fire")))
	if warden.ErrorCode(err) != warden.EINTERNAL || err.Error() != "test.fault: disk on fire" {
		t.Fatalf("fault: %v", err)
	}
	domain := warden.Errorf(warden.ECONFLICT, "No.")
	if err := env.Core.Update(ctx, "test.domain", appendThen(domain)); err != domain {
		t.Fatalf("domain error changed: %v", err)
	}
	if got := logSize(t, env); got != before {
		t.Fatalf("failed operations left %d receipts", got-before)
	}
}

// TestUpdateReceiptsDenialsAlone: a denial rolls back what the operation
// did and is receipted on its own, with its reason and code in the body.
func TestUpdateReceiptsDenialsAlone(t *testing.T) {
	env := wardentest.MustEnv(t)
	ctx := context.Background()
	before := logSize(t, env)
	err := env.Core.Update(ctx, "test.deny", func(tx warden.Tx) error {
		if _, err := tx.Append(env.Core.Draft(warden.ReceiptDecision, map[string]any{"x": 1})); err != nil {
			return err
		}
		return env.Core.Deny(warden.ReceiptTreasuryDeny, map[string]any{"budget_id": "b"}, warden.EDENIED, "Not today.").WithData(map[string]any{"hint": 1})
	})
	var werr *warden.Error
	if !errors.As(err, &werr) || werr.Code != warden.EDENIED || werr.Message != "Not today." || werr.Data["hint"] != 1 {
		t.Fatalf("denial: %#v", err)
	}
	if got := logSize(t, env); got != before+1 {
		t.Fatalf("log grew by %d, want the denial's receipt alone", got-before)
	}
	denials := env.MustReceipts(t, warden.ReceiptFilter{Type: warden.ReceiptTreasuryDeny})
	if len(denials) != 1 || denials[0].Scroll != warden.ScrollTreasury ||
		!strings.Contains(string(denials[0].Body), `"reason":"Not today."`) || !strings.Contains(string(denials[0].Body), `"code":"denied"`) {
		t.Fatalf("denial receipt: %+v", denials)
	}
}

// TestUpdateRefusesUncataloguedReceipts: a receipt type the catalogue does
// not list, or lists in another scroll, fails its transaction.
func TestUpdateRefusesUncataloguedReceipts(t *testing.T) {
	env := wardentest.MustEnv(t)
	ctx := context.Background()
	before := logSize(t, env)
	for name, d := range map[string]warden.Draft{
		"unknown type": {Type: "made_up", Scroll: warden.ScrollSystem, Time: env.Clock.Now(), Body: map[string]any{}},
		"wrong scroll": {Type: warden.ReceiptDebit, Scroll: warden.ScrollSystem, Time: env.Clock.Now(), Body: map[string]any{}},
	} {
		err := env.Core.Update(ctx, "test.catalogue", func(tx warden.Tx) error {
			_, err := tx.Append(d)
			return err
		})
		if warden.ErrorCode(err) != warden.EINTERNAL || !strings.Contains(err.Error(), "not in the catalogue") {
			t.Errorf("%s: %v", name, err)
		}
	}
	if got := logSize(t, env); got != before {
		t.Fatalf("uncatalogued receipts written: %d", got-before)
	}
}

// TestReceiptsCountedPerCommit: the receipts metric counts every receipt
// a transaction wrote, by scroll, not one per operation.
func TestReceiptsCountedPerCommit(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := engine.NewMetrics(reg)
	env := wardentest.MustEnv(t, func(c *stack.Config) { c.Core.Metrics = m })
	ctx := context.Background()
	count := func(scroll string) float64 {
		var d dto.Metric
		if err := m.Receipts.WithLabelValues(scroll).Write(&d); err != nil {
			t.Fatal(err)
		}
		return d.GetCounter().GetValue()
	}
	// A critical prompt injection writes its report and its recovery
	// requirement: two incident receipts in one transaction.
	if _, err := env.Recorder.ReportIncident(ctx, wardentest.AdminPrincipal, recorder.ReportRequest{
		Class: warden.ClassPromptInjection, Severity: "critical", Source: "s", Description: "d"}); err != nil {
		t.Fatal(err)
	}
	got := len(env.MustReceipts(t, warden.ReceiptFilter{Scroll: warden.ScrollIncident}))
	if got < 2 || count(warden.ScrollIncident) != float64(got) {
		t.Fatalf("incident receipts: metric %v, log %d", count(warden.ScrollIncident), got)
	}
	// A refusal without a receipt counts nothing; a denial counts its
	// receipt alone, not what it rolled back.
	_, err := env.Recorder.ResolveIncident(ctx, wardentest.AdminPrincipal, "INC-nope")
	if warden.ErrorCode(err) != warden.ENOTFOUND {
		t.Fatal(err)
	}
	if count(warden.ScrollIncident) != float64(got) {
		t.Fatalf("a refusal without a receipt was counted")
	}
	err = env.Core.Update(ctx, "test.deny", func(tx warden.Tx) error {
		if _, err := tx.Append(env.Core.Draft(warden.ReceiptDecision, map[string]any{})); err != nil {
			return err
		}
		return env.Core.Deny(warden.ReceiptTreasuryDeny, nil, warden.EDENIED, "No.")
	})
	if warden.ErrorCode(err) != warden.EDENIED {
		t.Fatal(err)
	}
	if count(warden.ScrollTreasury) != 1 || count(warden.ScrollCognitive) != 0 {
		t.Fatalf("denial counted treasury %v, rolled-back cognitive %v; want 1 and 0", count(warden.ScrollTreasury), count(warden.ScrollCognitive))
	}
}

// TestDenialFloodIsBoundedPerPrincipal: one principal's denials are
// receipted up to its burst and then counted, the count accounted for by a
// later receipt; every call is still refused, and another principal's
// denials are unaffected.
func TestDenialFloodIsBoundedPerPrincipal(t *testing.T) {
	env := wardentest.MustEnv(t, func(c *stack.Config) { c.Core.DenialRate, c.Core.DenialBurst = 1, 10 })
	ctx := context.Background()
	admin := wardentest.AdminPrincipal
	if _, err := env.Governor.CreateBudget(ctx, admin, governor.CreateBudgetRequest{BudgetID: "b", Allocated: 1, Currency: "U"}); err != nil {
		t.Fatal(err)
	}
	flooder := &warden.Principal{Name: "flooder", Roles: []warden.Role{warden.RoleOperator}}
	const flood = 300
	for i := 0; i < flood; i++ {
		if _, err := env.Governor.Debit(ctx, flooder, governor.MoveRequest{BudgetID: "b", Amount: 5, Description: "x"}); warden.ErrorCode(err) != warden.EINSUFFICIENT {
			t.Fatalf("denial %d: %v", i, err)
		}
	}
	denials := func(who string) (n int, counted uint64) {
		for _, r := range env.MustReceipts(t, warden.ReceiptFilter{Type: warden.ReceiptTreasuryDeny}) {
			var b struct {
				Principal  string `json:"principal"`
				Suppressed uint64 `json:"suppressed_since_previous"`
			}
			json.Unmarshal(r.Body, &b)
			if b.Principal == who {
				n++
				counted += b.Suppressed
			}
		}
		return n, counted
	}
	if n, _ := denials("flooder"); n != 10 {
		t.Fatalf("%d denial receipts for a flood of %d with burst 10", n, flood)
	}
	// Another principal is not held back by the flood.
	other := &warden.Principal{Name: "other", Roles: []warden.Role{warden.RoleOperator}}
	if _, err := env.Governor.Debit(ctx, other, governor.MoveRequest{BudgetID: "b", Amount: 5, Description: "x"}); warden.ErrorCode(err) != warden.EINSUFFICIENT {
		t.Fatal(err)
	}
	if n, _ := denials("other"); n != 1 {
		t.Fatalf("other principal's denial receipted %d times", n)
	}
	// The flush accounts for every suppressed denial.
	if err := env.Core.FlushSuppressed(ctx); err != nil {
		t.Fatal(err)
	}
	var flushed uint64
	for _, r := range env.MustReceipts(t, warden.ReceiptFilter{Type: warden.ReceiptDenialsSuppressed}) {
		var b struct {
			Principal  string `json:"principal"`
			Suppressed uint64 `json:"suppressed"`
		}
		json.Unmarshal(r.Body, &b)
		if b.Principal == "flooder" {
			flushed += b.Suppressed
		}
	}
	n, counted := denials("flooder")
	if uint64(n)+counted+flushed != flood {
		t.Fatalf("%d receipted + %d counted on receipts + %d flushed != %d denials", n, counted, flushed, flood)
	}
	// A later denial after the rate allows one carries nothing more.
	env.Clock.Advance(time.Minute)
	if _, err := env.Governor.Debit(ctx, flooder, governor.MoveRequest{BudgetID: "b", Amount: 5, Description: "x"}); warden.ErrorCode(err) != warden.EINSUFFICIENT {
		t.Fatal(err)
	}
	if n2, counted2 := denials("flooder"); n2 != n+1 || counted2 != counted {
		t.Fatalf("after the flush: %d receipts, %d counted (before %d, %d)", n2, counted2, n, counted)
	}
}
