package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/ledger"
	"github.com/warden-sh/warden/storetest"
)

// TestPragmas checks the settings durability depends on, on the very
// connections that use them.
func TestPragmas(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "w.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	for _, tt := range []struct {
		pragma string
		want   string
	}{
		{"journal_mode", "wal"},
		{"synchronous", "2"}, // FULL: every commit is fsync'd
		{"foreign_keys", "1"},
		{"busy_timeout", "10000"},
	} {
		var got string
		if err := db.w.conn.QueryRowContext(ctx, "PRAGMA "+tt.pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != tt.want {
			t.Errorf("writer PRAGMA %s = %s, want %s", tt.pragma, got, tt.want)
		}
	}
	var qo string
	if err := db.rdb.QueryRowContext(ctx, "PRAGMA query_only").Scan(&qo); err != nil || qo != "1" {
		t.Errorf("reader PRAGMA query_only = %q, %v; want 1", qo, err)
	}
	if _, err := db.rdb.ExecContext(ctx, "INSERT INTO meta (key, value) VALUES ('a', 'b')"); err == nil {
		t.Error("a read connection could write")
	}
}

func internalDraft(n int) warden.Draft {
	return warden.Draft{Type: "internal", Scroll: warden.ScrollSystem, Time: time.Unix(1, 0), Body: map[string]int{"n": n}}
}

// TestBrokenTransaction breaks the batch's transaction from inside an
// Update: the Updates already run in it fail, the ones after it are
// requeued and committed by the next batch.
func TestBrokenTransaction(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "w.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	started, release := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- db.Update(ctx, func(tx warden.Tx) error {
			close(started)
			<-release
			_, err := tx.Append(internalDraft(0))
			return err
		})
	}()
	<-started
	fns := []func(tx warden.Tx) error{
		func(tx warden.Tx) error { _, err := tx.Append(internalDraft(1)); return err },
		func(tx warden.Tx) error {
			if _, err := tx.Append(internalDraft(2)); err != nil {
				return err
			}
			// Ends the shared transaction behind the writer's back.
			_, err := tx.(*writeTx).w.q.exec("ROLLBACK")
			return err
		},
		func(tx warden.Tx) error { _, err := tx.Append(internalDraft(3)); return err },
	}
	res := make([]chan error, len(fns))
	for i, fn := range fns {
		res[i] = make(chan error, 1)
		go func() { res[i] <- db.Update(ctx, fn) }()
		for QueueLen(db) < i+1 {
			runtime.Gosched()
		}
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{warden.EINTERNAL, warden.EINTERNAL, ""} {
		if got := warden.ErrorCode(<-res[i]); got != want {
			t.Errorf("Update %d: code %q, want %q", i+1, got, want)
		}
	}
	log := storetest.CheckLog(t, db)
	var ns []int
	for _, r := range log {
		var b struct{ N int }
		if err := json.Unmarshal(r.Body, &b); err != nil {
			t.Fatal(err)
		}
		ns = append(ns, b.N)
	}
	if !slices.Equal(ns, []int{0, 3}) {
		t.Errorf("log holds drafts %v, want [0 3]", ns)
	}
}

// TestIgnoredStorageError checks that an Update whose fn swallows a
// storage error is rolled back rather than committed half-done.
func TestIgnoredStorageError(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "w.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	storetest.MustAppend(t, db, internalDraft(0))
	err = db.Update(ctx, func(tx warden.Tx) error {
		if err := tx.SetMeta("half", "done"); err != nil {
			return err
		}
		// Occupy seq 1 so that Append's insert fails.
		r, leaf, _ := ledger.NewReceipt(1, internalDraft(9))
		if _, err := tx.(*writeTx).w.q.exec(sqlInsertLeaf, 1, r.SchemaVersion, r.Type, r.Timestamp, r.Scroll, "[]", r.RootHash, string(r.Body), leaf); err != nil {
			return err
		}
		if _, err := tx.Append(internalDraft(1)); err == nil {
			t.Error("Append onto an occupied seq succeeded")
		}
		return nil // swallow it
	})
	if warden.ErrorCode(err) != warden.EINTERNAL {
		t.Fatalf("Update returned %v, want EINTERNAL", err)
	}
	storetest.MustView(t, db, func(tx warden.ReadTx) error {
		if _, err := tx.Meta("half"); warden.ErrorCode(err) != warden.ENOTFOUND {
			t.Errorf("the failed Update's meta was kept: %v", err)
		}
		return nil
	})
	if r := storetest.MustAppend(t, db, internalDraft(2))[0]; r.Seq != 1 {
		t.Errorf("next append got seq %d, want 1", r.Seq)
	}
	storetest.CheckLog(t, db)
}

// TestStmtCacheBound runs more distinct query texts than the statement
// caches hold, on both the writer and a reader.
func TestStmtCacheBound(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "w.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	check := func(q querier) error {
		for i := range maxCachedStmts + 50 {
			var got int
			if err := q.queryRow(fmt.Sprintf("SELECT %d + ?", i), 1).Scan(&got); err != nil {
				return err
			}
			if got != i+1 {
				t.Fatalf("SELECT %d + 1 = %d", i, got)
			}
		}
		return nil
	}
	storetest.MustUpdate(t, db, func(tx warden.Tx) error { return check(tx.(*writeTx).q) })
	storetest.MustView(t, db, func(tx warden.ReadTx) error { return check(tx.(*viewTx).q) })
	if n := len(db.w.q.cache.m); n != maxCachedStmts {
		t.Errorf("writer cache holds %d statements, want %d", n, maxCachedStmts)
	}
	storetest.MustAppend(t, db, internalDraft(1)) // hot statements still work
}

// TestTotalsReadNoTable: while this store commits, Totals answers from
// memory: with the read pool closed it still gives the committed numbers.
// (An hour's age allowance keeps a slow machine from reaching the refresh.)
func TestTotalsReadNoTable(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "w.db"), Options{TotalsMaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for n := 1; n <= 3; n++ {
		storetest.MustUpdate(t, db, func(tx warden.Tx) error {
			if err := tx.CreateIncident(&warden.Incident{
				ID: fmt.Sprintf("INC-%d", n), Number: uint64(n), CreatedAt: warden.FormatTime(time.Unix(int64(n), 0)),
				Class: warden.ClassToolCallBurst, Severity: warden.SeverityHigh, State: warden.StateOpen,
				Source: "test", Description: "totals", Evidence: map[string]string{},
				ContainmentActions: []string{}, ContainmentResults: []warden.ContainmentResult{}, ReportedBy: "test",
			}); err != nil {
				return err
			}
			_, err := tx.Append(warden.Draft{Type: "test_event", Scroll: warden.ScrollIncident, Time: time.Now(), Body: map[string]any{"n": n}})
			return err
		})
	}
	if err := db.rdb.Close(); err != nil {
		t.Fatal(err)
	}
	for range 100 {
		got, err := db.Totals(t.Context())
		if err != nil {
			t.Fatalf("Totals read a table: %v", err)
		}
		if want := (warden.Totals{Receipts: 3, TotalIncidents: 3, OpenIncidents: 3}); got != want {
			t.Fatalf("Totals = %+v, want %+v", got, want)
		}
	}
}

// TestIncidentRecordsRefuseWhatIsNotAnObject: listings send records as
// they are, so a row whose record is not one JSON object (damaged, or
// edited to smuggle entries into a listing) fails the read.
func TestIncidentRecordsRefuseWhatIsNotAnObject(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "w.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	storetest.MustUpdate(t, db, func(tx warden.Tx) error {
		return tx.CreateIncident(&warden.Incident{
			ID: "INC-1", Number: 1, CreatedAt: warden.FormatTime(time.Unix(1, 0)),
			Class: warden.ClassToolCallBurst, Severity: warden.SeverityHigh, State: warden.StateOpen,
			Source: "test", Description: "d", Evidence: map[string]string{},
			ContainmentActions: []string{}, ContainmentResults: []warden.ContainmentResult{}, ReportedBy: "test",
		})
	})
	if _, err := db.w.conn.ExecContext(t.Context(), `UPDATE incidents SET record = '[{"id":"INC-1"},{"id":"INC-forged"}]'`); err != nil {
		t.Fatal(err)
	}
	err = db.View(t.Context(), func(tx warden.ReadTx) error {
		return tx.IncidentRecords(warden.IncidentFilter{}, func(warden.IncidentRecord) error { return nil })
	})
	if warden.ErrorCode(err) != warden.EINTERNAL {
		t.Fatalf("IncidentRecords over a record that is an array: %v, want an internal error", err)
	}
}
