package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
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

// afterMigration are Go steps, by the version they follow: data changes a
// migration's SQL cannot make (they need the domain's rules). Each runs in
// the migration transaction right after its version's SQL, so a database
// is never at that version without it.
var afterMigration = map[int]func(ctx context.Context, conn *sql.Conn) error{
	7: backfillDestinations,
}

// migrate applies pending migrations in one IMMEDIATE transaction, so two
// processes opening a new file at once cannot both apply them.
func migrate(ctx context.Context, w *writer) error {
	ms, err := migrations()
	if err != nil {
		return fmt.Errorf("sqlite.migrate: %w", err)
	}
	return applyMigrations(ctx, w.conn, ms)
}

// applyMigrations applies those of ms (sorted by version) that conn's
// database lacks, each followed by its afterMigration step, in one
// IMMEDIATE transaction. It refuses a database newer than the last of ms.
func applyMigrations(ctx context.Context, conn *sql.Conn, ms []migration) (err error) {
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("sqlite.migrate: %w", err)
	}
	defer func() {
		if err != nil {
			conn.ExecContext(ctx, "ROLLBACK") //nolint:errcheck // the cause is err
		}
	}()
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at TEXT NOT NULL
	) STRICT`); err != nil {
		return fmt.Errorf("sqlite.migrate: %w", err)
	}
	var current int
	if err := conn.QueryRowContext(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&current); err != nil {
		return fmt.Errorf("sqlite.migrate: %w", err)
	}
	if n := len(ms); n > 0 && current > ms[n-1].version {
		return fmt.Errorf("sqlite.migrate: database schema version %d is newer than this program's %d", current, ms[n-1].version)
	}
	for _, m := range ms {
		if m.version <= current {
			continue
		}
		if _, err := conn.ExecContext(ctx, m.sql); err != nil {
			return fmt.Errorf("sqlite.migrate: %s: %w", m.name, err)
		}
		if step := afterMigration[m.version]; step != nil {
			if err := step(ctx, conn); err != nil {
				return fmt.Errorf("sqlite.migrate: %s: %w", m.name, err)
			}
		}
		if _, err := conn.ExecContext(ctx,
			"INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
			m.version, m.name, warden.FormatTime(time.Now())); err != nil {
			return fmt.Errorf("sqlite.migrate: %s: %w", m.name, err)
		}
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("sqlite.migrate: %w", err)
	}
	return nil
}

// backfillBatch bounds the rows backfillDestinations holds at once.
const backfillBatch = 1000

// backfillDestinations sets the destination of pending deliveries written
// before migration 7, in batches by id so memory stays bounded whatever the
// backlog. Delivered and failed rows keep an empty one: they are never sent
// again, and only pending rows are read by destination.
func backfillDestinations(ctx context.Context, conn *sql.Conn) error {
	type row struct {
		id  int64
		url string
	}
	var after int64
	for {
		rows, err := conn.QueryContext(ctx, `SELECT id, coalesce(json_extract(record, '$.url'), '') FROM webhook_deliveries
			WHERE status = 'pending' AND destination = '' AND id > ? ORDER BY id LIMIT ?`, after, backfillBatch)
		if err != nil {
			return fmt.Errorf("backfill destinations: %w", err)
		}
		var batch []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.id, &r.url); err != nil {
				rows.Close()
				return fmt.Errorf("backfill destinations: %w", err)
			}
			batch = append(batch, r)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return fmt.Errorf("backfill destinations: %w", err)
		}
		for _, r := range batch {
			if _, err := conn.ExecContext(ctx, "UPDATE webhook_deliveries SET destination = ? WHERE id = ?", warden.Destination(r.url), r.id); err != nil {
				return fmt.Errorf("backfill destinations: %w", err)
			}
			after = r.id
		}
		if len(batch) < backfillBatch {
			return nil
		}
	}
}
