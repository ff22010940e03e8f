package sqlite

import (
	"context"
	"path/filepath"
	"testing"
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
