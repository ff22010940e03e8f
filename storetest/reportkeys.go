package storetest

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	warden "github.com/warden-sh/warden"
)

// testReportKeys checks report idempotency keys: stored per principal,
// replaced under the same key, refused for an unknown incident or a
// missing field, rolled back with their transaction, kept across a reopen,
// and forgotten oldest first, at most limit at a time.
func testReportKeys(t *testing.T, h Harness) {
	s := h.New(t)
	createIncidents(t, s, pagedIncidents(1, 4)...)
	key := func(principal, k string, inc, ms int) *warden.ReportKey {
		return &warden.ReportKey{Principal: principal, Key: k, RequestHash: "sha256:" + k, IncidentID: incidentID(inc), CreatedAt: at(ms).UTC()}
	}
	a1, a2, b1 := key("alice", "k1", 1, 10), key("alice", "k2", 2, 20), key("bob", "k1", 3, 30)
	MustUpdate(t, s, func(tx warden.Tx) error {
		for _, k := range []*warden.ReportKey{a1, a2, b1} {
			if err := tx.PutReportKey(k); err != nil {
				return err
			}
		}
		return nil
	})
	get := func(tx warden.ReadTx, principal, k string, want *warden.ReportKey) {
		t.Helper()
		got, err := tx.ReportKey(principal, k)
		if want == nil {
			wantCode(t, err, warden.ENOTFOUND)
			return
		}
		if err != nil {
			t.Errorf("ReportKey(%s, %s): %v", principal, k, err)
		} else if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("ReportKey(%s, %s) (-want +got):\n%s", principal, k, diff)
		}
	}
	MustView(t, s, func(tx warden.ReadTx) error {
		var all []*warden.ReportKey
		if err := tx.EachReportKey(func(k *warden.ReportKey) error { all = append(all, k); return nil }); err != nil {
			return err
		}
		if diff := cmp.Diff([]*warden.ReportKey{a1, a2, b1}, all); diff != "" {
			t.Errorf("EachReportKey, by principal and key (-want +got):\n%s", diff)
		}
		get(tx, "alice", "k1", a1)
		get(tx, "bob", "k1", b1) // keys are per principal
		get(tx, "bob", "k2", nil)
		return nil
	})

	// Refusals, and a failed transaction keeps nothing.
	MustUpdate(t, s, func(tx warden.Tx) error {
		wantCode(t, tx.PutReportKey(key("carol", "k1", 99, 40)), warden.ENOTFOUND)
		for _, bad := range []*warden.ReportKey{nil, key("", "k", 1, 1), key("carol", "", 1, 1), {Principal: "carol", Key: "k", RequestHash: "h", IncidentID: incidentID(1)}} {
			wantCode(t, tx.PutReportKey(bad), warden.EINVALID)
		}
		return nil
	})
	_ = s.Update(t.Context(), func(tx warden.Tx) error {
		if err := tx.PutReportKey(key("carol", "k1", 1, 40)); err != nil {
			return err
		}
		return warden.Errorf(warden.ECONFLICT, "roll back")
	})
	MustView(t, s, func(tx warden.ReadTx) error { get(tx, "carol", "k1", nil); return nil })

	// The same key again replaces the old binding (an expired key reused).
	a1b := key("alice", "k1", 4, 50)
	MustUpdate(t, s, func(tx warden.Tx) error { return tx.PutReportKey(a1b) })
	if h.Reopen != nil {
		s = h.Reopen(t, s)
	}
	MustView(t, s, func(tx warden.ReadTx) error { get(tx, "alice", "k1", a1b); return nil })

	// Forgotten oldest first (a2 at 20, then b1 at 30), at most limit.
	forget := func(before, limit, want int) {
		t.Helper()
		MustUpdate(t, s, func(tx warden.Tx) error {
			n, err := tx.ForgetReportKeys(at(before), limit)
			if err == nil && n != want {
				t.Errorf("ForgetReportKeys(%d, %d) = %d, want %d", before, limit, n, want)
			}
			return err
		})
	}
	forget(51, 1, 1)
	MustView(t, s, func(tx warden.ReadTx) error {
		get(tx, "alice", "k2", nil)
		get(tx, "bob", "k1", b1)
		return nil
	})
	forget(50, 10, 1) // b1; a1b was created at 50, not before
	forget(50, 10, 0)
	forget(51, 0, 0)
	MustView(t, s, func(tx warden.ReadTx) error {
		get(tx, "bob", "k1", nil)
		get(tx, "alice", "k1", a1b)
		return nil
	})
}
