package engine_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine"
	"github.com/warden-sh/warden/engine/stack"
	"github.com/warden-sh/warden/wardentest"
)

var admin = &warden.Principal{Name: "t", Roles: []warden.Role{warden.RoleAdmin}}

// TestAuthFailureFloodIsBoundedAndCounted: a flood writes at most the burst
// of auth_failure receipts, and every suppressed failure is accounted for by
// a later receipt, so nothing is silently dropped.
func TestAuthFailureFloodIsBoundedAndCounted(t *testing.T) {
	env := wardentest.MustEnv(t, func(c *stack.Config) { c.Core.AuthFailureRate, c.Core.AuthFailureBurst = 1, 10 })
	ctx := context.Background()
	const flood = 500
	for i := 0; i < flood; i++ {
		env.Core.RecordAuthFailure(ctx, engine.AuthFailure{Status: 401, Code: warden.EUNAUTHORIZED, Reason: "x", Method: "GET", Path: "/"})
	}
	single := env.MustReceipts(t, warden.ReceiptFilter{Type: warden.ReceiptAuthFailure})
	if len(single) != 10 {
		t.Fatalf("%d auth_failure receipts for a flood of %d with burst 10", len(single), flood)
	}
	// One more after a second: it carries the count suppressed before it.
	env.Clock.Advance(time.Second)
	env.Core.RecordAuthFailure(ctx, engine.AuthFailure{Status: 403, Code: warden.EFORBIDDEN})
	single = env.MustReceipts(t, warden.ReceiptFilter{Type: warden.ReceiptAuthFailure})
	var last engine.AuthFailure
	json.Unmarshal(single[len(single)-1].Body, &last)
	if last.Suppressed != flood-10 {
		t.Fatalf("suppressed count %d, want %d", last.Suppressed, flood-10)
	}
	// A flood that stops is flushed by the server's ticker.
	for i := 0; i < 5; i++ {
		env.Core.RecordAuthFailure(ctx, engine.AuthFailure{Status: 401})
	}
	if err := env.Core.FlushSuppressed(ctx); err != nil {
		t.Fatal(err)
	}
	flushed := env.MustReceipts(t, warden.ReceiptFilter{Type: warden.ReceiptAuthFailuresSuppressed})
	if len(flushed) != 1 {
		t.Fatalf("%d flush receipts", len(flushed))
	}
	var fb struct{ Suppressed uint64 }
	json.Unmarshal(flushed[0].Body, &fb)
	if fb.Suppressed != 5 {
		t.Fatalf("flushed %d, want 5", fb.Suppressed)
	}
	if err := env.Core.FlushSuppressed(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(env.MustReceipts(t, warden.ReceiptFilter{Type: warden.ReceiptAuthFailuresSuppressed})); n != 1 {
		t.Fatalf("an empty flush wrote a receipt")
	}
}

func TestBootstrapOnlyOnce(t *testing.T) {
	env := wardentest.MustEnv(t) // bootstraps "admin"
	if _, err := env.Core.Bootstrap(context.Background(), "admin2"); warden.ErrorCode(err) != warden.ECONFLICT {
		t.Fatalf("second bootstrap: %v", err)
	}
}

func TestAuthenticate(t *testing.T) {
	env := wardentest.MustEnv(t)
	ctx := context.Background()
	tok := env.MustCredential(t, engine.CredentialSpec{Name: "rep", Roles: []warden.Role{warden.RoleReporter}, Source: "agent", Classes: []string{"tool_call_burst", "prompt_injection", "prompt_injection"}})
	p, err := env.Core.Authenticate(ctx, tok)
	if err != nil || p.Name != "rep" || p.Source != "agent" || !slices.Equal(p.Classes, []string{"prompt_injection", "tool_call_burst"}) {
		t.Fatalf("%+v %v", p, err)
	}
	for name, token := range map[string]string{"empty": "", "unknown": engine.NewToken(), "no prefix": "abc"} {
		if _, err := env.Core.Authenticate(ctx, token); warden.ErrorCode(err) != warden.EUNAUTHORIZED {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := env.Core.RevokeCredential(ctx, admin, "rep"); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Core.Authenticate(ctx, tok); warden.ErrorCode(err) != warden.EUNAUTHORIZED {
		t.Fatalf("revoked token accepted: %v", err)
	}
	if _, err := env.Core.RevokeCredential(ctx, admin, "nobody"); warden.ErrorCode(err) != warden.ENOTFOUND {
		t.Fatalf("revoke unknown: %v", err)
	}
	if err := engine.Authorize(p, "x", warden.RoleOperator); warden.ErrorCode(err) != warden.EFORBIDDEN {
		t.Fatalf("reporter authorized as operator: %v", err)
	}
}

func TestDevPrincipalOnlyInDevMode(t *testing.T) {
	ctx := context.Background()
	if _, err := wardentest.MustEnv(t).Core.Authenticate(ctx, ""); warden.ErrorCode(err) != warden.EUNAUTHORIZED {
		t.Fatalf("empty token outside dev: %v", err)
	}
	p, err := wardentest.MustEnv(t, wardentest.Dev).Core.Authenticate(ctx, "")
	if err != nil || p.Name != warden.DevPrincipal || !p.Dev {
		t.Fatalf("dev: %+v %v", p, err)
	}
}

func TestCredentialRules(t *testing.T) {
	env := wardentest.MustEnv(t)
	ctx := context.Background()
	nonAdmin := &warden.Principal{Name: "op", Roles: []warden.Role{warden.RoleOperator}}
	cases := map[string]struct {
		actor *warden.Principal
		spec  engine.CredentialSpec
		code  string
	}{
		"non-admin":            {nonAdmin, engine.CredentialSpec{Name: "x", Roles: []warden.Role{warden.RoleRead}}, warden.EFORBIDDEN},
		"no roles":             {admin, engine.CredentialSpec{Name: "x"}, warden.EINVALID},
		"bad role":             {admin, engine.CredentialSpec{Name: "x", Roles: []warden.Role{"root"}}, warden.EINVALID},
		"bad name":             {admin, engine.CredentialSpec{Name: "a b", Roles: []warden.Role{warden.RoleRead}}, warden.EINVALID},
		"reporter no source":   {admin, engine.CredentialSpec{Name: "x", Roles: []warden.Role{warden.RoleReporter}}, warden.EINVALID},
		"source on non-report": {admin, engine.CredentialSpec{Name: "x", Roles: []warden.Role{warden.RoleRead}, Source: "s"}, warden.EINVALID},
		"duplicate":            {admin, engine.CredentialSpec{Name: "admin", Roles: []warden.Role{warden.RoleRead}}, warden.ECONFLICT},
		"unknown class": {admin, engine.CredentialSpec{Name: "x", Roles: []warden.Role{warden.RoleReporter}, Source: "s",
			Classes: []string{"prompt_injection", "no_such_class"}}, warden.EINVALID},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			before := len(env.MustReceipts(t, warden.ReceiptFilter{}))
			if _, err := env.Core.AddCredential(ctx, tc.actor, tc.spec); warden.ErrorCode(err) != tc.code {
				t.Fatalf("got %v, want %s", err, tc.code)
			}
			if after := len(env.MustReceipts(t, warden.ReceiptFilter{})); after != before {
				t.Fatalf("refused credential wrote a receipt")
			}
		})
	}
}

func TestCheckpointOnlyWhenTheLogGrew(t *testing.T) {
	env := wardentest.MustEnv(t)
	ctx := context.Background()
	c1, err := env.Core.Checkpoint(ctx)
	if err != nil || c1 == nil || c1.Size != 1 {
		t.Fatalf("%+v %v", c1, err)
	}
	c2, err := env.Core.Checkpoint(ctx)
	if err != nil || c2.Size != 1 || c2.Note != c1.Note {
		t.Fatalf("unchanged log re-signed: %+v", c2)
	}
	env.MustCredential(t, engine.CredentialSpec{Name: "a", Roles: []warden.Role{warden.RoleRead}})
	c3, err := env.Core.Checkpoint(ctx)
	if err != nil || c3.Size != 2 {
		t.Fatalf("%+v %v", c3, err)
	}
}

func TestDrillModeTagsAndStartReceipt(t *testing.T) {
	env := wardentest.MustEnv(t, wardentest.Drill)
	r, err := env.Core.Start(context.Background(), engine.StartInfo{Version: "test", Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(r.Tags, "DRILL_MODE=ON") || !slices.Contains(r.Tags, "DRILL/system") {
		t.Fatalf("drill start receipt tags %v", r.Tags)
	}
	var body engine.StartInfo
	json.Unmarshal(r.Body, &body)
	if !body.Drill {
		t.Fatalf("drill start body %s", r.Body)
	}
}

// TestInsecurePlaintextIsReceipted: an operator's choice of clear text off
// loopback is in the server_start receipt, body and tag.
func TestInsecurePlaintextIsReceipted(t *testing.T) {
	env := wardentest.MustEnv(t)
	r, err := env.Core.Start(context.Background(), engine.StartInfo{Version: "t", Addr: "192.0.2.1:8515", InsecurePlaintext: true})
	if err != nil {
		t.Fatal(err)
	}
	var b struct {
		InsecurePlaintext bool `json:"insecure_plaintext"`
	}
	if json.Unmarshal(r.Body, &b); !b.InsecurePlaintext || !slices.Contains(r.Tags, "insecure-plaintext") {
		t.Fatalf("server_start: %s %v", r.Body, r.Tags)
	}
}

// TestNoCheckpointWhileVerifying: while the startup check has not verified
// the whole log, nothing is signed on top of it.
func TestNoCheckpointWhileVerifying(t *testing.T) {
	env := wardentest.MustEnv(t)
	ctx := context.Background()
	first, err := env.Core.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Enough receipts that the background check cannot finish before it
	// is stopped, right after CheckAtStart returns.
	if err := env.Core.Update(ctx, "test", func(tx warden.Tx) error {
		for i := range 20000 {
			if _, err := tx.Append(env.Core.Draft(warden.ReceiptDecision, map[string]any{"i": i})); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	stopped, cancel := context.WithCancel(ctx)
	err = env.Core.CheckAtStart(stopped, engine.StartupCheck{SyncLimit: 1})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if st := env.Core.Ledger().State; st != warden.LedgerVerifying {
		t.Fatalf("state %s, want verifying", st)
	}
	cp, err := env.Core.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != first.Size {
		t.Fatalf("signed a checkpoint of size %d over a log verified only up to %d", cp.Size, first.Size)
	}
}

// TestAuthFailureFloodIsPerPrincipal: one principal's flood of refused
// requests does not silence another's auth_failure receipts.
func TestAuthFailureFloodIsPerPrincipal(t *testing.T) {
	env := wardentest.MustEnv(t, func(c *stack.Config) { c.Core.AuthFailureRate, c.Core.AuthFailureBurst = 1, 5 })
	ctx := context.Background()
	for range 100 {
		env.Core.RecordAuthFailure(ctx, engine.AuthFailure{Status: 403, Code: warden.EFORBIDDEN, Reason: "x", Principal: "flooder", Method: "GET", Path: "/"})
	}
	env.Core.RecordAuthFailure(ctx, engine.AuthFailure{Status: 403, Code: warden.EFORBIDDEN, Reason: "x", Principal: "bystander", Method: "GET", Path: "/"})
	var flooder, bystander int
	for _, r := range env.MustReceipts(t, warden.ReceiptFilter{Type: warden.ReceiptAuthFailure}) {
		var b struct{ Principal string }
		json.Unmarshal(r.Body, &b)
		switch b.Principal {
		case "flooder":
			flooder++
		case "bystander":
			bystander++
		}
	}
	if flooder != 5 || bystander != 1 {
		t.Fatalf("receipts: flooder %d (want the burst, 5), bystander %d (want 1)", flooder, bystander)
	}
}
