// Package sqlite is warden's embedded storage: a warden.Store on one SQLite
// file in WAL mode (modernc.org/sqlite, pure Go), with group commit.
//
// Writes go through one writer goroutine that owns one connection. It takes
// every queued Update (up to Options.MaxBatch), runs each in its own
// SAVEPOINT inside one BEGIN IMMEDIATE transaction, and commits them with a
// single fsync (synchronous=FULL). An Update whose fn fails is rolled back to
// its savepoint without touching the others. Reads run on a pool of
// read-only connections, each View in one snapshot, concurrently with the
// writer. Streams (reads held open while a client downloads what they
// produce) run on a second pool of their own, so however many are open or
// waiting, Views (authentication, /health) and the writer never wait for
// them.
//
// Several processes (a server and a CLI) may open the same file: the writer
// reloads the log head inside every transaction, so appends from another
// process are never overwritten.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	warden "github.com/warden-sh/warden"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// ErrClosed is returned by Update and View after Close.
var ErrClosed = errors.New("sqlite: store is closed")

// DefaultMaxBatch is the default number of Updates committed together.
const DefaultMaxBatch = 256

// DefaultStreamConns is the default size of the Stream pool: the HTTP
// API's default stream limit (http.DefaultMaxStreams), so an admitted
// stream never waits for a connection. Connections open on first use.
const DefaultStreamConns = 8

// Options configure Open. The zero value is usable.
type Options struct {
	// Logger receives internal errors and panics; nil discards them.
	Logger *slog.Logger
	// MaxBatch caps how many queued Updates share one commit
	// (DefaultMaxBatch when ≤ 0).
	MaxBatch int
	// ReadConns caps the read-only connection pool of View (default: 2
	// per CPU, at least 4).
	ReadConns int
	// StreamConns caps the separate read-only pool of Stream (default
	// DefaultStreamConns). A Stream beyond it waits for one to free up (or
	// for its context to end); servers limit their streams to it.
	StreamConns int
	// OnCommit, if set, is called on the writer goroutine after every
	// successful commit with the number of Updates it made durable and the
	// time from BEGIN to the end of COMMIT. It MUST return quickly.
	OnCommit func(ops int, d time.Duration)
	// TotalsMaxAge bounds how long Totals answers from memory while this
	// store commits nothing (warden.TotalsMaxAge when 0; negative: every
	// call reads, but for calls that find another's read under way, which
	// answer from memory).
	TotalsMaxAge time.Duration
}

// DB is a warden.Store on one SQLite file. It is safe for concurrent use.
type DB struct {
	path string
	log  *slog.Logger
	opts Options

	wdb *sql.DB // writer pool: exactly one connection, owned by w
	rdb *sql.DB // read-only pool for View
	sdb *sql.DB // read-only pool for Stream
	w   *writer
	rst *stmtCache // statements prepared on rdb
	sst *stmtCache // statements prepared on sdb

	mu      sync.Mutex
	queue   []*request
	closed  bool
	wake    chan struct{} // capacity 1: "the queue may be non-empty"
	stopped chan struct{} // closed when the writer goroutine exits

	totals totals // Totals' copy, moved on by the writer

	closeOnce sync.Once
	closeErr  error
}

var _ warden.Store = (*DB)(nil)

// Open opens (creating if needed) the database file at path, applies
// pending migrations and starts the writer.
func Open(path string, opts Options) (*DB, error) {
	if path == "" {
		return nil, errors.New("sqlite.Open: empty path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite.Open: %w", err)
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = DefaultMaxBatch
	}
	if opts.ReadConns <= 0 {
		opts.ReadConns = max(4, 2*runtime.NumCPU())
	}
	if opts.StreamConns <= 0 {
		opts.StreamConns = DefaultStreamConns
	}
	if opts.TotalsMaxAge == 0 {
		opts.TotalsMaxAge = warden.TotalsMaxAge
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	db := &DB{
		path:    abs,
		log:     log,
		opts:    opts,
		wake:    make(chan struct{}, 1),
		stopped: make(chan struct{}),
	}
	if err := db.open(); err != nil {
		db.closeConns()
		return nil, fmt.Errorf("sqlite.Open: %w", err)
	}
	go db.run()
	return db, nil
}

// dsn returns the driver DSN for the file with the given pragmas. The path
// is a file: URI so that '?' or '#' in it cannot be mistaken for the query.
func dsn(path string, txlock string, pragmas ...string) string {
	q := url.Values{}
	for _, p := range pragmas {
		q.Add("_pragma", p)
	}
	if txlock != "" {
		q.Set("_txlock", txlock)
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(path), RawQuery: q.Encode()}
	return u.String()
}

func (db *DB) open() error {
	ctx := context.Background()
	var err error
	// The writer: WAL, every commit fsync'd, foreign keys on, a long busy
	// timeout so another process's write transaction is waited for.
	db.wdb, err = sql.Open("sqlite", dsn(db.path, "immediate",
		"busy_timeout(10000)",
		"journal_mode(WAL)",
		"synchronous(FULL)",
		"journal_size_limit(67108864)",
		"foreign_keys(1)",
		"cache_size(-32768)",
		"temp_store(MEMORY)",
	))
	if err != nil {
		return err
	}
	db.wdb.SetMaxOpenConns(1)
	db.wdb.SetMaxIdleConns(1)
	db.wdb.SetConnMaxLifetime(0)
	db.wdb.SetConnMaxIdleTime(0)
	conn, err := db.wdb.Conn(ctx)
	if err != nil {
		return err
	}
	db.w = newWriter(db, conn)
	if err := migrate(ctx, db.w); err != nil {
		return err
	}
	if err := db.w.prepare(); err != nil {
		return err
	}

	// Readers: query_only so a View can never write, whatever its SQL.
	if db.rdb, err = db.openReaders(db.opts.ReadConns, "cache_size(-16384)"); err != nil {
		return err
	}
	db.rst = newStmtCache(db.rdb.PrepareContext)
	// Streams scan once, front to back: a small page cache is enough.
	if db.sdb, err = db.openReaders(db.opts.StreamConns, "cache_size(-4096)"); err != nil {
		return err
	}
	db.sst = newStmtCache(db.sdb.PrepareContext)
	return nil
}

// openReaders opens a pool of n read-only connections.
func (db *DB) openReaders(n int, cache string) (*sql.DB, error) {
	rdb, err := sql.Open("sqlite", dsn(db.path, "",
		"busy_timeout(10000)",
		"foreign_keys(1)",
		"query_only(1)",
		cache,
		"temp_store(MEMORY)",
	))
	if err != nil {
		return nil, err
	}
	rdb.SetMaxOpenConns(n)
	rdb.SetMaxIdleConns(n)
	rdb.SetConnMaxIdleTime(0)
	rdb.SetConnMaxLifetime(0)
	if err := rdb.PingContext(context.Background()); err != nil {
		rdb.Close()
		return nil, err
	}
	return rdb, nil
}

// ReadConns returns the size of View's connection pool.
func (db *DB) ReadConns() int { return db.opts.ReadConns }

// Path returns the absolute path of the database file.
func (db *DB) Path() string { return db.path }

// Update runs fn in a read-write transaction shared with other queued
// Updates (group commit) and returns once that transaction is durable.
// It returns fn's error unchanged, an EINTERNAL error if fn panicked or the
// commit failed, ctx's error if ctx ended before fn started, or ErrClosed.
// fn runs on the writer goroutine while other Updates wait, so it SHOULD be
// quick; it MUST NOT call Update or View of the same DB, use tx from another
// goroutine, or use tx after returning.
func (db *DB) Update(ctx context.Context, fn func(tx warden.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &request{fn: fn, done: make(chan error, 1)}
	db.mu.Lock()
	if db.closed {
		db.mu.Unlock()
		return fmt.Errorf("sqlite.Update: %w", ErrClosed)
	}
	db.queue = append(db.queue, r)
	db.mu.Unlock()
	select {
	case db.wake <- struct{}{}:
	default:
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		if r.state.CompareAndSwap(stateQueued, stateCanceled) {
			return ctx.Err()
		}
		// fn has started: its outcome is decided by the commit.
		return <-r.done
	}
}

// View runs fn in a read-only transaction: every read sees one snapshot of
// the committed database. It returns fn's error unchanged.
func (db *DB) View(ctx context.Context, fn func(tx warden.ReadTx) error) error {
	return db.view(ctx, "sqlite.View", db.rdb, db.rst, fn)
}

// Stream is View on the Stream pool (Options.StreamConns): fn may take as
// long as a client takes to read what it writes without holding up any
// View or Update. Once the pool is busy, Stream waits for a connection
// until ctx ends.
func (db *DB) Stream(ctx context.Context, fn func(tx warden.ReadTx) error) error {
	return db.view(ctx, "sqlite.Stream", db.sdb, db.sst, fn)
}

func (db *DB) view(ctx context.Context, op string, pool *sql.DB, cache *stmtCache, fn func(tx warden.ReadTx) error) error {
	db.mu.Lock()
	closed := db.closed
	db.mu.Unlock()
	if closed {
		return fmt.Errorf("%s: %w", op, ErrClosed)
	}
	tx, err := pool.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only: nothing to lose
	v := &viewTx{reader: reader{q: &txQuerier{ctx: ctx, tx: tx, cache: cache}}}
	return fn(v)
}

// Close stops accepting Updates, waits for the queued ones to commit, and
// closes the database. It is safe to call more than once.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		db.mu.Lock()
		db.closed = true
		db.mu.Unlock()
		select {
		case db.wake <- struct{}{}:
		default:
		}
		<-db.stopped
		db.closeErr = db.closeConns()
	})
	return db.closeErr
}

func (db *DB) closeConns() error {
	var errs []error
	if db.rst != nil {
		errs = append(errs, db.rst.close())
	}
	if db.sst != nil {
		errs = append(errs, db.sst.close())
	}
	if db.w != nil {
		errs = append(errs, db.w.close())
	}
	if db.rdb != nil {
		errs = append(errs, db.rdb.Close())
	}
	if db.sdb != nil {
		errs = append(errs, db.sdb.Close())
	}
	if db.wdb != nil {
		errs = append(errs, db.wdb.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlite.Close: %w", err)
	}
	return nil
}
