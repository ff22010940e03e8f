package sqlite

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	warden "github.com/warden-sh/warden"
)

// migrationFiles are the schema migrations, applied in version order. A file
// is named NNNN_description.sql; a migration, once released, never changes:
// later changes are new files.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, n := range names {
		base := path.Base(n)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s is not named NNNN_description.sql", base)
		}
		b, err := migrationFiles.ReadFile(n)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: strings.TrimSuffix(base, ".sql"), sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("two migrations have version %d", ms[i].version)
		}
	}
	return ms, nil
}

// migrate applies pending migrations in one IMMEDIATE transaction, so two
// processes opening a new file at once cannot both apply them.
func migrate(ctx context.Context, w *writer) (err error) {
	ms, err := migrations()
	if err != nil {
		return fmt.Errorf("sqlite.migrate: %w", err)
	}
	if _, err := w.conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("sqlite.migrate: %w", err)
	}
	defer func() {
		if err != nil {
			w.conn.ExecContext(ctx, "ROLLBACK") //nolint:errcheck // the cause is err
		}
	}()
	if _, err := w.conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at TEXT NOT NULL
	) STRICT`); err != nil {
		return fmt.Errorf("sqlite.migrate: %w", err)
	}
	var current int
	if err := w.conn.QueryRowContext(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&current); err != nil {
		return fmt.Errorf("sqlite.migrate: %w", err)
	}
	if n := len(ms); n > 0 && current > ms[n-1].version {
		return fmt.Errorf("sqlite.migrate: database schema version %d is newer than this program's %d", current, ms[n-1].version)
	}
	for _, m := range ms {
		if m.version <= current {
			continue
		}
		if _, err := w.conn.ExecContext(ctx, m.sql); err != nil {
			return fmt.Errorf("sqlite.migrate: %s: %w", m.name, err)
		}
		if _, err := w.conn.ExecContext(ctx,
			"INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
			m.version, m.name, warden.FormatTime(time.Now())); err != nil {
			return fmt.Errorf("sqlite.migrate: %s: %w", m.name, err)
		}
	}
	if _, err := w.conn.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("sqlite.migrate: %w", err)
	}
	return nil
}
