package engine_test

import (
	"context"
	"strings"
	"testing"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine"
	"github.com/warden-sh/warden/engine/governor"
	"github.com/warden-sh/warden/engine/stack"
	"github.com/warden-sh/warden/ledger"
	"github.com/warden-sh/warden/wardentest"
	"golang.org/x/mod/sumdb/note"
)

// TestKeyRotationVerifiesWithTheFirstKeyAlone: after two rotations, the
// whole log verifies with nothing but the original public key; a
// checkpoint signed by a key never handed over fails.
func TestKeyRotationVerifiesWithTheFirstKeyAlone(t *testing.T) {
	env := wardentest.MustEnv(t, func(c *stack.Config) { c.Core.Keys = nil })
	ctx := context.Background()
	firstPub := strings.TrimSpace(env.Dir.PublicKey)
	firstSigner := env.Dir.Signer
	// Who may rotate (phoenix) is the governor's rule, tested there; here
	// the core rotates with no authorization callback.
	core, err := engine.New(engine.Options{Store: env.Store, Clock: env.Clock.Now, Signer: env.Dir.Signer, PublicKey: env.Dir.PublicKey, Keys: env.Dir})
	if err != nil {
		t.Fatal(err)
	}
	admin := &warden.Principal{Name: "root", Roles: []warden.Role{warden.RoleAdmin}}
	for round := 0; round < 2; round++ {
		env.MustCredential(t, engine.CredentialSpec{Name: "before-" + string(rune('a'+round)), Roles: []warden.Role{warden.RoleRead}})
		if _, err := core.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		res, err := core.RotateKey(ctx, admin, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.NewPubkey == res.OldPubkey {
			t.Fatalf("rotation kept the key: %v", res)
		}
		env.MustCredential(t, engine.CredentialSpec{Name: "after-" + string(rune('a'+round)), Roles: []warden.Role{warden.RoleRead}})
		if _, err := core.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// The newest checkpoint is signed by the third key only.
	cp, _ := core.LatestCheckpoint(ctx)
	v0, _ := note.NewVerifier(firstPub)
	if _, err := ledger.OpenCheckpoint([]byte(cp.Note), note.VerifierList(v0)); err == nil {
		t.Fatalf("the latest checkpoint verifies with the first key directly; it should need the hand-over")
	}
	if lines := strings.Split(strings.TrimSpace(core.PublicKey()), "\n"); len(lines) != 3 {
		t.Fatalf("public keys after two rotations: %d", len(lines))
	}
	sum, err := engine.VerifyStore(ctx, env.Store, ledger.NewVerifier(note.VerifierList(v0), ""))
	if err != nil {
		t.Fatalf("verify with the first key alone: %v", err)
	}
	if sum.CheckpointSize != cp.Size {
		t.Fatalf("summary %+v, latest checkpoint %d", sum, cp.Size)
	}
	// The retired first key re-signs a later checkpoint on its own (as a
	// thief of the old key would, after rewriting the tail): refused.
	env.MustCredential(t, engine.CredentialSpec{Name: "rewritten", Roles: []warden.Role{warden.RoleRead}})
	putCheckpoint(t, env, firstSigner)
	if _, err := engine.VerifyStore(ctx, env.Store, ledger.NewVerifier(note.VerifierList(v0), "")); err == nil || !strings.Contains(err.Error(), "retired key") {
		t.Fatalf("checkpoint by the retired key: %v", err)
	}
}

func putCheckpoint(t *testing.T, env *wardentest.Env, signer note.Signer) {
	t.Helper()
	err := env.Store.Update(context.Background(), func(tx warden.Tx) error {
		head, err := tx.Head()
		if err != nil {
			return err
		}
		body := &ledger.CheckpointBody{Origin: env.Dir.Origin, Size: head.Size, Root: head.RootHash}
		for name, s := range head.Scrolls {
			body.Scrolls = append(body.Scrolls, ledger.ScrollRoot{Name: name, Size: s.Size, Root: s.RootHash})
		}
		sortScrolls(body.Scrolls)
		msg, err := ledger.SignCheckpoint(body, signer)
		if err != nil {
			return err
		}
		return tx.PutCheckpoint(&warden.Checkpoint{Size: head.Size, RootHash: head.RootHash, Note: string(msg), CreatedAt: env.Clock.Now()})
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestKeyRotationRogueKey(t *testing.T) {
	env := wardentest.MustEnv(t)
	ctx := context.Background()
	v0, _ := note.NewVerifier(strings.TrimSpace(env.Dir.PublicKey))
	if _, err := env.Core.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	// A key nobody handed over signs a checkpoint: verification fails.
	rogue, _ := ledger.GenerateKeys(env.Dir.Origin)
	rs, _ := note.NewSigner(rogue.Signer)
	env.MustCredential(t, engine.CredentialSpec{Name: "late", Roles: []warden.Role{warden.RoleRead}})
	putCheckpoint(t, env, rs)
	if _, err := engine.VerifyStore(ctx, env.Store, ledger.NewVerifier(note.VerifierList(v0), "")); err == nil || !strings.Contains(err.Error(), "neither given nor handed over") {
		t.Fatalf("rogue checkpoint: %v", err)
	}
}

func TestKeyRotationIsADryRunInDrillMode(t *testing.T) {
	// Who may rotate is checked in drill mode too: a human at (here, with
	// the matrix opened) the required profile.
	open := map[string]warden.Profile{}
	for k := range governor.DefaultAuthority {
		open[k] = warden.ProfileObserver
	}
	env := wardentest.MustEnv(t, wardentest.Drill, func(c *stack.Config) { c.Governor.Authority = open })
	env.MustCredential(t, engine.CredentialSpec{Name: "root", Roles: []warden.Role{warden.RoleAdmin}, Human: true})
	before := env.Dir.PublicKey
	res, err := env.Governor.RotateKey(context.Background(), &warden.Principal{Name: "root", Roles: []warden.Role{warden.RoleAdmin}})
	if err != nil || !res.DryRun || env.Core.PublicKey() != before {
		t.Fatalf("drill rotation: %v %v", res, err)
	}
	if n := len(env.MustReceipts(t, warden.ReceiptFilter{Type: warden.ReceiptPhoenixRotateKey})); n != 1 {
		t.Fatalf("dry run not receipted")
	}
}

func sortScrolls(s []ledger.ScrollRoot) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j].Name < s[j-1].Name; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}
