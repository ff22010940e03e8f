package storetest

import (
	"bytes"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	warden "github.com/warden-sh/warden"
)

func checkpoint(size uint64, n int) *warden.Checkpoint {
	return &warden.Checkpoint{
		Size:      size,
		RootHash:  bytes.Repeat([]byte{byte(size)}, 32),
		Note:      sprintf("warden.test\n%d\nroot\n\n— warden.test sig%d\n", size, n),
		CreatedAt: at(n),
	}
}

func testCheckpoints(t *testing.T, h Harness) {
	s := h.New(t)
	MustView(t, s, func(tx warden.ReadTx) error {
		_, err := tx.LatestCheckpoint()
		wantCode(t, err, warden.ENOTFOUND)
		return tx.Checkpoints(func(c *warden.Checkpoint) error {
			t.Errorf("Checkpoints on an empty store called fn with %+v", c)
			return nil
		})
	})
	appendLeaves(t, s, 5)
	put := []*warden.Checkpoint{checkpoint(3, 1), checkpoint(1, 2), checkpoint(5, 3), checkpoint(0, 4)}
	for _, c := range put {
		MustUpdate(t, s, func(tx warden.Tx) error { return tx.PutCheckpoint(c) })
	}
	// A checkpoint may cover receipts appended earlier in the same Update.
	var six *warden.Checkpoint
	MustUpdate(t, s, func(tx warden.Tx) error {
		if _, err := tx.Append(draft(5)); err != nil {
			return err
		}
		six = checkpoint(6, 5)
		return tx.PutCheckpoint(six)
	})
	for _, tt := range []struct {
		name string
		c    *warden.Checkpoint
		code string
	}{
		{"duplicate size", checkpoint(3, 9), warden.ECONFLICT},
		{"duplicate of the latest", checkpoint(6, 9), warden.ECONFLICT},
		{"size beyond the log", checkpoint(7, 9), warden.EINVALID},
		{"size far beyond the log", checkpoint(1<<40, 9), warden.EINVALID},
	} {
		err := s.Update(t.Context(), func(tx warden.Tx) error { return tx.PutCheckpoint(tt.c) })
		if warden.ErrorCode(err) != tt.code {
			t.Errorf("%s: PutCheckpoint returned %v, want code %s", tt.name, err, tt.code)
		}
	}
	want := []*warden.Checkpoint{put[3], put[1], put[0], put[2], six}
	MustView(t, s, func(tx warden.ReadTx) error {
		latest, err := tx.LatestCheckpoint()
		if err != nil {
			return err
		}
		if diff := cmp.Diff(six, latest); diff != "" {
			t.Errorf("LatestCheckpoint (-want +got):\n%s", diff)
		}
		var got []*warden.Checkpoint
		if err := tx.Checkpoints(func(c *warden.Checkpoint) error {
			got = append(got, c)
			return nil
		}); err != nil {
			return err
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Checkpoints (-want +got):\n%s", diff)
		}
		calls := 0
		err = tx.Checkpoints(func(*warden.Checkpoint) error {
			calls++
			return errBoom
		})
		if !errors.Is(err, errBoom) || calls != 1 {
			t.Errorf("Checkpoints with a failing fn: %v after %d calls; want fn's error after 1", err, calls)
		}
		return nil
	})
}

func testCredentials(t *testing.T, h Harness) {
	s := h.New(t)
	MustView(t, s, func(tx warden.ReadTx) error {
		cs, err := tx.Credentials()
		if err != nil {
			return err
		}
		if cs == nil || len(cs) != 0 {
			t.Errorf("Credentials on an empty store = %#v, want an empty non-nil slice", cs)
		}
		return nil
	})
	alice := &warden.Credential{Name: "alice", Roles: []warden.Role{warden.RoleAdmin}, TokenHash: "hash-alice", CreatedAt: at(1)}
	bob := &warden.Credential{
		Name: "bob", Roles: []warden.Role{warden.RoleReporter, warden.RoleRead},
		Source: "airlock", Classes: []string{"prompt_injection", "tool_call_burst"},
		TokenHash: "hash-bob", CreatedAt: at(2),
	}
	carl := &warden.Credential{Name: "carl.ops@example", Roles: []warden.Role{warden.RoleOperator}, Human: true, TokenHash: "hash-carl", CreatedAt: at(3)}
	for _, c := range []*warden.Credential{bob, carl, alice} {
		MustUpdate(t, s, func(tx warden.Tx) error { return tx.CreateCredential(c) })
	}
	for _, tt := range []struct {
		name string
		c    *warden.Credential
		code string
	}{
		{"duplicate name", &warden.Credential{Name: "alice", Roles: []warden.Role{warden.RoleRead}, TokenHash: "other", CreatedAt: at(4)}, warden.ECONFLICT},
		{"duplicate token", &warden.Credential{Name: "dave", Roles: []warden.Role{warden.RoleRead}, TokenHash: "hash-bob", CreatedAt: at(4)}, warden.ECONFLICT},
		{"no roles", &warden.Credential{Name: "erin", TokenHash: "hash-erin", CreatedAt: at(4)}, warden.EINVALID},
		{"bad name", &warden.Credential{Name: "-x", Roles: []warden.Role{warden.RoleRead}, TokenHash: "hash-x", CreatedAt: at(4)}, warden.EINVALID},
		{"unknown class", &warden.Credential{Name: "fay", Roles: []warden.Role{warden.RoleReporter}, Source: "s", Classes: []string{"exfiltration"},
			TokenHash: "hash-fay", CreatedAt: at(4)}, warden.EINVALID},
	} {
		err := s.Update(t.Context(), func(tx warden.Tx) error { return tx.CreateCredential(tt.c) })
		if warden.ErrorCode(err) != tt.code {
			t.Errorf("%s: CreateCredential returned %v, want code %s", tt.name, err, tt.code)
		}
	}

	revokedAt := at(10)
	MustUpdate(t, s, func(tx warden.Tx) error { return tx.RevokeCredential("bob", revokedAt) })
	for _, tt := range []struct {
		name, cred, code string
	}{
		{"twice", "bob", warden.ECONFLICT},
		{"unknown", "zed", warden.ENOTFOUND},
	} {
		err := s.Update(t.Context(), func(tx warden.Tx) error { return tx.RevokeCredential(tt.cred, at(11)) })
		if warden.ErrorCode(err) != tt.code {
			t.Errorf("revoke %s: RevokeCredential returned %v, want code %s", tt.name, err, tt.code)
		}
	}
	revokedBob := *bob
	revokedBob.RevokedAt = &revokedAt

	opts := cmpopts.EquateEmpty()
	MustView(t, s, func(tx warden.ReadTx) error {
		got, err := tx.Credential("alice")
		if err != nil {
			return err
		}
		if diff := cmp.Diff(alice, got, opts); diff != "" {
			t.Errorf("Credential(alice) (-want +got):\n%s", diff)
		}
		got, err = tx.CredentialByTokenHash("hash-bob")
		if err != nil {
			return err
		}
		if diff := cmp.Diff(&revokedBob, got, opts); diff != "" {
			t.Errorf("CredentialByTokenHash(bob), revoked (-want +got):\n%s", diff)
		}
		_, err = tx.CredentialByTokenHash("hash-nobody")
		wantCode(t, err, warden.ENOTFOUND)
		_, err = tx.Credential("nobody")
		wantCode(t, err, warden.ENOTFOUND)
		list, err := tx.Credentials()
		if err != nil {
			return err
		}
		if diff := cmp.Diff([]*warden.Credential{alice, &revokedBob, carl}, list, opts); diff != "" {
			t.Errorf("Credentials (-want +got):\n%s", diff)
		}
		// CredentialsAfter pages the same list by name; CountCredentials
		// counts it, revoked ones too.
		if n, err := tx.CountCredentials(); err != nil || n != 3 {
			t.Errorf("CountCredentials = %d, %v; want 3", n, err)
		}
		for _, tt := range []struct {
			after string
			limit int
			want  []*warden.Credential
		}{
			{"", 10, []*warden.Credential{alice, &revokedBob, carl}},
			{"", 2, []*warden.Credential{alice, &revokedBob}},
			{"alice", 1, []*warden.Credential{&revokedBob}},
			{"alice", 10, []*warden.Credential{&revokedBob, carl}},
			{"b", 10, []*warden.Credential{&revokedBob, carl}}, // a position between names
			{"carl.ops@example", 10, []*warden.Credential{}},
			{"zz", 10, []*warden.Credential{}},
		} {
			got, err := tx.CredentialsAfter(tt.after, tt.limit)
			if err != nil {
				return err
			}
			if diff := cmp.Diff(tt.want, got, opts); diff != "" || got == nil {
				t.Errorf("CredentialsAfter(%q, %d) (-want +got), nil %v:\n%s", tt.after, tt.limit, got == nil, diff)
			}
		}
		return nil
	})

	// The human attribute: stored on create (carl), set and cleared later,
	// on a revoked credential too (the store records; rules decide).
	MustUpdate(t, s, func(tx warden.Tx) error {
		if err := tx.SetCredentialHuman("alice", true); err != nil {
			return err
		}
		if err := tx.SetCredentialHuman("carl.ops@example", false); err != nil {
			return err
		}
		return tx.SetCredentialHuman("bob", true)
	})
	err := s.Update(t.Context(), func(tx warden.Tx) error { return tx.SetCredentialHuman("zed", true) })
	wantCode(t, err, warden.ENOTFOUND)
	MustView(t, s, func(tx warden.ReadTx) error {
		for name, want := range map[string]bool{"alice": true, "bob": true, "carl.ops@example": false} {
			c, err := tx.Credential(name)
			if err != nil {
				return err
			}
			if c.Human != want {
				t.Errorf("Credential(%s).Human = %v, want %v", name, c.Human, want)
			}
		}
		c, err := tx.CredentialByTokenHash("hash-alice")
		if err != nil {
			return err
		}
		if !c.Human || !c.Principal().Human {
			t.Errorf("CredentialByTokenHash(alice) = %+v, want human", c)
		}
		return nil
	})
}

func testMeta(t *testing.T, h Harness) {
	s := h.New(t)
	MustView(t, s, func(tx warden.ReadTx) error {
		_, err := tx.Meta("k")
		wantCode(t, err, warden.ENOTFOUND)
		return nil
	})
	MustUpdate(t, s, func(tx warden.Tx) error {
		if err := tx.SetMeta("k", "v1"); err != nil {
			return err
		}
		if err := tx.SetMeta("empty", ""); err != nil {
			return err
		}
		v, err := tx.Meta("k")
		if err != nil || v != "v1" {
			t.Errorf("Meta inside the Update = %q, %v; want v1", v, err)
		}
		return tx.SetMeta("k", "v2")
	})
	MustView(t, s, func(tx warden.ReadTx) error {
		for k, want := range map[string]string{"k": "v2", "empty": ""} {
			got, err := tx.Meta(k)
			if err != nil {
				return err
			}
			if got != want {
				t.Errorf("Meta(%q) = %q, want %q", k, got, want)
			}
		}
		return nil
	})
}
