package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/sqlite"
	"github.com/warden-sh/warden/storetest"
)

// MustOpen opens the database at path and closes it when the test ends.
func MustOpen(tb testing.TB, path string, opts sqlite.Options) *sqlite.DB {
	tb.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	db, err := sqlite.Open(path, opts)
	if err != nil {
		tb.Fatalf("sqlite.Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return db
}

func tempPath(tb testing.TB) string {
	return filepath.Join(tb.TempDir(), "warden.db")
}

func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Harness{
		New: func(t *testing.T) warden.Store {
			return MustOpen(t, tempPath(t), sqlite.Options{})
		},
		Reopen: func(t *testing.T, s warden.Store) warden.Store {
			db := s.(*sqlite.DB)
			if err := db.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			return MustOpen(t, db.Path(), sqlite.Options{})
		},
	})
}

// TestConformanceSmallBatches runs the suite with batches of one, so that
// every Update has its own transaction.
func TestConformanceSmallBatches(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	storetest.Run(t, storetest.Harness{
		New: func(t *testing.T) warden.Store {
			return MustOpen(t, tempPath(t), sqlite.Options{MaxBatch: 1})
		},
	})
}

var draftN int

func draft() warden.Draft {
	draftN++
	return warden.Draft{
		Type:   "test_event",
		Scroll: warden.ScrollSystem,
		Time:   time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		Body:   map[string]any{"n": draftN},
	}
}

func appendOne(t *testing.T, s warden.Store) *warden.Receipt {
	t.Helper()
	var r *warden.Receipt
	storetest.MustUpdate(t, s, func(tx warden.Tx) (err error) {
		r, err = tx.Append(draft())
		return err
	})
	return r
}

// rawDB opens the file with database/sql directly, as an attacker or an
// operator with the sqlite3 shell would.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestAppendOnlyTriggers(t *testing.T) {
	path := tempPath(t)
	s := MustOpen(t, path, sqlite.Options{})
	storetest.MustUpdate(t, s, func(tx warden.Tx) error {
		for range 4 {
			if _, err := tx.Append(draft()); err != nil {
				return err
			}
		}
		return tx.PutCheckpoint(&warden.Checkpoint{Size: 4, RootHash: make([]byte, 32), Note: "n", CreatedAt: time.Now()})
	})
	db := rawDB(t, path)
	tests := []struct {
		name, stmt string
	}{
		{"update receipt", "UPDATE receipts SET type = 'forged' WHERE seq = 1"},
		{"update receipt body", "UPDATE receipts SET body = '{}'"},
		{"delete receipt", "DELETE FROM receipts WHERE seq = 3"},
		{"delete all receipts", "DELETE FROM receipts"},
		{"update node", "UPDATE merkle_nodes SET hash = zeroblob(32)"},
		{"delete node", "DELETE FROM merkle_nodes WHERE level = 2 AND idx = 0"},
		{"update checkpoint", "UPDATE checkpoints SET note = 'x'"},
		{"delete checkpoint", "DELETE FROM checkpoints"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := db.Exec(tt.stmt)
			if err == nil || !strings.Contains(err.Error(), "append-only") {
				t.Fatalf("%s: err = %v, want an append-only rejection", tt.stmt, err)
			}
		})
	}
	storetest.CheckLog(t, s)
}

// TestTwoWritersOneFile opens two stores on one file, as a server and a CLI
// in separate processes would, and appends from both at once.
func TestTwoWritersOneFile(t *testing.T) {
	path := tempPath(t)
	a := MustOpen(t, path, sqlite.Options{})
	b := MustOpen(t, path, sqlite.Options{})
	const goroutines, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, 2*goroutines)
	for _, s := range []*sqlite.DB{a, b} {
		for g := range goroutines {
			wg.Go(func() {
				for i := range each {
					err := s.Update(t.Context(), func(tx warden.Tx) error {
						_, err := tx.Append(warden.Draft{
							Type: "two_writers", Scroll: warden.Scrolls[(g+i)%len(warden.Scrolls)],
							Time: time.Now(), Body: map[string]any{"g": g, "i": i},
						})
						return err
					})
					if err != nil {
						errs <- err
						return
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	logA := storetest.CheckLog(t, a)
	logB := storetest.CheckLog(t, b)
	if len(logA) != 2*goroutines*each {
		t.Fatalf("log has %d receipts, want %d", len(logA), 2*goroutines*each)
	}
	if diff := cmp.Diff(logA, logB); diff != "" {
		t.Errorf("the two stores see different logs:\n%s", diff)
	}
	if diff := cmp.Diff(storetest.MustHead(t, a), storetest.MustHead(t, b)); diff != "" {
		t.Errorf("the two stores see different heads:\n%s", diff)
	}
}

// TestUpdateReturnsAfterCommit checks that once Update returns, another
// connection to the file sees the change.
func TestUpdateReturnsAfterCommit(t *testing.T) {
	path := tempPath(t)
	s := MustOpen(t, path, sqlite.Options{})
	raw := rawDB(t, path)
	for i := range 20 {
		r := appendOne(t, s)
		var n int
		if err := raw.QueryRow("SELECT count(*) FROM receipts").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != i+1 || r.Seq != uint64(i) {
			t.Fatalf("after Update %d returned seq %d, another connection sees %d receipts", i, r.Seq, n)
		}
	}
	var mode string
	if err := raw.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
}

// waitQueued waits until n Updates are queued behind the writer.
func waitQueued(t *testing.T, db *sqlite.DB, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for sqlite.QueueLen(db) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d Updates queued, want %d", sqlite.QueueLen(db), n)
		}
		runtime.Gosched()
	}
}

// blockWriter starts an Update that holds the writer until release is
// closed, and returns once it runs.
func blockWriter(t *testing.T, db *sqlite.DB) (release func(), done <-chan error) {
	t.Helper()
	started := make(chan struct{})
	rel := make(chan struct{})
	ch := make(chan error, 1)
	go func() {
		ch <- db.Update(context.Background(), func(tx warden.Tx) error {
			close(started)
			<-rel
			_, err := tx.Append(draft())
			return err
		})
	}()
	<-started
	return func() { close(rel) }, ch
}

func TestGroupCommit(t *testing.T) {
	for _, tt := range []struct {
		maxBatch, queued int
		want             []int
	}{
		{maxBatch: 256, queued: 10, want: []int{1, 10}},
		{maxBatch: 4, queued: 10, want: []int{1, 4, 4, 2}},
	} {
		t.Run(fmt.Sprintf("max%d", tt.maxBatch), func(t *testing.T) {
			var mu sync.Mutex
			var batches []int
			db := MustOpen(t, tempPath(t), sqlite.Options{MaxBatch: tt.maxBatch, OnCommit: func(ops int, _ time.Duration) {
				mu.Lock()
				batches = append(batches, ops)
				mu.Unlock()
			}})
			release, first := blockWriter(t, db)
			var wg sync.WaitGroup
			for i := range tt.queued {
				wg.Go(func() {
					err := db.Update(t.Context(), func(tx warden.Tx) error {
						if _, err := tx.Append(draft()); err != nil {
							return err
						}
						if i%2 == 1 {
							return errors.New("odd ones fail")
						}
						return nil
					})
					if (err != nil) != (i%2 == 1) {
						t.Errorf("Update %d: %v", i, err)
					}
				})
			}
			waitQueued(t, db, tt.queued)
			release()
			if err := <-first; err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			mu.Lock()
			defer mu.Unlock()
			if diff := cmp.Diff(tt.want, batches); diff != "" {
				t.Errorf("ops per commit (-want +got):\n%s", diff)
			}
			if log := storetest.CheckLog(t, db); len(log) != 1+tt.queued/2 {
				t.Errorf("log has %d receipts, want %d", len(log), 1+tt.queued/2)
			}
		})
	}
}

func TestCancelWhileQueued(t *testing.T) {
	db := MustOpen(t, tempPath(t), sqlite.Options{})
	release, first := blockWriter(t, db)
	ctx, cancel := context.WithCancel(t.Context())
	called := make(chan struct{}, 1)
	res := make(chan error, 1)
	go func() {
		res <- db.Update(ctx, func(tx warden.Tx) error {
			called <- struct{}{}
			return nil
		})
	}()
	waitQueued(t, db, 1)
	cancel()
	if err := <-res; !errors.Is(err, context.Canceled) {
		t.Errorf("canceled queued Update returned %v, want context.Canceled", err)
	}
	release()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	appendOne(t, db) // the writer has moved past the canceled request
	select {
	case <-called:
		t.Error("the canceled Update's fn ran")
	default:
	}
	storetest.CheckLog(t, db)
}

func TestCloseDrainsQueue(t *testing.T) {
	path := tempPath(t)
	db := MustOpen(t, path, sqlite.Options{})
	release, first := blockWriter(t, db)
	const n = 5
	res := make(chan error, n)
	for range n {
		go func() {
			res <- db.Update(context.Background(), func(tx warden.Tx) error {
				_, err := tx.Append(draft())
				return err
			})
		}()
	}
	waitQueued(t, db, n)
	closed := make(chan error, 1)
	go func() { closed <- db.Close() }()
	for !sqlite.Closing(db) {
		runtime.Gosched()
	}
	if err := db.Update(t.Context(), func(warden.Tx) error { return nil }); !errors.Is(err, sqlite.ErrClosed) {
		t.Errorf("Update during Close returned %v, want ErrClosed", err)
	}
	release()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for range n {
		if err := <-res; err != nil {
			t.Errorf("queued Update: %v", err)
		}
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	reopened := MustOpen(t, path, sqlite.Options{})
	if log := storetest.CheckLog(t, reopened); len(log) != n+1 {
		t.Errorf("after Close the log has %d receipts, want %d", len(log), n+1)
	}
}

func TestTxUnusableAfterFn(t *testing.T) {
	db := MustOpen(t, tempPath(t), sqlite.Options{})
	var leaked warden.Tx
	storetest.MustUpdate(t, db, func(tx warden.Tx) error {
		leaked = tx
		return nil
	})
	if _, err := leaked.Append(draft()); warden.ErrorCode(err) != warden.EINTERNAL {
		t.Errorf("Append on a finished tx returned %v, want EINTERNAL", err)
	}
	if err := leaked.SetMeta("k", "v"); warden.ErrorCode(err) != warden.EINTERNAL {
		t.Errorf("SetMeta on a finished tx returned %v, want EINTERNAL", err)
	}
	if log := storetest.CheckLog(t, db); len(log) != 0 {
		t.Errorf("log has %d receipts, want 0", len(log))
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := sqlite.Open("", sqlite.Options{}); err == nil {
		t.Error("Open(\"\") returned no error")
	}
	if _, err := sqlite.Open(filepath.Join(t.TempDir(), "missing", "dir", "w.db"), sqlite.Options{}); err == nil {
		t.Error("Open in a missing directory returned no error")
	}
}

func TestPathWithSpecialCharacters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a dir?x=1#frag", "w%20.db")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	db := MustOpen(t, path, sqlite.Options{})
	appendOne(t, db)
	if db.Path() != path {
		t.Errorf("Path() = %q, want %q", db.Path(), path)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("the database is not at %q: %v", path, err)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	path := tempPath(t)
	db := MustOpen(t, path, sqlite.Options{})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	raw := rawDB(t, path)
	if _, err := raw.Exec("INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'future', 'now')"); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	if _, err := sqlite.Open(path, sqlite.Options{}); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("Open of a newer schema returned %v, want a refusal", err)
	}
}
