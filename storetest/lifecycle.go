package storetest

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	warden "github.com/warden-sh/warden"
)

func testViewSnapshot(t *testing.T, h Harness) {
	s := h.New(t)
	MustAppend(t, s, draft(0))
	MustView(t, s, func(tx warden.ReadTx) error {
		before, err := tx.Head()
		if err != nil {
			return err
		}
		// A commit during the View is invisible to it.
		MustUpdate(t, s, func(tx warden.Tx) error {
			if _, err := tx.Append(draft(1)); err != nil {
				return err
			}
			return tx.SetMeta("during", "view")
		})
		after, err := tx.Head()
		if err != nil {
			return err
		}
		if diff := cmp.Diff(before, after); diff != "" {
			t.Errorf("head changed within one View (-first +second):\n%s", diff)
		}
		_, err = tx.Receipt(1)
		wantCode(t, err, warden.ENOTFOUND)
		_, err = tx.Meta("during")
		wantCode(t, err, warden.ENOTFOUND)
		return nil
	})
	if got := MustHead(t, s).Size; got != 2 {
		t.Errorf("a View after the commit sees size %d, want 2", got)
	}
}

func testCanceledContext(t *testing.T, h Harness) {
	s := h.New(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	called := false
	err := s.Update(ctx, func(tx warden.Tx) error {
		called = true
		_, err := tx.Append(draft(0))
		return err
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Update with a canceled context returned %v, want context.Canceled", err)
	}
	if called {
		t.Errorf("Update with a canceled context ran fn")
	}
	if got := MustHead(t, s).Size; got != 0 {
		t.Errorf("log size after a canceled Update = %d, want 0", got)
	}
}

func testClose(t *testing.T, h Harness) {
	s := h.New(t)
	MustAppend(t, s, draft(0))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	called := false
	err := s.Update(t.Context(), func(tx warden.Tx) error {
		called = true
		return nil
	})
	if err == nil || called {
		t.Errorf("Update after Close: err = %v, fn called = %v; want an error and fn not called", err, called)
	}
	if err := s.View(t.Context(), func(warden.ReadTx) error { return nil }); err == nil {
		t.Errorf("View after Close returned nil")
	}
}

func testReopen(t *testing.T, h Harness) {
	if h.Reopen == nil {
		t.Skip("the harness cannot reopen a store")
	}
	s := h.New(t)
	leaves := appendLeaves(t, s, 23)
	cred := &warden.Credential{Name: "alice", Roles: []warden.Role{warden.RoleAdmin}, TokenHash: "hash-alice", CreatedAt: at(1)}
	cp := checkpoint(23, 1)
	MustUpdate(t, s, func(tx warden.Tx) error {
		if err := tx.SetMeta("k", "v"); err != nil {
			return err
		}
		if err := tx.CreateCredential(cred); err != nil {
			return err
		}
		return tx.PutCheckpoint(cp)
	})
	head := MustHead(t, s)
	log := MustAllReceipts(t, s)

	s = h.Reopen(t, s)
	if diff := cmp.Diff(head, MustHead(t, s)); diff != "" {
		t.Errorf("head after reopen (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(log, MustAllReceipts(t, s)); diff != "" {
		t.Errorf("log after reopen (-before +after):\n%s", diff)
	}
	MustView(t, s, func(tx warden.ReadTx) error {
		if v, err := tx.Meta("k"); err != nil || v != "v" {
			t.Errorf("Meta after reopen = %q, %v", v, err)
		}
		c, err := tx.Credential("alice")
		if err != nil {
			return err
		}
		if diff := cmp.Diff(cred, c, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("credential after reopen (-want +got):\n%s", diff)
		}
		latest, err := tx.LatestCheckpoint()
		if err != nil {
			return err
		}
		if diff := cmp.Diff(cp, latest); diff != "" {
			t.Errorf("checkpoint after reopen (-want +got):\n%s", diff)
		}
		return nil
	})
	// The reopened store appends after the old log, on the same trees.
	r := MustAppend(t, s, draft(100))[0]
	if r.Seq != uint64(len(leaves)) {
		t.Errorf("first append after reopen got seq %d, want %d", r.Seq, len(leaves))
	}
	CheckLog(t, s)
}
