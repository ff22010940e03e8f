package engine_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine"
	"github.com/warden-sh/warden/engine/governor"
	"github.com/warden-sh/warden/engine/stack"
	"github.com/warden-sh/warden/sqlite"
	"github.com/warden-sh/warden/wardentest"
)

// heard collects what an OnRevoke listener hears.
type heard struct {
	mu    sync.Mutex
	names []string
}

func (h *heard) add(name string) { h.mu.Lock(); h.names = append(h.names, name); h.mu.Unlock() }

func (h *heard) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.names
	h.names = nil
	slices.Sort(out)
	return out
}

// TestRevocationsAreAnnounced: every committed revocation reaches the
// OnRevoke listeners once — at commit for one made through the core,
// whichever rule made it, at the next NoticeRevocations for one made by
// another process on the same store — and a rolled-back one never does.
func TestRevocationsAreAnnounced(t *testing.T) {
	open := map[string]warden.Profile{}
	for k := range governor.DefaultAuthority {
		open[k] = warden.ProfileObserver
	}
	env := wardentest.MustEnv(t, func(c *stack.Config) { c.Governor.Authority = open })
	ctx := context.Background()
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		env.MustCredential(t, engine.CredentialSpec{Name: n, Roles: []warden.Role{warden.RoleRead}})
	}
	// Mass revocation needs a human requester and leaves a human approver.
	env.MustCredential(t, engine.CredentialSpec{Name: "agent", Roles: []warden.Role{warden.RoleOperator}, Human: true})
	env.MustCredential(t, engine.CredentialSpec{Name: "approver", Roles: []warden.Role{warden.RoleApprover}, Human: true})
	var h heard
	env.Core.OnRevoke(h.add)

	// The credential API.
	if _, err := env.Core.RevokeCredential(ctx, admin, "a"); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"a"}, h.take()); d != "" {
		t.Fatalf("after RevokeCredential (-want +got):\n%s", d)
	}
	// A transaction that revokes and then fails is rolled back: nothing heard.
	boom := errors.New("boom")
	if err := env.Core.Update(ctx, "test", func(tx warden.Tx) error {
		if err := tx.RevokeCredential("b", env.Clock.Now()); err != nil {
			return err
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if got := h.take(); len(got) != 0 {
		t.Fatalf("a rolled-back revocation was announced: %v", got)
	}
	// Another process revokes on the same file: heard at the next notice.
	other, err := sqlite.Open(env.Dir.DBPath(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	otherCore, err := engine.New(engine.Options{Store: other, Clock: env.Clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := otherCore.RevokeCredential(ctx, admin, "e"); err != nil {
		t.Fatal(err)
	}
	if got := h.take(); len(got) != 0 {
		t.Fatalf("heard %v before noticing", got)
	}
	if n, err := env.Core.NoticeRevocations(ctx); err != nil || n != 1 {
		t.Fatalf("NoticeRevocations = %d, %v; want 1 (e)", n, err)
	}
	if d := cmp.Diff([]string{"e"}, h.take()); d != "" {
		t.Fatalf("after NoticeRevocations (-want +got):\n%s", d)
	}
	if n, err := env.Core.NoticeRevocations(ctx); err != nil || n != 0 {
		t.Fatalf("second NoticeRevocations = %d, %v; want 0", n, err)
	}
	// Phoenix mass revocation, through the governor's own transaction.
	res, err := env.Governor.RevokeAll(ctx, &warden.Principal{Name: "agent", Roles: []warden.Role{warden.RoleOperator}})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"b", "c", "d"}, h.take()); d != "" || len(res.Revoked) != 3 {
		t.Fatalf("after phoenix revocation of %v (-want +got):\n%s", res.Revoked, d)
	}
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		if !env.Core.RevocationNoticed(n) {
			t.Errorf("RevocationNoticed(%q) = false", n)
		}
	}
	if env.Core.RevocationNoticed("admin") {
		t.Error("RevocationNoticed(admin) = true")
	}
}
