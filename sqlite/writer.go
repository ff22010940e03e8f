package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync/atomic"
	"time"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/ledger"
	sqlitedriver "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Request states: the writer moves a request from queued to started just
// before running fn; Update moves it from queued to canceled when its
// context ends first. Whoever wins decides.
const (
	stateQueued int32 = iota
	stateStarted
	stateCanceled
)

// request is one queued Update.
type request struct {
	fn    func(warden.Tx) error
	state atomic.Int32
	done  chan error // capacity 1; receives the Update's result once
}

// writer owns the one write connection and the state of the batch in
// progress. Only the writer goroutine touches it after Open.
type writer struct {
	db    *DB
	conn  *sql.Conn
	q     *connQuerier
	batch []*request
	nodes []node // scratch for Tree.Append's visitor
}

type node struct {
	level uint
	index uint64
	hash  []byte
}

func newWriter(db *DB, conn *sql.Conn) *writer {
	return &writer{
		db:   db,
		conn: conn,
		q: &connQuerier{conn: conn, cache: newStmtCache(func(ctx context.Context, q string) (*sql.Stmt, error) {
			return conn.PrepareContext(ctx, q)
		})},
	}
}

// Hot statements, prepared when the writer starts.
const (
	sqlSavepoint   = "SAVEPOINT op"
	sqlRollbackTo  = "ROLLBACK TO op"
	sqlRelease     = "RELEASE op"
	sqlHead        = "SELECT size, state FROM ledger_head WHERE id = 1"
	sqlSetHead     = "UPDATE ledger_head SET size = ?, state = ? WHERE id = 1"
	sqlScrollHead  = "SELECT size, state FROM scroll_heads WHERE scroll = ?"
	sqlSetScroll   = "INSERT INTO scroll_heads (scroll, size, state) VALUES (?, ?, ?) ON CONFLICT (scroll) DO UPDATE SET size = excluded.size, state = excluded.state"
	sqlInsertLeaf  = "INSERT INTO receipts (" + receiptColumns + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
	sqlInsertNode  = "INSERT INTO merkle_nodes (level, idx, hash) VALUES (?, ?, ?)"
	sqlBegin       = "BEGIN IMMEDIATE"
	sqlCommit      = "COMMIT"
	sqlRollbackAll = "ROLLBACK"
)

func (w *writer) prepare() error {
	for _, q := range []string{sqlSavepoint, sqlRollbackTo, sqlRelease, sqlHead, sqlSetHead, sqlScrollHead, sqlSetScroll, sqlInsertLeaf, sqlInsertNode, sqlBegin, sqlCommit, sqlRollbackAll} {
		if s, err := w.q.stmt(q); err != nil || s == nil {
			return fmt.Errorf("prepare %q: %w", q, err)
		}
	}
	return nil
}

func (w *writer) close() error {
	err := w.q.cache.close()
	return errors.Join(err, w.conn.Close())
}

// run is the writer goroutine: it commits batches until Close has been
// called and the queue is empty.
func (db *DB) run() {
	defer close(db.stopped)
	last := 0
	for {
		batch, ok := db.next(last)
		if !ok {
			return
		}
		last = len(batch)
		db.w.commit(batch)
	}
}

// linger is how long the writer waits for a batch to fill up to the size
// of the previous one. Callers whose Update just returned usually send the
// next one within microseconds; waiting for them lets one fsync cover them
// all instead of splitting them over two commits.
var linger = 150 * time.Microsecond

// next waits for queued requests and takes up to MaxBatch of them. While
// fewer than want are queued it lingers (see linger). It returns false once
// the store is closed and nothing is queued.
func (db *DB) next(want int) ([]*request, bool) {
	want = min(want, db.opts.MaxBatch)
	var timer *time.Timer
	expired := false
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		db.mu.Lock()
		n := min(len(db.queue), db.opts.MaxBatch)
		if n > 0 && (n >= want || expired || db.closed) {
			b := append(db.w.batch[:0], db.queue[:n]...)
			clear(db.queue[:n])
			db.queue = db.queue[n:]
			if len(db.queue) == 0 {
				db.queue = nil
			}
			db.mu.Unlock()
			db.w.batch = b
			return b, true
		}
		closed := db.closed
		db.mu.Unlock()
		switch {
		case closed:
			return nil, false
		case n == 0:
			<-db.wake
		default:
			if timer == nil {
				timer = time.NewTimer(linger)
			}
			select {
			case <-db.wake:
			case <-timer.C:
				expired = true
			}
		}
	}
}

// requeue puts requests that never started back at the head of the queue.
func (db *DB) requeue(rs []*request) {
	if len(rs) == 0 {
		return
	}
	db.mu.Lock()
	db.queue = append(append([]*request(nil), rs...), db.queue...)
	db.mu.Unlock()
}

// batchState is the log head as the batch's transaction sees it.
type batchState struct {
	tree       *ledger.Tree
	loadedSize uint64
	scrolls    map[string]*scrollState
	counts     counterDelta // what the batch's ops add to the totals
	// Written behind (writebehind.go): counters from their first use, and
	// the ops' changes to the incident counters.
	counters map[string]*batchCounter
	stats    map[string]int64
}

type scrollState struct {
	tree       *ledger.Tree
	loadedSize uint64 // size as stored when loaded; 0 if absent
}

// snapshot is a tree's state before an op, to restore on rollback.
type snapshot struct {
	size  uint64
	state []byte
}

func snap(t *ledger.Tree) snapshot { return snapshot{size: t.Size(), state: t.State()} }

func (s snapshot) restore() *ledger.Tree {
	t, err := ledger.TreeFromState(s.size, s.state)
	if err != nil {
		panic(err) // a tree's own state always restores
	}
	return t
}

func (w *writer) loadHead() (*batchState, error) {
	var size uint64
	var state []byte
	if err := w.q.queryRow(sqlHead).Scan(&size, &state); err != nil {
		return nil, fmt.Errorf("load ledger head: %w", err)
	}
	t, err := ledger.TreeFromState(size, state)
	if err != nil {
		return nil, fmt.Errorf("load ledger head: %w", err)
	}
	return &batchState{tree: t, loadedSize: size, scrolls: map[string]*scrollState{}}, nil
}

// scroll returns the scroll's tree, loading it on first use in the batch.
func (w *writer) scroll(st *batchState, name string) (*scrollState, error) {
	if s, ok := st.scrolls[name]; ok {
		return s, nil
	}
	var size uint64
	var state []byte
	err := w.q.queryRow(sqlScrollHead, name).Scan(&size, &state)
	if errors.Is(err, sql.ErrNoRows) {
		size, state = 0, nil
	} else if err != nil {
		return nil, fmt.Errorf("load scroll head %s: %w", name, err)
	}
	t, err := ledger.TreeFromState(size, state)
	if err != nil {
		return nil, fmt.Errorf("load scroll head %s: %w", name, err)
	}
	s := &scrollState{tree: t, loadedSize: size}
	st.scrolls[name] = s
	return s, nil
}

var errNotRun = errors.New("not run")

// commit runs one batch in one transaction and delivers every result.
func (w *writer) commit(batch []*request) {
	start := time.Now()
	results := make([]error, len(batch))
	for i := range results {
		results[i] = errNotRun
	}
	deliver := func() {
		for i, r := range batch {
			if results[i] != errNotRun {
				r.done <- results[i]
			}
		}
	}
	fail := func(upto int, cause error) {
		w.db.log.Error("sqlite: write transaction failed", slog.Int("ops", upto), slog.Any("err", cause))
		for i := range upto {
			if results[i] == nil {
				results[i] = commitFailure(cause)
			}
		}
	}

	if _, err := w.q.exec(sqlBegin); err != nil {
		// Nothing ran: every request that is still waiting fails.
		for i, r := range batch {
			if r.state.CompareAndSwap(stateQueued, stateStarted) {
				results[i] = nil
			}
		}
		fail(len(batch), fmt.Errorf("begin: %w", err))
		deliver()
		return
	}
	st, err := w.loadHead()
	if err != nil {
		w.rollback()
		for i, r := range batch {
			if r.state.CompareAndSwap(stateQueued, stateStarted) {
				results[i] = nil
			}
		}
		fail(len(batch), err)
		deliver()
		return
	}

	ran := 0
	for i, r := range batch {
		if !r.state.CompareAndSwap(stateQueued, stateStarted) {
			continue // canceled while queued; Update has returned
		}
		opErr, broken := w.runOp(st, r.fn)
		results[i] = opErr
		if broken != nil {
			// The transaction is unusable: nothing of this batch is kept.
			// Requests after i never started and go back to the queue.
			w.rollback()
			fail(i+1, broken)
			if results[i] == nil {
				results[i] = commitFailure(broken)
			}
			var rest []*request
			for _, r2 := range batch[i+1:] {
				if r2.state.Load() == stateQueued {
					rest = append(rest, r2)
				}
			}
			w.db.requeue(rest)
			deliver()
			return
		}
		ran++
	}

	if err := w.saveHeads(st); err != nil {
		w.rollback()
		fail(len(batch), err)
		deliver()
		return
	}
	// A log longer than the totals know means another process committed:
	// the counters are read afresh, inside this transaction.
	var fresh *warden.Totals
	if !w.db.totals.current(st.loadedSize) {
		t, err := readTotals(w.q)
		if err != nil {
			w.rollback()
			fail(len(batch), err)
			deliver()
			return
		}
		fresh = &t
	}
	if _, err := w.q.exec(sqlCommit); err != nil {
		w.rollback()
		fail(len(batch), fmt.Errorf("commit: %w", err))
		deliver()
		return
	}
	w.db.totals.committed(st.loadedSize, st.tree.Size(), st.counts, fresh, time.Now())
	if f := w.db.opts.OnCommit; f != nil {
		f(ran, time.Since(start))
	}
	deliver()
}

// commitFailure is what an Update gets when its batch could not be
// committed because of cause: EUNAVAILABLE when the disk is full (nothing
// was written; a retry may succeed once space is freed), else EINTERNAL.
func commitFailure(cause error) error {
	if isFull(cause) {
		return errStorageFull()
	}
	return warden.Errorf(warden.EINTERNAL, "The change could not be committed.")
}

// errStorageFull is the error of a write that found the disk full.
func errStorageFull() error {
	return warden.Errorf(warden.EUNAVAILABLE, "Storage is full: the change was not saved. Retry once disk space is freed on the server.")
}

// isFull reports whether err is SQLite's SQLITE_FULL (13, any extended
// form): a write found no space, on a full disk or over a quota.
func isFull(err error) bool {
	var se *sqlitedriver.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_FULL
}

// rollback ends a failed transaction. It may already have been rolled
// back by SQLite; that error is expected and ignored.
func (w *writer) rollback() {
	w.q.exec(sqlRollbackAll) //nolint:errcheck // see above
}

// saveHeads writes what the batch kept in memory: the counters written
// behind, the log head and the scroll heads.
func (w *writer) saveHeads(st *batchState) error {
	if err := w.saveWriteBehind(st); err != nil {
		return err
	}
	if st.tree.Size() != st.loadedSize {
		if _, err := w.q.exec(sqlSetHead, int64(st.tree.Size()), st.tree.State()); err != nil {
			return fmt.Errorf("save ledger head: %w", err)
		}
	}
	for name, s := range st.scrolls {
		if s.tree.Size() == s.loadedSize {
			continue
		}
		if _, err := w.q.exec(sqlSetScroll, name, int64(s.tree.Size()), s.tree.State()); err != nil {
			return fmt.Errorf("save scroll head %s: %w", name, err)
		}
	}
	return nil
}

// runOp runs fn inside a savepoint. opErr is the request's result; broken
// is set when the transaction itself can no longer be used.
func (w *writer) runOp(st *batchState, fn func(warden.Tx) error) (opErr, broken error) {
	if _, err := w.q.exec(sqlSavepoint); err != nil {
		return nil, fmt.Errorf("savepoint: %w", err)
	}
	tx := &writeTx{reader: reader{q: w.q}, w: w, st: st}
	opErr = w.call(fn, tx)
	tx.done = true
	if opErr == nil && tx.fault != nil {
		// fn ignored a storage failure; its writes may be incomplete.
		opErr = commitFailure(tx.fault)
		w.db.log.Error("sqlite: update ignored a storage error", slog.Any("err", tx.fault))
	} else if warden.ErrorCode(opErr) == warden.EINTERNAL && (isFull(opErr) || isFull(tx.fault)) {
		// A write of fn found the disk full: the client may retry.
		w.db.log.Error("sqlite: update failed", slog.Any("err", opErr))
		opErr = errStorageFull()
	}
	if opErr != nil {
		if _, err := w.q.exec(sqlRollbackTo); err != nil {
			return opErr, fmt.Errorf("rollback to savepoint: %w (op: %w)", err, opErr)
		}
		tx.undo()
	}
	if _, err := w.q.exec(sqlRelease); err != nil {
		return opErr, fmt.Errorf("release savepoint: %w", err)
	}
	if opErr == nil {
		tx.commitOp()
	}
	return opErr, nil
}

// call runs fn, turning a panic into an EINTERNAL error.
func (w *writer) call(fn func(warden.Tx) error, tx *writeTx) (err error) {
	defer func() {
		if v := recover(); v != nil {
			w.db.log.Error("sqlite: update panicked", slog.Any("panic", v), slog.String("stack", string(debug.Stack())))
			err = warden.Errorf(warden.EINTERNAL, "The operation failed unexpectedly.")
		}
	}()
	return fn(tx)
}
