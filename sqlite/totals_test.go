package sqlite_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/sqlite"
)

// reportOne stores one open incident and its receipt, as a report does.
func reportOne(t *testing.T, s warden.Store, n int) {
	t.Helper()
	err := s.Update(t.Context(), func(tx warden.Tx) error {
		if err := tx.CreateIncident(&warden.Incident{
			ID: fmt.Sprintf("INC-%06d", n), Number: uint64(n), CreatedAt: warden.FormatTime(time.Unix(int64(n), 0)),
			Class: warden.ClassToolCallBurst, Severity: warden.SeverityHigh, State: warden.StateOpen,
			Source: "test", Description: "totals", Evidence: map[string]string{},
			ContainmentActions: []string{}, ContainmentResults: []warden.ContainmentResult{}, ReportedBy: "test",
		}); err != nil {
			return err
		}
		_, err := tx.Append(warden.Draft{Type: "test_event", Scroll: warden.ScrollIncident, Time: time.Now(), Body: map[string]any{"n": n}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func mustTotals(t *testing.T, s warden.Store) warden.Totals {
	t.Helper()
	got, err := s.Totals(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestTotalsSeeOtherProcesses: another process's commits on the same file
// reach Totals at this store's next commit, read inside that commit, or at
// the first call past TotalsMaxAge.
func TestTotalsSeeOtherProcesses(t *testing.T) {
	path := tempPath(t)
	a := MustOpen(t, path, sqlite.Options{TotalsMaxAge: time.Hour})
	b := MustOpen(t, path, sqlite.Options{})
	c := MustOpen(t, path, sqlite.Options{TotalsMaxAge: -1})
	if got := mustTotals(t, a); got != (warden.Totals{}) {
		t.Fatalf("empty store: %+v", got)
	}
	// Both write concurrently: each batch of a's may find b's commits.
	var wg sync.WaitGroup
	for w, s := range []warden.Store{a, b} {
		wg.Go(func() {
			for i := range 40 {
				reportOne(t, s, 1+w*1000+i)
			}
		})
	}
	wg.Wait()
	want := warden.Totals{Receipts: 80, TotalIncidents: 80, OpenIncidents: 80}
	if got := mustTotals(t, c); got != want {
		t.Errorf("a store that reads every time: %+v, want %+v", got, want)
	}
	// b's last commits may have followed a's last: a's next commit sees them.
	reportOne(t, a, 500)
	want = warden.Totals{Receipts: 81, TotalIncidents: 81, OpenIncidents: 81}
	if got := mustTotals(t, a); got != want {
		t.Errorf("after its own commit, a gives %+v, want %+v", got, want)
	}
	// Idle: b's commit reaches a store with no age allowance at once, and
	// a's (an hour's) at its next commit.
	reportOne(t, b, 501)
	want = warden.Totals{Receipts: 82, TotalIncidents: 82, OpenIncidents: 82}
	if got := mustTotals(t, c); got != want {
		t.Errorf("idle store reading every time: %+v, want %+v", got, want)
	}
	if got := mustTotals(t, a); got.Receipts != 81 {
		t.Errorf("a answered from memory within its age allowance with %+v, want the 81 it knew", got)
	}
	reportOne(t, a, 502)
	want = warden.Totals{Receipts: 83, TotalIncidents: 83, OpenIncidents: 83}
	if got := mustTotals(t, a); got != want {
		t.Errorf("after its next commit, a gives %+v, want %+v", got, want)
	}
}
