package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"sync"
)

// querier runs SQL for a transaction. Each statement is prepared once per
// connection and reused (see maxCachedStmts).
type querier interface {
	query(q string, args ...any) (*sql.Rows, error)
	queryRow(q string, args ...any) *row
	exec(q string, args ...any) (sql.Result, error)
}

// maxCachedStmts bounds a stmtCache. Query texts are meant to be a small
// fixed set; if some caller builds unbounded variants (say, a literal
// LIMIT), the excess runs unprepared instead of growing the cache.
const maxCachedStmts = 512

// stmtCache holds prepared statements by query text.
type stmtCache struct {
	prep     func(ctx context.Context, query string) (*sql.Stmt, error)
	mu       sync.Mutex
	m        map[string]*sql.Stmt
	warming  map[string]bool
	closed   bool
	inflight sync.WaitGroup // background preparations, awaited by close
}

func newStmtCache(prep func(ctx context.Context, query string) (*sql.Stmt, error)) *stmtCache {
	return &stmtCache{prep: prep, m: make(map[string]*sql.Stmt)}
}

// get returns the statement prepared for q, or nil (and no error) when the
// cache is full and q must run unprepared.
func (c *stmtCache) get(ctx context.Context, q string) (*sql.Stmt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.m[q]; ok {
		return s, nil
	}
	if len(c.m) >= maxCachedStmts {
		return nil, nil
	}
	s, err := c.prep(ctx, q)
	if err != nil {
		return nil, err
	}
	c.m[q] = s
	return s, nil
}

// lookup returns the statement prepared for q, or nil, without blocking on
// a preparation. On a miss it prepares q in the background.
//
// Read transactions MUST use lookup, not get: preparing through the pool
// needs a free connection, and a transaction already holds one — with the
// cache locked during preparation, enough concurrent misses deadlock the
// pool (every connection held, every holder waiting).
func (c *stmtCache) lookup(q string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.m[q]; ok {
		return s
	}
	if c.closed || c.warming[q] || len(c.m)+len(c.warming) >= maxCachedStmts {
		return nil
	}
	if c.warming == nil {
		c.warming = make(map[string]bool)
	}
	c.warming[q] = true
	c.inflight.Add(1)
	go func() {
		defer c.inflight.Done()
		s, err := c.prep(context.Background(), q)
		c.mu.Lock()
		defer c.mu.Unlock()
		delete(c.warming, q)
		if err != nil {
			return
		}
		if c.closed {
			s.Close()
			return
		}
		c.m[q] = s
	}()
	return nil
}

func (c *stmtCache) close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	// A preparation still running holds a pool connection; the pool must
	// not be closed under it (SQLite would recreate the WAL files late).
	c.inflight.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for q, s := range c.m {
		errs = append(errs, s.Close())
		delete(c.m, q)
	}
	return errors.Join(errs...)
}

// connQuerier runs statements on the writer's connection. It uses a context
// that is never canceled: interrupting a statement inside the shared write
// transaction could roll back every Update of the batch.
type connQuerier struct {
	conn  *sql.Conn
	cache *stmtCache
}

func (c *connQuerier) stmt(q string) (*sql.Stmt, error) {
	return c.cache.get(context.Background(), q)
}

func (c *connQuerier) query(q string, args ...any) (*sql.Rows, error) {
	s, err := c.stmt(q)
	if err != nil {
		return nil, err
	} else if s == nil {
		return c.conn.QueryContext(context.Background(), q, args...)
	}
	return s.Query(args...)
}

func (c *connQuerier) queryRow(q string, args ...any) *row {
	rows, err := c.query(q, args...)
	return &row{rows: rows, err: err}
}

func (c *connQuerier) exec(q string, args ...any) (sql.Result, error) {
	s, err := c.stmt(q)
	if err != nil {
		return nil, err
	} else if s == nil {
		return c.conn.ExecContext(context.Background(), q, args...)
	}
	return s.Exec(args...)
}

// txQuerier runs statements in one read transaction of the read pool,
// binding the pool's prepared statements to the transaction's connection.
type txQuerier struct {
	ctx   context.Context
	tx    *sql.Tx
	cache *stmtCache
	bound map[string]*sql.Stmt
}

func (t *txQuerier) stmt(q string) (*sql.Stmt, error) {
	if s, ok := t.bound[q]; ok {
		return s, nil
	}
	ps := t.cache.lookup(q)
	if ps == nil {
		return nil, nil // run unprepared on this transaction's connection
	}
	s := t.tx.StmtContext(t.ctx, ps)
	if t.bound == nil {
		t.bound = make(map[string]*sql.Stmt)
	}
	t.bound[q] = s
	return s, nil
}

func (t *txQuerier) query(q string, args ...any) (*sql.Rows, error) {
	s, err := t.stmt(q)
	if err != nil {
		return nil, err
	} else if s == nil {
		return t.tx.QueryContext(t.ctx, q, args...)
	}
	return s.QueryContext(t.ctx, args...)
}

func (t *txQuerier) queryRow(q string, args ...any) *row {
	rows, err := t.query(q, args...)
	return &row{rows: rows, err: err}
}

func (t *txQuerier) exec(q string, args ...any) (sql.Result, error) {
	s, err := t.stmt(q)
	if err != nil {
		return nil, err
	} else if s == nil {
		return t.tx.ExecContext(t.ctx, q, args...)
	}
	return s.ExecContext(t.ctx, args...)
}

// row is the first row of a query, like *sql.Row but buildable from any
// querier: Scan returns sql.ErrNoRows when there is none.
type row struct {
	rows *sql.Rows
	err  error
}

func (r *row) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return sql.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	return r.rows.Close()
}
